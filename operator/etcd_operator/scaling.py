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
from typing import Protocol

from .adapters.etcd import EtcdClient, EtcdError
from .reconcile import maintenance as maint
from .reconcile import membership as mp

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
    if failpoint:
        crash_at(failpoint)


def crash_at(failpoint: str) -> None:
    """Exit at once when ETCD_OPERATOR_FAILPOINT names this point, as a killed operator would."""
    if os.environ.get("ETCD_OPERATOR_FAILPOINT") == failpoint:
        os._exit(86)


class Upkeep(Protocol):
    """The etcd calls maintenance makes (adapters.etcd.EtcdClient, or a fake in tests)."""

    async def compact(self, revision: int) -> None: ...
    async def defragment(self, endpoint: str) -> None: ...
    async def disarm_nospace(self, member_id: int) -> None: ...


async def execute_maintenance(step: maint.Step, etcd: Upkeep) -> str:
    """Carry out one maintenance step (reconcile.maintenance); returns what was done ("" for none)."""
    if isinstance(step, maint.Compact):
        await etcd.compact(step.revision)
        return f"Compact to revision {step.revision}"
    if isinstance(step, maint.Defragment):
        if not step.endpoint:
            raise EtcdError(f"member {step.name} has no client URL to defragment", "")
        await etcd.defragment(step.endpoint)
        return f"Defragment {step.name} ({step.free_bytes // 2**20} MiB free)"
    if isinstance(step, maint.Disarm):
        for member_id in step.member_ids:
            await etcd.disarm_nospace(member_id)
        return "Disarm NOSPACE"
    return ""
