#!/usr/bin/env bash
# Build the pinned Kubernetes binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl) from the Go module proxy into
# the shared binary cache, for the `kube` tests (hack/apiserver-up.sh).
#
# `go install k8s.io/kubernetes/cmd/...@vX` cannot work: k8s.io/kubernetes
# requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0
# and points them at ./staging with replace directives, which only apply inside
# that repository. A wrapper module redoes those replaces with the published
# staging releases (v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>).
# Go's module and build caches make a warm rebuild fast, and an existing build
# of the right version is reused without invoking Go at all.
#
# usage: hack/build-kube.sh   (version: KUBE_VERSION in hack/versions.env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${KUBE_VERSION:?KUBE_VERSION missing from hack/versions.env}"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
dest="$bin_dir/kube-$KUBE_VERSION"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
mkdir -p "$bin_dir"

cached() {
  local b
  for b in "${bins[@]}"; do [ -x "$dest/$b" ] || return 1; done
  # `kube-apiserver --version` prints e.g. "Kubernetes v1.35.4".
  [ "$("$dest/kube-apiserver" --version 2>/dev/null)" = "Kubernetes $KUBE_VERSION" ]
}

link() {
  local b
  for b in "${bins[@]}"; do ln -sfn "kube-$KUBE_VERSION/$b" "$bin_dir/$b"; done
}

if cached; then
  echo "kubernetes $KUBE_VERSION: cached in $dest"
  link
  exit 0
fi

v=$KUBE_VERSION
rest=${v#v1.}                      # 35.4
minor=${rest%%.*}                  # 35
staging_version="v0.$rest"         # v0.35.4
start=$SECONDS
work=$(mktemp -d)
heartbeat=
cleanup() {
  [ -z "$heartbeat" ] || kill "$heartbeat" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "kubernetes $v: resolving k8s.io/kubernetes@$v from the Go module proxy"
info=$(go mod download -json "k8s.io/kubernetes@$v")
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
[ -f "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$v" >&2; exit 1; }
# Build date = the release's commit time, so rebuilds are reproducible.
build_date=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "k8s.io/kubernetes@$v")

cd "$work"
go mod init kube-build >/dev/null 2>&1
# Mirror the language version and GODEBUG defaults Kubernetes is built with.
go_directive=$(awk '$1 == "go" { print $2; exit }' "$gomod")
go mod edit -go="$go_directive"
godebug_default=$(awk '$1 == "godebug" && $2 ~ /^default=/ { print $2; exit }' "$gomod")
[ -z "$godebug_default" ] || go mod edit -godebug="$godebug_default"

# Every staging module k8s.io/kubernetes requires at the v0.0.0 placeholder.
staging=$(awk '/^require[[:space:]]*\(/ { inreq = 1; next }
               inreq && /^\)/ { inreq = 0 }
               inreq && $2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print $1 }' "$gomod")
[ -n "$staging" ] || { echo "found no v0.0.0 staging requirements in $gomod" >&2; exit 1; }
n=0
for m in $staging; do
  go mod edit -replace "$m=$m@$staging_version"
  n=$((n + 1))
done
echo "kubernetes $v: replaced $n staging modules with $staging_version"

# Asking for the command packages (not just the module) also records go.sum
# entries for everything they import.
pkgs=()
for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
echo "kubernetes $v: downloading dependencies (several minutes when Go's module cache is cold)"
get_args=()
for p in "${pkgs[@]}"; do get_args+=("$p@$v"); done
if ! go get "${get_args[@]}" >"$work/get.log" 2>&1; then
  tail -n 50 "$work/get.log" >&2
  exit 1
fi
echo "kubernetes $v: dependencies ready after $((SECONDS - start))s"

# The same -X flags Kubernetes' hack/lib/version.sh sets; both version packages
# are stamped (servers report component-base's, kubectl's client uses both).
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

echo "kubernetes $v: compiling ${bins[*]} (about 7 min on 2 cores when Go's build cache is cold)"
# Heartbeat so a long cold compile visibly makes progress; killed on exit,
# taking its sleep along (an orphaned sleep would hold our stdout open).
(
  trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  while :; do
    sleep 60 & nap=$!
    wait "$nap"
    echo "kubernetes $v: still compiling ($((SECONDS - start))s elapsed)"
  done
) &
heartbeat=$!
mkdir -p out
# One invocation shares the compilation of the common dependencies.
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o out/ "${pkgs[@]}"
kill "$heartbeat" 2>/dev/null || true
wait "$heartbeat" 2>/dev/null || true
heartbeat=

# Swap the finished set in whole, so a half-built directory is never "cached".
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
mv out/* "$dest.tmp/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
link
"$dest/kube-apiserver" --version
echo "kubernetes $v: built in $((SECONDS - start))s into $dest"
