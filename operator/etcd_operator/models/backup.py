"""The EtcdBackup API: one snapshot of one EtcdCluster, taken once, into an S3 bucket or a volume.

Like a Job, an EtcdBackup runs to an end (Completed or Failed) and is never run
again; its spec cannot change, so what the status says was stored is what the
spec asked for. The CRD is generated from these models (crd.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.json_schema import JsonDict

from .cluster import ApiModel, ClusterRef, Condition

BACKUP_KIND = "EtcdBackup"
BACKUP_PLURAL = "etcdbackups"
# The Job is named <backup>-backup and its pods carry job-name=<that>: 63 characters at most.
MAX_BACKUP_NAME = 63 - len("-backup")

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _cel(rule: str, message: str) -> JsonDict:
    return {"rule": rule, "message": message}


class S3Destination(ApiModel):
    """An S3-compatible bucket (AWS S3, or any store that speaks its API)."""

    endpoint: Annotated[str | None, Field(pattern=r"^https?://[^/?#]+(/.*)?$", max_length=512)] = Field(
        None, description="The store's URL, e.g. https://s3.example.com:9000 (default: AWS S3 of the region)."
    )
    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")] = Field(
        description="Bucket name; the bucket must exist (the operator never creates buckets)."
    )
    prefix: Annotated[str, Field(max_length=512, pattern=r"^([^/].*)?$")] = Field(
        "", description="Key prefix; snapshots go to <prefix>/<namespace>/<cluster>/<backup>.db."
    )
    credentials_secret: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)] = Field(
        description="Secret in the backup's namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    region: Annotated[str, Field(min_length=1, max_length=64)] = Field("us-east-1", description="The bucket's region.")
    ca_secret: Annotated[str | None, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)] = Field(
        None, description="Secret with ca.crt: the CA that signed the endpoint's certificate, when it is private."
    )
    force_path_style: bool = Field(
        False, description="Address the bucket as <endpoint>/<bucket> rather than <bucket>.<endpoint>; most "
        "self-hosted stores need this."
    )  # fmt: skip


class VolumeDestination(ApiModel):
    """A PersistentVolumeClaim in the backup's namespace, mounted by the backup Job."""

    claim_name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)] = Field(
        description="The claim; it must be mountable by the Job (ReadWriteOnce claims only on the node that has it)."
    )
    path: Annotated[str, Field(max_length=512, pattern=r"^([^/.][^/]*(/[^/.][^/]*)*)?$")] = Field(
        "", description="Directory inside the claim (relative, no '..'); snapshots go to "
        "<path>/<namespace>/<cluster>/<backup>.db with a record <backup>.db.json beside each."
    )  # fmt: skip


class BackupDestination(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.s3) != has(self.volume)", "destination needs exactly one of s3 or volume"),
            ]
        }
    )

    s3: S3Destination | None = Field(None, description="Store the snapshot in an S3-compatible bucket.")
    volume: VolumeDestination | None = Field(None, description="Store the snapshot on a PersistentVolumeClaim.")


class EtcdBackupSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self == oldSelf", "an EtcdBackup's spec cannot change: create a new EtcdBackup instead"),
            ]
        }
    )

    cluster_ref: ClusterRef = Field(description="The EtcdCluster to snapshot, in the same namespace.")
    destination: BackupDestination = Field(description="Where the snapshot is stored.")


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
