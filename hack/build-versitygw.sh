#!/usr/bin/env bash
# Build the pinned versitygw (an S3 gateway over a plain directory) from the Go
# module proxy into the shared binary cache: the real object store the backup
# tests upload snapshots to and restore them from.
#
# It is built from its own downloaded module so that its go.mod applies as in
# its release build; a static binary (CGO off) also runs in an image that holds
# nothing else. An existing build of the right version is reused without Go.
#
# usage: hack/build-versitygw.sh   (version: VERSITYGW_VERSION in hack/versions.env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${VERSITYGW_VERSION:?VERSITYGW_VERSION missing from hack/versions.env}"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
dest="$bin_dir/versitygw-$VERSITYGW_VERSION"
mkdir -p "$bin_dir"

link() { ln -sfn "versitygw-$VERSITYGW_VERSION/versitygw" "$bin_dir/versitygw"; }

# The version is recorded beside the binary: the build is only reused when it
# says the pinned version and the binary still runs.
if [ -x "$dest/versitygw" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$VERSITYGW_VERSION" ] \
  && "$dest/versitygw" --help >/dev/null 2>&1; then
  echo "versitygw $VERSITYGW_VERSION: cached in $dest"
  link
  exit 0
fi

start=$SECONDS
echo "versitygw $VERSITYGW_VERSION: downloading github.com/versity/versitygw@$VERSITYGW_VERSION and its dependencies"
info=$(go mod download -json "github.com/versity/versitygw@$VERSITYGW_VERSION")
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
[ -d "$src/cmd/versitygw" ] || { echo "no cmd/versitygw in the downloaded module ($src)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "versitygw $VERSITYGW_VERSION: compiling (a few minutes on 2 cores when Go's caches are cold)"
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/versitygw" ./cmd/versitygw)
rm -rf "$dest"
mkdir -p "$dest"
mv "$out/versitygw" "$dest/versitygw"
echo "$VERSITYGW_VERSION" >"$dest/VERSION"
link
echo "versitygw $VERSITYGW_VERSION: built in $((SECONDS - start))s into $dest"
