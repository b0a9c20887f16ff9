#!/usr/bin/env bash
# Tear down the local cluster e2e/local/up.sh started: every container, the
# node's daemons, their mounts, the pods' and the node's network namespaces,
# and all cluster state (etcd data, volumes, images imported into containerd).
# Certificates are kept. Idempotent: exits 0 when nothing runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
state=${ETCD_OPERATOR_STATE:-$cache/state}/node
run="$state/run"
netns=${E2E_NETNS:-etcd-operator-e2e}
containerd_sock="$state/containerd/containerd.sock"
grace=${E2E_DOWN_GRACE:-15}
plane=cluster-down
# shellcheck source=../../hack/lib/plane.sh
. "$root/hack/lib/plane.sh"
# shellcheck source=ours.sh
. "$here/ours.sh"

[ -d "$state" ] || { log "no local cluster state in $state"; exit 0; }
exec 9>"$state/lock"
flock -w 180 9 || { log "timed out waiting for $state/lock"; exit 1; }

# The kubelet first, so nothing restarts the containers killed next.
stop_pid kubelet ours "$grace"
stop_pid kube-proxy ours "$grace"

# Every container of this containerd: its shim outlives containerd, so kill
# the tasks through containerd while it still runs.
if [ -S "$containerd_sock" ] && ctr --address "$containerd_sock" version >/dev/null 2>&1; then
  ids=$(ctr --address "$containerd_sock" -n k8s.io tasks ls -q 2>/dev/null || true)
  for id in $ids; do
    ctr --address "$containerd_sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  # containerd's CRI plugin deletes most exited tasks itself: delete what is
  # left until none is (deleting one already gone only fails, so poll the list).
  deadline=$((SECONDS + 20))
  while left=$(ctr --address "$containerd_sock" -n k8s.io tasks ls -q 2>/dev/null) && [ -n "$left" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { log "containers still listed after 20s: $(wc -w <<<"$left")"; break; }
    for id in $left; do
      ctr --address "$containerd_sock" -n k8s.io tasks delete "$id" >/dev/null 2>&1 || true
    done
    sleep 0.2
  done
  [ -z "$ids" ] || log "killed $(wc -w <<<"$ids") containers"
fi
# Shims left by a containerd that had already died.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $containerd_sock" || true); do
  kill -KILL "$pid" 2>/dev/null || true
done

for c in provisioner kube-scheduler kube-controller-manager containerd forward kube-apiserver etcd; do
  stop_pid "$c" ours "$grace"
done

# Pod network namespaces (containerd names them cni-<uuid>) that hold a veth
# into the node's namespace, then the node's own.
if [ -e "/run/netns/$netns" ]; then
  for ns in $(ip netns list | awk '$1 ~ /^cni-/ { print $1 }'); do
    # Capture, then test: `ip ... | grep -q .` exits at the first line, and ip's
    # SIGPIPE would make the test fail under pipefail.
    if veths=$(ip netns exec "$ns" ip -o link show type veth 2>/dev/null) && [ -n "$veths" ]; then
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  ip netns del "$netns"
  log "deleted network namespace $netns"
fi

# Mounts left under the state directory (volumes, secrets, rootfs overlays).
findmnt -rn -o TARGET | awk -v s="$state/" 'index($0, s) == 1' | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null || true
done
# Empty pod cgroups the kubelet made.
for d in /sys/fs/cgroup/*/kubepods; do
  if [ -d "$d" ]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
done

rm -rf "$state/etcd-data" "$state/kubelet" "$state/containerd" "$state/volumes" "$state/cni"
log "stopped; state wiped (certificates kept in $state/pki)"
