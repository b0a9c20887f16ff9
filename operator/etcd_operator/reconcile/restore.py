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

A snapshot on a PersistentVolumeClaim (bootstrap.restore.volume, or an
EtcdBackup with a volume destination) cannot be copied into a Secret: the
members mount the claim itself, read-only, and the request names the file
there. The mount is the one thing the template holds only while the restore is
pending: a claim left mounted would pin every member (and every replacement) to
the node that can attach it, and keep the claim from being deleted. Dropping it
once the cluster has started from it is a template change, which the rollout
carries out one member at a time, health-gated; an S3 restore needs none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from etcd_node.contract import RESTORE_FILE, RESTORE_VOLUME_DIR

from ..models.cluster import BootstrapRestore, S3Store
from ..resources.backup_job import VOLUME_DIR, s3_args
from ..resources.meta import Owner
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from .observed import PodView, RestoreSources
from .problems import Problem

REQUEST_DIR = RESTORE_FILE.rsplit("/", 1)[0]
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
RESTORE_VOLUME_UNAVAILABLE = "RestoreVolumeUnavailable"


@dataclass(frozen=True)
class RestorePlan:
    request: dict[str, Any] | None = None  # the request Secret to apply
    waiting: str = ""  # why the members may not start yet
    restored_from: str | None = None  # set once every initial member started from the snapshot
    retire_request: bool = False  # delete the request Secret
    claim: str = ""  # a volume restore pending: the claim the members mount read-only (RESTORE_VOLUME_DIR)


@dataclass(frozen=True)
class Source:
    """Where the members read the snapshot: `etcd-node restore`'s store flags, and what to call it."""

    args: tuple[str, ...]
    label: str
    store: S3Store | None = None  # an S3 store: its credentials (and CA) are copied into the request
    claim: str = ""  # a claim: mounted read-only at RESTORE_VOLUME_DIR, the file named by --path
    revision: int | None = None


def backup_store(backup: Mapping[str, Any] | None) -> S3Store | None:
    """The S3 store an EtcdBackup wrote to (its destination without the key prefix); None for a volume."""
    s3 = (((backup or {}).get("spec") or {}).get("destination") or {}).get("s3")
    return S3Store.model_validate({k: v for k, v in s3.items() if k != "prefix"}) if s3 else None


def volume_source(claim: str, path: str, label: str, revision: int | None = None) -> Source:
    return Source((f"--path={RESTORE_VOLUME_DIR}/{path}",), label, claim=claim, revision=revision)


def completed_backup_source(name: str, backup: Mapping[str, Any]) -> Source | str:
    """Where a Completed EtcdBackup's snapshot is, from its status.location, or what is wrong with it."""
    status = backup.get("status") or {}
    location = str(status.get("location") or "")
    revision = int(status["revision"]) if status.get("revision") else None
    label = f"EtcdBackup {name} ({location}, revision {status.get('revision')})"
    store = backup_store(backup)
    if store is not None and location.startswith("s3://") and "/" in location.removeprefix("s3://"):
        key = location.removeprefix("s3://").split("/", 1)[1]
        return Source(tuple(s3_args(store, key, REQUEST_DIR)), label, store=store, revision=revision)
    claim = str(((((backup.get("spec") or {}).get("destination") or {}).get("volume") or {}).get("claimName")) or "")
    # The backup Job mounts the claim at VOLUME_DIR and records the file's path there.
    if claim and location.startswith(f"{VOLUME_DIR}/"):
        path = location.removeprefix(f"{VOLUME_DIR}/")
        return volume_source(claim, path, f"EtcdBackup {name} ({path} on claim {claim}, revision "
                             f"{status.get('revision')})", revision)  # fmt: skip
    return f"EtcdBackup {name} records no location a member can restore from ({location or 'none'})"


def _written(request: Mapping[str, bytes] | None, key: str) -> str:
    """A field of a written request ("" when there is no request or no such field)."""
    try:
        parsed = json.loads(bytes((request or {}).get("restore.json") or b"{}"))
    except ValueError:
        return ""
    return str(parsed.get(key) or "") if isinstance(parsed, dict) else ""


def request_claim(request: Mapping[str, bytes] | None) -> str:
    """The claim a written request reads its snapshot from ("" for a store, or no request)."""
    return _written(request, "claim")


def claim_problem(claim: str, pods: Sequence[PodView]) -> Problem | None:
    """Members that must mount the restore's claim and cannot be placed: most often a ReadWriteOnce claim (or a
    volume bound to one node or zone) that the other members' nodes cannot attach, or a claim that is missing."""
    stuck = [p for p in pods if p.ordinal is not None and p.unschedulable]
    if not claim or not stuck:
        return None
    names = ", ".join(sorted(p.name for p in stuck))
    return Problem(RESTORE_VOLUME_UNAVAILABLE, (
        f"member pods {names} cannot be scheduled while they must mount claim {claim} to restore from it: "
        f"{stuck[0].unschedulable}; the claim must exist in the cluster's namespace, and a ReadWriteOnce claim is "
        "attached to one node at a time: use a ReadOnlyMany or ReadWriteMany claim, or keep the members on the "
        "claim's node (spec.pod.nodeSelector) while they restore"))  # fmt: skip


def _source(restore: BootstrapRestore, sources: RestoreSources) -> Source | str:
    """Where the snapshot is, or why not yet."""
    if restore.s3 is not None:
        s3 = restore.s3
        return Source(tuple(s3_args(s3, s3.key, REQUEST_DIR)), f"s3://{s3.bucket}/{s3.key}", store=s3)
    if restore.volume is not None:
        volume = restore.volume
        return volume_source(volume.claim_name, volume.path, f"{volume.path} on claim {volume.claim_name}")
    assert restore.backup_ref is not None
    name = restore.backup_ref.name
    backup = sources.backup
    if backup is None:
        return f"EtcdBackup {name} does not exist; the cluster starts once it does and has Completed"
    status = backup.get("status") or {}
    if status.get("phase") != "Completed":
        return f"EtcdBackup {name} is {status.get('phase') or 'Pending'}; the cluster starts from it once it has Completed"
    return completed_backup_source(name, backup)


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
    # Members that started keep the claim they restore from until the cluster has started from it.
    claim = request_claim(sources.request) if started else ""
    if isinstance(found, str):
        if done and sources.request is not None:
            # The EtcdBackup went after the members started from it: what they restored is in the request.
            label = _written(sources.request, "from") or "the snapshot of bootstrap.restore (its source is gone since)"
            return RestorePlan(restored_from=label, retire_request=True)
        # Once members run, they have restored (or are restoring) already: nothing to wait for.
        return RestorePlan(waiting="" if started else found, claim=claim)
    if done:
        return RestorePlan(restored_from=found.label, retire_request=sources.request is not None)
    claim = found.claim or claim
    data: dict[str, bytes] = {}
    if (store := found.store) is not None:
        if sources.credentials is None or any(k not in sources.credentials for k in CREDENTIAL_KEYS):
            why = f"Secret {store.credentials_secret} with {' and '.join(CREDENTIAL_KEYS)} is missing"
            return RestorePlan(waiting="" if started else why)
        data = {k: bytes(sources.credentials[k]) for k in CREDENTIAL_KEYS}
        if store.ca_secret:
            if sources.ca is None or "ca.crt" not in sources.ca:
                return RestorePlan(waiting="" if started else f"Secret {store.ca_secret} with ca.crt is missing")
            data["ca.crt"] = bytes(sources.ca["ca.crt"])
    request: dict[str, Any] = {"token": token, "source": list(found.args), "bumpRevision": restore.bump_revision,
                               "markCompacted": restore.mark_compacted, "from": found.label}  # fmt: skip
    if found.claim:
        request["claim"] = found.claim
    data["restore.json"] = json.dumps(request, sort_keys=True).encode()
    if sources.request is not None and dict(sources.request) == data:
        return RestorePlan(claim=claim)
    return RestorePlan(request=build_secret(names.restore_secret, names.namespace, owner, data, "restore"), claim=claim)
