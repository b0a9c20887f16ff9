#!/usr/bin/env bash
# Install Debian's Docker engine (docker.io: dockerd 20.10 and its client) for
# the kind path (e2e/kind/). Debian's package scripts would start dockerd at
# once, in the machine's own network namespace; e2e/kind/dockerd.sh starts it
# only inside a namespace of its own, so the install is told to start nothing
# (a policy-rc.d that refuses every service action, removed afterwards).
# Idempotent: nothing happens when dockerd is there.
set -euo pipefail
if command -v dockerd >/dev/null; then
  echo "docker: $(dockerd --version)"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-docker: needs root (apt-get)" >&2; exit 1; }
policy=/usr/sbin/policy-rc.d
had_policy=
[ ! -e "$policy" ] || had_policy=1
if [ -z "$had_policy" ]; then
  printf '#!/bin/sh\n# hack/install-docker.sh: start no service while installing\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends docker.io >/dev/null 2>&1 || {
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends docker.io
}
# Whatever the package scripts may have started anyway is stopped: only a
# dockerd in its own namespace may run.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
fi
echo "docker: $(dockerd --version)"
