"""Scaling and healing on a real cluster: `kubectl patch` drives etcd's runtime reconfiguration.

One cluster, shared by the tests below in file order, with a writer in a
client pod putting keys through the client Service the whole time. Every
write etcd acknowledged must be readable at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.support import (
    IDLE_INTERVAL,
    Kube,
    assert_stays_settled,
    available_status,
    create_namespace,
    etcd_cluster,
    member_ids,
    operator_crashed_at_failpoint,
    patch_spec,
    wait_settled,
    wait_until,
)
from e2e.writer import assert_no_acknowledged_write_lost, run_under_writer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAME = "scale"
NAMESPACE = "e2e-scaling"
OPERATOR = "etcd-operator"


@pytest.fixture(scope="module")
def cluster(kube: Kube, operator: str) -> Iterator[str]:
    kube.run("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s", timeout=150)
    create_namespace(kube, NAMESPACE)
    # whenScaled: Delete, so scale-in also proves the removed members' claims go with them.
    run_under_writer(kube, NAMESPACE, etcd_cluster(NAME, replicas=1, storage={"size": "1Gi", "whenScaled": "Delete"}))
    yield NAMESPACE
    kube.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_scale_out_and_in_through_runtime_reconfiguration(kube: Kube, cluster: str) -> None:
    ids = member_ids(kube, NAMESPACE, NAME)
    for replicas in (3, 5, 3):
        patch_spec(kube, NAMESPACE, NAME, replicas=replicas)
        status = wait_settled(kube, NAMESPACE, NAME, replicas, timeout=600)
        names = sorted(m["name"] for m in status["members"])
        assert names == [f"{NAME}-{i}" for i in range(replicas)]
        wait_until(f"StatefulSet at {replicas} ready replicas", lambda r=replicas: (
            (s := kube.get(NAMESPACE, "statefulset", NAME)) and s["spec"]["replicas"] == r
            and s["status"].get("readyReplicas") == r), timeout=300)
        current = member_ids(kube, NAMESPACE, NAME)
        # Members that stayed kept their IDs: nothing was re-bootstrapped.
        for member, member_id in ids.items():
            if member in current:
                assert current[member] == member_id, member
        ids = current
    acked = assert_no_acknowledged_write_lost(kube, NAMESPACE, NAME)
    print(f"1 -> 3 -> 5 -> 3: {acked} acknowledged writes, 0 lost")
    wait_until("the claims of the removed members deleted (whenScaled: Delete)", lambda: {
        c["metadata"]["name"] for c in kube.items(NAMESPACE, "pvc")} == {f"data-{NAME}-{i}" for i in range(3)})
    # Each kind of step was reported as it happened, through the Progressing condition's Events.
    reasons = {e["reason"] for e in kube.items(NAMESPACE, "event")
               if e["involvedObject"]["kind"] == "EtcdCluster" and e["involvedObject"]["name"] == NAME}
    steps = {"MemberAdding", "LearnerPromoting", "MemberRemoving"}
    assert steps <= reasons, f"missing step Events: {steps - reasons}"


def test_member_that_lost_its_volume_is_replaced(kube: Kube, cluster: str) -> None:
    wait_settled(kube, NAMESPACE, NAME, replicas=3)
    before = member_ids(kube, NAMESPACE, NAME)
    victim = f"{NAME}-2"
    kube.run("-n", NAMESPACE, "delete", "pvc", f"data-{victim}", "--wait=false")
    kube.run("-n", NAMESPACE, "delete", "pod", victim, "--wait=false")

    def replaced() -> dict[str, str] | None:
        if not available_status(kube, NAMESPACE, NAME, members=3):
            return None
        now = member_ids(kube, NAMESPACE, NAME)
        return now if victim in now and now[victim] != before[victim] else None

    after = wait_until(f"{victim} replaced by a new member", replaced, timeout=600)
    assert {k: v for k, v in after.items() if k != victim} == {k: v for k, v in before.items() if k != victim}
    wait_settled(kube, NAMESPACE, NAME, replicas=3)
    # A heal that leaves stale state behind shows over the next passes: Degraded back, a member removed again.
    assert_stays_settled(kube, NAMESPACE, NAME, replicas=3, seconds=3 * IDLE_INTERVAL + 5)
    assert_no_acknowledged_write_lost(kube, NAMESPACE, NAME)


@pytest.mark.parametrize(
    ("failpoint", "replicas"),
    [("after-member-add", 4), ("after-promote", 5), ("after-remove", 4)],
)
def test_operator_crash_mid_change_converges_after_restart(
    kube: Kube, cluster: str, operator: str, failpoint: str, replicas: int
) -> None:
    deploy = f"deploy/{OPERATOR}"
    kube.run("-n", operator, "set", "env", deploy, f"ETCD_OPERATOR_FAILPOINT={failpoint}")
    kube.run("-n", operator, "rollout", "status", deploy, "--timeout=180s", timeout=200)
    try:
        patch_spec(kube, NAMESPACE, NAME, replicas=replicas)
        try:
            wait_until(f"the operator to crash at {failpoint}", lambda: operator_crashed_at_failpoint(kube, operator),
                       timeout=300)  # fmt: skip
        except pytest.fail.Exception:
            print(kube.diagnostics(NAMESPACE, operator))  # why the step never came (CI saw this once)
            raise
    finally:
        kube.run("-n", operator, "set", "env", deploy, "ETCD_OPERATOR_FAILPOINT-")
        kube.run("-n", operator, "rollout", "status", deploy, "--timeout=180s", timeout=200)
    status = wait_settled(kube, NAMESPACE, NAME, replicas, timeout=600)
    names = [m["name"] for m in status["members"]]
    assert sorted(names) == [f"{NAME}-{i}" for i in range(replicas)]  # each once, none orphaned
    assert_no_acknowledged_write_lost(kube, NAMESPACE, NAME)
