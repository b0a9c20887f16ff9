"""The I/O shell of one reconcile pass: observe once, plan (pure), apply, report.

`reconcile_once` reads everything the pass decides on into one `Observed`,
asks `reconcile.plan` for the object repairs and at most one membership step,
carries them out, and computes status from the same observation. Every write
is a server-side apply or an etcd runtime-API call the planner chose from
what it saw, so a pass can run twice or be killed half way and the next one
converges from whatever it finds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from . import GROUP, KIND, VERSION, scaling
from .adapters.etcd import EtcdClient, EtcdError, client_ssl_context
from .adapters.kube import ApiError
from .models.backup import BACKUP_KIND
from .models.cluster import EtcdClusterSpec, EtcdClusterStatus, S3Store
from .reconcile import auth
from .reconcile import maintenance as maint
from .reconcile import membership as mp
from .reconcile.access import ClientAccess, client_access, discovery_of
from .reconcile.desired import ClusterIdentity, default_token, needs_generated_tls
from .reconcile.observed import REPLICAS_MANAGER, DiscoveryService, EtcdView, Observed, RestoreSources, Survey
from .reconcile.plan import ClusterContext, Plan, managing_auth, plan
from .reconcile.pods import pod_view, statefulset_view
from .reconcile.problems import Problem
from .reconcile.restore import backup_store
from .reconcile.schedule import SCHEDULE_LABEL, backup_view, schedule_status
from .reconcile.secrets import issued_certificates, provided_tls_secrets
from .reconcile.status import AccessReport, Outcome, compute_status, maintenance_record
from .resources.meta import selector
from .resources.naming import ClusterNames
from .resources.secrets import secret_bytes

DEFAULT_NODE_IMAGE = "etcd-node"
EVER_AVAILABLE_PHASES = ("Running", "Degraded", "Unavailable", "Hibernated", "Restoring", "Recovering")


class KubeAPI(Protocol):
    """What the pass needs of Kubernetes (adapters.kube.Kube, or an in-memory fake in tests)."""

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None: ...
    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]: ...
    def apply(self, obj: dict[str, Any], manager: str = ...) -> dict[str, Any]: ...
    def delete(self, api_version: str, kind: str, name: str, namespace: str, uid: str = "") -> None: ...


class EtcdAPI(Protocol):
    async def view(self) -> EtcdView: ...
    async def survey(self, endpoints: Sequence[str]) -> Survey: ...
    async def put(self, key: str, value: str) -> None: ...
    async def member_add(self, peer_urls: list[str], learner: bool = True) -> Any: ...
    async def member_promote(self, member_id: int) -> None: ...
    async def member_remove(self, member_id: int) -> None: ...
    async def move_leader(self, to_member_id: int) -> None: ...
    async def compact(self, revision: int) -> None: ...
    async def defragment(self, endpoint: str) -> None: ...
    async def disarm_nospace(self, member_id: int) -> None: ...
    async def auth_status(self) -> tuple[bool, int]: ...
    async def auth_view(self, desired: auth.DesiredAccess) -> auth.AuthView: ...
    async def auth_call(self, call: auth.Call) -> None: ...
    async def close(self) -> None: ...


Connect = Callable[[ClientAccess, Mapping[str, bytes]], EtcdAPI]


def node_repository() -> str:
    """The node image without its tag; members run `<repository>:<etcd version>`."""
    return os.environ.get("ETCD_OPERATOR_NODE_IMAGE", DEFAULT_NODE_IMAGE)


def pod_certificates() -> bool:
    """This operator signs members' PodCertificateRequests (the chart's podCertificates.enabled)."""
    return os.environ.get("ETCD_OPERATOR_POD_CERTIFICATES", "").lower() == "true"


def cluster_domain() -> str:
    return os.environ.get("ETCD_OPERATOR_CLUSTER_DOMAIN", "cluster.local")


def ssl_context_from(secret: Mapping[str, bytes]) -> ssl.SSLContext:
    """A client TLS context from a Secret's tls.crt/tls.key/ca.crt (loaded, so the files may go)."""
    with tempfile.TemporaryDirectory(prefix="etcd-operator-") as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(secret["tls.crt"])
        key.write_bytes(secret["tls.key"])
        key.chmod(0o600)
        return client_ssl_context(secret["ca.crt"], str(cert), str(key))


AUTH_KEY = "etcd-auth."  # the operator's password Secret's keys, handed to `connect` beside the certificate's


def connect(access: ClientAccess, secret: Mapping[str, bytes]) -> EtcdClient:
    # Without a Secret (tls auto) the server's self-signed certificate cannot be verified: the
    # user chose encryption without identity. With one, both sides are verified.
    creds = auth.credentials({k.removeprefix(AUTH_KEY): v for k, v in secret.items() if k.startswith(AUTH_KEY)})
    return EtcdClient(list(access.endpoints), ssl_context_from(secret) if access.secret else None, credentials=creds)


class EtcdClients:
    """One etcd client per cluster, kept across passes and rebuilt when its endpoints or certificate change."""

    def __init__(self, factory: Connect = connect):
        self._factory = factory
        self._clients: dict[str, tuple[str, EtcdAPI]] = {}

    async def get(self, key: str, access: ClientAccess, secret: Mapping[str, bytes]) -> EtcdAPI | str:
        if access.error:
            return access.error
        if access.secret and not secret:
            return f"client certificate Secret {access.secret} not created yet"
        digest = hashlib.sha256(repr((access, sorted(secret.items()))).encode()).hexdigest()
        cached = self._clients.get(key)
        if cached and cached[0] == digest:
            return cached[1]
        if cached:
            await cached[1].close()
            del self._clients[key]
        if access.secret and (missing := [k for k in ("tls.crt", "tls.key", "ca.crt") if not secret.get(k)]):
            return f"client certificate Secret {access.secret} has no {', '.join(missing)}"
        try:
            client = self._factory(access, secret)
        except (ssl.SSLError, ValueError, OSError) as exc:
            # A Secret that holds no usable certificate is the user's to fix: say so, do not fail the pass.
            return f"client certificate Secret {access.secret}: cannot load tls.crt, tls.key and ca.crt ({exc})"
        self._clients[key] = (digest, client)
        return client

    async def drop(self, key: str) -> None:
        if cached := self._clients.pop(key, None):
            await cached[1].close()


def _other_cluster(kube: KubeAPI, ctx: ClusterContext) -> tuple[ClusterNames, EtcdClusterSpec] | str:
    ref = ctx.spec.bootstrap.discovery_cluster_ref
    assert ref is not None
    names = ctx.identity.names
    other = kube.get(f"{GROUP}/{VERSION}", KIND, ref.name, names.namespace)
    if other is None:
        return (f"bootstrap.discoveryClusterRef: EtcdCluster {ref.name} not found in namespace {names.namespace}; "
                "create it first (it serves as the discovery service)")  # fmt: skip
    spec = EtcdClusterSpec.model_validate(other.get("spec") or {})
    return ClusterNames(ref.name, names.namespace, names.cluster_domain), spec


def _discovery(kube: KubeAPI, ctx: ClusterContext, started: bool) -> DiscoveryService:
    """This cluster's own discovery credential, and the discovery cluster's URL and client CA.

    The discovery cluster is read only while this cluster needs something of it: before its members
    start (the template and the credential) and until it has been Available (the credential is renewed).
    Afterwards nothing of it is read: it may be deleted.
    """
    if ctx.spec.bootstrap.discovery_cluster_ref is None:
        return DiscoveryService()
    names = ctx.identity.names
    found = kube.get("v1", "Secret", names.discovery_tls_secret, names.namespace)
    credential = secret_bytes(found) if found is not None and _owned(found, ctx.identity.owner.uid) else None
    if started and ctx.status.phase in EVER_AVAILABLE_PHASES:
        return DiscoveryService(credential=credential)
    other = _other_cluster(kube, ctx)
    if isinstance(other, str):
        return DiscoveryService(error="" if started else other, credential=credential)
    service = discovery_of(*other)
    client_ca = None
    if service.client_ca_secret:
        ca = kube.get("v1", "Secret", service.client_ca_secret, names.namespace)
        client_ca = secret_bytes(ca) if ca is not None else None
    return replace(service, client_ca=client_ca, credential=credential)


async def observe(kube: KubeAPI, ctx: ClusterContext, clients: EtcdClients) -> tuple[Observed, EtcdAPI | None]:
    """Everything the pass plans from and reports, read once: owned objects, pods, then etcd."""
    names = ctx.identity.names
    ns, match = names.namespace, selector(names.name)

    def kube_reads() -> tuple[Any, ...]:
        sts = kube.get("apps/v1", "StatefulSet", names.statefulset, ns)
        pods = kube.list("v1", "Pod", ns, match)
        services = kube.list("v1", "Service", ns, match)
        pdb = kube.get("policy/v1", "PodDisruptionBudget", names.pdb, ns)
        secrets = kube.list("v1", "Secret", ns, match) if needs_generated_tls(ctx.spec) else []
        if provided := ctx.spec.tls.operator_client_secret_name:  # the user's Secret: not ours, not listed
            secrets.append(kube.get("v1", "Secret", provided, ns) or {"metadata": {"name": provided}})
        discovery = _discovery(kube, ctx, sts is not None)
        # Only a cluster with a schedule pays for this read; its backups are labelled with the cluster's name.
        backups = kube.list(f"{GROUP}/{VERSION}", BACKUP_KIND, ns, {SCHEDULE_LABEL: names.name}) if ctx.spec.backup else []
        provided_tls = {name: secret_bytes(found) if (found := kube.get("v1", "Secret", name, ns)) is not None else None
                        for name in provided_tls_secrets(ctx.spec)}  # fmt: skip
        restores = _restore_sources(kube, ctx), _in_place_sources(kube, ctx), _recovery_request(kube, ctx)
        return sts, pods, services, pdb, secrets, discovery, backups, restores, provided_tls

    sts, pods, services, pdb, secrets, discovery, backups, restores, provided_tls = await asyncio.to_thread(kube_reads)
    restore, in_place, recovery_request = restores
    uid = ctx.identity.owner.uid
    objects = {f"Service/{s['metadata']['name']}": s for s in services if _owned(s, uid)}
    if pdb is not None:
        objects[f"PodDisruptionBudget/{pdb['metadata']['name']}"] = pdb
    provided = ctx.spec.tls.operator_client_secret_name
    secret_data = {s["metadata"]["name"]: secret_bytes(s) for s in secrets if _owned(s, uid)}
    client_secret = secret_bytes(next((s for s in secrets if s["metadata"]["name"] == provided), None))
    sts_view = statefulset_view(sts) if sts is not None else None
    managing = managing_auth(ctx)
    gateway = managing and bool(secret_data.get(names.gateway_client_secret))
    access = client_access(names, ctx.spec, sts_view.replicas if sts_view else 0, gateway)
    secret = client_secret if provided else secret_data.get(access.secret or "", {})
    if managing and (password := secret_data.get(names.auth_secret)):
        secret = {**secret, **{f"{AUTH_KEY}{k}": v for k, v in password.items()}}
    got = await clients.get(uid, access, secret)
    client = None if isinstance(got, str) else got
    view, error, survey = None, got if isinstance(got, str) else "", None
    if client is not None and not (sts_view and sts_view.replicas):
        error = "no member is running"
    elif client is not None:
        try:
            view = await client.view()
        except EtcdError as exc:
            error = f"cannot reach etcd at {','.join(access.endpoints[:1])}: {exc.message}"
            # The cluster did not answer as a whole: ask each member on its own, which needs no quorum.
            survey = await client.survey(access.endpoints[1:])
    auth_view, auth_error = None, ""
    if managing and client is not None and view is not None:
        try:
            auth_view = await _auth_view(client, ctx, view.cluster_id or 0)
        except EtcdError as exc:
            auth_error = exc.message
    observed = Observed(
        generation=ctx.generation,
        statefulset=sts_view,
        pods=tuple(pod_view(p, names.statefulset) for p in pods),
        objects=objects,
        secrets=secret_data,
        etcd=view,
        etcd_error=error,
        discovery=discovery,
        ever_available=ctx.status.phase in EVER_AVAILABLE_PHASES,
        backups=tuple(backup_view(b) for b in backups if _owned(b, uid)),
        restore=restore,
        in_place=in_place,
        provided_tls=provided_tls,
        survey=survey,
        recovery_request=recovery_request,
        auth=auth_view,
        auth_error=auth_error,
    )
    return observed, client


async def _auth_view(client: EtcdAPI, ctx: ClusterContext, cluster_id: int) -> auth.AuthView:
    """etcd's users and roles; only its auth revision while that, the spec and the cluster are as status.access says."""
    desired = auth.desired_access(ctx.spec)
    enabled, revision = await client.auth_status()
    seen = ctx.status.access
    if (seen is not None and desired.enabled and enabled and seen.enabled and seen.auth_revision == revision
            and seen.spec_hash == auth.settled_key(desired, cluster_id)):  # fmt: skip
        return auth.AuthView(enabled, revision, settled=True, cluster_id=cluster_id)
    return dataclasses.replace(await client.auth_view(desired), cluster_id=cluster_id)


def _restore_sources(kube: KubeAPI, ctx: ClusterContext) -> RestoreSources:
    """The backup and Secrets a pending bootstrap.restore names: read only until the cluster has started from it."""
    restore, ns = ctx.spec.bootstrap.restore, ctx.identity.names.namespace
    if restore is None or ctx.status.restored_from:
        return RestoreSources()
    backup = None
    store: S3Store | None = restore.s3
    if restore.backup_ref is not None:
        backup = kube.get(f"{GROUP}/{VERSION}", BACKUP_KIND, restore.backup_ref.name, ns)
        store = backup_store(backup)

    def data(name: str | None) -> dict[str, bytes] | None:
        found = kube.get("v1", "Secret", name, ns) if name else None
        return secret_bytes(found) if found is not None else None

    request = kube.get("v1", "Secret", ctx.identity.names.restore_secret, ns)
    return RestoreSources(
        backup=backup,
        credentials=data(store.credentials_secret) if store else None,
        ca=data(store.ca_secret) if store else None,
        request=secret_bytes(request) if request is not None else None,
    )


def _in_place_sources(kube: KubeAPI, ctx: ClusterContext) -> RestoreSources:
    """spec.restore's request Secret, and its backup and Secrets while a restore may have to start.

    A cluster that never asked for an in-place restore pays nothing; one that did pays one read per
    pass for the request Secret (which says whether a restore is under way), and the backup and store
    Secrets only until status.restore shows the request done.
    """
    wanted, done = ctx.spec.restore, ctx.status.restore
    if wanted is None and done is None:
        return RestoreSources()
    ns = ctx.identity.names.namespace
    found = kube.get("v1", "Secret", ctx.identity.names.restore_secret, ns)
    request = secret_bytes(found) if found is not None and _owned(found, ctx.identity.owner.uid) else None
    if wanted is None or (done is not None and done.request_id == wanted.request_id):
        return RestoreSources(request=request)
    backup = kube.get(f"{GROUP}/{VERSION}", BACKUP_KIND, wanted.backup_ref.name, ns)
    store = backup_store(backup)

    def data(name: str | None) -> dict[str, bytes] | None:
        got = kube.get("v1", "Secret", name, ns) if name else None
        return secret_bytes(got) if got is not None else None

    return RestoreSources(
        backup=backup,
        credentials=data(store.credentials_secret) if store else None,
        ca=data(store.ca_secret) if store else None,
        request=request,
    )


def _recovery_request(kube: KubeAPI, ctx: ClusterContext) -> Mapping[str, bytes] | None:
    """spec.recovery's request Secret: read only by a cluster that asked for a recovery, now or before."""
    if ctx.spec.recovery is None and ctx.status.recovery is None:
        return None
    found = kube.get("v1", "Secret", ctx.identity.names.recovery_secret, ctx.identity.names.namespace)
    return secret_bytes(found) if found is not None and _owned(found, ctx.identity.owner.uid) else None


def _owned(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


async def _seed_discovery(kube: KubeAPI, ctx: ClusterContext, clients: EtcdClients) -> Problem | None:
    """Write the expected size under this cluster's token in the discovery cluster before members start."""
    other = await asyncio.to_thread(_other_cluster, kube, ctx)
    if isinstance(other, str):
        return Problem("WaitingForDiscovery", other)
    names, spec = other
    # With etcd auth on over there (its tls.clients[].access), the gateway takes only its CommonName-less
    # certificate, with the password of its operator user.
    gateway = auth.desired_access(spec).enabled
    access = client_access(names, spec, 0, gateway)
    secret = {}
    if access.secret:
        secret = secret_bytes(await asyncio.to_thread(kube.get, "v1", "Secret", access.secret, names.namespace))
    if gateway:
        password = secret_bytes(await asyncio.to_thread(kube.get, "v1", "Secret", names.auth_secret, names.namespace))
        secret = {**secret, **{f"{AUTH_KEY}{k}": v for k, v in password.items()}}
    key = f"discovery:{ctx.identity.owner.uid}"
    client = await clients.get(key, access, secret)
    if isinstance(client, str):
        return Problem("WaitingForDiscovery", f"discovery cluster {names.name}: {client}")
    token = ctx.spec.cluster_token or default_token(ctx.identity)
    try:
        await client.put(f"/_etcd/registry/{token}/_config/size", str(ctx.spec.replicas))
    except EtcdError as exc:
        return Problem("WaitingForDiscovery", f"discovery cluster {names.name} is not reachable yet: {exc.message}")
    finally:
        await clients.drop(key)
    return None


def _replicas_object(names: ClusterNames, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": names.statefulset, "namespace": names.namespace},
        "spec": {"replicas": replicas},
    }


def _failed_apply(exc: ApiError) -> Problem:
    return Problem("ApplyFailed", f"the API server refused {exc.what} ({exc.status}): {exc.message}")


async def apply(
    kube: KubeAPI, ctx: ClusterContext, planned: Plan, etcd: EtcdAPI | None, clients: EtcdClients
) -> Outcome:
    """Carry out the plan: objects first (Secrets before the pods that mount them), then the one step."""
    names = ctx.identity.names
    problems = list(planned.problems)
    objects = list(planned.objects)
    if planned.seed_discovery and (waiting := await _seed_discovery(kube, ctx, clients)):
        # Members must not start before the size key exists: the StatefulSet waits.
        return Outcome(mp.Wait(waiting.reason, waiting.message), problems=tuple(problems))
    applied = 0
    for obj in objects:
        try:
            await asyncio.to_thread(kube.apply, obj)
            applied += 1
        except ApiError as exc:
            problems.append(_failed_apply(exc))
    if planned.in_place.request is not None and applied == len(objects):
        scaling.crash_at("after-restore-request")  # the request and template written, no member started
    if planned.recovery.request is not None and applied == len(objects):
        scaling.crash_at("after-recovery-request")  # the request and template written, the survivor not started
    scheduled, schedule_writes = await _apply_schedule(kube, names.namespace, planned, problems)
    applied += schedule_writes
    for secret in planned.retire_secrets:
        # A removed user's certificate is in the members' revocation list, or the cluster has bootstrapped
        # and no member reads its discovery credential again: the Secret can go.
        await asyncio.to_thread(kube.delete, "v1", "Secret", secret, names.namespace)
        applied += 1
    if planned.restore.retire_request or planned.in_place.retire_request:
        # Every initial member started from the snapshot: no later pod may find the request.
        await asyncio.to_thread(kube.delete, "v1", "Secret", names.restore_secret, names.namespace)
        applied += 1
    if planned.recovery.retire_request:
        # The survivor runs alone with its data: members started from now on start as usual.
        await asyncio.to_thread(kube.delete, "v1", "Secret", names.recovery_secret, names.namespace)
        applied += 1

    async def scale_to(replicas: int) -> None:
        await asyncio.to_thread(kube.apply, _replicas_object(names, replicas), REPLICAS_MANAGER)

    async def restart(pod: str, uid: str) -> None:
        await asyncio.to_thread(kube.delete, "v1", "Pod", pod, names.namespace, uid)

    step, step_error = planned.step, ""
    try:
        if planned.claim_replicas is not None:
            await scale_to(planned.claim_replicas)
        if step is not None and not isinstance(step, (mp.Noop, mp.Wait, mp.Refuse)):
            if etcd is None and not isinstance(step, (mp.ScaleStatefulSet, mp.RestartMember)):
                raise EtcdError("no etcd client")
            await scaling.execute(step, etcd, scale_to, restart)  # type: ignore[arg-type]
            if planned.in_place.active and step == mp.ScaleStatefulSet(0):
                scaling.crash_at("after-restore-stop")  # every member stopping, nothing recorded
            if planned.recovery.active and step == mp.ScaleStatefulSet(0):
                scaling.crash_at("after-recovery-stop")  # every member stopping, no request written
            if planned.follow_up is not None:
                # The StatefulSet follows an add or a remove in the same pass; a crash in
                # between leaves it to the next pass, which plans it again from etcd.
                await scaling.execute(planned.follow_up, etcd, scale_to, restart)  # type: ignore[arg-type]
    except EtcdError as exc:
        step_error = exc.message
    except ApiError as exc:
        problems.append(_failed_apply(exc))
    access = auth.AuthOutcome()
    if etcd is not None and planned.auth is not None and planned.auth.calls:
        access = await _apply_auth(etcd, planned.auth.calls)
        applied += len(access.made)
        if access.failed:
            problems.append(Problem("AccessFailed", f"etcd auth for tls.clients: {access.failed}"))
    maintained = ""
    if etcd is not None and not step_error and isinstance(planned.upkeep, (maint.Compact, maint.Defragment, maint.Disarm)):
        try:
            maintained = await scaling.execute_maintenance(planned.upkeep, etcd)
        except EtcdError as exc:
            problems.append(Problem("MaintenanceFailed", f"{type(planned.upkeep).__name__} failed: {exc.message}"))
    progress, reason = (planned.recovery.progress, "Recovering") if planned.recovery.progress else (
        planned.in_place.progress, "Restoring")  # fmt: skip
    return Outcome(step, step_error, tuple(problems), applied, scheduled, maintained, progress, reason, access)


async def _apply_auth(etcd: EtcdAPI, calls: tuple[auth.Call, ...]) -> auth.AuthOutcome:
    """The planned auth calls in order, at most auth.MAX_CALLS, stopping at the first etcd refuses."""
    made: list[str] = []
    for call in calls[: auth.MAX_CALLS]:
        try:
            await etcd.auth_call(call)
        except EtcdError as exc:
            return auth.AuthOutcome(tuple(made), f"{auth.describe(call)}: {exc.message}", len(calls) - len(made))
        made.append(auth.describe(call))
    return auth.AuthOutcome(tuple(made), left=len(calls) - len(made))


async def _apply_schedule(
    kube: KubeAPI, namespace: str, planned: Plan, problems: list[Problem]
) -> tuple[datetime | None, int]:
    """Prune, then create the scheduled backup: object writes like the others, never the pass's step."""
    schedule, writes = planned.schedule, 0
    for backup in schedule.prune:
        try:
            await asyncio.to_thread(kube.delete, f"{GROUP}/{VERSION}", BACKUP_KIND, backup.name, namespace, backup.uid)
            writes += 1
        except ApiError as exc:
            problems.append(_failed_apply(exc))
    if schedule.create is None:
        return None, writes
    try:
        await asyncio.to_thread(kube.apply, schedule.create)
    except ApiError as exc:
        problems.append(_failed_apply(exc))
        return None, writes
    return schedule.scheduled, writes + 1


FAST_WHILE_PROGRESSING = timedelta(minutes=5)


@dataclass(frozen=True)
class PassResult:
    status: EtcdClusterStatus
    plan: Plan
    outcome: Outcome
    observed: Observed
    busy: bool  # the next pass should come soon (see `busy`)


def busy(planned: Plan, outcome: Outcome, status: EtcdClusterStatus, now: datetime) -> bool:
    """The next pass should come soon: a step is in flight, a repair went through, or members are starting.

    Bounded: members starting (bootstrap, waking) count for the first minutes
    of Progressing only, and writes the API server refuses do not count, so a
    cluster that is stuck is polled at the idle interval, not hammered.
    """
    if planned.step_in_flight or (outcome.applied and not outcome.apply_failed) or outcome.maintained:
        return True
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    if progressing is None or progressing.status.value != "True" or not progressing.last_transition_time:
        return False
    since = datetime.strptime(progressing.last_transition_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return now - since < FAST_WHILE_PROGRESSING


async def reconcile_once(
    kube: KubeAPI, ctx: ClusterContext, clients: EtcdClients, now: datetime | None = None
) -> PassResult:
    now = now or datetime.now(UTC)
    observed, etcd = await observe(kube, ctx, clients)
    planned = plan(ctx, observed, now)
    outcome = await apply(kube, ctx, planned, etcd, clients)
    maintenance = maintenance_record(ctx.status.maintenance, planned.upkeep, outcome.maintained, now)
    if planned.in_place.record is not None and maintenance is not None:
        # The restored cluster's revisions start again from the snapshot's: the old compaction mark means nothing.
        maintenance = maintenance.model_copy(update={"compacted_revision": None})
    status = compute_status(
        ctx.spec,
        observed,
        ctx.status,
        now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        outcome,
        initial_members=planned.initial_members,
        backup=schedule_status(ctx.spec.backup, observed.backups, ctx.status.backup, now, outcome.scheduled),
        restored_from=planned.restore.restored_from,
        restore=planned.in_place.record,
        recovery=planned.recovery.record,
        maintenance=maintenance,
        certificates=issued_certificates(ctx.identity.names, observed.secrets),
        access=_access_status(ctx, observed, planned, outcome),
    )
    return PassResult(status, planned, outcome, observed, busy(planned, outcome, status, now))


def _access_status(ctx: ClusterContext, observed: Observed, planned: Plan, outcome: Outcome) -> AccessReport | None:
    if planned.auth is None:
        return None
    desired = auth.desired_access(ctx.spec)
    record = auth.record(desired, observed.auth, planned.auth, outcome.access, ctx.status.access)
    return AccessReport(record, auth.condition(desired, planned.auth, outcome.access))


def context(body: Mapping[str, Any], spec: EtcdClusterSpec) -> ClusterContext:
    meta = body["metadata"]
    status = EtcdClusterStatus.model_validate(dict(body.get("status") or {}))
    identity = ClusterIdentity.of(meta["name"], meta["namespace"], meta["uid"], cluster_domain())
    return ClusterContext(
        identity, spec, status, int(meta.get("generation") or 0), node_repository(),
        dict(meta.get("annotations") or {}), pod_certificates(),
    )  # fmt: skip

