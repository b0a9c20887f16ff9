"""kopf handlers for EtcdCluster: validate, delegate to the controller, report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from .. import GROUP, PLURAL, VERSION
from ..adapters.etcd import EtcdError
from ..adapters.kube import Kube
from ..controller import (
    ClusterContext,
    DiscoveryNotReady,
    cluster_domain,
    converge_membership,
    ensure_objects,
    etcd_client,
    observe_and_compute_status,
    seed_discovery,
)
from ..models.cluster import EtcdClusterSpec, EtcdClusterStatus
from ..reconcile import membership as mp
from ..reconcile.desired import ClusterIdentity
from ..reconcile.status import transitions

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
async def observe(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    ctx = context(body)
    status = await observe_and_compute_status(kube(), ctx, datetime.now(UTC))
    for cond in transitions(ctx.status.conditions, status.conditions or []):
        kind = "Warning" if cond.type == "Degraded" and cond.status.value == "True" else "Normal"
        kopf.event(body, type=kind, reason=cond.reason, message=f"{cond.type}={cond.status.value}: {cond.message}")
    patch.status.update(status.model_dump(by_alias=True, exclude_none=True, mode="json"))
    etcd = etcd_client(kube(), ctx.identity.names, ctx.spec)
    if isinstance(etcd, str):
        return
    try:
        step = await converge_membership(kube(), ctx, etcd, status)
    except EtcdError as exc:  # etcd refuses while a change settles ("unhealthy cluster"): next pass retries
        log.info("membership step deferred", cluster=ctx.identity.names.name, reason=exc.message)
        return
    if isinstance(step, mp.Refuse):
        kopf.event(body, type="Warning", reason=step.reason, message=step.message)
    elif not isinstance(step, (mp.Noop, mp.Wait)):
        kopf.event(body, type="Normal", reason=type(step).__name__, message=f"membership step: {step}")
