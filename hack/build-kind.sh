#!/usr/bin/env bash
# Build the pinned kind (KIND_VERSION in hack/versions.env) from the Go module
# proxy into the shared binary cache: bin/kind-<version>/kind, linked as bin/kind.
# About 1.5 minutes on 2 cores when Go's caches are cold; a build of the right
# version is reused without invoking Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${KIND_VERSION:?KIND_VERSION missing from hack/versions.env}"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
dest=$bin_dir/kind-$KIND_VERSION
mkdir -p "$bin_dir"
# `kind version` prints e.g. "kind v0.30.0 go1.26.8 linux/amd64".
if [ -x "$dest/kind" ] && [[ "$("$dest/kind" version 2>/dev/null)" == "kind $KIND_VERSION "* ]]; then
  echo "kind $KIND_VERSION: cached in $dest"
else
  start=$SECONDS
  echo "kind $KIND_VERSION: go install sigs.k8s.io/kind@$KIND_VERSION"
  rm -rf "$dest.tmp"
  GOBIN=$dest.tmp CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  echo "kind $KIND_VERSION: built in $((SECONDS - start))s"
fi
ln -sfn "kind-$KIND_VERSION/kind" "$bin_dir/kind"
"$bin_dir/kind" version
