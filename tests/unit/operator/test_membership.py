import pytest

from etcd_operator.reconcile.membership import (
    AddLearner,
    MoveLeader,
    Noop,
    Promote,
    Refuse,
    RemoveMember,
    ScaleStatefulSet,
    Wait,
    plan,
)
from etcd_operator.reconcile.observed import Member
from etcd_operator.resources.naming import ClusterNames

NAMES = ClusterNames("main", "db")

ORDINAL = NAMES.ordinal_in_url


def url(ordinal):
    return f"https://main-{ordinal}.main.db.svc.cluster.local:2380"


def m(ordinal, *, learner=False, healthy=True, started=True, named=None):
    name = f"main-{ordinal}" if (started if named is None else named) else ""
    clients = (f"https://main-{ordinal}.main.db.svc.cluster.local:2379",) if started else ()
    return Member(100 + ordinal, name, (url(ordinal),), clients, learner, healthy)


def step(desired, sts, members, leader=100):
    return plan(desired, sts, members, leader, url, ORDINAL)


@pytest.mark.parametrize(
    ("desired", "sts", "members", "leader", "expected"),
    [
        # steady states
        (3, 3, [m(0), m(1), m(2)], 100, Noop()),
        (3, 3, [m(0), m(1), m(2, started=False, named=True)], 100, Noop()),  # a static member still starting
        # scale out 1 -> 3, one step at a time
        (3, 1, [m(0)], 100, AddLearner(1, url(1))),
        (3, 1, [m(0), m(1, learner=True, started=False)], 100, ScaleStatefulSet(2)),  # crash after add: resumes
        (3, 2, [m(0), m(1, learner=True, started=False)], 100, Wait("LearnerCatchingUp", "learner 1 is starting and catching up")),
        (3, 2, [m(0), m(1, learner=True)], 100, Promote(101, 1)),
        (3, 2, [m(0), m(1)], 100, AddLearner(2, url(2))),
        # scale in 3 -> 1: highest ordinal first, leadership moved away first, then the StatefulSet follows
        (1, 3, [m(0), m(1), m(2)], 100, RemoveMember(102, 2)),
        (1, 3, [m(0), m(1), m(2)], 102, MoveLeader(100)),
        (1, 3, [m(0), m(1)], 100, ScaleStatefulSet(2)),  # crash after remove: resumes
        (1, 2, [m(0), m(1)], 100, RemoveMember(101, 1)),
        (1, 2, [m(0)], 100, ScaleStatefulSet(1)),
        (1, 1, [m(0)], 100, Noop()),
        # safety
        (3, 2, [m(0), m(1, healthy=False)], 100, Refuse("QuorumAtRisk", "only 1 of 2 voting members are healthy; not adding members until quorum is healthy")),
        (0, 3, [m(0), m(1), m(2)], 100, Refuse("ScaleToZero", "spec.replicas must be at least 1; a cluster cannot scale to zero members")),
        (3, 3, [m(0), m(1), m(2), m(3)], 100, RemoveMember(103, 3)),
        (3, 4, [m(0), m(1), m(2)], 100, ScaleStatefulSet(3)),
        (3, 2, [m(0), m(1), m(2)], 100, ScaleStatefulSet(3)),  # a pod missing for an existing member
    ],
)
def test_plan_table(desired, sts, members, leader, expected):
    assert plan(desired, sts, members, leader, url, ORDINAL) == expected


def test_removal_that_would_lose_quorum_is_refused():
    # 3 -> 2 with one member already down: removing a healthy one leaves 1 healthy of 2.
    result = step(2, 3, [m(0), m(1, healthy=False), m(2)], leader=100)
    assert isinstance(result, Refuse) and result.reason == "QuorumAtRisk"


def test_foreign_member_is_refused():
    stranger = Member(7, "other", ("http://10.0.0.9:2380",), ("http://10.0.0.9:2379",), False, True)
    assert isinstance(step(3, 3, [m(0), m(1), stranger]), Refuse)


def test_full_walk_1_3_5_3_1_converges_one_change_at_a_time():
    """Simulate etcd and the StatefulSet applying each step; count steps and check invariants."""
    members, sts, leader = [m(0)], 1, 100
    for desired in (3, 5, 3, 1):
        for _ in range(50):
            s = step(desired, sts, members, leader)
            if isinstance(s, Noop):
                break
            if isinstance(s, AddLearner):
                members.append(m(s.ordinal, learner=True, started=False))
            elif isinstance(s, ScaleStatefulSet):
                sts = s.replicas
                members = [m(o.id - 100, learner=True) if o.is_learner and o.id - 100 < sts else o for o in members]
            elif isinstance(s, Promote):
                members = [m(o.id - 100) if o.id == s.member_id else o for o in members]
            elif isinstance(s, MoveLeader):
                leader = s.to_member_id
            elif isinstance(s, RemoveMember):
                members = [o for o in members if o.id != s.member_id]
            voting = [o for o in members if not o.is_learner]
            assert len([o for o in members if o.is_learner]) <= 1
            assert sts >= len(voting) - 1 or isinstance(s, RemoveMember)
        else:
            pytest.fail(f"no convergence towards {desired}")
        assert sorted(o.id - 100 for o in members) == list(range(desired)) and sts == desired


def test_member_that_lost_its_data_is_removed_then_re_added_at_its_ordinal():
    members = [m(0), m(1), m(2, healthy=False)]
    assert plan(3, 3, members, 100, url, ORDINAL, frozenset({2})) == RemoveMember(102, 2)
    assert plan(3, 3, members[:2], 100, url, ORDINAL, frozenset({2})) == AddLearner(2, url(2))
    relisted = [*members[:2], m(2, learner=True, started=False)]
    assert plan(3, 3, relisted, 100, url, ORDINAL, frozenset({2})).reason == "LearnerCatchingUp"
    # Never when the removal itself would cost quorum.
    unsafe = [m(0), m(1, healthy=False), m(2, healthy=False)]
    assert plan(3, 3, unsafe, 100, url, ORDINAL, frozenset({2})).reason == "QuorumAtRisk"
