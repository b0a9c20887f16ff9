#!/usr/bin/env bash
# The e2e suite on kind: cluster and images (e2e/kind/up.sh), then the same
# pytest suite the local cluster runs, pointed at the kind cluster by
# E2E_KUBECONFIG (its fixtures install the chart).
#
# Settings: KIND_E2E_SELECT, a pytest -k expression (default: the whole suite);
# KIND_DELETE=1 deletes the cluster and stops dockerd after (e2e/kind/down.sh).
# Further arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${ETCD_OPERATOR_CACHE:-$HOME/.cache/etcd-operator}
export PATH="$cache/bin:$PATH"
out=$(bash "$here/up.sh")
export E2E_KUBECONFIG=${out##*KUBECONFIG=}
select=()
[ -z "${KIND_E2E_SELECT:-}" ] || select=(-k "$KIND_E2E_SELECT")
status=0
(cd "$root" && "${PYTHON:-.venv/bin/python}" -m pytest -m e2e e2e "${select[@]}" "$@") || status=$?
[ "${KIND_DELETE:-}" != 1 ] || bash "$here/down.sh"
exit $status
