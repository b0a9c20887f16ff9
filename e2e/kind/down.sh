#!/usr/bin/env bash
# Delete the kind cluster e2e/kind/up.sh made.
set -euo pipefail
name=${KIND_CLUSTER:-etcd-operator}
if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$name"; then
  kind delete cluster --name "$name"
fi
