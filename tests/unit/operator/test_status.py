import pytest

from etcd_node.contract import AgentError
from etcd_operator.models.cluster import EtcdClusterSpec, EtcdClusterStatus
from etcd_operator.reconcile import membership as mp
from etcd_operator.reconcile.observed import EtcdView, Member, Observed, PodView, StatefulSetView
from etcd_operator.reconcile.status import Outcome, compute_status, transitions

SPEC = EtcdClusterSpec(replicas=3)
NOW = "2026-11-24T10:00:00Z"


def members(*health, learner=()):
    return tuple(
        Member(100 + i, f"main-{i}", (f"https://main-{i}:2380",), (f"https://main-{i}:2379",), i in learner, h)
        for i, h in enumerate(health)
    )


def seen(generation, replicas, ready, members=None, leader_id=None, cluster_id=None, version=None, *,
         etcd_error="", pod_errors=None, ever_available=False, pods=0):  # fmt: skip
    """An observation as the pass builds it, from the few facts these tests vary."""
    errors = {name: AgentError(code, message) for name, (code, message) in (pod_errors or {}).items()}
    pod_views = [PodView(name, int(name.rsplit("-", 1)[1]), error) for name, error in errors.items()]
    pod_views += [PodView(f"main-{i}", i) for i in range(len(pod_views), pods)]
    return Observed(
        generation=generation,
        statefulset=StatefulSetView(replicas, ready, True),
        pods=tuple(pod_views),
        etcd=EtcdView(members, leader_id, cluster_id, version) if members is not None else None,
        etcd_error=etcd_error,
        ever_available=ever_available,
    )


def conds(status):
    return {c.type: (c.status.value, c.reason) for c in status.conditions}


def conds_by_type(status):
    return {c.type: c for c in status.conditions}


@pytest.mark.parametrize(
    ("observed", "phase", "expected"),
    [
        (
            seen(1, 3, 0, etcd_error="connection refused"),
            "Bootstrapping",
            {"Available": ("False", "Bootstrapping"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("False", "AsExpected")},
        ),
        (
            seen(1, 3, 3, members(True, True, True), leader_id=101, cluster_id=0xABC, version="3.6.16"),
            "Running",
            {"Available": ("True", "QuorumHealthy"), "Progressing": ("False", "Reconciled"),
             "Degraded": ("False", "AsExpected")},
        ),
        (
            seen(1, 3, 2, members(True, True, False)),
            "Degraded",
            {"Available": ("True", "QuorumHealthy"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("True", "MemberUnhealthy")},
        ),
        (
            seen(1, 3, 1, members(True, False, False), ever_available=True),
            "Unavailable",
            {"Available": ("False", "QuorumLost"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("True", "MemberUnhealthy")},
        ),
        (
            seen(1, 3, 0, pod_errors={"main-1": ("MemberNotListed", "main-1 not listed in the initial cluster config")}),
            "Failed",
            {"Available": ("False", "Bootstrapping"), "Progressing": ("True", "MembersStarting"),
             "Degraded": ("True", "BootstrapError")},
        ),
        (
            seen(2, 1, 1, members(True), ever_available=True),
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
    status = compute_status(SPEC, seen(1, 3, 3, members(True, True, True), 101, 0xABC, "3.6.16"), None, NOW)
    assert status.leader == "main-1" and status.cluster_id == "abc" and status.version == "3.6.16"
    assert [m.id for m in status.members] == ["64", "65", "66"]


def test_transition_time_is_kept_while_status_holds_and_events_only_on_change():
    first = compute_status(SPEC, seen(1, 3, 0), None, NOW)
    second = compute_status(SPEC, seen(1, 3, 0), first, "2026-11-24T10:05:00Z")
    assert [c.last_transition_time for c in second.conditions] == [NOW] * 3
    assert transitions(first.conditions, second.conditions) == []
    healthy = compute_status(SPEC, seen(1, 3, 3, members(True, True, True)), second, "2026-11-24T10:06:00Z")
    changed = {c.type for c in transitions(second.conditions, healthy.conditions)}
    assert changed == {"Available", "Progressing"}
    assert healthy.conditions[0].last_transition_time == "2026-11-24T10:06:00Z"


def test_unreachable_keeps_last_known_members():
    known = compute_status(SPEC, seen(1, 3, 3, members(True, True, True), 101), None, NOW)
    lost = compute_status(SPEC, seen(1, 3, 0, etcd_error="timeout", ever_available=True), known, NOW)
    assert lost.members == known.members and lost.phase == "Unavailable"
    assert isinstance(lost, EtcdClusterStatus)


RUNNING = seen(1, 3, 3, members(True, True, True), leader_id=101)


@pytest.mark.parametrize(
    ("step", "kind", "reason", "words"),
    [
        (mp.AddLearner(3, "https://main-3.main-peer:2380"), "Progressing", "MemberAdding", "member 3 as a learner"),
        (mp.ScaleStatefulSet(4), "Progressing", "StatefulSetScaling", "4 replicas"),
        (mp.Wait("LearnerCatchingUp", "learner main-3 is catching up"), "Progressing", "LearnerCatchingUp", "main-3"),
        (mp.Promote(0x67, 3), "Progressing", "LearnerPromoting", "promoting learner 67"),
        (mp.MoveLeader(0x64), "Progressing", "LeaderMoving", "leadership to member 64"),
        (mp.RemoveMember(0x66, 2), "Progressing", "MemberRemoving", "removing member 66"),
        (mp.Refuse("QuorumAtRisk", "only 1 of 3 healthy"), "Degraded", "QuorumAtRisk", "only 1 of 3"),
    ],
)
def test_each_membership_step_is_shown_in_its_condition(step, kind, reason, words):
    status = compute_status(SPEC, RUNNING, None, NOW, Outcome(step))
    cond = next(c for c in status.conditions if c.type == kind)
    assert (cond.status.value, cond.reason) == ("True", reason)
    assert words in cond.message
    assert status.phase == ("Degraded" if kind == "Degraded" else "Running")


def test_a_step_etcd_refused_for_now_says_so_and_noop_changes_nothing():
    refused = compute_status(SPEC, RUNNING, None, NOW, Outcome(mp.AddLearner(3, "u"), "unhealthy cluster"))
    assert "etcd asked to retry (unhealthy cluster)" in conds_by_type(refused)["Progressing"].message
    assert compute_status(SPEC, RUNNING, None, NOW, Outcome(mp.Noop())).conditions == (
        compute_status(SPEC, RUNNING, None, NOW).conditions
    )


def test_consecutive_steps_each_become_one_event():
    adding = compute_status(SPEC, RUNNING, None, NOW, Outcome(mp.AddLearner(3, "u")))
    catching_up = compute_status(SPEC, RUNNING, adding, NOW, Outcome(mp.Wait("LearnerCatchingUp", "m")))
    still = compute_status(SPEC, RUNNING, catching_up, NOW, Outcome(mp.Wait("LearnerCatchingUp", "m")))
    assert [c.reason for c in transitions(adding.conditions, catching_up.conditions)] == ["LearnerCatchingUp"]
    assert transitions(catching_up.conditions, still.conditions) == []


HIBERNATE = EtcdClusterSpec(replicas=3, hibernate=True)


def test_hibernation_stops_members_keeps_the_last_known_membership_and_wakes():
    running = compute_status(SPEC, RUNNING, None, NOW)
    stopping = compute_status(HIBERNATE, seen(2, 0, 1, etcd_error="refused", ever_available=True, pods=2), running, NOW)
    assert stopping.phase == "Hibernated"
    assert conds(stopping) == {"Available": ("False", "Hibernated"), "Progressing": ("True", "Hibernating"),
                               "Degraded": ("False", "AsExpected")}  # fmt: skip
    assert "2 left" in conds_by_type(stopping)["Progressing"].message
    stopped = compute_status(HIBERNATE, seen(2, 0, 0, etcd_error="refused", ever_available=True), stopping, NOW)
    assert conds(stopped)["Progressing"] == ("False", "Hibernated")
    assert stopped.members == running.members and stopped.leader == running.leader
    waking = compute_status(SPEC, seen(3, 3, 0, etcd_error="refused", ever_available=True, pods=3), stopped, NOW)
    assert waking.phase == "Unavailable" and conds(waking)["Available"] == ("False", "EtcdUnreachable")


def test_a_learner_whose_pod_has_not_started_is_progress_not_a_fault():
    joining = Member(0x67, "", ("https://main-3:2380",), (), True, False)
    started = Member(0x67, "main-3", ("https://main-3:2380",), ("https://main-3:2379",), True, False)
    spec = EtcdClusterSpec(replicas=4)
    waiting = compute_status(spec, seen(1, 4, 3, (*members(True, True, True), joining)), None, NOW)
    assert conds(waiting)["Degraded"] == ("False", "AsExpected")
    stuck = compute_status(spec, seen(1, 4, 3, (*members(True, True, True), started)), None, NOW)
    assert conds(stuck)["Degraded"] == ("True", "MemberUnhealthy")


def test_the_status_patch_removes_fields_the_new_status_no_longer_has():
    from etcd_operator.reconcile.status import status_patch

    old = {"phase": "Running", "backup": {"lastScheduleTime": "t"}, "leader": "a"}
    assert status_patch(old, dict(old)) is None  # nothing to write
    assert status_patch(old, {"phase": "Running", "leader": "b"}) == {"backup": None, "phase": "Running", "leader": "b"}
    assert status_patch({}, {"phase": "Bootstrapping"}) == {"phase": "Bootstrapping"}
