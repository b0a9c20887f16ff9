#!/usr/bin/env bash
# The users' path where Docker exists, run here without a registry: a kind
# cluster from kind-config.yaml on a node image built here, the project's
# images loaded into it with `kind load image-archive`.
#
# Builds what is missing, each step cached and skipped when its inputs are
# unchanged: Debian's Docker engine (hack/install-docker.sh), kind
# (hack/build-kind.sh), kubeadm (hack/build-kubeadm.sh) and the other pinned
# builds, the image archives (e2e/images/build.sh) and the kind node image
# (e2e/images/kind-node.sh). dockerd runs in a network namespace of its own
# (e2e/kind/dockerd.sh); the API server is forwarded to this machine's
# 127.0.0.1:$KIND_API_PORT (e2e/local/forward.py), and the default
# StorageClass is served by e2e/local/provisioner.py, both run beside the cluster.
# Idempotent: an existing cluster of this name is reused.
# The last line printed is `KUBECONFIG=<path>`; e2e/kind/down.sh deletes it all.
#
# Settings: KIND_CLUSTER (etcd-operator), KIND_API_PORT (16444), KIND_NODE_IMAGE
# (the one built here), KIND_KUBECONFIG (~/.cache/etcd-operator/state/kind-<name>.kubeconfig)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../hack/versions.env
. "$root/hack/versions.env"
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
export PATH="$cache/bin:$PATH"
python=${PYTHON:-$root/.venv/bin/python}
name=${KIND_CLUSTER:-etcd-operator}
api_port=${KIND_API_PORT:-16444}
state=$cache/state
kubeconfig=${KIND_KUBECONFIG:-$state/kind-$name.kubeconfig}
volumes=$state/kind-$name-volumes
netns=${KIND_NETNS:-etcd-operator-kind}
app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/etcd-operator/Chart.yaml")
started=$SECONDS
say() { echo "kind-up: [$((SECONDS - started))s] $*" >&2; }
mkdir -p "$state" "$volumes"

say "tools: docker engine, kind, kubeadm and the pinned builds"
{
  bash "$root/hack/install-docker.sh"
  bash "$root/hack/build-kind.sh"
  bash "$root/hack/build-kube.sh"
  bash "$root/hack/build-kubeadm.sh"
  bash "$root/hack/build-etcd.sh"
  bash "$root/hack/build-coredns.sh"
  bash "$root/hack/build-versitygw.sh"
} >&2

say "images: e2e/images/build.sh and the kind node image"
built=$(bash "$root/e2e/images/build.sh" pause versitygw node operator)
mapfile -t archives <<<"$built"
node_archive=$(bash "$root/e2e/images/kind-node.sh")
node_archive=${node_archive##*$'\n'}
node_image=${KIND_NODE_IMAGE:-localhost/etcd-operator/kind-node:$KUBE_VERSION}

out=$(bash "$here/dockerd.sh" start)
export "${out##*$'\n'}"   # DOCKER_HOST=unix://...

# `docker load` again only when the archive changed since the last load.
loaded=$state/kind-node-loaded.key
if [ -z "${KIND_NODE_IMAGE:-}" ] && { [ "$(cat "$loaded" 2>/dev/null)" != "$(cat "${node_archive%.tar}.key")" ] \
    || ! docker image inspect "$node_image" >/dev/null 2>&1; }; then
  say "docker load $node_archive"
  docker load -q -i "$node_archive" >&2
  cp "${node_archive%.tar}.key" "$loaded"
fi

# Capture the list, then search it: in `kind get clusters | grep -q` grep exits
# at the first match, kind can get SIGPIPE and, under pipefail, the test fails.
if ! { clusters=$(kind get clusters 2>/dev/null) && grep -qx "$name" <<<"$clusters"; }; then
  say "creating kind cluster $name from $node_image"
  config=$state/kind-$name-config.yaml
  sed -e "s|@VOLUMES@|$volumes|g" -e "s|@ETCD_TAG@|${ETCD_VERSION#v}|g" -e "s|@COREDNS_TAG@|$COREDNS_VERSION|g" \
    "$here/kind-config.yaml" >"$config"
  rm -rf "${volumes:?}"/*
  rm -f "$state/kind-$name-loaded."*
  kind create cluster --name "$name" --config "$config" --image "$node_image" \
    --kubeconfig "$state/kind-$name.inner.kubeconfig" --wait 300s >&2
fi

# The API server as this machine sees it: loopback, forwarded into the namespace.
pid_ok() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"; }
forward_pid=$(cat "$state/kind-$name-forward.pid" 2>/dev/null || true)
if ! pid_ok "$forward_pid" "127.0.0.1:$api_port /run/netns/$netns"; then
  say "forwarding 127.0.0.1:$api_port to the API server in $netns"
  setsid "$python" "$root/e2e/local/forward.py" "127.0.0.1:$api_port" "/run/netns/$netns" 127.0.0.1:6443 \
    </dev/null >>"$state/kind-$name-forward.log" 2>&1 &
  echo $! >"$state/kind-$name-forward.pid"
fi
kind get kubeconfig --name "$name" | sed "s|server: https://127.0.0.1:6443|server: https://127.0.0.1:$api_port|" >"$kubeconfig.tmp"
mv "$kubeconfig.tmp" "$kubeconfig"
export KUBECONFIG=$kubeconfig
deadline=$((SECONDS + 60))
until kubectl get --raw /readyz >/dev/null 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || { say "the API server does not answer on 127.0.0.1:$api_port"; exit 1; }
  sleep 1
done

provisioner_pid=$(cat "$state/kind-$name-provisioner.pid" 2>/dev/null || true)
if ! pid_ok "$provisioner_pid" "provisioner.py $kubeconfig"; then
  say "starting the volume provisioner (host directories in $volumes)"
  setsid "$python" "$root/e2e/local/provisioner.py" "$kubeconfig" "$volumes" \
    </dev/null >>"$state/kind-$name-provisioner.log" 2>&1 &
  echo $! >"$state/kind-$name-provisioner.pid"
fi

kubectl apply --server-side --force-conflicts -f "$here/coredns.yaml" >&2

# `kind load` again only what changed since the last load into this cluster.
for archive in "${archives[@]}"; do
  base=$(basename "$archive" .tar)
  mark=$state/kind-$name-loaded.$base
  [ "$(cat "$mark" 2>/dev/null)" != "$(cat "${archive%.tar}.key")" ] || continue
  say "kind load image-archive $base"
  kind load image-archive --name "$name" "$archive" >&2
  cp "${archive%.tar}.key" "$mark"
done

kubectl wait --for=condition=Ready node --all --timeout=180s >&2
kubectl -n kube-system rollout status deploy/coredns --timeout=180s >&2
say "ready: kind cluster $name (app $app_version)"
echo "KUBECONFIG=$kubeconfig"
