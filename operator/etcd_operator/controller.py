"""The I/O shell around the pure core: read what exists, ask the core what should, apply it.

Every function here is safe to run twice or to be killed half way: writes are
server-side applies of objects the core computed from the spec and from what
already exists, so a second run converges on the same objects.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import GROUP, KIND, VERSION, scaling
from .adapters.etcd import EtcdClient, EtcdError, client_ssl_context
from .adapters.kube import Kube
from .models.cluster import EtcdClusterSpec, EtcdClusterStatus, TLSMode
from .reconcile import membership as mp
from .reconcile.desired import ClusterIdentity, default_token, desired_objects, needs_generated_tls
from .reconcile.secrets import tls_secrets
from .reconcile.status import Observed, ObservedMember
from .resources.meta import selector
from .resources.naming import ClusterNames
from .resources.secrets import secret_bytes
from .resources.statefulset import MemberTemplateInputs

DEFAULT_NODE_IMAGE = "etcd-node"


@dataclass(frozen=True)
class ClusterContext:
    identity: ClusterIdentity
    spec: EtcdClusterSpec
    status: EtcdClusterStatus
    generation: int


def node_image(spec: EtcdClusterSpec) -> str:
    repo = os.environ.get("ETCD_OPERATOR_NODE_IMAGE", DEFAULT_NODE_IMAGE)
    return f"{repo}:{spec.version}"


def cluster_domain() -> str:
    return os.environ.get("ETCD_OPERATOR_CLUSTER_DOMAIN", "cluster.local")


@dataclass(frozen=True)
class DiscoveryService:
    """Another EtcdCluster used as this one's v3 discovery service."""

    endpoints: str = ""
    tls_secret: str = ""


class DiscoveryNotReady(RuntimeError):
    """The referenced discovery cluster is missing or has no size key yet: wait and say why."""


def _discovery_cluster(kube: Kube, ctx: ClusterContext) -> tuple[ClusterNames, EtcdClusterSpec]:
    ref = ctx.spec.bootstrap.discovery_cluster_ref
    assert ref is not None
    names = ctx.identity.names
    other = kube.get(f"{GROUP}/{VERSION}", KIND, ref.name, names.namespace)
    if other is None:
        raise DiscoveryNotReady(
            f"bootstrap.discoveryClusterRef: EtcdCluster {ref.name} not found in namespace {names.namespace}; "
            "create it first (it serves as the discovery service)"
        )
    spec = EtcdClusterSpec.model_validate(other.get("spec") or {})
    return ClusterNames(ref.name, names.namespace, names.cluster_domain), spec


def discovery_service(kube: Kube, ctx: ClusterContext) -> DiscoveryService:
    if ctx.spec.bootstrap.discovery_cluster_ref is None:
        return DiscoveryService()
    other_names, other_spec = _discovery_cluster(kube, ctx)
    tls = other_spec.tls.client.mode is not TLSMode.NONE
    secret = other_names.client_tls_secret if other_spec.tls.client.mode is TLSMode.SELF_SIGNED else ""
    return DiscoveryService(other_names.client_url(tls), secret)


async def seed_discovery(kube: Kube, ctx: ClusterContext) -> None:
    """Write the expected size under this cluster's token in the discovery cluster, once, before any member starts."""
    if ctx.spec.bootstrap.discovery_cluster_ref is None:
        return
    other_names, other_spec = await asyncio.to_thread(_discovery_cluster, kube, ctx)
    client = etcd_client(kube, other_names, other_spec)
    if isinstance(client, str):
        raise DiscoveryNotReady(f"discovery cluster {other_names.name}: {client}")
    token = ctx.spec.cluster_token or default_token(ctx.identity)
    try:
        await client.put(f"/_etcd/registry/{token}/_config/size", str(ctx.spec.replicas))
    except EtcdError as exc:
        raise DiscoveryNotReady(f"discovery cluster {other_names.name} is not reachable yet: {exc.message}") from exc


def template_inputs(
    ctx: ClusterContext, sts: dict[str, Any] | None, discovery: DiscoveryService = DiscoveryService()
) -> MemberTemplateInputs:
    initial = ctx.status.initial_members or ctx.spec.replicas
    # After bootstrap the StatefulSet's size follows membership (converge_membership), never the spec directly.
    replicas = int((sts or {}).get("spec", {}).get("replicas") or 0)
    if ctx.spec.hibernate:
        replicas = 0
    elif replicas == 0:
        # First start, or waking from hibernation: every member etcd last listed comes back at once.
        replicas = len(ctx.status.members or []) or initial
    discovery_url = ctx.spec.bootstrap.discovery_url or ""
    return MemberTemplateInputs(
        replicas=replicas,
        initial_members=initial,
        cluster_token=ctx.spec.cluster_token or default_token(ctx.identity),
        node_image=node_image(ctx.spec),
        discovery_url=discovery_url,
        discovery_endpoints=discovery.endpoints,
        discovery_tls_secret=discovery.tls_secret,
    )


def _existing_secrets(kube: Kube, ctx: ClusterContext) -> dict[str, dict[str, bytes]]:
    names = ctx.identity.names
    found = {}
    for name in (
        names.peer_ca_secret,
        names.client_ca_secret,
        names.peer_tls_secret,
        names.server_tls_secret,
        names.client_tls_secret,
    ):
        secret = kube.get("v1", "Secret", name, names.namespace)
        if secret is not None:
            found[name] = secret_bytes(secret)
    return found


def ensure_objects(kube: Kube, ctx: ClusterContext) -> list[str]:
    """Apply Secrets (if selfSigned), Services, StatefulSet and PDB; returns what was applied."""
    names = ctx.identity.names
    applied = []
    sts = kube.get("apps/v1", "StatefulSet", names.statefulset, names.namespace)
    inputs = template_inputs(ctx, sts, discovery_service(kube, ctx))
    if needs_generated_tls(ctx.spec):
        for secret in tls_secrets(
            ctx.identity, ctx.spec, inputs.replicas, _existing_secrets(kube, ctx), datetime.now(UTC)
        ):
            kube.apply(secret)
            applied.append(f"Secret/{secret['metadata']['name']}")
    for obj in desired_objects(ctx.identity, ctx.spec, inputs):
        kube.apply(obj)
        applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return applied


def _pod_errors(pods: list[dict[str, Any]]) -> dict[str, str]:
    """etcd-node writes its refusal to the termination log; the kubelet copies it into the pod status."""
    errors = {}
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("lastState") or {}
            terminated = state.get("terminated") or (status.get("state") or {}).get("terminated")
            message = (terminated or {}).get("message") or ""
            if "etcd-node: error:" in message:
                errors[pod["metadata"]["name"]] = message.strip().splitlines()[0].removeprefix("etcd-node: error: ")
    return errors


def etcd_client(kube: Kube, names: ClusterNames, spec: EtcdClusterSpec) -> EtcdClient | str:
    """A client for a cluster's client Service with the operator's certificate, or why there is none."""
    client_tls = spec.tls.client.mode is not TLSMode.NONE
    endpoint = names.client_url(client_tls)
    ssl_context = None
    if spec.tls.client.mode is TLSMode.SELF_SIGNED:
        secret = secret_bytes(kube.get("v1", "Secret", names.client_tls_secret, names.namespace))
        if not secret:
            return "client certificate Secret not created yet"
        with tempfile.TemporaryDirectory(prefix="etcd-operator-") as tmp:
            cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            cert.write_bytes(secret["tls.crt"])
            key.write_bytes(secret["tls.key"])
            key.chmod(0o600)
            ssl_context = client_ssl_context(secret["ca.crt"], str(cert), str(key))  # loaded: files may go
    elif spec.tls.client.mode is TLSMode.AUTO:
        # etcd's own self-signed certificate, no client authentication: the
        # user chose encryption without identity, so there is nothing to verify.
        return EtcdClient([endpoint], None)  # no context: TLS without verification
    elif client_tls:
        return f"client TLS mode {spec.tls.client.mode.value}: the operator has no client certificate for it yet"
    return EtcdClient([endpoint], ssl_context)


async def _etcd_view(etcd: EtcdClient) -> tuple[tuple[ObservedMember, ...] | None, dict, str]:
    try:
        members = await etcd.member_list()
    except EtcdError as exc:
        return None, {}, f"cannot reach etcd at {','.join(etcd.endpoints)}: {exc.message}"
    observed, facts = [], {}
    for member in members:
        healthy, status = False, None
        for url in member.client_urls:
            try:
                status = await etcd.status(url)
                healthy = not status.errors and await etcd.healthy(url)
                break
            except EtcdError:
                continue
        if status is not None:
            facts.setdefault("leader", status.leader_id)
            facts.setdefault("cluster_id", status.cluster_id)
            facts.setdefault("version", status.version)
        observed.append(
            ObservedMember(member.name, member.id, member.peer_urls, member.client_urls, member.is_learner, healthy)
        )
    return tuple(observed), facts, ""


async def converge_membership(
    kube: Kube, ctx: ClusterContext, etcd: EtcdClient, status: EtcdClusterStatus
) -> tuple[mp.Step | None, str]:
    """One membership step towards spec.replicas, once the cluster has bootstrapped and is available.

    Returns the step (None when membership is not planned this pass) and, when
    etcd refused to take it for now ("unhealthy cluster" while the previous
    change settles), etcd's answer: the next pass plans again and retries.
    """
    names = ctx.identity.names
    if ctx.spec.hibernate or status.phase not in ("Running", "Degraded"):
        return None, ""
    peer_tls = ctx.spec.tls.peer.mode is not TLSMode.NONE
    pattern = re.compile(rf"//{re.escape(names.statefulset)}-(?P<ordinal>\d+)\.{re.escape(names.peer_service)}\.")

    async def next_step() -> mp.Step:
        members, leader = await scaling.observe(etcd)
        sts = await asyncio.to_thread(kube.get, "apps/v1", "StatefulSet", names.statefulset, names.namespace)
        sts_replicas = int(((sts or {}).get("spec") or {}).get("replicas") or 0)
        pods = await asyncio.to_thread(kube.list, "v1", "Pod", names.namespace, selector(names.name))
        lost = frozenset(
            int(pod.rsplit("-", 1)[1])
            for pod, message in _pod_errors(pods).items()
            if "already been bootstrapped" in message
        )
        return mp.plan(
            ctx.spec.replicas, sts_replicas, members, leader, lambda o: names.peer_url(o, peer_tls), pattern, lost
        )

    async def scale_to(replicas: int) -> None:
        patch = {"spec": {"replicas": replicas}}
        await asyncio.to_thread(kube.patch, "apps/v1", "StatefulSet", names.statefulset, names.namespace, patch)

    step: mp.Step | None = None
    try:
        step = await next_step()
        if isinstance(step, (mp.Noop, mp.Wait, mp.Refuse)):
            return step, ""
        await scaling.execute(step, etcd, scale_to)
    except EtcdError as exc:
        return step, exc.message
    if isinstance(step, (mp.AddLearner, mp.RemoveMember)):
        # The StatefulSet follows a membership change in the same pass (a new
        # learner's pod starts, a removed member's pod goes) rather than one
        # observe interval later: the plan, recomputed from etcd, says so. It is
        # not a second membership change; a crash here leaves it to the next pass.
        try:
            follow = await next_step()
            if isinstance(follow, mp.ScaleStatefulSet):
                await scaling.execute(follow, etcd, scale_to)
        except EtcdError:
            pass
    return step, ""


async def observe(kube: Kube, ctx: ClusterContext, etcd: EtcdClient | str) -> Observed:
    """Everything status is computed from: the StatefulSet, its pods and what etcd answers.

    `etcd` is the cluster's client from etcd_client, or why there is none.
    """
    names = ctx.identity.names
    sts = await asyncio.to_thread(kube.get, "apps/v1", "StatefulSet", names.statefulset, names.namespace)
    pods = await asyncio.to_thread(kube.list, "v1", "Pod", names.namespace, selector(names.name))
    members, facts, error = (None, {}, etcd) if isinstance(etcd, str) else await _etcd_view(etcd)
    sts_status = (sts or {}).get("status") or {}
    return Observed(
        generation=ctx.generation,
        sts_replicas=int(((sts or {}).get("spec") or {}).get("replicas") or 0),
        sts_ready=int(sts_status.get("readyReplicas") or 0),
        members=members,
        leader_id=facts.get("leader"),
        cluster_id=facts.get("cluster_id"),
        version=facts.get("version"),
        etcd_error=error,
        pod_errors=_pod_errors(pods),
        ever_available=ctx.status.phase in ("Running", "Degraded", "Unavailable", "Hibernated"),
        pods=len(pods),
    )
