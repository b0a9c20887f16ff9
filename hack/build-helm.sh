#!/usr/bin/env bash
# Build the pinned Helm from the Go module proxy into the shared binary cache,
# for the chart tests (tests/chart) and the demo's `helm install`.
#
# A wrapper module pins the exact release. The -X flags are the ones Helm's
# own Makefile sets: the version (else `helm version` prints just "v3.NN") and
# the default Kubernetes version that `helm template` and `helm lint` check a
# chart's kubeVersion against (else v1.20, older than any chart we support);
# Helm derives the latter from the client-go it is built with (v0.NN -> 1.NN).
# Go's module and build caches make a warm rebuild fast, and an existing
# binary of the right version is reused without invoking Go at all.
#
# usage: hack/build-helm.sh   (version: HELM_VERSION in hack/versions.env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
: "${HELM_VERSION:?HELM_VERSION missing from hack/versions.env}"
bin_dir=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}/bin
dest="$bin_dir/helm-$HELM_VERSION"
mkdir -p "$bin_dir"

link() { ln -sfn "helm-$HELM_VERSION/helm" "$bin_dir/helm"; }

# Capture first: `helm version | grep -q` under pipefail fails when grep exits early.
have=""
[ -x "$dest/helm" ] && have=$("$dest/helm" version --template '{{.Version}}' 2>/dev/null || true)
if [ "$have" = "$HELM_VERSION" ]; then
  echo "helm $HELM_VERSION: cached in $dest"
  link
  exit 0
fi

v=$HELM_VERSION
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init helm-build >/dev/null 2>&1
echo "helm $v: downloading dependencies from the Go module proxy (a few minutes when Go's module cache is cold)"
if ! go get "helm.sh/helm/v3/cmd/helm@$v" >"$work/get.log" 2>&1; then
  tail -n 50 "$work/get.log" >&2
  exit 1
fi

client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)   # e.g. v0.35.1
rest=${client_go#v0.}
k8s_minor=${rest%%.*}
[[ "$k8s_minor" =~ ^[0-9]+$ ]] || { echo "cannot read k8s.io/client-go version ($client_go)" >&2; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

echo "helm $v: compiling (2-3 min in all on 2 cores when Go's caches are cold)"
mkdir -p out
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o out/helm helm.sh/helm/v3/cmd/helm

# Swap the finished binary in whole, so a half-built directory is never "cached".
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
mv out/helm "$dest.tmp/"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
link
"$dest/helm" version --short
echo "helm $v: built in $((SECONDS - start))s into $dest (default Kubernetes v1.$k8s_minor)"
