"""The next rollout step: which member's pod to restart for a new template, if any. Pure.

The StatefulSet uses `updateStrategy: OnDelete`, so a template change (a new
etcd version, resources, arguments) restarts nothing by itself; the operator
restarts one member per step, in the order etcd-druid's rollout proposal and
etcd's upgrade guide describe: members that are already unhealthy first, then
followers (highest ordinal first), the leader last after leadership has moved
to a member that already runs the new template. Every step waits until the
member restarted before it is ready and healthy again and the cluster has its
full health, so at most one member is ever down for the rollout, and never
when its absence would cost quorum. A crash anywhere resumes: the plan is
recomputed from the pods' revisions, which say who is done.

A version change is checked against the versions the members actually run
(reconcile.versions), which admission cannot see: a second edit made while a
first upgrade still rolls is refused here, with no pod touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import membership as mp
from .observed import EtcdView, Member, PodView, StatefulSetView, quorum
from .versions import Version, upgrade_refusal

UPGRADING = "Upgrading"
ROLLING_UPDATE = "RollingUpdate"
ROLLOUT_REASONS = (UPGRADING, ROLLING_UPDATE)


def running_version(etcd: EtcdView) -> Version | None:
    """The oldest version any member runs: the one the next upgrade step must start from."""
    versions = [v for m in etcd.members if (v := Version.parse(m.version)) is not None]
    return min(versions) if versions else None


def path_refusal(etcd: EtcdView, wanted: str) -> mp.Refuse | None:
    running, target = running_version(etcd), Version.parse(wanted)
    if running is None or target is None:
        return None
    refusal = upgrade_refusal(running, target)
    return mp.Refuse(refusal.reason, refusal.message) if refusal else None


def plan_rollout(
    sts: StatefulSetView,
    pods: Sequence[PodView],
    etcd: EtcdView,
    wanted_version: str,
    ordinal_of: Callable[[Member], int | None],
) -> mp.Step | None:
    """One rollout step, a Wait while the previous one settles, or None when every pod runs the template."""
    if not sts.update_revision:
        return None  # a StatefulSet the controller has not processed yet has no revisions to compare
    if not sts.template_observed:
        return mp.Wait(ROLLING_UPDATE, "waiting for the StatefulSet controller to see the new pod template")
    members = [m for m in pods if m.ordinal is not None and m.ordinal < sts.replicas]
    outdated = sorted((p for p in members if p.revision and p.revision != sts.update_revision),
                      key=lambda p: -(p.ordinal or 0))  # fmt: skip
    if not outdated:
        return None
    upgrading = any(m.version and m.version != wanted_version for m in etcd.members)
    reason = UPGRADING if upgrading else ROLLING_UPDATE
    total = len(etcd.members)
    if upgrading:
        at = sum(m.version == wanted_version for m in etcd.members)
        progress = f"{at} of {total} members at {wanted_version}"
    else:
        progress = f"{total - len(outdated)} of {total} members on the current pod template"
    by_ordinal = {o: m for m in etcd.members if (o := ordinal_of(m)) is not None}

    def healthy(pod: PodView) -> bool:
        member = by_ordinal.get(pod.ordinal or 0)
        return pod.ready and member is not None and member.healthy

    settling = [p for p in members if p.deleting or (p not in outdated and not healthy(p))]
    if settling or len(members) < sts.replicas:
        who = settling[0].name if settling else "a restarted member"
        return mp.Wait(reason, f"{progress}; waiting for {who} to be ready and healthy")
    # An outdated member that is down already costs nothing to restart: it goes first.
    down = [p for p in outdated if not healthy(p)]
    if down:
        pod = down[0]
        return mp.RestartMember(pod.ordinal or 0, pod.name, pod.uid, reason, f"{progress}; restarting {pod.name}")
    voting = [m for m in etcd.members if not m.is_learner]
    healthy_voting = [m for m in voting if m.healthy]
    if len(voting) >= 3 and len(healthy_voting) - 1 < quorum(len(voting)):
        return mp.Wait(reason, f"{progress}; not restarting a member while that would leave less than quorum")
    leader_ordinal = next((o for o, m in by_ordinal.items() if m.id == etcd.leader_id), None)
    followers = [p for p in outdated if p.ordinal != leader_ordinal]
    if followers:
        pod = followers[0]
        return mp.RestartMember(pod.ordinal or 0, pod.name, pod.uid, reason, f"{progress}; restarting {pod.name}")
    # Only the leader is left: hand leadership to a member that already runs the new template.
    updated = sorted(o for o, m in by_ordinal.items()
                     if o != leader_ordinal and m.healthy and not m.is_learner)  # fmt: skip
    if updated:
        return mp.MoveLeader(by_ordinal[updated[0]].id)
    pod = outdated[0]
    return mp.RestartMember(pod.ordinal or 0, pod.name, pod.uid, reason, f"{progress}; restarting {pod.name}")
