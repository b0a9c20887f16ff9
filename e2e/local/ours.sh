# Sourced by e2e/local/up.sh and down.sh.
# shellcheck shell=bash
# `ours PID` for plane.sh's stop_pid: a process the local cluster runs (daemons
# by binary; the Python helpers by script name), so a pid file left by an
# earlier boot never makes us signal somebody else's process.
ours() {
  local exe cmd
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  case "$exe" in
    */etcd*|*/kube-*|*/kubelet*|*/containerd) return 0 ;;
  esac
  cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  case "$cmd" in *e2e/local/forward.py*|*e2e/local/provisioner.py*) return 0 ;; esac
  return 1
}
