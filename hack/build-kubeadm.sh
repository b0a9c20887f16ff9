#!/usr/bin/env bash
# Build the pinned kubeadm (KUBE_VERSION in hack/versions.env) from the Go
# module proxy into bin/kubeadm-<version>/kubeadm (linked as bin/kubeadm), for
# the kind node image (e2e/images/kind-node.sh). Same wrapper module as
# hack/build-kube.sh (k8s.io/kubernetes needs its staging modules replaced by
# their published releases); kept in its own directory, which build-kube.sh's
# swap of kube-<version>/ never touches. Go's caches, warm after
# build-kube.sh, make the build a few minutes; a build of the right version is
# reused without invoking Go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${KUBE_VERSION:?KUBE_VERSION missing from hack/versions.env}"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
dest=$bin_dir/kubeadm-$KUBE_VERSION
v=$KUBE_VERSION
mkdir -p "$bin_dir"

# `kubeadm version -o short` prints e.g. "v1.35.4".
if [ -x "$dest/kubeadm" ] && [ "$("$dest/kubeadm" version -o short 2>/dev/null)" = "$v" ]; then
  echo "kubeadm $v: cached in $dest"
  ln -sfn "kubeadm-$v/kubeadm" "$bin_dir/kubeadm"
  exit 0
fi

rest=${v#v1.}
minor=${rest%%.*}
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
info=$(go mod download -json "k8s.io/kubernetes@$v")
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
[ -f "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$v" >&2; exit 1; }
build_date=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "k8s.io/kubernetes@$v")
cd "$work"
go mod init kubeadm-build >/dev/null 2>&1
go mod edit -go="$(awk '$1 == "go" { print $2; exit }' "$gomod")"
godebug_default=$(awk '$1 == "godebug" && $2 ~ /^default=/ { print $2; exit }' "$gomod")
[ -z "$godebug_default" ] || go mod edit -godebug="$godebug_default"
staging=$(awk '/^require[[:space:]]*\(/ { inreq = 1; next }
               inreq && /^\)/ { inreq = 0 }
               inreq && $2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print $1 }' "$gomod")
[ -n "$staging" ] || { echo "found no v0.0.0 staging requirements in $gomod" >&2; exit 1; }
for m in $staging; do go mod edit -replace "$m=$m@v0.$rest"; done
echo "kubeadm $v: resolving dependencies"
if ! go get "k8s.io/kubernetes/cmd/kubeadm@$v" >"$work/get.log" 2>&1; then
  tail -n 50 "$work/get.log" >&2
  exit 1
fi
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
echo "kubeadm $v: compiling"
mkdir -p out
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o out/kubeadm k8s.io/kubernetes/cmd/kubeadm
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
mv out/kubeadm "$dest.tmp/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
ln -sfn "kubeadm-$v/kubeadm" "$bin_dir/kubeadm"
echo "kubeadm $v: built in $((SECONDS - start))s: $("$dest/kubeadm" version -o short)"
