"""The maintenance planner: which member is defragmented when, and the NOSPACE recovery's order and refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from etcd_operator.reconcile import maintenance as mt
from etcd_operator.reconcile.observed import EtcdView, MaintenanceStatus, Member

MiB = 2**20
QUOTA = 2 * 2**30
POLICY = mt.DefragPolicy(min_fragmentation_ratio=0.5, min_size_bytes=100 * MiB)
ALARM = ("memberID:2 alarm:NOSPACE ",)


def cluster(sizes: dict[int, tuple[int, int]], leader: int = 1, errors: dict[int, tuple[str, ...]] | None = None,
            revision: int = 500, healthy: set[int] | None = None) -> EtcdView:  # fmt: skip
    """Members 1..n named main-<id-1>; `sizes`: member ID -> (db size, in use) in MiB."""
    errors = errors or {}
    members = tuple(
        Member(i, f"main-{i - 1}", (f"https://main-{i - 1}.main:2380",), healthy=(healthy is None or i in healthy)
               and not errors.get(i))
        for i in sizes
    )  # fmt: skip
    status = {
        i: MaintenanceStatus(i, leader, db_size=s * MiB, db_size_in_use=u * MiB, revision=revision,
                             errors=errors.get(i, ()))
        for i, (s, u) in sizes.items()
    }  # fmt: skip
    return EtcdView(members, leader, 0xC1, "3.6.0", status)


def defrag_order(view: EtcdView, **kwargs) -> list[str]:
    """Every routine defrag in turn, each member compacted by its defrag before the next pass."""
    order = []
    for _ in range(10):
        step = mt.plan(view, QUOTA, POLICY, **kwargs)
        if not isinstance(step, mt.Defragment):
            break
        order.append(step.name)
        s = view.status[step.member_id]
        view = replace(view, status={**view.status, step.member_id: replace(s, db_size=s.db_size_in_use)})
    return order


def test_followers_first_most_free_first_leader_last():
    view = cluster({1: (800, 100), 2: (400, 100), 3: (900, 100)}, leader=1)
    assert defrag_order(view) == ["main-2", "main-1", "main-0"]


def test_only_members_past_both_thresholds():
    small = cluster({1: (90, 10), 2: (400, 100), 3: (400, 300)})  # 1: too small; 3: only 25% free
    assert defrag_order(small) == ["main-1"]
    assert mt.plan(cluster({1: (400, 300)}), QUOTA, POLICY) == mt.Idle("NothingToDefragment")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"changing": True}, "StepInProgress"),
        ({"settling": True}, "ChangeUnderWay"),
    ],
)
def test_never_during_a_membership_step_rollout_or_backup(kwargs, reason):
    view = cluster({1: (800, 100), 2: (800, 100), 3: (800, 100)})
    step = mt.plan(view, QUOTA, POLICY, **kwargs)
    assert isinstance(step, mt.Idle) and step.reason == reason


def test_only_when_every_member_is_healthy():
    view = cluster({1: (800, 100), 2: (800, 100), 3: (800, 100)}, healthy={1, 2})
    step = mt.plan(view, QUOTA, POLICY)
    assert step == mt.Idle("MembersUnhealthy", "defragmentation waits for every member to be healthy (main-2)")
    silent = replace(cluster({1: (800, 100), 2: (800, 100)}), status={1: cluster({1: (800, 100)}).status[1]})
    assert mt.plan(silent, QUOTA, POLICY).reason == "MembersUnhealthy"
    assert mt.plan(replace(view, leader_id=None), QUOTA, POLICY).reason == "MembersUnhealthy"


def test_off_without_a_policy_and_idle_without_etcd():
    view = cluster({1: (800, 100)})
    assert mt.plan(view, QUOTA, None) == mt.Idle("DefragDisabled")
    assert mt.plan(None, QUOTA, POLICY).reason == "EtcdUnreachable"


def test_nospace_recovery_compacts_defragments_each_member_then_disarms():
    """Every step in order, each pass seeing what the previous one did, as the pass loop would."""
    sizes = {1: (2048, 2048), 2: (2048, 2048), 3: (2048, 2048)}
    view = cluster(sizes, leader=1, errors={2: ALARM})
    compacted, steps = 0, []
    for _ in range(10):
        step = mt.plan(view, QUOTA, None, compacted_revision=compacted, settling=True)
        steps.append(step)
        match step:
            case mt.Compact(revision):
                compacted = revision
                # Compaction frees most pages: in use drops, the files keep their size.
                view = replace(view, status={i: replace(s, db_size_in_use=300 * MiB) for i, s in view.status.items()})
            case mt.Defragment(member_id=i):
                s = view.status[i]
                view = replace(view, status={**view.status, i: replace(s, db_size=s.db_size_in_use)})
            case _:
                break
    assert steps[0] == mt.Compact(500)
    assert [(s.name, s.reason) for s in steps if isinstance(s, mt.Defragment)] == [
        ("main-1", "DatabaseFull"), ("main-2", "DatabaseFull"), ("main-0", "DatabaseFull")]  # fmt: skip
    assert steps[-1] == mt.Disarm((2,))
    assert len(steps) == 5


def test_nospace_recovery_compacts_again_after_deletes_moved_the_revision():
    view = cluster({1: (2048, 2048)}, errors={1: ALARM}, revision=800)
    assert mt.plan(view, QUOTA, None, compacted_revision=500) == mt.Compact(800)


def test_nospace_waits_for_every_member_to_answer_but_not_for_health_or_a_change_under_way():
    view = cluster({1: (2048, 300), 2: (2048, 300), 3: (2048, 300)}, errors={1: ALARM, 2: ALARM, 3: ALARM})
    assert not any(m.healthy for m in view.members)  # an alarm makes every member unhealthy
    step = mt.plan(view, QUOTA, POLICY, compacted_revision=500, settling=True)
    assert isinstance(step, mt.Defragment) and step.name == "main-1"
    one_silent = replace(view, status={i: s for i, s in view.status.items() if i != 3})
    assert mt.plan(one_silent, QUOTA, POLICY, compacted_revision=500) == mt.Idle(
        "MembersUnresponsive", "NOSPACE recovery waits for every member to answer (main-2)")  # fmt: skip
    assert mt.plan(view, QUOTA, POLICY, compacted_revision=500, changing=True).reason == "StepInProgress"


def test_nospace_refused_when_the_data_itself_fills_the_quota():
    view = cluster({1: (2000, 1990), 2: (2000, 1990)}, errors={1: ALARM})
    step = mt.plan(view, QUOTA, None, compacted_revision=500)
    assert isinstance(step, mt.Refuse) and step.reason == "DatabaseFull"
    assert "1.94 GiB of its 2.00 GiB quota" in step.message
    assert "spec.etcd.quotaBackendBytes" in step.message and "storage.size" in step.message


def test_nospace_disarms_the_members_the_alarms_name():
    # Every member lists every alarm of the cluster; each alarm names the member it was raised for.
    both = ("memberID:2 alarm:NOSPACE", "memberID:10036407514692492748 alarm:NOSPACE")  # decimal, as etcd writes it
    view = cluster({1: (300, 300), 2: (300, 300), 3: (300, 300)}, errors={1: both, 3: both})
    assert mt.plan(view, QUOTA, None, compacted_revision=500) == mt.Disarm((2, 10036407514692492748))
    # An alarm that names no member: disarm for the members that report it.
    view = cluster({1: (300, 300), 2: (300, 300)}, errors={1: ("alarm:NOSPACE",)})
    assert mt.plan(view, QUOTA, None, compacted_revision=500) == mt.Disarm((1,))
