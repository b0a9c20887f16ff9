"""In-place restore of a running cluster (spec.restore), pure: one step per pass, resumable from what is seen.

etcd's disaster-recovery procedure under the cluster's own name: stop every
member, restore the same snapshot into each with its own name and peer URL,
the full initial cluster and a new token, start them together. The members do
the restoring (etcd-node, inplace_restore.py); the operator sequences it:

1. refuse while the source cannot be restored (the EtcdBackup missing or not
   Completed, its Secrets gone): members keep running, nothing is stopped for
   a restore that could not go on;
2. stop: the StatefulSet goes to 0 (as hibernation does; volumes kept);
3. start: once no member pod is left, write the request Secret (snapshot
   source, the new token, the requestID, the initial cluster of
   `spec.replicas` members), give the pod template the new token, and start
   every member at once;
4. wait until every member is a healthy voter of the new cluster, then
   record `status.restore`;
5. the pass after, delete the request: a pod started later never restores
   (and the members' markers say they did already).

Nothing here is remembered between passes except what Kubernetes holds: the
StatefulSet's size, the member pods, the request Secret (whose requestID says
which restore is under way) and `status.restore` (which says which one is
done). So an operator that crashes anywhere resumes at the right step, and
a request that is in flight is finished even if spec.restore changes meanwhile
(a new requestID then starts a new restore once it is recorded).

Recording (4) and retiring the request (5) are separate passes on purpose: a
crash between them must not leave a cluster with neither a request nor a
record, which would look like a restore not yet started and stop the members
again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..models.cluster import EtcdClusterSpec, RestoreRecord, TLSMode
from ..resources.meta import Owner
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from . import membership as mp
from .observed import EtcdView, Observed, RestoreSources
from .problems import Problem
from .restore import CREDENTIAL_KEYS, Source, completed_backup_source

RESTORING = "Restoring"
REFUSED = "RestoreRefused"


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class InPlacePlan:
    active: bool = False  # the restore owns the StatefulSet's size this pass: no membership step or rollout
    step: mp.Step | None = None  # ScaleStatefulSet(0) to stop, ScaleStatefulSet(N) to start, Wait otherwise
    progress: str = ""  # Progressing=True/Restoring with this message
    problem: Problem | None = None  # a refusal: Degraded
    request: dict[str, Any] | None = None  # the request Secret to apply
    retire_request: bool = False
    restore_id: str = ""  # the restore the pod template's token and mount belong to ("" none yet)
    claim: str = ""  # a volume backup's claim, mounted read-only by the members until the restore is recorded
    record: RestoreRecord | None = None  # status.restore to write
    events: tuple[Event, ...] = ()


def restore_token(base: str, request_id: str) -> str:
    """The new cluster's token: a restore is a new cluster, and each restore a different one."""
    return f"{base}-{request_id}" if request_id else base


def json_request(data: Mapping[str, bytes] | None, key: str, *required: str) -> dict[str, Any] | None:
    """The JSON object a request Secret holds under `key`, if it has every `required` field; else None."""
    raw = (data or {}).get(key)
    if not raw:
        return None
    try:
        parsed = json.loads(bytes(raw))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and all(parsed.get(f) for f in required) else None


def request_of(sources: RestoreSources) -> dict[str, Any] | None:
    """The in-place request the request Secret holds, or None (no Secret, or a bootstrap.restore request)."""
    return json_request(sources.request, "restore.json", "requestID")


def initial_cluster(names: ClusterNames, replicas: int, peer_tls: bool) -> str:
    return ",".join(f"{names.pod(o)}={names.peer_url(o, peer_tls)}" for o in range(replicas))


def _source(spec: EtcdClusterSpec, sources: RestoreSources) -> tuple[dict[str, bytes], Source] | str:
    """(the request's Secret data less restore.json, where the snapshot is) or what is wrong."""
    assert spec.restore is not None
    name = spec.restore.backup_ref.name
    backup = sources.backup
    if backup is None:
        return (f"spec.restore: EtcdBackup {name} does not exist; create it (or name an existing one in "
                "spec.restore.backupRef)")  # fmt: skip
    status = backup.get("status") or {}
    if status.get("phase") != "Completed":
        return (f"spec.restore: EtcdBackup {name} is {status.get('phase') or 'Pending'}, not Completed; the restore "
                "starts once it has Completed (if it Failed, take a new backup and name it in "
                "spec.restore.backupRef)")  # fmt: skip
    found = completed_backup_source(name, backup)
    if isinstance(found, str):
        return f"spec.restore: {found}; take a new backup and name it in spec.restore.backupRef"
    store = found.store
    if store is None:
        return {}, found  # a claim: the members mount it, nothing to copy
    if sources.credentials is None or any(k not in sources.credentials for k in CREDENTIAL_KEYS):
        return (f"spec.restore: Secret {store.credentials_secret} with {' and '.join(CREDENTIAL_KEYS)} (the "
                f"store's credentials of EtcdBackup {name}) is missing; create it")  # fmt: skip
    data = {k: bytes(sources.credentials[k]) for k in CREDENTIAL_KEYS}
    if store.ca_secret:
        if sources.ca is None or "ca.crt" not in sources.ca:
            return f"spec.restore: Secret {store.ca_secret} with ca.crt (the store's CA) is missing; create it"
        data["ca.crt"] = bytes(sources.ca["ca.crt"])
    return data, found


def _done(etcd: EtcdView | None, replicas: int) -> bool:
    """Every member of the restored cluster is a healthy voter (the old members are all stopped, so any
    etcd that answers after the request was written is the new cluster)."""
    if etcd is None or len(etcd.members) != replicas:
        return False
    return all(m.healthy and not m.is_learner and m.started for m in etcd.members)


def plan_in_place(
    names: ClusterNames,
    owner: Owner,
    spec: EtcdClusterSpec,
    record: RestoreRecord | None,
    observed: Observed,
    base_token: str,
    now: str,
    blocked: str = "",
) -> InPlacePlan:
    """The restore's one step this pass. `blocked`: why no restore may start now (a bootstrap.restore pending)."""
    sources = observed.in_place
    done_id = record.request_id if record else ""
    in_flight = request_of(sources)
    if in_flight is not None and in_flight["requestID"] != done_id:
        return _resume(in_flight, observed, now)
    if in_flight is not None:
        # Recorded in status by an earlier pass: the request can go; pods that restart find their data.
        return InPlacePlan(retire_request=True, restore_id=done_id)
    wanted = spec.restore
    if wanted is None or wanted.request_id == done_id or observed.statefulset is None:
        return InPlacePlan(restore_id=done_id)
    stopped = observed.sts_replicas == 0
    if blocked or spec.hibernate:
        why = blocked or "spec.hibernate is true; wake the cluster first"
        return InPlacePlan(problem=Problem(REFUSED, f"spec.restore {wanted.request_id}: {why}"), restore_id=done_id)
    found = _source(spec, sources)
    if isinstance(found, str):
        if not stopped:
            return InPlacePlan(problem=Problem(REFUSED, f"{found}; members keep running meanwhile"), restore_id=done_id)
        # Stopped for this restore already, and the source went away since: stay stopped and say so.
        message = f"{found}; members stay stopped until then, or remove spec.restore to start the old members again"
        return InPlacePlan(active=True, step=mp.Wait(REFUSED, message), problem=Problem(REFUSED, message),
                           restore_id=done_id)  # fmt: skip
    data, source = found
    label, revision = source.label, source.revision
    what = f"restore {wanted.request_id} from {label}"
    if not stopped:
        return InPlacePlan(
            active=True, step=mp.ScaleStatefulSet(0), progress=f"{what}: stopping every member (1 of 3)",
            restore_id=done_id, events=(Event("Normal", "RestoreStarted", f"{what}: stopping every member"),),
        )  # fmt: skip
    # Member pods only: a backup Job's pod carries the cluster's labels too.
    if members := [p for p in observed.pods if p.ordinal is not None]:
        left = ", ".join(sorted(p.name for p in members))
        return InPlacePlan(active=True, step=mp.Wait(RESTORING, f"{what}: stopping every member (1 of 3): {left}"),
                           progress=f"{what}: stopping every member (1 of 3): waiting for {left}", restore_id=done_id)  # fmt: skip
    replicas = spec.replicas
    peer_tls = spec.tls.peer.mode is not TLSMode.NONE
    request = {
        "token": restore_token(base_token, wanted.request_id),
        "source": list(source.args),
        "bumpRevision": wanted.bump_revision,
        "markCompacted": wanted.mark_compacted,
        "requestID": wanted.request_id,
        "initialCluster": initial_cluster(names, replicas, peer_tls),
        "members": replicas,
        "from": label,
        "revision": revision,
        **({"claim": source.claim} if source.claim else {}),
    }
    data["restore.json"] = json.dumps(request, sort_keys=True).encode()
    secret = build_secret(names.restore_secret, names.namespace, owner, data, "restore")
    return InPlacePlan(
        active=True, step=mp.ScaleStatefulSet(replicas), request=secret, restore_id=wanted.request_id,
        claim=source.claim, progress=f"{what}: starting {replicas} members from the snapshot with a new cluster token (2 of 3)",
    )  # fmt: skip


def _resume(request: Mapping[str, Any], observed: Observed, now: str) -> InPlacePlan:
    """A request is written and not yet recorded: start the members (again), or wait for them, or record."""
    request_id, replicas = str(request["requestID"]), int(request.get("members") or 0)
    claim = str(request.get("claim") or "")
    what = f"restore {request_id} from {request.get('from') or 'the backup'}"
    if observed.sts_replicas == 0:
        # A crash between writing the request and scaling: start them now.
        return InPlacePlan(active=True, step=mp.ScaleStatefulSet(replicas), restore_id=request_id, claim=claim,
                           progress=f"{what}: starting {replicas} members from the snapshot (2 of 3)")  # fmt: skip
    if _done(observed.etcd, replicas):
        assert observed.etcd is not None
        cluster_id = f"{observed.etcd.cluster_id:x}" if observed.etcd.cluster_id is not None else None
        record = RestoreRecord(request_id=request_id, source=str(request.get("from") or ""),
                               revision=request.get("revision"), cluster_id=cluster_id, completion_time=now)  # fmt: skip
        message = f"{what}: done, {replicas} members form the new cluster {cluster_id or ''}".rstrip()
        return InPlacePlan(active=True, step=mp.Noop(), restore_id=request_id, record=record, claim=claim,
                           events=(Event("Normal", "Restored", message),))  # fmt: skip
    healthy = sum(m.healthy and not m.is_learner for m in observed.etcd.members) if observed.etcd else 0
    message = (f"{what}: waiting for {replicas} healthy voting members of the restored cluster, {healthy} so far "
               "(3 of 3)")  # fmt: skip
    return InPlacePlan(active=True, step=mp.Wait(RESTORING, message), progress=message, restore_id=request_id,
                       claim=claim)  # fmt: skip
