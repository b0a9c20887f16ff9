"""Quorum lost on a real cluster, and recovered from the surviving member on request.

A 3-member cluster under a writer; members 1 and 2 lose their volumes (claims
and pods deleted), so member 0 alone cannot elect a leader. The status must
say so in words a user can act on (QuorumLost, naming member 0 and the way
out), and `spec.recovery: {fromMember: <name>-0}` must bring the cluster back
to 3 voting members with member 0's data and identity: every write the writer
had acknowledged is readable, the whole outcome is settled and stays so.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.support import (
    IDLE_INTERVAL,
    Kube,
    assert_stays_settled,
    condition,
    create_namespace,
    etcd_cluster,
    member_ids,
    patch_spec,
    wait_settled,
    wait_until,
)
from e2e.writer import acked_writes, assert_no_acknowledged_write_lost, run_under_writer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAME = "rec"
NAMESPACE = "e2e-recovery"


@pytest.fixture(scope="module")
def cluster(kube: Kube, operator: str) -> Iterator[str]:
    kube.run("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s", timeout=150)
    create_namespace(kube, NAMESPACE)
    run_under_writer(kube, NAMESPACE, etcd_cluster(NAME, replicas=3))
    yield NAMESPACE
    kube.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_quorum_loss_is_reported_and_recovered_from_the_survivor(kube: Kube, cluster: str) -> None:
    wait_until("the writer to get going", lambda: len(acked_writes(kube, NAMESPACE)) >= 50, timeout=120)
    before = member_ids(kube, NAMESPACE, NAME)
    cluster_id = kube.get(NAMESPACE, "etcdcluster", NAME)["status"]["clusterID"]
    lost = [f"{NAME}-1", f"{NAME}-2"]
    for member in lost:  # their volumes are gone for good
        kube.run("-n", NAMESPACE, "delete", "pvc", f"data-{member}", "--wait=false")
    kube.run("-n", NAMESPACE, "delete", "pod", *lost, "--wait=false")

    def quorum_lost() -> dict | None:
        obj = kube.get(NAMESPACE, "etcdcluster", NAME) or {}
        available, degraded = condition(obj, "Available") or {}, condition(obj, "Degraded") or {}
        if available.get("reason") == "QuorumLost" and degraded.get("reason") == "QuorumLost":
            return available
        return None

    told = wait_until("Available=False/QuorumLost", quorum_lost, timeout=300)
    print(f"status said: {told['message']}")
    assert told["status"] == "False"
    assert f"answering: {NAME}-0 (raft index" in told["message"]
    assert f"spec.recovery {{fromMember: {NAME}-0" in told["message"]
    assert (kube.get(NAMESPACE, "etcdcluster", NAME)["status"]["phase"]) == "Unavailable"
    acked_at_loss = len(acked_writes(kube, NAMESPACE))

    patch_spec(kube, NAMESPACE, NAME, recovery={"fromMember": f"{NAME}-0", "requestID": "r1"})
    status = wait_settled(kube, NAMESPACE, NAME, replicas=3, timeout=900)
    assert status["recovery"]["requestID"] == "r1" and status["recovery"]["member"] == f"{NAME}-0"
    after = member_ids(kube, NAMESPACE, NAME)
    assert after[f"{NAME}-0"] == before[f"{NAME}-0"]  # the survivor kept its identity and data
    assert all(after[m] != before[m] for m in lost)  # the others rejoined as new members
    assert status["clusterID"] == cluster_id
    assert kube.get(NAMESPACE, "secret", f"{NAME}-recovery") is None  # the request is retired
    reasons = {e["reason"] for e in kube.items(NAMESPACE, "event")
               if e["involvedObject"]["kind"] == "EtcdCluster" and e["involvedObject"]["name"] == NAME}  # fmt: skip
    assert {"RecoveryStarted", "Recovered"} <= reasons
    assert_stays_settled(kube, NAMESPACE, NAME, replicas=3, seconds=2 * IDLE_INTERVAL + 5)
    acked = assert_no_acknowledged_write_lost(kube, NAMESPACE, NAME)
    print(f"quorum lost with {acked_at_loss} writes acknowledged; recovered from {NAME}-0 to 3 voting members; "
          f"{acked} writes acknowledged in all, 0 lost")  # fmt: skip
