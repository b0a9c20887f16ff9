#!/usr/bin/env bash
# The Docker engine of the kind path, inside a network namespace of its own
# (etcd-operator-kind, loopback only, no link out): its bridges, the kind
# nodes' addresses and every iptables rule it writes stay there, so no
# container traffic can reach the machine's network. Not `ip netns exec`: that
# remounts /sys, hides the cgroup mounts and dockerd refuses to start
# ("Devices cgroup isn't mounted"); nsenter switches the network alone.
#
# Its default runtime is runc behind e2e/kind/runc-in-sandbox, which drops the
# capabilities this machine cannot grant (kind's nodes are --privileged).
#
# usage: e2e/kind/dockerd.sh start|stop|status
#   start: idempotent; prints DOCKER_HOST=unix://<socket> last
# Settings: KIND_NETNS (etcd-operator-kind). Data (images, nodes' volumes) in
# ~/.cache/etcd-operator/docker; socket, pid and exec root in /run/etcd-operator-kind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
netns=${KIND_NETNS:-etcd-operator-kind}
run=/run/etcd-operator-kind
sock=$run/docker.sock
pidfile=$run/dockerd.pid
log=$cache/state/kind-dockerd.log
say() { echo "kind-dockerd: $*" >&2; }

answers() { DOCKER_HOST=unix://$sock timeout 10 docker info >/dev/null 2>&1; }

# ours: the pid file names a live dockerd started with our socket.
ours() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "unix://$sock"
}

start() {
  if ours && answers; then
    say "dockerd answers on $sock (namespace $netns)"
  else
    command -v dockerd >/dev/null || { say "no dockerd: run \`bash hack/install-docker.sh\`"; exit 2; }
    [ "$(id -u)" = 0 ] || { say "needs root (network namespace, dockerd)"; exit 2; }
    if [ ! -e "/run/netns/$netns" ]; then
      say "creating network namespace $netns (loopback only)"
      ip netns add "$netns"
    fi
    ip -n "$netns" link set lo up
    mkdir -p "$run" "$cache/docker" "$(dirname "$log")"
    ! ours || stop_daemon
    say "starting dockerd in $netns (log $log)"
    # setsid and no inherited stdout: whoever runs up.sh in $(...) is not held open.
    nsenter "--net=/run/netns/$netns" setsid dockerd \
      --data-root "$cache/docker" --exec-root "$run/exec" --pidfile "$pidfile" -H "unix://$sock" \
      --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs \
      --add-runtime "sandbox-runc=$here/runc-in-sandbox" --default-runtime sandbox-runc \
      </dev/null >>"$log" 2>&1 &
    local deadline=$((SECONDS + 60))
    until answers; do
      if [ "$SECONDS" -ge "$deadline" ]; then tail -n 30 "$log" >&2; say "dockerd did not answer within 60s"; exit 1; fi
      sleep 1
    done
    say "dockerd $(DOCKER_HOST=unix://$sock docker version --format '{{.Server.Version}}') answers on $sock"
  fi
  echo "DOCKER_HOST=unix://$sock"
}

stop_daemon() {
  local pid
  pid=$(cat "$pidfile")
  say "stopping dockerd (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 60); do [ -d "/proc/$pid" ] || break; sleep 1; done
  if [ -d "/proc/$pid" ]; then say "dockerd still running after 60s; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
}

stop() {
  if ours; then stop_daemon; fi
  # The namespace goes with the daemon: nothing else of ours lives in it.
  if [ -e "/run/netns/$netns" ] && ! ip netns pids "$netns" | grep -q .; then
    ip netns delete "$netns"
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) if ours && answers; then echo "running: unix://$sock"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
