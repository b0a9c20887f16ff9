#!/usr/bin/env bash
# The users' path where Docker exists: a kind cluster, the images built from
# the same Dockerfiles (node_image/, operator/) and loaded into its nodes: a
# node image for each of NODE_ETCD_VERSIONS (hack/versions.env), the operator.
# Idempotent: an existing cluster of this name is reused; images are rebuilt
# (Docker's cache makes that quick) and loaded again.
# The last line printed is `KUBECONFIG=<path>`; e2e/kind/down.sh deletes it.
#
# Settings: KIND_CLUSTER (etcd-operator), KIND_NODE_IMAGE (kind's default for its version)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../hack/versions.env
. "$root/hack/versions.env"
name=${KIND_CLUSTER:-etcd-operator}
kubeconfig=${KIND_KUBECONFIG:-$HOME/.cache/etcd-operator/state/kind-$name.kubeconfig}
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/etcd-operator/Chart.yaml")
read -ra node_versions <<<"$NODE_ETCD_VERSIONS"
say() { echo "kind-up: $*" >&2; }

for tool in docker kind; do
  command -v "$tool" >/dev/null || { say "$tool not found: this path needs Docker and kind (else use e2e/local/up.sh)"; exit 2; }
done
docker info >/dev/null 2>&1 || { say "the Docker daemon does not answer (docker info)"; exit 2; }
mkdir -p "$(dirname "$kubeconfig")"

# Capture the list, then search it: in `kind get clusters | grep -q` grep exits
# at the first match, kind can get SIGPIPE and, under pipefail, the test fails.
if ! { clusters=$(kind get clusters 2>/dev/null) && grep -qx "$name" <<<"$clusters"; }; then
  say "creating kind cluster $name"
  kind create cluster --name "$name" --config "$here/kind-config.yaml" --kubeconfig "$kubeconfig" \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 180s >&2
else
  kind get kubeconfig --name "$name" >"$kubeconfig"
fi

node_images=()
for v in "${node_versions[@]}"; do node_images+=("etcd-node:${v#v}"); done
say "building ${node_images[*]} and etcd-operator:$app_version with Docker"
for v in "${node_versions[@]}"; do
  docker build -q -f "$root/node_image/Dockerfile" --build-arg "ETCD_VERSION=$v" -t "etcd-node:${v#v}" "$root" >&2
done
docker build -q -f "$root/operator/Dockerfile" -t "etcd-operator:$app_version" "$root" >&2
say "loading the images into the nodes"
kind load docker-image --name "$name" "${node_images[@]}" "etcd-operator:$app_version" >&2
echo "KUBECONFIG=$kubeconfig"
