"""How the operator reaches a cluster's etcd, and how another cluster serves as its discovery service. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from ..models.cluster import EtcdClusterSpec, TLSMode
from ..resources.naming import ClusterNames
from .observed import DiscoveryService


@dataclass(frozen=True)
class ClientAccess:
    """Endpoints, and the Secret whose client certificate the operator presents (None: no client certificate).

    The client Service comes first; each member's own URL follows, so a
    deleted or broken client Service does not blind the operator to the
    cluster it is about to repair.
    """

    endpoints: tuple[str, ...]
    secret: str | None = None
    error: str = ""  # why the operator cannot talk to this cluster at all


def client_access(names: ClusterNames, spec: EtcdClusterSpec, members: int, gateway: bool = False) -> ClientAccess:
    """`gateway`: etcd auth is on (or being turned on or off) and the certificate without a CommonName exists.

    With auth on, etcd's JSON gateway refuses a client certificate that has a CommonName (it could not use
    it: the gateway forwards requests under the member's own identity), so the operator presents its
    CommonName-less certificate and a token instead.
    """
    mode = spec.tls.client.mode
    tls = mode is not TLSMode.NONE
    endpoints = (names.client_url(tls), *(names.member_client_url(o, tls) for o in range(members)))
    if mode is TLSMode.SELF_SIGNED:
        return ClientAccess(endpoints, names.gateway_client_secret if gateway else names.client_tls_secret)
    if mode is TLSMode.SECRET:
        if spec.tls.operator_client_secret_name:
            return ClientAccess(endpoints, spec.tls.operator_client_secret_name)
        return ClientAccess(endpoints, error="client TLS mode secret: the operator has no client certificate for "
                            "this cluster, so it cannot read its health or change its membership; set "
                            "spec.tls.operatorClientSecretName to a Secret with one (tls.crt, tls.key, ca.crt)")  # fmt: skip
    # auto: etcd's own self-signed certificate and no client authentication; none: plain HTTP.
    return ClientAccess(endpoints)


def discovery_of(names: ClusterNames, spec: EtcdClusterSpec) -> DiscoveryService:
    """How members of a cluster bootstrapping through `names`'s cluster reach it: its URL, and the client CA
    whose certificate they must present (selfSigned only; never one of that cluster's own certificates)."""
    tls = spec.tls.client.mode is not TLSMode.NONE
    ca = names.client_ca_secret if spec.tls.client.mode is TLSMode.SELF_SIGNED else ""
    return DiscoveryService(names.client_url(tls), client_ca_secret=ca)
