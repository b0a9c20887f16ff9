#!/usr/bin/env bash
# Build the pinned CoreDNS from the Go module proxy into the shared binary
# cache, for the local e2e cluster's DNS (its image: e2e/images/build.sh).
#
# CoreDNS is built from its own downloaded module, so its go.mod (replace
# directives and all) applies exactly as in its release build; the -X flag is
# the one its Makefile sets for the git commit. A static binary (CGO off) runs
# in an image that holds nothing else. An existing build of the right version
# is reused without invoking Go at all.
#
# usage: hack/build-coredns.sh   (version: COREDNS_VERSION in hack/versions.env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${COREDNS_VERSION:?COREDNS_VERSION missing from hack/versions.env}"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
dest="$bin_dir/coredns-$COREDNS_VERSION"
mkdir -p "$bin_dir"

link() { ln -sfn "coredns-$COREDNS_VERSION/coredns" "$bin_dir/coredns"; }

# `coredns -version` prints "CoreDNS-1.14.7" first. Capture, then compare
# (a pipe into `grep -q` fails under pipefail when grep exits early).
have=""
[ -x "$dest/coredns" ] && have=$("$dest/coredns" -version 2>/dev/null || true)
have=${have%%$'\n'*}
if [ "$have" = "CoreDNS-${COREDNS_VERSION#v}" ]; then
  echo "coredns $COREDNS_VERSION: cached in $dest"
  link
  exit 0
fi

start=$SECONDS
echo "coredns $COREDNS_VERSION: downloading github.com/coredns/coredns@$COREDNS_VERSION and its dependencies"
info=$(go mod download -json "github.com/coredns/coredns@$COREDNS_VERSION")
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
[ -f "$src/coredns.go" ] || { echo "no coredns.go in the downloaded module ($src)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "coredns $COREDNS_VERSION: compiling (a few minutes on 2 cores when Go's caches are cold)"
# The module cache is read-only, so Go builds from it without touching it.
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$out/coredns" .)
rm -rf "$dest"
mkdir -p "$dest"
mv "$out/coredns" "$dest/coredns"
link
printed=$("$dest/coredns" -version)
echo "${printed%%$'\n'*}"
echo "coredns $COREDNS_VERSION: built in $((SECONDS - start))s into $dest"
