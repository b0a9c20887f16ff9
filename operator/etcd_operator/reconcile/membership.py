"""The next membership step: a pure function of the desired size and what etcd and the StatefulSet show.

One change per pass, never two: etcd itself refuses a second reconfiguration
until the first has settled, and a plan recomputed from observed state after a
crash picks up exactly where the last pass stopped (a learner that was added
but whose pod never started, a member removed but still counted by the
StatefulSet, ...). Members are identified by StatefulSet ordinal, read from
their peer URL, so the plan never depends on names etcd fills in late.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .observed import Member, quorum

OrdinalOf = Callable[[str], "int | None"]  # a peer URL -> the StatefulSet ordinal it names


@dataclass(frozen=True)
class Noop:
    reason: str = "membership matches the spec"


@dataclass(frozen=True)
class Wait:
    reason: str  # a Progressing reason, e.g. LearnerCatchingUp
    message: str


@dataclass(frozen=True)
class Refuse:
    reason: str  # a Degraded reason, e.g. QuorumAtRisk
    message: str


@dataclass(frozen=True)
class AddLearner:
    ordinal: int
    peer_url: str


@dataclass(frozen=True)
class ScaleStatefulSet:
    replicas: int


@dataclass(frozen=True)
class Promote:
    member_id: int
    ordinal: int


@dataclass(frozen=True)
class MoveLeader:
    to_member_id: int


@dataclass(frozen=True)
class RemoveMember:
    member_id: int
    ordinal: int


@dataclass(frozen=True)
class RestartMember:
    """Delete a member's pod so the StatefulSet recreates it from the current template (a rollout step)."""

    ordinal: int
    pod: str
    uid: str  # the pod's UID: the deletion is refused if the pod was already replaced
    reason: str  # a Progressing reason: Upgrading or RollingUpdate
    message: str


Step = Noop | Wait | Refuse | AddLearner | ScaleStatefulSet | Promote | MoveLeader | RemoveMember | RestartMember


def ordinal_of(member: Member, ordinal_in_url: OrdinalOf) -> int | None:
    for url in member.peer_urls:
        if (ordinal := ordinal_in_url(url)) is not None:
            return ordinal
    return None


def plan(
    desired: int,
    sts_replicas: int,
    members: Sequence[Member],
    leader_id: int | None,
    peer_url: Callable[[int], str],
    ordinal_in_url: OrdinalOf,
    lost: frozenset[int] = frozenset(),
) -> Step:
    """Exactly one next step towards `desired` voting members.

    `peer_url(ordinal)` is the URL a member of that ordinal advertises;
    `ordinal_in_url` finds the ordinal in a peer URL (None for a foreign host);
    `lost` are ordinals whose pods report their data gone (etcd-node refuses
    to start them): their stale entries are removed, then re-added as learners.
    """
    if desired < 1:
        return Refuse("ScaleToZero", "spec.replicas must be at least 1; a cluster cannot scale to zero members")
    by_ordinal: dict[int, Member] = {}
    for member in members:
        ordinal = ordinal_of(member, ordinal_in_url)
        if ordinal is None:
            return Refuse("ForeignMember", f"member {member.name or hex(member.id)} ({member.peer_urls}) is not one "
                          "of this cluster's pods; remove it with etcdctl member remove")  # fmt: skip
        by_ordinal[ordinal] = member
    voting = [m for m in members if not m.is_learner]
    healthy_voting = [m for m in voting if m.healthy]
    has_quorum = len(healthy_voting) >= quorum(len(voting)) if voting else False

    # 1. Finish what was started: a learner is promoted before anything else happens.
    learners = sorted((o, m) for o, m in by_ordinal.items() if m.is_learner)
    if learners:
        ordinal, learner = learners[0]
        if sts_replicas <= ordinal:
            return ScaleStatefulSet(ordinal + 1)
        if not learner.started or not learner.healthy:
            return Wait("LearnerCatchingUp", f"learner {learner.name or ordinal} is starting and catching up")
        return Promote(learner.id, ordinal)

    # 2. Heal: a member whose data is gone is removed (then re-added as a learner by step 4).
    for ordinal in sorted(lost & set(by_ordinal)):
        victim = by_ordinal[ordinal]
        if victim.is_learner or not victim.started:
            continue
        remaining = [m for m in voting if m.id != victim.id]
        if len([m for m in remaining if m.healthy]) < quorum(len(remaining)):
            return Refuse("QuorumAtRisk", f"member {victim.name} lost its data but removing it would leave "
                          "too few healthy members for quorum; restore another member first")  # fmt: skip
        if victim.id == leader_id and remaining:
            return MoveLeader(min(remaining, key=lambda m: m.id).id)
        return RemoveMember(victim.id, ordinal)

    # 3. Right after a removal, the StatefulSet drops the removed member's pod.
    top = max(by_ordinal, default=-1)
    if sts_replicas > top + 1 and sts_replicas > desired and not lost:
        return ScaleStatefulSet(max(top + 1, desired))

    # 4. Grow: one learner at a time, at the next ordinal, only while quorum is healthy.
    if len(members) < desired:
        if not has_quorum:
            return Refuse("QuorumAtRisk", f"only {len(healthy_voting)} of {len(voting)} voting members are healthy; "
                          "not adding members until quorum is healthy")  # fmt: skip
        ordinal = next(o for o in range(len(members) + 1) if o not in by_ordinal)
        return AddLearner(ordinal, peer_url(ordinal))

    # 5. Shrink: the highest ordinal goes, leadership moved away first, never below quorum.
    if len(members) > desired:
        ordinal = max(by_ordinal)
        victim = by_ordinal[ordinal]
        remaining = [m for m in voting if m.id != victim.id]
        remaining_healthy = [m for m in remaining if m.healthy]
        if len(remaining_healthy) < quorum(len(remaining)):
            return Refuse("QuorumAtRisk", f"removing member {victim.name or ordinal} would leave "
                          f"{len(remaining_healthy)} healthy of {len(remaining)} voting members, below quorum")  # fmt: skip
        if victim.id == leader_id:
            target = min(remaining_healthy, key=lambda m: ordinal_of(m, ordinal_in_url) or 0)
            return MoveLeader(target.id)
        return RemoveMember(victim.id, ordinal)

    # 6. Members match; the StatefulSet catches up if a crash left it behind.
    if sts_replicas != len(members):
        return ScaleStatefulSet(len(members))
    return Noop()


def after(step: Step, members: Sequence[Member], added_id: int = 0) -> list[Member] | None:
    """The member list once `step` has been taken, or None when the step does not change membership.

    Planning again from it gives the StatefulSet's follow-up in the same pass
    (a new learner's pod starts, a removed member's pod goes) without reading
    etcd a second time; it is not a second membership change.
    """
    if isinstance(step, AddLearner):
        return [*members, Member(added_id, "", (step.peer_url,), (), True, False)]
    if isinstance(step, RemoveMember):
        return [m for m in members if m.id != step.member_id]
    if isinstance(step, Promote):
        return [replace(m, is_learner=False) if m.id == step.member_id else m for m in members]
    return None
