"""Observed state -> status and conditions. Pure: the clock is passed in.

Conditions follow Kubernetes conventions: `Available` (quorum of healthy voting
members answers), `Progressing` (the cluster is moving towards its spec),
`Degraded` (something needs a person's attention), each with a reason from
`Reason` and `lastTransitionTime` kept while the status does not change.
The membership step a pass took (or was refused) refines them, so `kubectl
get` shows which step a scale or a heal is at, not only that one is running.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..models.cluster import (
    AccessStatus,
    BackupScheduleStatus,
    CertificateStatus,
    Condition,
    ConditionStatus,
    EtcdClusterSpec,
    EtcdClusterStatus,
    MaintenanceRecord,
    MemberStatus,
    RecoveryRecord,
    RestoreRecord,
)
from . import auth
from . import maintenance as maint
from . import membership as mp
from .observed import Member, Observed, quorum
from .problems import Problem
from .recovery import quorum_loss
from .secrets import IssuedCertificate


class Reason(StrEnum):
    QUORUM_HEALTHY = "QuorumHealthy"
    QUORUM_LOST = "QuorumLost"
    ETCD_UNREACHABLE = "EtcdUnreachable"
    BOOTSTRAPPING = "Bootstrapping"
    MEMBERS_STARTING = "MembersStarting"
    RECONCILED = "Reconciled"
    SCALING_PENDING = "ScalingPending"
    MEMBER_UNHEALTHY = "MemberUnhealthy"
    BOOTSTRAP_ERROR = "BootstrapError"
    AS_EXPECTED = "AsExpected"
    HIBERNATING = "Hibernating"
    HIBERNATED = "Hibernated"
    MEMBER_ADDING = "MemberAdding"
    STATEFULSET_SCALING = "StatefulSetScaling"
    LEARNER_PROMOTING = "LearnerPromoting"
    LEADER_MOVING = "LeaderMoving"
    MEMBER_REMOVING = "MemberRemoving"
    RESTORING = "Restoring"
    RECOVERING = "Recovering"


@dataclass(frozen=True)
class Outcome:
    """What the pass did with its plan: the step it took (or waited on, or was refused), and what failed."""

    step: mp.Step | None = None
    step_error: str = ""  # etcd's answer when it refused to take the step for now
    problems: tuple[Problem, ...] = ()  # Degraded causes: the plan's, and applies the API server refused
    applied: int = 0  # objects written without error
    scheduled: datetime | None = None  # the scheduled backup run whose EtcdBackup this pass created
    maintained: str = ""  # the maintenance step this pass carried out, e.g. "Defragment main-1 (40 MiB free)"
    progress: str = ""  # a restore or recovery under way: Progressing=True/<progress_reason> with these words
    progress_reason: str = "Restoring"  # Restoring (spec.restore) or Recovering (spec.recovery)
    access: auth.AuthOutcome = field(default_factory=auth.AuthOutcome)  # the etcd auth calls made, or refused

    @property
    def apply_failed(self) -> bool:
        return any(p.reason == "ApplyFailed" for p in self.problems)


@dataclass(frozen=True)
class AccessReport:
    """etcd auth in status: status.access, and the AccessApplied condition as (status, reason, message)."""

    record: AccessStatus | None
    condition: tuple[bool, str, str] | None


def describe(step: mp.Step) -> tuple[Reason | str, str]:
    """A membership step as a condition reason and a sentence."""
    match step:
        case mp.AddLearner(ordinal, peer_url):
            return Reason.MEMBER_ADDING, f"adding member {ordinal} as a learner ({peer_url})"
        case mp.ScaleStatefulSet(replicas):
            return Reason.STATEFULSET_SCALING, f"StatefulSet follows etcd's membership: {replicas} replicas"
        case mp.Promote(member_id, ordinal):
            return Reason.LEARNER_PROMOTING, f"promoting learner {member_id:x} (member {ordinal}) to a voting member"
        case mp.MoveLeader(to_member_id):
            return Reason.LEADER_MOVING, f"moving leadership to member {to_member_id:x} before the leader leaves or restarts"
        case mp.RemoveMember(member_id, ordinal):
            return Reason.MEMBER_REMOVING, f"removing member {member_id:x} (member {ordinal}) from etcd"
        case mp.Wait(reason, message) | mp.Refuse(reason, message):
            return reason, message
        case mp.RestartMember(reason=reason, message=message):
            return reason, message
    return Reason.RECONCILED, "membership matches the spec"


def _condition(kind: str, ok: bool, reason: Reason | str, message: str, generation: int) -> Condition:
    return Condition(
        type=kind,
        status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
        reason=str(reason),
        message=message,
        observed_generation=generation,
    )


def _joining(member: Member) -> bool:
    """A learner added but not started yet: expected to be silent while its pod starts, not a fault."""
    return member.is_learner and not member.client_urls


def _hibernation_conditions(observed: Observed) -> list[Condition]:
    gen = observed.generation
    left = [p for p in observed.pods if p.ordinal is not None]  # a backup Job's pod has the labels too
    stopped = not left
    return [
        _condition("Available", False, Reason.HIBERNATED, "spec.hibernate is true: members are stopped", gen),
        _condition(
            "Progressing",
            not stopped,
            Reason.HIBERNATING if not stopped else Reason.HIBERNATED,
            f"stopping members, {len(left)} left" if not stopped else
            "all members stopped; their volumes and membership are kept until spec.hibernate is false",
            gen,
        ),
        _condition("Degraded", False, Reason.AS_EXPECTED, "members are stopped on purpose", gen),
    ]


def _with_outcome(conds: list[Condition], observed: Observed, outcome: Outcome) -> list[Condition]:
    """A refused step or a problem degrades the cluster; any other step but Noop is what Progressing is doing."""
    refined: dict[str, Condition] = {}
    step = outcome.step
    if step is not None and not isinstance(step, mp.Noop):
        reason, message = describe(step)
        if outcome.step_error:
            message += f"; etcd asked to retry ({outcome.step_error})"
        kind = "Degraded" if isinstance(step, mp.Refuse) else "Progressing"
        refined[kind] = _condition(kind, True, reason, message, observed.generation)
    if outcome.maintained and "Progressing" not in refined:
        verb = outcome.maintained.split()[0]
        reason = {"Compact": "Compacting", "Defragment": "Defragmenting", "Disarm": "DisarmingAlarm"}.get(verb, verb)
        refined["Progressing"] = _condition("Progressing", True, reason, outcome.maintained, observed.generation)
    if outcome.progress:
        # Members are stopped and restarted on purpose: unavailable and restoring, not degraded by it.
        why = outcome.progress_reason
        refined["Progressing"] = _condition("Progressing", True, why, outcome.progress, observed.generation)
        for cond in conds:
            if cond.type == "Available" and cond.status is ConditionStatus.FALSE:
                refined["Available"] = _condition("Available", False, why, outcome.progress, observed.generation)
            if cond.type == "Degraded" and cond.reason in (Reason.MEMBER_UNHEALTHY.value, Reason.QUORUM_LOST.value):
                planned = "members restart from the snapshot" if why == Reason.RESTORING else "the cluster is recovered"
                refined["Degraded"] = _condition("Degraded", False, Reason.AS_EXPECTED, planned, observed.generation)
    if outcome.problems and "Degraded" not in refined:
        message = "; ".join(p.message for p in outcome.problems)
        refined["Degraded"] = _condition("Degraded", True, outcome.problems[0].reason, message, observed.generation)
    return [refined.get(c.type, c) for c in conds]


def conditions(spec: EtcdClusterSpec, observed: Observed, outcome: Outcome | None = None) -> list[Condition]:
    outcome = outcome or Outcome()
    if spec.hibernate:
        return _with_outcome(_hibernation_conditions(observed), observed, Outcome(problems=outcome.problems))
    return _with_outcome(_observed_conditions(spec, observed), observed, outcome)


def _observed_conditions(spec: EtcdClusterSpec, observed: Observed) -> list[Condition]:
    gen = observed.generation
    members = observed.members
    loss = quorum_loss(observed) if observed.ever_available else None
    if loss is not None:
        available = _condition("Available", False, Reason.QUORUM_LOST, loss.message, gen)
    elif members is None:
        reason = Reason.BOOTSTRAPPING if not observed.ever_available else Reason.ETCD_UNREACHABLE
        available = _condition("Available", False, reason, observed.etcd_error or "etcd has not answered yet", gen)
    else:
        voting = [m for m in members if not m.is_learner]
        healthy = [m for m in voting if m.healthy]
        ok = bool(voting) and len(healthy) >= quorum(len(voting))
        available = _condition(
            "Available",
            ok,
            Reason.QUORUM_HEALTHY if ok else Reason.QUORUM_LOST,
            f"{len(healthy)} of {len(voting)} voting members healthy (quorum {quorum(len(voting)) if voting else 1})",
            gen,
        )
    settled = (
        members is not None
        and len(members) == spec.replicas
        and observed.sts_ready == spec.replicas
        and all(m.healthy and not m.is_learner for m in members)
    )
    if settled:
        progressing = _condition("Progressing", False, Reason.RECONCILED, "all members started and healthy", gen)
    elif observed.ever_available and observed.sts_replicas != spec.replicas:
        progressing = _condition(
            "Progressing",
            True,
            Reason.SCALING_PENDING,
            f"spec.replicas is {spec.replicas}, the cluster has {observed.sts_replicas} members",
            gen,
        )
    else:
        progressing = _condition(
            "Progressing",
            True,
            Reason.MEMBERS_STARTING,
            f"{observed.sts_ready} of {spec.replicas} members ready",
            gen,
        )
    if loss is not None:
        # The pods' own errors (a member that lost its data asks for `member remove`) cannot be acted on
        # without quorum: the way out is what the loss says.
        degraded = _condition("Degraded", True, Reason.QUORUM_LOST, loss.message, gen)
    elif errors := observed.pod_errors():
        detail = "; ".join(f"{pod}: [{err.code}] {err.message}" for pod, err in sorted(errors.items()))
        degraded = _condition("Degraded", True, Reason.BOOTSTRAP_ERROR, detail, gen)
    elif members is not None and (unhealthy := [m for m in members if not m.healthy and not _joining(m)]):
        sick = ", ".join(sorted(m.name or f"{m.id:x}" for m in unhealthy))
        degraded = _condition("Degraded", True, Reason.MEMBER_UNHEALTHY, f"unhealthy: {sick}", gen)
    else:
        degraded = _condition("Degraded", False, Reason.AS_EXPECTED, "all members healthy", gen)
    return [available, progressing, degraded]


def merge_transitions(new: Sequence[Condition], old: Sequence[Condition] | None, now: str) -> list[Condition]:
    """Keep lastTransitionTime when a condition's status did not change."""
    before = {c.type: c for c in old or []}
    merged = []
    for cond in new:
        prev = before.get(cond.type)
        kept = prev.last_transition_time if prev is not None and prev.status == cond.status else None
        merged.append(cond.model_copy(update={"last_transition_time": kept or now}))
    return merged


def phase(conds: Sequence[Condition], ever_available: bool) -> str:
    by_type = {c.type: c for c in conds}
    if by_type["Available"].reason == Reason.HIBERNATED.value:
        return "Hibernated"
    if by_type["Available"].reason == Reason.RESTORING.value:
        return "Restoring"
    if by_type["Available"].reason == Reason.RECOVERING.value:
        return "Recovering"
    if by_type["Available"].status is ConditionStatus.TRUE:
        return "Degraded" if by_type["Degraded"].status is ConditionStatus.TRUE else "Running"
    if not ever_available:
        return "Failed" if by_type["Degraded"].reason == Reason.BOOTSTRAP_ERROR.value else "Bootstrapping"
    return "Unavailable"


def compute_status(
    spec: EtcdClusterSpec,
    observed: Observed,
    previous: EtcdClusterStatus | None,
    now: str,
    outcome: Outcome | None = None,
    initial_members: int | None = None,
    backup: BackupScheduleStatus | None = None,
    restored_from: str | None = None,
    maintenance: MaintenanceRecord | None = None,
    certificates: Sequence[IssuedCertificate] = (),
    restore: RestoreRecord | None = None,
    recovery: RecoveryRecord | None = None,
    access: AccessReport | None = None,
) -> EtcdClusterStatus:
    """Status from the same observation the pass planned from, refined by what it did (`outcome`)."""
    previous = previous or EtcdClusterStatus()
    current = conditions(spec, observed, outcome)
    if access is not None and access.condition is not None:
        ok, reason, message = access.condition
        current.append(_condition("AccessApplied", ok, reason, message, observed.generation))
    conds = merge_transitions(current, previous.conditions, now)
    ever = observed.ever_available or conds[0].status is ConditionStatus.TRUE
    members = None
    if observed.members is not None:
        members = [
            MemberStatus(
                name=m.name,
                id=f"{m.id:x}",
                peer_urls=list(m.peer_urls),
                client_urls=list(m.client_urls),
                is_learner=m.is_learner,
                healthy=m.healthy,
                version=m.version or None,
            )
            for m in sorted(observed.members, key=lambda m: m.name)
        ]
    leader = None
    etcd = observed.etcd
    if etcd is not None and etcd.leader_id is not None:
        leader = next((m.name for m in etcd.members if m.id == etcd.leader_id), None)
    return EtcdClusterStatus(
        phase=phase(conds, ever),
        ready_replicas=observed.sts_ready,
        initial_members=previous.initial_members or initial_members,
        members=members if members is not None else previous.members,
        leader=leader if observed.members is not None else previous.leader,
        cluster_id=f"{etcd.cluster_id:x}" if etcd and etcd.cluster_id is not None else previous.cluster_id,
        version=(etcd.version if etcd else None) or previous.version,
        conditions=conds,
        backup=backup,
        restored_from=previous.restored_from or restored_from,
        restore=restore or previous.restore,
        recovery=recovery or previous.recovery,
        maintenance=maintenance or previous.maintenance,
        certificates=[
            CertificateStatus(secret=c.secret, kind=c.kind, generation=c.generation,
                              not_after=datetime.fromtimestamp(c.not_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            for c in certificates
        ] or None,
        access=access.record if access is not None else None,
        # Written last, as the marker that this generation has been observed.
        observed_generation=observed.generation,
    )


def transitions(old: Sequence[Condition] | None, new: Sequence[Condition]) -> list[Condition]:
    """Conditions whose status or reason changed: each becomes an Event."""
    before = {c.type: (c.status, c.reason) for c in old or []}
    return [c for c in new if before.get(c.type) != (c.status, c.reason)]


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch from the stored status to the new one; None when they are equal.

    A merge patch only removes a field it names as null: a field the new status no longer has
    (status.backup after spec.backup is removed, say) would otherwise stay forever.
    """
    if dict(old) == dict(new):
        return None
    return {**{key: None for key in old if key not in new}, **new}


def maintenance_record(
    previous: MaintenanceRecord | None, upkeep: maint.Step, done: str, now: datetime
) -> MaintenanceRecord | None:
    """The maintenance status after this pass: the compacted revision the planner resumes from, the last step."""
    if not done:
        return previous
    compacted = upkeep.revision if isinstance(upkeep, maint.Compact) else (previous.compacted_revision if previous else None)
    return MaintenanceRecord(compacted_revision=compacted, last_step=done, last_step_time=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
