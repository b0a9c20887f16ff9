"""kopf handlers for EtcdCluster: one reconcile loop per cluster; change handlers only validate and wake it.

The loop is a kopf daemon rather than a timer so that its interval can follow
the cluster: about a second while a membership step or a repair is in flight
(the next step becomes possible as soon as etcd settles), the idle interval
otherwise. A spec change wakes it at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from .. import GROUP, KIND, PLURAL, VERSION, metrics
from ..adapters.etcd import EtcdClient
from ..adapters.kube import ApiError, Kube
from ..controller import EtcdClients, context, reconcile_once
from ..models.cluster import EtcdClusterSpec
from ..reconcile import membership as mp
from ..reconcile.status import describe, status_patch, transitions

log = structlog.get_logger("etcd-operator")
IDLE_INTERVAL = float(os.environ.get("ETCD_OPERATOR_IDLE_INTERVAL", "10"))
BUSY_INTERVAL = float(os.environ.get("ETCD_OPERATOR_BUSY_INTERVAL", "1"))
_kube: Kube | None = None
_clients = EtcdClients()
_wakers: dict[str, asyncio.Event] = {}


def kube() -> Kube:
    global _kube
    if _kube is None:
        _kube = Kube()
    return _kube


metrics.RECORDER.count("etcd_operator_kube_requests", "Kubernetes API requests the operator made",
                        lambda: _kube.requests if _kube is not None else 0)  # fmt: skip
metrics.RECORDER.count("etcd_operator_etcd_calls", "etcd requests the operator made (every cluster)",
                        lambda: EtcdClient.total_calls)  # fmt: skip


def valid_spec(body: kopf.Body) -> EtcdClusterSpec:
    try:
        return EtcdClusterSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc


def _waker(uid: str) -> asyncio.Event:
    return _wakers.setdefault(uid, asyncio.Event())


@kopf.on.create(GROUP, VERSION, PLURAL, id="create")
@kopf.on.update(GROUP, VERSION, PLURAL, id="update", field="spec")
async def spec_changed(body: kopf.Body, uid: str, **_: Any) -> None:
    """Validate and wake the cluster's loop; the loop does every write."""
    spec = valid_spec(body)
    if spec.replicas % 2 == 0:
        kopf.event(body, type="Warning", reason="EvenReplicas", message=f"{spec.replicas} members tolerate no more "
                   f"failures than {spec.replicas - 1}; an odd number is recommended")  # fmt: skip
    _waker(uid).set()


async def run_pass(body: kopf.Body, first: bool = False) -> float:
    """One pass; returns the delay until the next."""
    ctx = context(body, valid_spec(body))
    names = ctx.identity.names
    bound = log.bind(cluster=names.name, namespace=names.namespace)
    result = await reconcile_once(kube(), ctx, _clients)
    metrics.RECORDER.record(metrics.sample(ctx, result))
    if first:
        # Once per loop start (a new cluster, or an operator restart): says what this pass had to repair.
        bound.info("reconciling", repaired=sorted(result.plan.drifted))
    step = result.outcome.step
    if step is not None and not isinstance(step, mp.Noop):
        reason, message = describe(step)
        bound.info("membership step", step=str(reason), detail=message, refused=result.outcome.step_error or None)
    if result.outcome.maintained:
        bound.info("maintenance step", step=result.outcome.maintained)
    if result.outcome.access.made:
        bound.info("etcd auth calls", calls=list(result.outcome.access.made), left=result.outcome.access.left)
    if result.plan.drifted:
        bound.info("objects applied", drifted=dict(result.plan.drifted))
    for problem in result.outcome.problems:
        bound.warning("problem", reason=problem.reason, detail=problem.message)
    for event in (*result.plan.in_place.events, *result.plan.recovery.events):
        bound.info("restore" if event in result.plan.in_place.events else "recovery", reason=event.reason,
                   detail=event.message)  # fmt: skip
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    for cond in transitions(ctx.status.conditions, result.status.conditions or []):
        kind = "Warning" if cond.type == "Degraded" and cond.status.value == "True" else "Normal"
        kopf.event(body, type=kind, reason=cond.reason, message=f"{cond.type}={cond.status.value}: {cond.message}")
    new = result.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    if patch := status_patch(dict(body.get("status") or {}), new):
        await asyncio.to_thread(kube().patch_status, f"{GROUP}/{VERSION}", KIND, names.name, names.namespace, patch)
    return BUSY_INTERVAL if result.busy else IDLE_INTERVAL


@kopf.daemon(GROUP, VERSION, PLURAL, id="reconcile", cancellation_timeout=30)
async def reconcile_loop(body: kopf.Body, uid: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Level-based: every pass observes everything and corrects whatever differs, whether or not the spec changed."""
    wake = _waker(uid)
    first = True
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    try:
        while not stopped:
            wake.clear()
            started = time.monotonic()
            failed = True
            try:
                delay = await run_pass(body, first)
                first = failed = False
            except kopf.PermanentError as exc:
                log.error("invalid spec", cluster=name, error=str(exc))
                delay = IDLE_INTERVAL
            except (ApiError, OSError, RuntimeError) as exc:
                log.warning("pass failed", cluster=name, error=str(exc))
                delay = IDLE_INTERVAL
            took = time.monotonic() - started
            metrics.RECORDER.observe_pass(namespace, name, took, failed)
            delay = max(delay - took, 0.2)
            await _sleep_unless_woken(delay, wake, stopped)
    finally:
        # The loop ends when the cluster is deleted (or the operator stops): no stale series of it.
        metrics.RECORDER.forget(namespace, name)
        _wakers.pop(uid, None)
        await _clients.drop(uid)


async def _sleep_unless_woken(delay: float, wake: asyncio.Event, stopped: kopf.DaemonStopped) -> None:
    async def until_stopped() -> None:
        await stopped.wait()

    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
