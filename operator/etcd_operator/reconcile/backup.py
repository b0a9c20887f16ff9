"""One EtcdBackup's pass, pure: from what was observed (the backup, its cluster, its Job and the Job's pods)
to the Job to create, if any, and the backup's status.

A backup waits (Pending) while its cluster is missing, hibernated or not
Available: a snapshot of a cluster without quorum cannot be taken, and waiting
is what a user who created the backup a moment before the cluster would want.
It fails at once only when waiting cannot help (no client certificate for the
operator). Once the Job exists its outcome decides: Completed with the record
the agent wrote to its termination message, or Failed with the agent's error
code as the reason. Completed and Failed are final; the pass is idempotent in
every other phase (the Job is created under a fixed name, so a second create
after a crash finds it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from etcd_node.contract import parse_agent_error
from etcd_node.snapshots import BackupRecord

from ..models.backup import BackupPhase, DeletionPolicy, EtcdBackupSpec, EtcdBackupStatus
from ..models.cluster import DEFAULT_VERSION, Condition, ConditionStatus, EtcdClusterSpec, EtcdClusterStatus, TLSMode
from ..resources.backup_job import BackupJobInputs, backup_job, delete_job
from ..resources.naming import ClusterNames
from .access import client_access

FINAL = (BackupPhase.COMPLETED, BackupPhase.FAILED)


@dataclass(frozen=True)
class BackupObserved:
    name: str
    namespace: str
    uid: str
    spec: EtcdBackupSpec
    status: EtcdBackupStatus
    cluster: Mapping[str, Any] | None  # the EtcdCluster object
    job: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]  # the Job's pods
    node_repository: str
    cluster_domain: str = "cluster.local"
    delete_job: Mapping[str, Any] | None = None  # the Job that deletes the snapshot (deletionPolicy Delete)


@dataclass(frozen=True)
class BackupPlan:
    status: EtcdBackupStatus
    create_job: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.status.phase in FINAL


def _condition(kind: str, status: ConditionStatus, reason: str, message: str, now: str) -> Condition:
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=now)


def _with(status: EtcdBackupStatus, now: str, phase: BackupPhase, reason: str, message: str,
          **fields: Any) -> EtcdBackupStatus:  # fmt: skip
    """The status in `phase`; the condition keeps its transition time while its reason stays the same."""
    kind = {BackupPhase.COMPLETED: "Complete", BackupPhase.FAILED: "Failed"}.get(phase, "Complete")
    value = ConditionStatus.TRUE if phase in FINAL else ConditionStatus.FALSE
    previous = next((c for c in status.conditions or [] if c.type == kind), None)
    since = previous.last_transition_time if previous and (previous.status, previous.reason) == (value, reason) else now
    condition = _condition(kind, value, reason, message, since or now)
    return status.model_copy(update={"phase": phase, "conditions": [condition], **fields})


def _job_condition(job: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or [])


def _termination_messages(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Termination messages of the Job's finished containers, newest pod first."""
    found = []
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp") or ""), reverse=True):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            if terminated.get("message"):
                found.append(str(terminated["message"]))
    return found


def _endpoints(names: ClusterNames, spec: EtcdClusterSpec, status: EtcdClusterStatus) -> tuple[str, ...]:
    """The voting members' own client URLs as etcd lists them; the spec's ordinals when status has none yet."""
    voting = [url for m in status.members or [] if not m.is_learner for url in m.client_urls[:1]]
    if voting:
        return tuple(voting)
    return client_access(names, spec, spec.replicas).endpoints[1:]


def plan_backup(seen: BackupObserved, now: str) -> BackupPlan:
    status = seen.status
    if status.phase in FINAL:
        return BackupPlan(status)
    cluster_name = seen.spec.cluster_ref.name
    if seen.job is None:
        if seen.cluster is None:
            return BackupPlan(_with(status, now, BackupPhase.PENDING, "ClusterNotFound",
                                    f"EtcdCluster {cluster_name} does not exist in {seen.namespace}; the backup "
                                    "starts when it does"))  # fmt: skip
        spec = EtcdClusterSpec.model_validate(dict(seen.cluster.get("spec") or {}))
        cluster_status = EtcdClusterStatus.model_validate(dict(seen.cluster.get("status") or {}))
        names = ClusterNames(cluster_name, seen.namespace, seen.cluster_domain)
        access = client_access(names, spec, spec.replicas)
        if access.error:
            return BackupPlan(_with(status, now, BackupPhase.FAILED, "NoClientCertificate", access.error,
                                    completion_time=now))  # fmt: skip
        available = next((c for c in cluster_status.conditions or [] if c.type == "Available"), None)
        if spec.hibernate or available is None or available.status is not ConditionStatus.TRUE:
            why = "is hibernated" if spec.hibernate else "is not Available"
            return BackupPlan(_with(status, now, BackupPhase.PENDING, "ClusterNotAvailable",
                                    f"EtcdCluster {cluster_name} {why}; the backup starts once it has quorum"))  # fmt: skip
        inputs = BackupJobInputs(
            backup=seen.name,
            backup_uid=seen.uid,
            namespace=seen.namespace,
            cluster=cluster_name,
            destination=seen.spec.destination,
            endpoints=_endpoints(names, spec, cluster_status),
            image=f"{seen.node_repository}:{spec.version}",
            client_secret=access.secret,
            insecure_skip_verify=spec.tls.client.mode is TLSMode.AUTO,
        )
        job = backup_job(inputs)
        running = _with(status, now, BackupPhase.RUNNING, "SnapshotRunning",
                        f"Job {inputs.job_name} takes the snapshot", job_name=inputs.job_name, start_time=now)  # fmt: skip
        return BackupPlan(running, create_job=job)
    job_name = str(seen.job["metadata"]["name"])
    messages = _termination_messages(seen.pods)
    if _job_condition(seen.job, "Complete"):
        for text in messages:
            try:
                record = BackupRecord.from_json(text)
            except (ValueError, KeyError, TypeError):
                continue
            return BackupPlan(_with(
                status, now, BackupPhase.COMPLETED, "SnapshotStored",
                f"revision {record.revision} ({record.size_bytes} bytes) stored at {record.location}",
                job_name=job_name, location=record.location, revision=record.revision, size_bytes=record.size_bytes,
                sha256=record.sha256, etcd_version=record.etcd_version, member=record.member,
                start_time=status.start_time or record.start_time, completion_time=record.completion_time or now,
            ))  # fmt: skip
        return BackupPlan(_with(status, now, BackupPhase.FAILED, "NoBackupRecord",
                                f"Job {job_name} succeeded but left no backup record in its termination message",
                                job_name=job_name, completion_time=now))  # fmt: skip
    if _job_condition(seen.job, "Failed"):
        error = next((e for text in messages if (e := parse_agent_error(text))), None)
        reason, message = (error.code, error.message) if error else ("JobFailed", f"Job {job_name} failed; see its pods' logs")
        return BackupPlan(_with(status, now, BackupPhase.FAILED, reason, message, job_name=job_name,
                                completion_time=now))  # fmt: skip
    return BackupPlan(_with(status, now, BackupPhase.RUNNING, "SnapshotRunning", f"Job {job_name} takes the snapshot",
                            job_name=job_name, start_time=status.start_time or now))  # fmt: skip


@dataclass(frozen=True)
class DeletionPlan:
    """What deleting an EtcdBackup needs before its finalizer may go: `done`, else a Job to create or a wait."""

    done: bool = False
    create_job: dict[str, Any] | None = None
    wait: str = ""
    left_in_store: str = ""  # with done: the snapshot the delete Job could not remove


def _image(seen: BackupObserved) -> str:
    """The backup Job's own image; else the cluster's version; else the default (the cluster may be gone)."""
    if seen.job is not None:
        containers = seen.job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        if containers and containers[0].get("image"):
            return str(containers[0]["image"])
    version = str((seen.cluster or {}).get("spec", {}).get("version") or DEFAULT_VERSION)
    return f"{seen.node_repository}:{version}"


def _location(inputs: BackupJobInputs) -> str:
    if inputs.destination.s3 is not None:
        return f"s3://{inputs.destination.s3.bucket}/{inputs.object_key}"
    assert inputs.destination.volume is not None
    return f"{inputs.object_key} on claim {inputs.destination.volume.claim_name}"


def plan_deletion(seen: BackupObserved) -> DeletionPlan:
    """Deleting an EtcdBackup with deletionPolicy Delete removes its snapshot first.

    Never while the backup Job may still be uploading (the object would appear
    after its deletion); not at all when no Job ever ran (nothing was stored).
    A delete Job that failed does not keep the EtcdBackup forever: deletion
    finishes and the object left in the store is named, so a person can remove it.
    """
    if seen.spec.deletion_policy is not DeletionPolicy.DELETE:
        return DeletionPlan(done=True)
    if seen.job is None and not seen.status.job_name:
        return DeletionPlan(done=True)
    if seen.job is not None and not (_job_condition(seen.job, "Complete") or _job_condition(seen.job, "Failed")):
        return DeletionPlan(wait=f"Job {seen.job['metadata']['name']} is still taking the snapshot; it is deleted "
                                 "from the store once that Job has finished")  # fmt: skip
    inputs = BackupJobInputs(
        backup=seen.name, backup_uid=seen.uid, namespace=seen.namespace, cluster=seen.spec.cluster_ref.name,
        destination=seen.spec.destination, endpoints=(), image=_image(seen), client_secret=None,
    )  # fmt: skip
    if seen.delete_job is None:
        return DeletionPlan(create_job=delete_job(inputs), wait=f"Job {inputs.delete_job_name} deletes the snapshot")
    if _job_condition(seen.delete_job, "Complete"):
        return DeletionPlan(done=True)
    if _job_condition(seen.delete_job, "Failed"):
        return DeletionPlan(done=True, left_in_store=seen.status.location or _location(inputs))
    return DeletionPlan(wait=f"Job {inputs.delete_job_name} deletes the snapshot")
