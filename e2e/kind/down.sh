#!/usr/bin/env bash
# Undo e2e/kind/up.sh: delete the kind cluster, stop the API forwarder and the
# volume provisioner it started, then stop dockerd and remove its network
# namespace (e2e/kind/dockerd.sh). Images and the Docker data stay cached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
export PATH="$cache/bin:$PATH"
name=${KIND_CLUSTER:-etcd-operator}
state=$cache/state
say() { echo "kind-down: $*" >&2; }

if bash "$here/dockerd.sh" status >/dev/null 2>&1; then
  out=$(bash "$here/dockerd.sh" start 2>/dev/null)
  export "${out##*$'\n'}"   # DOCKER_HOST=unix://...
  # Capture the list, then search it: in `kind get clusters | grep -q` grep exits
  # at the first match, kind can get SIGPIPE and, under pipefail, the test fails.
  if command -v kind >/dev/null && clusters=$(kind get clusters 2>/dev/null) \
      && grep -qx "$name" <<<"$clusters"; then
    kind delete cluster --name "$name"
  fi
fi

# Only our own processes: the pid file's process must still be the one we started.
for what in forward provisioner; do
  pidfile=$state/kind-$name-$what.pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$what.py"; then
    say "stopping the $what (pid $pid)"
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
rm -rf "${state:?}/kind-$name-volumes" "$state/kind-$name-loaded."*
bash "$here/dockerd.sh" stop
