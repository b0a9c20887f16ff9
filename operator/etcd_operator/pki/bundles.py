"""Secret contents for selfSigned TLS: a CA per side, member certificates, a client certificate.

One Secret per side holds every member's pair as `<pod>.crt` / `<pod>.key` next to
`ca.crt`; the StatefulSet mounts it whole and each pod picks its own files by
name, which keeps per-member certificates possible with a single pod template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..resources.naming import ClusterNames
from . import certs

KeyFactory = Callable[[], certs.PrivateKey]
SerialFactory = Callable[[], int]


@dataclass(frozen=True)
class Authority:
    cert: certs.x509.Certificate
    key: certs.PrivateKey

    def secret_data(self) -> dict[str, bytes]:
        return {"tls.crt": certs.cert_pem(self.cert), "tls.key": certs.key_pem(self.key)}

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> Authority:
        return cls(certs.load_cert(data["tls.crt"]), certs.load_key(data["tls.key"]))


def new_authority(common_name: str, now: datetime, key: certs.PrivateKey, serial: int) -> Authority:
    return Authority(certs.issue_ca(key, common_name, now, serial), key)


def member_bundle(
    ca: Authority,
    names: ClusterNames,
    ordinals: range,
    side: str,
    now: datetime,
    new_key: KeyFactory,
    new_serial: SerialFactory,
    existing: Mapping[str, bytes] | None = None,
    lifetime: certs.Lifetime = certs.DEFAULT_LIFETIME,
) -> dict[str, bytes]:
    """`ca.crt` plus a pair per member; pairs that are still valid and cover their names are kept."""
    existing = existing or {}
    data: dict[str, bytes] = {"ca.crt": certs.cert_pem(ca.cert)}
    for ordinal in ordinals:
        pod = names.pod(ordinal)
        hosts = names.member_hosts(ordinal)
        kept = existing.get(f"{pod}.crt"), existing.get(f"{pod}.key")
        if all(kept) and existing.get("ca.crt") == data["ca.crt"]:
            cert = certs.load_cert(kept[0])  # type: ignore[arg-type]
            # A pair due only by age that this CA cannot extend stays: reissuing
            # it would change the files on every pass and gain nothing.
            if not certs.due_for_renewal(cert, now, hosts, lifetime) or (
                certs.covers(cert, hosts) and not certs.can_extend(ca.cert, cert)
            ):
                data[f"{pod}.crt"], data[f"{pod}.key"] = kept  # type: ignore[assignment]
                continue
        key = new_key()
        cert = certs.issue(ca.cert, ca.key, key, f"{pod} {side}", hosts, now, new_serial(), validity=lifetime.validity)
        data[f"{pod}.crt"], data[f"{pod}.key"] = certs.cert_pem(cert), certs.key_pem(key)
    return data


def client_bundle(
    ca: Authority,
    common_name: str,
    now: datetime,
    key: certs.PrivateKey,
    serial: int,
    lifetime: certs.Lifetime = certs.DEFAULT_LIFETIME,
) -> dict[str, bytes]:
    cert = certs.issue(
        ca.cert, ca.key, key, common_name, [], now, serial, usages=certs.CLIENT_ONLY, validity=lifetime.validity
    )
    return {"tls.crt": certs.cert_pem(cert), "tls.key": certs.key_pem(key), "ca.crt": certs.cert_pem(ca.cert)}
