"""The Jobs of one EtcdBackup: the node image running `etcd-node backup` to take the snapshot, and
`etcd-node delete-snapshot` to remove it when the backup is deleted with deletionPolicy Delete.

Both are built by one pod builder, so the Job that deletes a snapshot reaches
the store exactly as the one that wrote it (same flags, credentials, CA, claim).

The Job's pod holds nothing it does not need: the client certificate the
operator itself uses (read-only), the store's credentials as environment
variables from the user's Secret, a scratch emptyDir for the snapshot before
upload, and for a volume destination the claim. It runs as the node image's
etcd user under the restricted Pod Security Standard, with no service account
token: it talks to etcd and the store, never to Kubernetes.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from etcd_node.contract import ENV_TERMINATION_LOG

from .. import GROUP, VERSION
from ..models.backup import BACKUP_KIND, BackupDestination
from ..models.cluster import S3Store
from .meta import MANAGED_BY, selector

NODE_UID = 65532  # the etcd user of the node image
CLIENT_TLS_DIR = "/etc/etcd-backup/client"
STORE_CA_DIR = "/etc/etcd-backup/store-ca"
SCRATCH_DIR = "/scratch"
VOLUME_DIR = "/backup"
TERMINATION_LOG = "/dev/termination-log"
BACKUP_LABEL = f"{GROUP}/backup"
DELETE_LABEL = f"{GROUP}/backup-delete"


@dataclass(frozen=True)
class BackupJobInputs:
    backup: str
    backup_uid: str
    namespace: str
    cluster: str
    destination: BackupDestination
    endpoints: tuple[str, ...]  # the members' own client URLs (unused by the delete Job)
    image: str
    client_secret: str | None  # the operator's client certificate Secret; None without client certificates
    insecure_skip_verify: bool = False  # etcd's auto TLS

    @property
    def job_name(self) -> str:
        return f"{self.backup}-backup"

    @property
    def delete_job_name(self) -> str:
        return f"{self.backup}-delete"  # as long as job_name: the EtcdBackup name limit covers both

    @property
    def object_key(self) -> str:
        """<prefix or path>/<namespace>/<cluster>/<backup>.db: one backup never overwrites another's."""
        if self.destination.s3 is not None:
            base = self.destination.s3.prefix
        else:
            assert self.destination.volume is not None
            base = self.destination.volume.path
        return posixpath.join(base.strip("/"), self.namespace, self.cluster, f"{self.backup}.db").lstrip("/")


def s3_args(store: S3Store, key: str, ca_dir: str) -> list[str]:
    """etcd-node's store flags for one object (backup, restore, delete-snapshot); the CA file is ca_dir/ca.crt."""
    args = [f"--s3-bucket={store.bucket}", f"--s3-key={key}", f"--s3-region={store.region}"]
    if store.endpoint:
        args.append(f"--s3-endpoint={store.endpoint}")
    if store.ca_secret:
        args.append(f"--s3-ca-file={ca_dir}/ca.crt")
    if store.force_path_style:
        args.append("--s3-force-path-style")
    return args


def _store_args(inputs: BackupJobInputs) -> list[str]:
    dest = inputs.destination
    if dest.s3 is not None:
        return s3_args(dest.s3, inputs.object_key, STORE_CA_DIR)
    return [f"--path={posixpath.join(VOLUME_DIR, inputs.object_key)}"]


@dataclass(frozen=True)
class _Pod:
    """What one store Job's container gets: arguments, environment, mounts and the volumes behind them."""

    args: list[str]
    env: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    volumes: list[dict[str, Any]]


def _with_store(inputs: BackupJobInputs, args: list[str], mounts: list[dict[str, Any]],
                volumes: list[dict[str, Any]]) -> _Pod:  # fmt: skip
    """The store's flags, credentials, CA and claim: the same for every Job that touches the snapshot."""
    env: list[dict[str, Any]] = [{"name": ENV_TERMINATION_LOG, "value": TERMINATION_LOG}]
    args = [*args, *_store_args(inputs)]
    s3 = inputs.destination.s3
    if s3 is not None:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
        # boto3 reads no ~/.aws files: the pod's root filesystem is read-only and has none.
        env.append({"name": "AWS_EC2_METADATA_DISABLED", "value": "true"})
        if s3.ca_secret:
            mounts.append({"name": "store-ca", "mountPath": STORE_CA_DIR, "readOnly": True})
            volumes.append({"name": "store-ca", "secret": {"secretName": s3.ca_secret, "items": [
                {"key": "ca.crt", "path": "ca.crt"}]}})  # fmt: skip
    volume = inputs.destination.volume
    if volume is not None:
        mounts.append({"name": "destination", "mountPath": VOLUME_DIR})
        volumes.append({"name": "destination", "persistentVolumeClaim": {"claimName": volume.claim_name}})
    return _Pod(args, env, mounts, volumes)


def _job(inputs: BackupJobInputs, name: str, container: str, pod: _Pod, labels: dict[str, str],
         deadline: int) -> dict[str, Any]:  # fmt: skip
    """A Job owned by the EtcdBackup, its pod restricted, without a ServiceAccount token."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": inputs.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": f"{GROUP}/{VERSION}", "kind": BACKUP_KIND, "name": inputs.backup,
                "uid": inputs.backup_uid, "controller": True, "blockOwnerDeletion": True,
            }],
        },  # fmt: skip
        "spec": {
            # A retry takes a new snapshot and stores it under the same key: never a mix of two.
            "backoffLimit": 1,
            "activeDeadlineSeconds": deadline,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": NODE_UID, "runAsGroup": NODE_UID, "fsGroup": NODE_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },  # fmt: skip
                    "containers": [
                        {
                            "name": container,
                            "image": inputs.image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": pod.args,
                            "env": pod.env,
                            "volumeMounts": pod.mounts,
                            "terminationMessagePath": TERMINATION_LOG,
                            "terminationMessagePolicy": "File",
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }
                    ],
                    "volumes": pod.volumes,
                },
            },
        },
    }


def _labels(inputs: BackupJobInputs, component: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **selector(inputs.cluster),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **extra,
    }


def backup_job(inputs: BackupJobInputs) -> dict[str, Any]:
    args = ["backup", f"--endpoints={','.join(inputs.endpoints)}", f"--scratch-dir={SCRATCH_DIR}"]
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}}]
    if inputs.client_secret:
        args += [f"--cacert={CLIENT_TLS_DIR}/ca.crt", f"--cert={CLIENT_TLS_DIR}/tls.crt", f"--key={CLIENT_TLS_DIR}/tls.key"]
        mounts.append({"name": "client-tls", "mountPath": CLIENT_TLS_DIR, "readOnly": True})
        volumes.append({"name": "client-tls", "secret": {"secretName": inputs.client_secret, "defaultMode": 0o440}})
    if inputs.insecure_skip_verify:
        args.append("--insecure-skip-tls-verify")
    labels = _labels(inputs, "backup", {BACKUP_LABEL: inputs.backup})
    return _job(inputs, inputs.job_name, "backup", _with_store(inputs, args, mounts, volumes), labels, 3600)


def delete_job(inputs: BackupJobInputs) -> dict[str, Any]:
    """`etcd-node delete-snapshot` for a backup being deleted with deletionPolicy Delete: the store, nothing else.

    Its pods carry their own label, not the backup's, so the backup's pass never reads their termination
    messages as the snapshot's record.
    """
    labels = _labels(inputs, "backup-delete", {DELETE_LABEL: inputs.backup})
    return _job(inputs, inputs.delete_job_name, "delete-snapshot", _with_store(inputs, ["delete-snapshot"], [], []),
                labels, 600)  # fmt: skip
