"""Order and gating of the rollout: unhealthy first, followers by highest ordinal, the leader last; one at a time."""

import pytest

from etcd_operator.reconcile import membership as mp
from etcd_operator.reconcile.observed import EtcdView, Member, PodView, StatefulSetView
from etcd_operator.reconcile.rollout import path_refusal, plan_rollout


def member(o, version="3.5.35", healthy=True):
    return Member(100 + o, f"main-{o}", (f"https://main-{o}.main.db.svc:2380",), (f"https://main-{o}:2379",),
                  False, healthy, version)  # fmt: skip


def pod(o, revision="old", ready=True, deleting=False):
    return PodView(f"main-{o}", o, None, f"uid-{o}", revision, ready, deleting)


def step(pods, members, leader=100, replicas=3, observed=True, version="3.6.16"):
    sts = StatefulSetView(replicas, replicas, True, update_revision="new", template_observed=observed)
    return plan_rollout(sts, pods, EtcdView(tuple(members), leader), version, lambda m: m.id - 100)


OLD = [member(0), member(1), member(2)]


@pytest.mark.parametrize(
    ("pods", "members", "leader", "expected"),
    [
        # nothing to do
        ([pod(0, "new"), pod(1, "new"), pod(2, "new")], [member(o, "3.6.16") for o in range(3)], 100, None),
        # followers first, highest ordinal first; the leader (main-0) last
        ([pod(0), pod(1), pod(2)], OLD, 100, ("restart", "main-2")),
        ([pod(0), pod(1), pod(2, "new")], [member(0), member(1), member(2, "3.6.16")], 100, ("restart", "main-1")),
        # only the leader is left: leadership moves to an updated member first, then it restarts
        ([pod(0), pod(1, "new"), pod(2, "new")], [member(0), member(1, "3.6.16"), member(2, "3.6.16")], 100,
         ("move", 101)),
        ([pod(0), pod(1, "new"), pod(2, "new")], [member(0), member(1, "3.6.16"), member(2, "3.6.16")], 101,
         ("restart", "main-0")),
        # the leader is main-2 here: main-1 goes first
        ([pod(0), pod(1), pod(2)], OLD, 102, ("restart", "main-1")),
        # an outdated member that is already down goes first, whoever leads
        ([pod(0), pod(1, ready=False), pod(2)], [member(0), member(1, healthy=False), member(2)], 100,
         ("restart", "main-1")),
        # the previous restart has not settled: wait (not ready, deleting, unhealthy, missing)
        ([pod(0), pod(1), pod(2, "new", ready=False)], OLD, 100, ("wait", "main-2")),
        ([pod(0), pod(1), pod(2, "new", deleting=True)], OLD, 100, ("wait", "main-2")),
        ([pod(0), pod(1), pod(2, "new")], [member(0), member(1), member(2, "3.6.16", healthy=False)], 100,
         ("wait", "main-2")),
        ([pod(0), pod(1)], OLD, 100, ("wait", "a restarted member")),
    ],
)  # fmt: skip
def test_order_and_gating(pods, members, leader, expected):
    got = step(pods, members, leader)
    if expected is None:
        assert got is None
        return
    kind, who = expected
    if kind == "restart":
        assert isinstance(got, mp.RestartMember) and got.pod == who and got.uid == f"uid-{who[-1]}"
        assert got.reason == "Upgrading"
    elif kind == "move":
        assert got == mp.MoveLeader(who)
    else:
        assert isinstance(got, mp.Wait) and who in got.message and got.reason == "Upgrading"


def test_two_unhealthy_outdated_members_still_go_one_at_a_time():
    members = [member(0), member(1, healthy=False), member(2, healthy=False)]
    first = step([pod(0), pod(1, ready=False), pod(2, ready=False)], members)
    assert isinstance(first, mp.RestartMember) and first.pod == "main-2"


def test_a_restart_that_would_cost_quorum_waits():
    members = [member(o) for o in range(5)]
    members[3] = member(3, healthy=False)
    members[4] = member(4, healthy=False)
    # main-3 and main-4 are on the new template but unhealthy: nothing else may go down
    got = step([pod(0), pod(1), pod(2), pod(3, "new"), pod(4, "new")], members, replicas=5)
    assert isinstance(got, mp.Wait)


def test_progress_and_reason_for_a_template_change_without_a_new_version():
    members = [member(o, "3.6.16") for o in range(3)]
    got = step([pod(0), pod(1), pod(2, "new")], members)
    assert isinstance(got, mp.RestartMember) and got.reason == "RollingUpdate"
    assert "1 of 3 members on the current pod template" in got.message


def test_the_statefulset_controller_must_have_seen_the_template():
    assert isinstance(step([pod(0), pod(1), pod(2)], OLD, observed=False), mp.Wait)


@pytest.mark.parametrize(("running", "wanted", "reason"), [
    (["3.5.35", "3.5.35"], "3.6.16", None),
    (["3.5.35", "3.6.16"], "3.7.0", "MinorVersionSkipped"),  # a second edit while the first still rolls
    (["3.6.16", "3.6.16"], "3.5.35", "DowngradeNotSupported"),
])  # fmt: skip
def test_the_path_is_checked_against_what_members_run(running, wanted, reason):
    view = EtcdView(tuple(member(o, v) for o, v in enumerate(running)))
    refused = path_refusal(view, wanted)
    assert (refused.reason if refused else None) == reason
