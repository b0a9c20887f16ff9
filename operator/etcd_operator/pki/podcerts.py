"""Signing members' own keys (spec.tls.memberKeys: podCertificate): the decision, pure.

With podCertificate, a member pod mounts a projected `podCertificate` source per
TLS side. Its kubelet creates the private key on the node, where it stays, and
files a PodCertificateRequest (certificates.k8s.io/v1beta1) naming one of our
signers; the kubelet starts the pod once the request is issued and renews the
certificate from `beginRefreshAt` on. The operator is the signer: it issues a
certificate for the request's public key only when the pod that asked is a
member of an EtcdCluster in that mode, with the names that member's certificate
must cover (the same names and CA as the Secret-held pairs of mode secret).

The API server has already checked that the kubelet asking runs that pod and
that the requester holds the key (proof of possession); the pod is trusted to
be a member when the cluster's StatefulSet controls it. Whoever may create pods
in the namespace may create such a pod, as they may mount a Secret: the
namespace stays the trust boundary, but no member can read another's key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .. import GROUP
from ..models.cluster import (
    POD_CERTIFICATE_MIN_VALIDITY,
    POD_CERTIFICATE_REFRESH_MARGIN,
    EtcdClusterSpec,
    MemberKeys,
    TLSMode,
    parse_duration,
)
from ..resources.naming import ClusterNames
from . import bundles, certs

API_VERSION = "certificates.k8s.io/v1beta1"
PLURAL = "podcertificaterequests"
# One signer per side: a pod mounts one source per side, and the request names only its signer.
SIGNERS = {"peer": f"{GROUP}/peer", "server": f"{GROUP}/server"}
KEY_TYPE = "ECDSAP256"  # what etcd serves and every Go TLS client accepts
CERT_FILE, KEY_FILE = "member.crt", "member.key"  # in each side's projected volume
# kube-apiserver refuses a notBefore further than 5 minutes from its clock: a smaller margin than the
# Secret-held leaves' CLOCK_SKEW, still enough for the clocks of peers that check it.
BACKDATE = timedelta(minutes=1)
MIN_LIFETIME = parse_duration(POD_CERTIFICATE_MIN_VALIDITY)
REFRESH_MARGIN = parse_duration(POD_CERTIFICATE_REFRESH_MARGIN)


def side_of(signer: str) -> str | None:
    return next((side for side, name in SIGNERS.items() if name == signer), None)


@dataclass(frozen=True)
class Request:
    """What the signer reads of a PodCertificateRequest."""

    namespace: str
    name: str
    signer: str
    pod_name: str
    pod_uid: str
    public_key: bytes  # PKIX (SubjectPublicKeyInfo), DER
    max_expiration: timedelta

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Request:
        spec, meta = obj.get("spec") or {}, obj.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            signer=str(spec.get("signerName", "")),
            pod_name=str(spec.get("podName", "")),
            pod_uid=str(spec.get("podUID", "")),
            public_key=base64.b64decode(spec.get("pkixPublicKey") or ""),
            max_expiration=timedelta(seconds=int(spec.get("maxExpirationSeconds") or 86400)),
        )


def answered(obj: dict[str, Any]) -> bool:
    """The request already carries a final condition (Issued, Denied or Failed): nothing is left to do."""
    return any(
        c.get("type") in ("Issued", "Denied", "Failed") for c in (obj.get("status") or {}).get("conditions") or []
    )


@dataclass(frozen=True)
class MemberPod:
    """The pod a request names, as the signer needs it."""

    uid: str
    cluster: str  # app.kubernetes.io/instance
    controller: str  # the name of the StatefulSet controlling it ("" for none)
    ordinal: int | None


@dataclass(frozen=True)
class Issued:
    chain: bytes  # the leaf, PEM
    not_before: datetime
    not_after: datetime
    begin_refresh_at: datetime
    message: str


@dataclass(frozen=True)
class Refused:
    """Denied: the request will never be signed (not a member). Failed: it cannot be now (e.g. no CA)."""

    kind: Literal["Denied", "Failed"]
    reason: str
    message: str


def decide(
    request: Request,
    pod: MemberPod | None,
    spec: EtcdClusterSpec | None,
    names: ClusterNames | None,
    ca: bundles.CASet | None,
    now: datetime,
    serial: int,
) -> Issued | Refused:
    """Issue the certificate the member's kubelet asked for, or say why not.

    `spec`/`names`: of the EtcdCluster the pod says it belongs to (None when there is none);
    `ca`: that side's CA Secret as read (None when missing).
    """
    side = side_of(request.signer)
    if side is None:
        return Refused("Denied", "UnknownSigner", f"{request.signer} is not a signer of this operator")
    who = f"pod {request.namespace}/{request.pod_name}"
    if pod is None or pod.uid != request.pod_uid:
        return Refused("Denied", "PodGone", f"{who} (uid {request.pod_uid}) no longer exists")
    if spec is None or names is None:
        return Refused("Denied", "NotAMember", f"{who} names no EtcdCluster of this namespace")
    if pod.controller != names.statefulset or pod.ordinal is None:
        return Refused("Denied", "NotAMember", f"{who} is not controlled by StatefulSet {names.statefulset}")
    tls = spec.tls.peer if side == "peer" else spec.tls.client
    if spec.tls.member_keys is not MemberKeys.POD_CERTIFICATE or tls.mode is not TLSMode.SELF_SIGNED:
        return Refused("Denied", "NotPodCertificateMode", f"EtcdCluster {names.name} does not issue {side} "
                       "certificates through pod certificates (spec.tls.memberKeys podCertificate, selfSigned)")  # fmt: skip
    if ca is None:
        return Refused("Failed", "CAMissing", f"the {side} CA of EtcdCluster {names.name} is not there yet; "
                       "the kubelet asks again")  # fmt: skip
    try:
        public_key = serialization.load_der_public_key(request.public_key)
    except ValueError as exc:
        return Refused("Denied", "BadPublicKey", f"spec.pkixPublicKey is not a public key: {exc}")
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return Refused("Denied", "BadPublicKey", f"a {type(public_key).__name__} cannot be certified for TLS")
    policy = spec.tls.certificates
    validity = min(parse_duration(policy.validity), request.max_expiration)
    not_before = (now - BACKDATE).replace(microsecond=0)
    not_after = min(not_before + validity, ca.signer.cert.not_valid_after_utc).replace(microsecond=0)
    if not_after - not_before < MIN_LIFETIME:
        return Refused("Failed", "CAEnding", f"the {side} CA of EtcdCluster {names.name} ends at "
                       f"{ca.signer.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, too soon for a pod certificate "
                       f"of at least {POD_CERTIFICATE_MIN_VALIDITY}; its rollover replaces it")  # fmt: skip
    pod_name = names.pod(pod.ordinal)
    cert = certs.issue_for(ca.signer.cert, ca.signer.key, public_key, f"{pod_name} {side}",
                           names.member_hosts(pod.ordinal), not_before, not_after, serial)  # fmt: skip
    refresh = not_after - parse_duration(policy.renew_before)
    refresh = max(min(refresh, not_after - REFRESH_MARGIN), not_before + REFRESH_MARGIN)
    return Issued(certs.cert_pem(cert), not_before, not_after, refresh,
                  f"{side} certificate for member {pod_name} of EtcdCluster {names.name}, serial "
                  f"{cert.serial_number:x}, until {not_after:%Y-%m-%dT%H:%M:%SZ}")  # fmt: skip


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def status(result: Issued | Refused, now: datetime) -> dict[str, Any]:
    """The request's status as the signer writes it (the /status subresource)."""
    if isinstance(result, Issued):
        condition = {"type": "Issued", "status": "True", "reason": "Issued", "message": result.message}
        fields: dict[str, Any] = {
            "certificateChain": result.chain.decode(),
            "notBefore": _time(result.not_before),
            "notAfter": _time(result.not_after),
            "beginRefreshAt": _time(result.begin_refresh_at),
        }
    else:
        condition = {"type": result.kind, "status": "True", "reason": result.reason, "message": result.message}
        fields = {}
    return {**fields, "conditions": [{**condition, "lastTransitionTime": _time(now)}]}
