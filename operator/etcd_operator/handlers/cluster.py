"""kopf handlers for EtcdCluster: validate, delegate to the controller, report."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from .. import GROUP, PLURAL, VERSION
from ..adapters.kube import Kube
from ..controller import (
    ClusterContext,
    DiscoveryNotReady,
    cluster_domain,
    converge_membership,
    ensure_objects,
    etcd_client,
    observe,
    seed_discovery,
)
from ..models.cluster import EtcdClusterSpec, EtcdClusterStatus
from ..reconcile import membership as mp
from ..reconcile.desired import ClusterIdentity
from ..reconcile.status import compute_status, describe, transitions

log = structlog.get_logger("etcd-operator")
_kube: Kube | None = None


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube()
    return _kube


def context(body: kopf.Body) -> ClusterContext:
    meta = body["metadata"]
    try:
        spec = EtcdClusterSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    status = EtcdClusterStatus.model_validate(dict(body.get("status") or {}))
    identity = ClusterIdentity.of(meta["name"], meta["namespace"], meta["uid"], cluster_domain())
    return ClusterContext(identity, spec, status, int(meta.get("generation") or 0))


@kopf.on.resume(GROUP, VERSION, PLURAL, id="resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="create")
@kopf.on.update(GROUP, VERSION, PLURAL, id="update", field="spec")
async def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    ctx = context(body)
    bound = log.bind(cluster=ctx.identity.names.name, namespace=ctx.identity.names.namespace, step="ensure")
    try:
        if ctx.status.initial_members is None:
            await seed_discovery(kube(), ctx)
            patch.status["initialMembers"] = ctx.spec.replicas
        applied = await asyncio.to_thread(ensure_objects, kube(), ctx)
    except DiscoveryNotReady as exc:
        kopf.event(body, type="Warning", reason="WaitingForDiscovery", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=15) from exc
    bound.info("objects applied", objects=applied)
    if ctx.spec.replicas % 2 == 0:
        kopf.event(body, type="Warning", reason="EvenReplicas", message=f"{ctx.spec.replicas} members tolerate no more failures "
                  f"than {ctx.spec.replicas - 1}; an odd number is recommended")  # fmt: skip


@kopf.timer(GROUP, VERSION, PLURAL, id="observe", interval=10, initial_delay=2)
async def observe_and_converge(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Observe, take at most one membership step, and report both in status; Events mark condition changes."""
    ctx = context(body)
    names = ctx.identity.names
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    etcd = await asyncio.to_thread(etcd_client, kube(), names, ctx.spec)
    observed = await observe(kube(), ctx, etcd)
    status = compute_status(ctx.spec, observed, ctx.status, now)
    step, refused = (None, "") if isinstance(etcd, str) else await converge_membership(kube(), ctx, etcd, status)
    if step is not None:
        status = compute_status(ctx.spec, replace(observed, step=step, step_error=refused), ctx.status, now)
        if not isinstance(step, mp.Noop):
            reason, message = describe(step)
            log.info("membership step", cluster=names.name, namespace=names.namespace, reason=str(reason),
                     step=message, refused=refused or None)  # fmt: skip
    for cond in transitions(ctx.status.conditions, status.conditions or []):
        kind = "Warning" if cond.type == "Degraded" and cond.status.value == "True" else "Normal"
        kopf.event(body, type=kind, reason=cond.reason, message=f"{cond.type}={cond.status.value}: {cond.message}")
    patch.status.update(status.model_dump(by_alias=True, exclude_none=True, mode="json"))
