"""A cluster that starts from a backup (spec.bootstrap.restore), pure: the restore request and when it is done.

The members restore themselves (etcd-node, bootstrap_restore.py): each initial
member finds a request file in a Secret the operator mounts, and restores the
snapshot with its own name and peer URL before etcd starts. The operator's part
is only to write that request before the first pod starts, and to take it away
once every initial member has started from it, so a pod started later (a
restart, a replacement) can never restore again. Until the source is usable
(the EtcdBackup Completed, the credentials there) the StatefulSet waits: members
started without the request would bootstrap an empty cluster.

The request Secret also carries copies of the store's credentials and CA
(the user's Secrets are read, never mounted): the pod template then depends
only on whether the cluster restores, and stays the same when the backup or
its Secrets go away later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etcd_node.contract import RESTORE_FILE

from ..models.cluster import BootstrapRestore, S3Store
from ..resources.backup_job import s3_args
from ..resources.meta import Owner
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from .observed import RestoreSources

REQUEST_DIR = RESTORE_FILE.rsplit("/", 1)[0]
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class RestorePlan:
    request: dict[str, Any] | None = None  # the request Secret to apply
    waiting: str = ""  # why the members may not start yet
    restored_from: str | None = None  # set once every initial member started from the snapshot
    retire_request: bool = False  # delete the request Secret


def backup_store(backup: Mapping[str, Any] | None) -> S3Store | None:
    """The S3 store an EtcdBackup wrote to (its destination without the key prefix); None for a volume."""
    s3 = (((backup or {}).get("spec") or {}).get("destination") or {}).get("s3")
    return S3Store.model_validate({k: v for k, v in s3.items() if k != "prefix"}) if s3 else None


def _source(restore: BootstrapRestore, sources: RestoreSources) -> tuple[S3Store, str, str] | str:
    """(store, key, what to call it) or why not yet."""
    if restore.s3 is not None:
        return restore.s3, restore.s3.key, f"s3://{restore.s3.bucket}/{restore.s3.key}"
    assert restore.backup_ref is not None
    name = restore.backup_ref.name
    backup = sources.backup
    if backup is None:
        return f"EtcdBackup {name} does not exist; the cluster starts once it does and has Completed"
    status = backup.get("status") or {}
    if status.get("phase") != "Completed":
        return f"EtcdBackup {name} is {status.get('phase') or 'Pending'}; the cluster starts from it once it has Completed"
    store = backup_store(backup)
    location = str(status.get("location") or "")
    if store is None or not location.startswith("s3://"):
        return (f"EtcdBackup {name} was stored on a volume; a new cluster can only start from an s3 backup "
                "(copy the snapshot to a bucket and name it in bootstrap.restore.s3)")  # fmt: skip
    key = location.removeprefix("s3://").split("/", 1)[1]
    return store, key, f"EtcdBackup {name} ({location}, revision {status.get('revision')})"


def plan_restore(
    names: ClusterNames,
    owner: Owner,
    restore: BootstrapRestore | None,
    restored_from: str | None,
    sources: RestoreSources,
    token: str,
    started: bool,
    done: bool,
) -> RestorePlan:
    """started: the StatefulSet exists; done: every initial member is a healthy voting member."""
    if restore is None or restored_from:
        return RestorePlan()
    found = _source(restore, sources)
    if isinstance(found, str):
        # Once members run, they have restored (or are restoring) already: nothing to wait for.
        return RestorePlan(waiting="" if started else found)
    store, key, label = found
    if done:
        return RestorePlan(restored_from=label, retire_request=sources.request is not None)
    if sources.credentials is None or any(k not in sources.credentials for k in CREDENTIAL_KEYS):
        why = f"Secret {store.credentials_secret} with {' and '.join(CREDENTIAL_KEYS)} is missing"
        return RestorePlan(waiting="" if started else why)
    data: dict[str, bytes] = {k: bytes(sources.credentials[k]) for k in CREDENTIAL_KEYS}
    if store.ca_secret:
        if sources.ca is None or "ca.crt" not in sources.ca:
            return RestorePlan(waiting="" if started else f"Secret {store.ca_secret} with ca.crt is missing")
        data["ca.crt"] = bytes(sources.ca["ca.crt"])
    request = {"token": token, "source": s3_args(store, key, REQUEST_DIR), "bumpRevision": restore.bump_revision,
               "markCompacted": restore.mark_compacted}  # fmt: skip
    data["restore.json"] = json.dumps(request, sort_keys=True).encode()
    if sources.request is not None and dict(sources.request) == data:
        return RestorePlan()
    return RestorePlan(request=build_secret(names.restore_secret, names.namespace, owner, data, "restore"))
