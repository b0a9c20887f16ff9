"""Carry out one membership step: etcd's runtime API for members, a callback for the StatefulSet.

The planner (reconcile.membership) decides; this module only acts, so the same
code runs in the operator and in the real-etcd tests that drive members
without Kubernetes. Failpoints (ETCD_OPERATOR_FAILPOINT, read only by tests)
crash the process right after a change, to prove a restarted operator
converges from whatever state the crash left.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from .adapters.etcd import EtcdClient, EtcdError
from .reconcile import maintenance as maint
from .reconcile import membership as mp
from .reconcile.observed import EtcdView

ScaleTo = Callable[[int], Awaitable[None]]
Restart = Callable[[str, str], Awaitable[None]]  # (pod, uid): delete it so the StatefulSet recreates it


async def _no_restart(pod: str, uid: str) -> None:
    raise RuntimeError(f"no way to restart {pod} here")

FAILPOINTS = {
    mp.AddLearner: "after-member-add",
    mp.Promote: "after-promote",
    mp.RemoveMember: "after-remove",
    mp.RestartMember: "after-restart",
}


async def execute(step: mp.Step, client: EtcdClient, scale_to: ScaleTo, restart: Restart = _no_restart) -> None:
    """Raises EtcdError when etcd refuses (e.g. "unhealthy cluster" while a change settles): retry next pass."""
    if isinstance(step, mp.AddLearner):
        await client.member_add([step.peer_url], learner=True)
    elif isinstance(step, mp.ScaleStatefulSet):
        await scale_to(step.replicas)
    elif isinstance(step, mp.Promote):
        await client.member_promote(step.member_id)
    elif isinstance(step, mp.MoveLeader):
        await client.move_leader(step.to_member_id)
    elif isinstance(step, mp.RemoveMember):
        await client.member_remove(step.member_id)
    elif isinstance(step, mp.RestartMember):
        await restart(step.pod, step.uid)
    failpoint = FAILPOINTS.get(type(step))
    if failpoint and os.environ.get("ETCD_OPERATOR_FAILPOINT") == failpoint:
        os._exit(86)  # crash exactly here, as a killed operator would


async def execute_maintenance(step: maint.Step, etcd: EtcdClient, view: EtcdView) -> bool:
    """Carry out one maintenance step (reconcile.maintenance); True when it changed something.

    A defragment is asked of that member's own URL: defragmentation is per member and blocks it.
    """
    if isinstance(step, maint.Compact):
        await etcd.compact(step.revision)
    elif isinstance(step, maint.Defragment):
        member = next((m for m in view.members if m.id == step.member_id), None)
        if member is None or not member.client_urls:
            raise EtcdError(f"member {step.name} has no client URL to defragment", "")
        await etcd.defragment(member.client_urls[0])
    elif isinstance(step, maint.Disarm):
        for member_id in step.member_ids:
            await etcd.disarm_nospace(member_id)
    else:
        return False
    return True
