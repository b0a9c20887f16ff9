#!/usr/bin/env bash
# Delete the kind cluster e2e/kind/up.sh made.
set -euo pipefail
name=${KIND_CLUSTER:-etcd-operator}
# Capture the list, then search it: in `kind get clusters | grep -q` grep exits
# at the first match, kind can get SIGPIPE and, under pipefail, the test fails.
if command -v kind >/dev/null && clusters=$(kind get clusters 2>/dev/null) \
    && grep -qx "$name" <<<"$clusters"; then
  kind delete cluster --name "$name"
fi
