import pytest

from etcd_operator.models.cluster import EtcdClusterSpec, EtcdClusterStatus
from etcd_operator.reconcile.status import Observed, ObservedMember, compute_status, transitions

SPEC = EtcdClusterSpec(replicas=3)
NOW = "2026-11-24T10:00:00Z"


def members(*health, learner=()):
    return tuple(
        ObservedMember(f"main-{i}", 100 + i, (f"https://main-{i}:2380",), (f"https://main-{i}:2379",), i in learner, h)
        for i, h in enumerate(health)
    )


def conds(status):
    return {c.type: (c.status.value, c.reason) for c in status.conditions}


@pytest.mark.parametrize(
    ("observed", "phase", "expected"),
    [
        (
            Observed(1, 3, 0, etcd_error="connection refused"),
            "Bootstrapping",
            {"Available": ("False", "Bootstrapping"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("False", "AsExpected")},
        ),
        (
            Observed(1, 3, 3, members(True, True, True), leader_id=101, cluster_id=0xABC, version="3.6.16"),
            "Running",
            {"Available": ("True", "QuorumHealthy"), "Progressing": ("False", "Reconciled"),
             "Degraded": ("False", "AsExpected")},
        ),
        (
            Observed(1, 3, 2, members(True, True, False)),
            "Degraded",
            {"Available": ("True", "QuorumHealthy"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("True", "MemberUnhealthy")},
        ),
        (
            Observed(1, 3, 1, members(True, False, False), ever_available=True),
            "Unavailable",
            {"Available": ("False", "QuorumLost"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("True", "MemberUnhealthy")},
        ),
        (
            Observed(1, 3, 0, pod_errors={"main-1": "main-1 not listed in the initial cluster config"}),
            "Failed",
            {"Available": ("False", "Bootstrapping"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("True", "BootstrapError")},
        ),
        (
            Observed(2, 1, 1, members(True)),
            "Running",
            {"Available": ("True", "QuorumHealthy"), "Progressing": ("True", "ScalingPending"),
             "Degraded": ("False", "AsExpected")},
        ),
    ],
)
def test_conditions_and_phase(observed, phase, expected):
    status = compute_status(SPEC, observed, None, NOW)
    assert status.phase == phase
    assert conds(status) == expected
    assert status.observed_generation == observed.generation


def test_leader_cluster_id_and_members_are_reported():
    status = compute_status(SPEC, Observed(1, 3, 3, members(True, True, True), 101, 0xABC, "3.6.16"), None, NOW)
    assert status.leader == "main-1" and status.cluster_id == "abc" and status.version == "3.6.16"
    assert [m.id for m in status.members] == ["64", "65", "66"]


def test_transition_time_is_kept_while_status_holds_and_events_only_on_change():
    first = compute_status(SPEC, Observed(1, 3, 0), None, NOW)
    second = compute_status(SPEC, Observed(1, 3, 0), first, "2026-11-24T10:05:00Z")
    assert [c.last_transition_time for c in second.conditions] == [NOW] * 3
    assert transitions(first.conditions, second.conditions) == []
    healthy = compute_status(SPEC, Observed(1, 3, 3, members(True, True, True)), second, "2026-11-24T10:06:00Z")
    changed = {c.type for c in transitions(second.conditions, healthy.conditions)}
    assert changed == {"Available", "Progressing"}
    assert healthy.conditions[0].last_transition_time == "2026-11-24T10:06:00Z"


def test_unreachable_keeps_last_known_members():
    known = compute_status(SPEC, Observed(1, 3, 3, members(True, True, True), 101), None, NOW)
    lost = compute_status(SPEC, Observed(1, 3, 0, etcd_error="timeout", ever_available=True), known, NOW)
    assert lost.members == known.members and lost.phase == "Unavailable"
    assert isinstance(lost, EtcdClusterStatus)
