"""The signer of members' pod certificates (spec.tls.memberKeys podCertificate): thin I/O around pki.podcerts.

Loaded only when the operator signs pod certificates (ETCD_OPERATOR_POD_CERTIFICATES,
the chart's podCertificates.enabled): on clusters without the PodCertificateRequest
API it would watch a resource that does not exist.

A watch event handler, not a create handler: kopf keeps no state on the request
(the API server lets nobody but its signer touch a request's status, and nobody
edit its spec). kopf lists every request when the operator starts, so a request
filed while the operator was down is answered then. An answer that cannot be
written is tried again a few times; after that the kubelet's own retry (a new
request) brings it back.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog
from cryptography import x509
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from .. import GROUP, KIND, VERSION
from ..adapters.kube import ApiError
from ..controller import cluster_domain
from ..models.cluster import EtcdClusterSpec
from ..pki import bundles, podcerts
from ..resources.meta import selector
from ..resources.naming import ClusterNames
from ..resources.secrets import secret_bytes
from .cluster import kube

log = structlog.get_logger("etcd-operator")
INSTANCE = next(key for key in selector("x") if key.endswith("/instance"))
ATTEMPTS = 5


def _ours_unanswered(body: kopf.Body, **_: Any) -> bool:
    signer = (body.get("spec") or {}).get("signerName", "")
    return podcerts.side_of(signer) is not None and not podcerts.answered(dict(body))


def _member(pod: dict[str, Any] | None) -> podcerts.MemberPod | None:
    if pod is None:
        return None
    meta = pod.get("metadata") or {}
    owner: dict[str, Any] = next((o for o in meta.get("ownerReferences") or [] if o.get("controller") and o.get("kind") == "StatefulSet"),
                 {})  # fmt: skip
    controller = str(owner.get("name", ""))
    name = str(meta.get("name", ""))
    ordinal = name.removeprefix(f"{controller}-") if controller and name.startswith(f"{controller}-") else ""
    return podcerts.MemberPod(
        uid=str(meta.get("uid", "")),
        cluster=str((meta.get("labels") or {}).get(INSTANCE, "")),
        controller=controller,
        ordinal=int(ordinal) if ordinal.isdigit() else None,
    )


def answer(request: podcerts.Request) -> podcerts.Issued | podcerts.Refused:
    """Read what the decision needs, decide, write the request's status; the decision."""
    api = kube()
    pod = _member(api.get("v1", "Pod", request.pod_name, request.namespace))
    spec = names = ca = None
    if pod is not None and pod.cluster:
        cluster = api.get(f"{GROUP}/{VERSION}", KIND, pod.cluster, request.namespace)
        if cluster is not None:
            try:
                spec = EtcdClusterSpec.model_validate(dict(cluster.get("spec") or {}))
                names = ClusterNames(pod.cluster, request.namespace, cluster_domain())
            except ValidationError:
                spec = None
    side = podcerts.side_of(request.signer)
    if names is not None and side is not None:
        secret = names.peer_ca_secret if side == "peer" else names.client_ca_secret
        data = secret_bytes(api.get("v1", "Secret", secret, request.namespace))
        if "tls.crt" in data and "tls.key" in data:
            ca = bundles.CASet.from_secret_data(data)
    now = datetime.now(UTC)
    result = podcerts.decide(request, pod, spec, names, ca, now, x509.random_serial_number())
    api.patch_status(podcerts.API_VERSION, "PodCertificateRequest", request.name, request.namespace,
                     podcerts.status(result, now))  # fmt: skip
    return result


@kopf.on.event("certificates.k8s.io", "v1beta1", podcerts.PLURAL, id="sign-pod-certificate", when=_ours_unanswered)
async def sign(body: kopf.Body, **_: Any) -> None:
    request = podcerts.Request.from_object(dict(body))
    bound = log.bind(namespace=request.namespace, pod=request.pod_name, request=request.name, signer=request.signer)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = await asyncio.to_thread(answer, request)
        except (ApiError, ApiException, OSError) as exc:
            if getattr(exc, "status", 0) in (404, 409, 422) or attempt == ATTEMPTS:
                # Gone, answered by another replica, or refused as written: nothing to retry.
                bound.warning("pod certificate not answered", error=str(exc), attempt=attempt)
                return
            await asyncio.sleep(attempt)
            continue
        if isinstance(result, podcerts.Issued):
            bound.info("pod certificate issued", detail=result.message)
        else:
            bound.warning("pod certificate refused", condition=result.kind, reason=result.reason, detail=result.message)
        return
