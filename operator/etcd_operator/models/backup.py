"""The EtcdBackup API: one snapshot of one EtcdCluster, taken once, into an S3 bucket or a volume.

Like a Job, an EtcdBackup runs to an end (Completed or Failed) and is never run
again; its spec cannot change, so what the status says was stored is what the
spec asked for. The CRD is generated from these models (crd.py).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field
from pydantic.json_schema import JsonDict

from .cluster import ApiModel, BackupDestination, ClusterRef, Condition, S3Destination, VolumeDestination, _cel

# The destinations are shared with EtcdCluster.spec.backup, so they live with the cluster's models.
__all__ = ["BackupDestination", "S3Destination", "VolumeDestination"]

BACKUP_KIND = "EtcdBackup"
BACKUP_PLURAL = "etcdbackups"
# The Jobs are named <backup>-backup and <backup>-delete and their pods carry job-name=<that>: 63 characters
# at most.
MAX_BACKUP_NAME = 63 - len("-backup")



class DeletionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class EtcdBackupSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # deletionPolicy may change: keeping a snapshot (or not) says nothing about what it holds.
                _cel("self.clusterRef == oldSelf.clusterRef && self.destination == oldSelf.destination",
                     "an EtcdBackup's spec cannot change: create a new EtcdBackup instead"),
            ]
        }
    )

    cluster_ref: ClusterRef = Field(description="The EtcdCluster to snapshot, in the same namespace.")
    destination: BackupDestination = Field(description="Where the snapshot is stored.")
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN, description="Retain (default) leaves the snapshot in the store when the EtcdBackup "
        "is deleted; Delete removes it first (a Job <name>-delete). Scheduled backups are created with Delete."
    )  # fmt: skip


class BackupPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class EtcdBackupStatus(ApiModel):
    model_config = ConfigDict(extra="ignore")

    phase: BackupPhase | None = Field(None, description="Pending, Running, Completed or Failed (both final).")
    job_name: str | None = Field(None, description="The Job that takes the snapshot.")
    location: str | None = Field(None, description="Where the snapshot is: s3://bucket/key or the path in the claim.")
    revision: int | None = Field(None, description="The etcd revision the snapshot holds.")
    size_bytes: int | None = Field(None, description="Size of the snapshot file.")
    sha256: str | None = Field(None, description="sha256 of the snapshot file, checked again before any restore.")
    etcd_version: str | None = Field(None, description="Storage version of the snapshot (etcdutl snapshot status).")
    member: str | None = Field(None, description="Client URL of the member the snapshot was taken from.")
    start_time: str | None = Field(None, description="When the Job was created.")
    completion_time: str | None = Field(None, description="When the snapshot was stored.")
    conditions: list[Condition] | None = Field(
        None, description="Complete or Failed with a reason (for Failed: the agent's error code), and why a "
        "backup waits while Pending."
    )  # fmt: skip


ROOT_VALIDATIONS: list[JsonDict] = [
    _cel(
        f"self.metadata.name.size() <= {MAX_BACKUP_NAME}",
        f"metadata.name of an EtcdBackup may have at most {MAX_BACKUP_NAME} characters (its Job is "
        "<name>-backup, a label value of 63 at most); choose a shorter name",
    ),
]
