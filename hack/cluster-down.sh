#!/usr/bin/env bash
# Stop the control plane hack/apiserver-up.sh started (by its pid files:
# SIGTERM, then SIGKILL after a grace period). Certificates and kubeconfigs are
# kept; etcd's data is wiped so the next start is a clean cluster. Idempotent:
# exits 0 when nothing runs.
#
# usage: hack/cluster-down.sh [COMPONENT ...]
#   With components (etcd, kube-apiserver, kube-controller-manager) only those
#   are stopped and etcd's data is kept (apiserver-up.sh uses this to replace a
#   process running an outdated binary).
set -euo pipefail
state=${ETCD_OPERATOR_STATE:-$HOME/.cache/etcd-operator/state}/apiserver
run="$state/run"
grace=${KUBE_DOWN_GRACE:-15}   # seconds between SIGTERM and SIGKILL

# Nothing was ever started here.
[ -d "$state" ] || { echo "cluster-down: nothing to stop"; exit 0; }
# Same lock as hack/apiserver-up.sh (which already holds it when it calls us).
if [ "${KUBE_PLANE_LOCK_HELD:-}" != 1 ]; then
  exec 9>"$state/lock"
  flock -w 120 9 || { echo "cluster-down: timed out waiting for $state/lock" >&2; exit 1; }
fi

components=("$@")
wipe=0
if [ ${#components[@]} -eq 0 ]; then
  # Clients first, so nothing reconnects to what has just gone.
  components=(kube-controller-manager kube-apiserver etcd)
  wipe=1
fi

plane=cluster-down
# shellcheck source=lib/plane.sh
. "$(dirname "$0")/lib/plane.sh"

# ours PID: the pid still runs one of the binaries we start (the pid file may
# be stale and the pid reused by an unrelated program, which must not be hit).
ours() {
  case "$(readlink "/proc/$1/exe" 2>/dev/null)" in
    */etcd*|*/kube-apiserver*|*/kube-controller-manager*) return 0 ;;
    *) return 1 ;;
  esac
}

for c in "${components[@]}"; do
  case "$c" in
    etcd|kube-apiserver|kube-controller-manager) stop_pid "$c" ours "$grace" || exit 1 ;;
    *) echo "cluster-down: unknown component $c" >&2; exit 2 ;;
  esac
done

if [ "$wipe" = 1 ] && [ -d "$state/etcd-data" ]; then
  echo "cluster-down: wiping $state/etcd-data (certificates kept in $state/pki)"
  rm -rf "$state/etcd-data"
fi
echo "cluster-down: stopped"
