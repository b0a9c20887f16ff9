#!/usr/bin/env bash
# Build pinned etcd, etcdctl and etcdutl from the Go module proxy into the
# shared binary cache. A wrapper module pins the exact release; Go's own module
# and build caches make a warm rebuild fast, and an existing binary of the
# right version is reused without invoking Go at all.
#
# usage: hack/build-etcd.sh [VERSION ...]   (default: the versions in hack/versions.env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
mkdir -p "$bin_dir"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("$ETCD_VERSION" "$ETCD_V2_VERSION")

build_one() {
  local v=$1 dest="$bin_dir/etcd-$1"
  # Capture first: `etcd --version | grep -q` under pipefail fails when grep exits early.
  local have=""
  [ -x "$dest/etcd" ] && have=$("$dest/etcd" --version 2>/dev/null || true)
  if [ -x "$dest/etcdctl" ] && [ -x "$dest/etcdutl" ] && [[ "$have" == *"etcd Version: ${v#v}"* ]]; then
    echo "etcd $v: cached in $dest"
    return
  fi
  echo "etcd $v: building from the Go module proxy (a few minutes when Go's caches are cold)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init etcd-build >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$v" "go.etcd.io/etcd/etcdctl/v3@$v" "go.etcd.io/etcd/etcdutl/v3@$v" >/dev/null 2>&1 \
      || go get "go.etcd.io/etcd/server/v3@$v" "go.etcd.io/etcd/etcdctl/v3@$v" "go.etcd.io/etcd/etcdutl/v3@$v"
    mkdir -p out
    for pkg in server:etcd etcdctl:etcdctl etcdutl:etcdutl; do
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "out/${pkg#*:}" "go.etcd.io/etcd/${pkg%%:*}/v3"
    done
  )
  mkdir -p "$dest"
  mv "$work"/out/* "$dest/"
  # Print the first line without a pipe: `| head` ends the pipe early, etcd gets
  # SIGPIPE and, under pipefail, the script would exit 141 on a fresh machine.
  local printed
  printed=$("$dest/etcd" --version)
  echo "${printed%%$'\n'*}"
}

for v in "${versions[@]}"; do build_one "$v"; done
# The main version is also reachable without a version suffix.
ln -sfn "etcd-$ETCD_VERSION/etcd" "$bin_dir/etcd"
ln -sfn "etcd-$ETCD_VERSION/etcdctl" "$bin_dir/etcdctl"
ln -sfn "etcd-$ETCD_VERSION/etcdutl" "$bin_dir/etcdutl"
