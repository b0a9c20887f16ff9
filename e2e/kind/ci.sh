#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage functions are called through stage()
# The kind path as CI runs it, after the local-cluster suite: build what is
# missing, bring the cluster up, run the selected e2e tests on it, take it
# down (always, also after a failure). Prints each stage's time, and exits
# with the tests' status.
#
# Settings: KIND_E2E_SELECT, a pytest -k expression (default: create/read/write,
# scale 3->5->3 and member replacement; "" runs the whole suite).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
export PATH="$cache/bin:$PATH"
export KIND_E2E_SELECT=${KIND_E2E_SELECT-reads_and_writes or scale_out_and_in or lost_its_volume}
export E2E_REQUIRED=1
timings=()
stage() {
  local label=$1 began=$SECONDS rc=0
  shift
  echo "== kind-ci: $label" >&2
  "$@" || rc=$?
  timings+=("$(printf '%-8s %4ds  %s' "$label" $((SECONDS - began)) "$([ $rc = 0 ] && echo ok || echo "failed ($rc)")")")
  return $rc
}
report() {
  echo "== kind-ci: stage times"
  printf '  %s\n' "${timings[@]}"
}
build() {
  bash "$root/hack/install-docker.sh"
  bash "$root/hack/build-kind.sh"
  bash "$root/hack/build-kube.sh"
  bash "$root/hack/build-kubeadm.sh"
  bash "$root/hack/build-etcd.sh"
  bash "$root/hack/build-coredns.sh"
  bash "$root/hack/build-versitygw.sh"
  bash "$root/e2e/images/build.sh" pause versitygw node operator >/dev/null
  bash "$root/e2e/images/kind-node.sh" >/dev/null
}
up() { bash "$here/up.sh" >/dev/null; }
tests() {
  local out select=()
  out=$(bash "$here/up.sh" 2>/dev/null)
  [ -z "$KIND_E2E_SELECT" ] || select=(-k "$KIND_E2E_SELECT")
  (cd "$root" && E2E_KUBECONFIG=${out##*KUBECONFIG=} "${PYTHON:-.venv/bin/python}" -m pytest -m e2e e2e "${select[@]}")
}
down() { bash "$here/down.sh"; }

status=0
stage build build && stage up up && stage tests tests || status=$?
stage down down || true
report
exit $status
