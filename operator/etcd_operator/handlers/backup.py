"""kopf handlers for EtcdBackup: a timer per unfinished backup runs its pass (reconcile.backup), and a
deletion handler removes the snapshot of a backup with deletionPolicy Delete.

Level-based like the cluster loop: each tick observes the backup's cluster, Job
and pods, plans, creates the Job if the plan says so and writes the status if
it changed. A finished backup (Completed or Failed) is left alone: the timer's
filter stops calling it.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from .. import GROUP, KIND, VERSION
from ..adapters.kube import ApiError
from ..controller import cluster_domain, node_repository
from ..models.backup import BACKUP_KIND, BACKUP_PLURAL, EtcdBackupSpec, EtcdBackupStatus
from ..reconcile.backup import FINAL, BackupObserved, plan_backup, plan_deletion
from ..resources.backup_job import BACKUP_LABEL
from .cluster import kube

log = structlog.get_logger("etcd-operator")
INTERVAL = float(os.environ.get("ETCD_OPERATOR_BACKUP_INTERVAL", "3"))


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in [str(p) for p in FINAL]


@kopf.timer(GROUP, VERSION, BACKUP_PLURAL, id="backup", interval=INTERVAL, when=_unfinished)
async def backup_pass(body: kopf.Body, name: str, namespace: str | None, uid: str, **_: Any) -> None:
    assert namespace is not None  # EtcdBackup is namespaced
    try:
        spec = EtcdBackupSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc}") from exc
    status = EtcdBackupStatus.model_validate(dict(body.get("status") or {}))
    k = kube()

    def observe() -> BackupObserved:
        cluster = k.get(f"{GROUP}/{VERSION}", KIND, spec.cluster_ref.name, namespace)
        job = k.get("batch/v1", "Job", f"{name}-backup", namespace)
        pods = k.list("v1", "Pod", namespace, {BACKUP_LABEL: name}) if job else []
        return BackupObserved(name, namespace, uid, spec, status, cluster, job, pods, node_repository(), cluster_domain())

    seen = await asyncio.to_thread(observe)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    planned = plan_backup(seen, now)
    bound = log.bind(backup=name, namespace=namespace, cluster=spec.cluster_ref.name)
    if planned.create_job is not None:
        try:
            await asyncio.to_thread(k.apply, planned.create_job)
        except ApiError as exc:
            bound.warning("backup job refused", error=str(exc))
            raise kopf.TemporaryError(str(exc), delay=INTERVAL * 5) from exc
        bound.info("backup job created", job=planned.create_job["metadata"]["name"])
    new = planned.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    if new != dict(body.get("status") or {}):
        await asyncio.to_thread(k.patch_status, f"{GROUP}/{VERSION}", BACKUP_KIND, name, namespace, new)
        phase, old_phase = planned.status.phase, status.phase
        if phase != old_phase:
            condition = next(iter(planned.status.conditions or []), None)
            message = condition.message if condition else str(phase)
            kind = "Warning" if phase is not None and phase.value == "Failed" else "Normal"
            reason = condition.reason if condition else str(phase)
            kopf.event(body, type=kind, reason=f"Backup{phase.value if phase else ''}", message=f"{reason}: {message}")
            bound.info("backup phase", phase=str(phase), reason=reason, detail=message)



def _deletes_snapshot(spec: kopf.Spec, **_: Any) -> bool:
    """Only these backups get kopf's finalizer: deleting a Retain backup is not held up."""
    return spec.get("deletionPolicy") == "Delete"


@kopf.on.delete(GROUP, VERSION, BACKUP_PLURAL, id="delete-snapshot", when=_deletes_snapshot)
async def delete_snapshot(body: kopf.Body, name: str, namespace: str | None, uid: str, **_: Any) -> None:
    """The snapshot first, then the EtcdBackup: a Job removes it and the deletion waits for that Job."""
    assert namespace is not None
    try:
        spec = EtcdBackupSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return  # nothing can be deleted from a spec that says nowhere; the backup goes
    status = EtcdBackupStatus.model_validate(dict(body.get("status") or {}))
    k = kube()

    def observe() -> BackupObserved:
        cluster = k.get(f"{GROUP}/{VERSION}", KIND, spec.cluster_ref.name, namespace)
        job = k.get("batch/v1", "Job", f"{name}-backup", namespace)
        deleting = k.get("batch/v1", "Job", f"{name}-delete", namespace)
        return BackupObserved(name, namespace, uid, spec, status, cluster, job, [], node_repository(),
                              cluster_domain(), delete_job=deleting)  # fmt: skip

    planned = plan_deletion(await asyncio.to_thread(observe))
    bound = log.bind(backup=name, namespace=namespace, cluster=spec.cluster_ref.name)
    if planned.create_job is not None:
        try:
            await asyncio.to_thread(k.apply, planned.create_job)
        except ApiError as exc:
            raise kopf.TemporaryError(str(exc), delay=INTERVAL * 5) from exc
        bound.info("snapshot delete job created", job=planned.create_job["metadata"]["name"])
    if not planned.done:
        raise kopf.TemporaryError(planned.wait, delay=INTERVAL)
    if planned.left_in_store:
        message = f"Job {name}-delete failed: the snapshot {planned.left_in_store} is left in the store; delete it by hand"
        kopf.event(body, type="Warning", reason="SnapshotLeftInStore", message=message)
        bound.warning("snapshot left in store", location=planned.left_in_store)
    elif status.job_name:
        bound.info("snapshot deleted from the store", location=status.location)
