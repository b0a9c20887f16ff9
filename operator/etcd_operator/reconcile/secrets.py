"""Which TLS Secrets a selfSigned cluster needs, issuing only what is missing or due.

Existing CA and member pairs are reused, so re-running is harmless and members
never see their certificates change without a reason (expiry or new names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..models.cluster import EtcdClusterSpec, TLSMode
from ..pki import bundles, certs
from ..resources.secrets import build_secret
from .desired import ClusterIdentity

Existing = Mapping[str, Mapping[str, bytes]]  # secret name -> its data


def tls_secrets(
    identity: ClusterIdentity,
    spec: EtcdClusterSpec,
    members: int,
    existing: Existing,
    now: datetime,
    new_key: Callable[[], certs.PrivateKey] = certs.new_key,
    new_serial: Callable[[], int] = certs.x509.random_serial_number,
) -> list[dict[str, Any]]:
    """Secrets whose contents differ from `existing` (empty when nothing changes)."""
    names, owner = identity.names, identity.owner
    wanted: dict[str, tuple[dict[str, bytes], str]] = {}

    def authority(secret: str, common_name: str) -> bundles.Authority:
        data = existing.get(secret)
        if data and "tls.crt" in data and "tls.key" in data:
            return bundles.Authority.from_secret_data(data)
        ca = bundles.new_authority(common_name, now, new_key(), new_serial())
        wanted[secret] = (ca.secret_data(), "ca")
        return ca

    ordinals = range(max(members, spec.replicas))
    if spec.tls.peer.mode is TLSMode.SELF_SIGNED:
        peer_ca = authority(names.peer_ca_secret, f"{names.name}.{names.namespace} etcd peer CA")
        data = bundles.member_bundle(
            peer_ca, names, ordinals, "peer", now, new_key, new_serial, existing.get(names.peer_tls_secret)
        )
        wanted[names.peer_tls_secret] = (data, "peer-tls")
    if spec.tls.client.mode is TLSMode.SELF_SIGNED:
        client_ca = authority(names.client_ca_secret, f"{names.name}.{names.namespace} etcd client CA")
        data = bundles.member_bundle(
            client_ca, names, ordinals, "server", now, new_key, new_serial, existing.get(names.server_tls_secret)
        )
        wanted[names.server_tls_secret] = (data, "server-tls")
        current = existing.get(names.client_tls_secret)
        valid = (
            current
            and current.get("ca.crt") == certs.cert_pem(client_ca.cert)
            and not certs.due_for_renewal(certs.load_cert(current["tls.crt"]), now)
        )
        if not valid:
            wanted[names.client_tls_secret] = (
                bundles.client_bundle(client_ca, "etcd-operator", now, new_key(), new_serial()),
                "client-tls",
            )
    return [
        build_secret(name, names.namespace, owner, data, component)
        for name, (data, component) in wanted.items()
        if dict(existing.get(name) or {}) != data
    ]
