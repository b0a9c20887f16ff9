#!/usr/bin/env bash
# The e2e suite on kind: cluster and images (e2e/kind/up.sh), then the same
# pytest suite the local cluster runs. KIND_DELETE=1 deletes the cluster after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(bash "$here/up.sh")
export E2E_KUBECONFIG=${out##*KUBECONFIG=}
status=0
(cd "$root" && "${PYTHON:-.venv/bin/python}" -m pytest -m e2e e2e "$@") || status=$?
[ "${KIND_DELETE:-}" != 1 ] || bash "$here/down.sh"
exit $status
