"""Quorum loss: told from what the surviving members say, and recovered on request from one of them. Pure.

When most voting members are gone for good (volumes lost, nodes gone), etcd
cannot elect a leader, so nothing that needs quorum answers (the member list,
writes, the client Service's readiness). `quorum_loss` reads the `Survey` the
pass takes then: which voting members still answer their own status, how far
each one's raft log goes, which are silent and which of those lost their
data, so the condition can name the member to recover from and what each
option loses.

Recovery is never automatic: `spec.recovery: {fromMember, requestID}` asks
for it, and only while quorum is lost. It is etcd's documented procedure,
sequenced one step per pass and resumable from what Kubernetes holds:

1. refuse while quorum holds, or while the named member does not answer:
   forcing a one-member cluster out of a healthy one would drop its members;
2. stop: the StatefulSet goes to 0, so no member runs the old membership
   (volumes kept) and the pod template mounts the request from now on;
3. start: once no member pod is left, write the request Secret (requestID,
   the survivor) and start pods up to the survivor's ordinal. Its etcd-node
   starts etcd once with --force-new-cluster (node recovery.py); a member
   of a lower ordinal waits until the survivor answers;
4. when the survivor answers as a healthy one-member cluster, record
   `status.recovery` (and an Event);
5. the pass after, delete the request; the membership planner then adds
   the other members back one at a time as learners, as for a scale-out.

Steps 2 and 3 are told apart after a crash by the StatefulSet's size, the
member pods, the request Secret and the last status (a StatefulSet at 0
that this recovery did not stop, e.g. a hibernated cluster being woken, is
not taken for one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from etcd_node.contract import split_pod_name

from ..models.cluster import EtcdClusterSpec, RecoveryRecord
from ..resources.meta import Owner
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from . import membership as mp
from .inplace import Event, json_request
from .observed import Observed, quorum
from .pods import lost_data
from .problems import Problem

RECOVERING = "Recovering"
REFUSED = "RecoveryRefused"
QUORUM_LOST = "QuorumLost"
REQUEST_KEY = "recovery.json"


@dataclass(frozen=True)
class Survivor:
    name: str
    member_id: int
    raft_index: int


@dataclass(frozen=True)
class QuorumLoss:
    """Fewer voting members answer than quorum needs, and none knows a leader."""

    voting: int
    survivors: tuple[Survivor, ...]  # voting members that answer, the highest raft index first
    silent: tuple[str, ...]  # voting members that do not answer
    lost: tuple[str, ...]  # of those, the ones whose pods say their data is gone

    def survivor(self, name: str) -> Survivor | None:
        return next((s for s in self.survivors if s.name == name), None)

    @property
    def message(self) -> str:
        answering = ", ".join(f"{s.name} (raft index {s.raft_index})" for s in self.survivors) or "none"
        silent = ", ".join(self.silent)
        lost = f"; {', '.join(self.lost)} lost {'its' if len(self.lost) == 1 else 'their'} data" if self.lost else ""
        text = (f"quorum lost: {len(self.survivors)} of {self.voting} voting members answer, {quorum(self.voting)} "
                f"needed; answering: {answering}; silent: {silent}{lost}. Nothing can be read or written "
                "through the cluster until quorum is back.")  # fmt: skip
        if not self.survivors:
            return text + " Bring members back with their data, or restore a backup with spec.restore."
        best = self.survivors[0]
        text += (f" If the silent members can come back with their data, bring them back: that loses nothing. "
                 f"Otherwise set spec.recovery {{fromMember: {best.name}, requestID: <new>}} ({best.name} holds the "
                 f"highest raft index): it keeps every write {best.name} applied, loses any it had not, and the "
                 "others rejoin as new members; or restore a backup with spec.restore, which loses the writes "
                 "made since the backup.")  # fmt: skip
        return text


def quorum_loss(observed: Observed) -> QuorumLoss | None:
    """The loss of quorum the survey shows, or None (etcd answered, nobody answered, or an election is on)."""
    survey = observed.survey
    if observed.etcd is not None or survey is None or not survey.members:
        return None
    voting = [m for m in survey.members if not m.is_learner]
    if not voting or any(a.leader_id for a in survey.answers.values()):
        return None
    answering = [m for m in voting if m.id in survey.answers]
    if len(answering) >= quorum(len(voting)):
        return None  # enough members answer: an election is under way, or only the client Service is broken
    lost_ordinals = lost_data(observed.pods)
    lost_pods = {p.name for p in observed.pods if p.ordinal in lost_ordinals}
    survivors = sorted(
        (Survivor(m.name, m.id, survey.answers[m.id].raft_index) for m in answering),
        key=lambda s: (-s.raft_index, s.name),
    )
    silent = sorted(m.name or f"{m.id:x}" for m in voting if m.id not in survey.answers)
    return QuorumLoss(len(voting), tuple(survivors), tuple(silent), tuple(n for n in silent if n in lost_pods))


@dataclass(frozen=True)
class RecoveryPlan:
    active: bool = False  # the recovery owns the StatefulSet's size this pass: no membership step or rollout
    step: mp.Step | None = None
    progress: str = ""  # Progressing=True/Recovering with this message
    problem: Problem | None = None  # a refusal: Degraded
    request: dict[str, Any] | None = None  # the request Secret to apply
    retire_request: bool = False
    mount: bool = False  # the pod template mounts the request: from the stop on, kept after
    record: RecoveryRecord | None = None  # status.recovery to write
    events: tuple[Event, ...] = ()


def request_of(data: Mapping[str, bytes] | None) -> dict[str, Any] | None:
    """The recovery request the request Secret holds, or None."""
    return json_request(data, REQUEST_KEY, "requestID", "member")


def plan_recovery(
    names: ClusterNames,
    owner: Owner,
    spec: EtcdClusterSpec,
    record: RecoveryRecord | None,
    observed: Observed,
    last_available_reason: str,
    now: str,
    blocked: str = "",
) -> RecoveryPlan:
    """The recovery's one step this pass. `blocked`: why no recovery may start now (a restore under way)."""
    done_id = record.request_id if record else ""
    in_flight = request_of(observed.recovery_request)
    wanted = spec.recovery
    if in_flight is not None and in_flight["requestID"] != done_id:
        if wanted is None or wanted.request_id == in_flight["requestID"] or wanted.request_id == done_id:
            return _resume(in_flight, observed, now)
        # A new requestID replaces one that never finished (its member could not start): stop and start over.
        # Quorum was lost when the first began and nothing has recovered since, so it is not asked again.
        return _stop_and_start(names, owner, spec, observed, stopping=observed.sts_replicas > 0)
    if in_flight is not None:
        # Recorded by an earlier pass: the request can go; members restart as usual from now on.
        return RecoveryPlan(retire_request=True, mount=True)
    kept = RecoveryPlan(mount=record is not None)
    if wanted is None or wanted.request_id == done_id or observed.statefulset is None:
        return kept
    what = f"recovery {wanted.request_id} from {wanted.from_member}"
    if blocked or spec.hibernate:
        return _refused(kept, f"{what}: {blocked or 'spec.hibernate is true; wake the cluster first'}")
    if observed.sts_replicas > 0:
        loss = quorum_loss(observed)
        if loss is None:
            why = ("quorum holds" if observed.etcd is not None else
                   "quorum loss is not confirmed (no member answers on its own)")  # fmt: skip
            return _refused(kept, f"{what}: {why}; forcing a one-member cluster would drop the other members. "
                            "Remove spec.recovery (or wait: it is carried out only while quorum is lost)")  # fmt: skip
        survivor = loss.survivor(wanted.from_member)
        if survivor is None:
            answering = ", ".join(s.name for s in loss.survivors) or "none"
            return _refused(kept, f"{what}: {wanted.from_member} does not answer, so it cannot be recovered from; "
                            f"members that answer: {answering}")  # fmt: skip
        best = loss.survivors[0]
        note = "" if best.name == survivor.name else (
            f"; note: {best.name} holds a higher raft index ({best.raft_index}): writes only it applied are lost")
        stopping = _stop_and_start(names, owner, spec, observed, stopping=True)
        started = f"{what} (raft index {survivor.raft_index}): stopping every member{note}"
        return replace(stopping, events=(Event("Warning", "RecoveryStarted", started),))
    if last_available_reason not in (QUORUM_LOST, RECOVERING):
        return _refused(kept, f"{what}: the members are stopped and quorum loss was not seen before they were; "
                        "remove spec.recovery")  # fmt: skip
    return _stop_and_start(names, owner, spec, observed, stopping=False)


def _stop_and_start(names: ClusterNames, owner: Owner, spec: EtcdClusterSpec, observed: Observed,
                    stopping: bool) -> RecoveryPlan:  # fmt: skip
    """Steps 2 and 3 for spec.recovery: stop every member, then write the request and start the survivor."""
    wanted = spec.recovery
    assert wanted is not None
    what = f"recovery {wanted.request_id} from {wanted.from_member}"
    split = split_pod_name(wanted.from_member)
    if split is None or split[0] != names.statefulset:
        return _refused(RecoveryPlan(mount=True), f"spec.recovery.fromMember {wanted.from_member} is not a member "
                        f"of this cluster (its pods are {names.statefulset}-<ordinal>)")  # fmt: skip
    if stopping:
        return RecoveryPlan(active=True, step=mp.ScaleStatefulSet(0), mount=True,
                            progress=f"{what}: stopping every member (1 of 3)")  # fmt: skip
    if members := [p for p in observed.pods if p.ordinal is not None]:
        left = ", ".join(sorted(p.name for p in members))
        return RecoveryPlan(active=True, step=mp.Wait(RECOVERING, f"{what}: stopping every member (1 of 3): {left}"),
                            mount=True, progress=f"{what}: stopping every member (1 of 3): waiting for {left}")  # fmt: skip
    request = {"requestID": wanted.request_id, "member": wanted.from_member, "ordinal": split[1]}
    data = {REQUEST_KEY: json.dumps(request, sort_keys=True).encode()}
    secret = build_secret(names.recovery_secret, names.namespace, owner, data, "recovery")
    return RecoveryPlan(
        active=True, step=mp.ScaleStatefulSet(split[1] + 1), request=secret, mount=True,
        progress=f"{what}: starting it alone with --force-new-cluster (2 of 3)",
    )  # fmt: skip


def _refused(kept: RecoveryPlan, message: str) -> RecoveryPlan:
    return RecoveryPlan(problem=Problem(REFUSED, message), mount=kept.mount)


def _resume(request: Mapping[str, Any], observed: Observed, now: str) -> RecoveryPlan:
    """The request is written and not yet recorded: start the survivor (again), wait for it, or record."""
    request_id, member, ordinal = str(request["requestID"]), str(request["member"]), int(request.get("ordinal") or 0)
    what = f"recovery {request_id} from {member}"
    if observed.sts_replicas == 0:
        # A crash between writing the request and starting the survivor: start it now.
        return RecoveryPlan(active=True, step=mp.ScaleStatefulSet(ordinal + 1), mount=True,
                            progress=f"{what}: starting it alone with --force-new-cluster (2 of 3)")  # fmt: skip
    etcd = observed.etcd
    if etcd is not None and len(etcd.members) == 1 and etcd.members[0].name == member and etcd.members[0].healthy:
        status = etcd.status.get(etcd.members[0].id)
        record = RecoveryRecord(request_id=request_id, member=member,
                                raft_index=status.raft_index if status else None, completion_time=now)  # fmt: skip
        message = (f"{what}: {member} runs as a one-member cluster with its data; the other members are added "
                   "back one at a time")  # fmt: skip
        return RecoveryPlan(active=True, step=mp.Noop(), mount=True, record=record,
                            events=(Event("Normal", "Recovered", message),))  # fmt: skip
    problem = None
    pod = next((p for p in observed.pods if p.name == member), None)
    if pod is not None and pod.error is not None and pod.error.code == "RecoveryMemberHasNoData":
        problem = Problem(REFUSED, f"{what}: {pod.error.message}; set spec.recovery again with another member and "
                          "a new requestID, or restore a backup with spec.restore")  # fmt: skip
    message = f"{what}: waiting for {member} to answer as a one-member cluster (3 of 3)"
    return RecoveryPlan(active=True, step=mp.Wait(RECOVERING, message), mount=True, progress=message, problem=problem)
