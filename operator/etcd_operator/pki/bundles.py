"""Secret contents for selfSigned TLS: a CA per side, member certificates, a client certificate.

One Secret per side holds every member's pair as `<pod>.crt` / `<pod>.key` next to
`ca.crt` (every CA the members trust); the StatefulSet mounts it whole and each pod picks its own files by
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


# Keys of a CA Secret besides the signer's tls.crt/tls.key: the rollover state, kept with the CAs it is about.
NEXT_CERT, NEXT_KEY = "next.crt", "next.key"  # a new CA, trusted but not signing yet
PREVIOUS_CERT = "previous.crt"  # the CA that signed before, still trusted
SIGNING_SINCE = "signing-since"  # when the signer took over from the previous CA (RFC 3339)
GENERATION = "generation"  # 1 for the cluster's first CA, +1 per rollover
ROLLOVER_REQUEST = "rollover-request"  # the last rollover request (annotation value) carried out
RESTARTING = "restarting"  # the old CA left the bundle; members are being restarted to trust only the new


@dataclass(frozen=True)
class CASet:
    """A CA Secret: the CA that signs and every CA that must be trusted, two while a rollover is under way.

    Members read their trusted CAs only at start, so a new CA is trusted beside the old one (and the
    members restarted) before it signs anything, and the old one stays trusted until every leaf it
    signed has been replaced. The state lives in the Secret beside the CAs, so a pass resumes it.
    """

    signer: Authority
    next: Authority | None = None
    previous: certs.x509.Certificate | None = None
    signing_since: datetime | None = None
    generation: int = 1
    request: str = ""
    restarting: bool = False

    @property
    def trusted(self) -> tuple[certs.x509.Certificate, ...]:
        """Oldest first, so the bundle does not change when the new CA takes over signing."""
        found = [self.signer.cert] + ([self.next.cert] if self.next else []) + ([self.previous] if self.previous else [])
        return tuple(sorted(found, key=lambda c: (c.not_valid_before_utc, c.serial_number)))

    def bundle(self) -> bytes:
        return b"".join(certs.cert_pem(c) for c in self.trusted)

    def secret_data(self) -> dict[str, bytes]:
        data = self.signer.secret_data()
        if self.next is not None:
            data[NEXT_CERT], data[NEXT_KEY] = certs.cert_pem(self.next.cert), certs.key_pem(self.next.key)
        if self.previous is not None:
            data[PREVIOUS_CERT] = certs.cert_pem(self.previous)
        if self.signing_since is not None:
            data[SIGNING_SINCE] = self.signing_since.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        if self.generation > 1:
            data[GENERATION] = str(self.generation).encode()
        if self.request:
            data[ROLLOVER_REQUEST] = self.request.encode()
        if self.restarting:
            data[RESTARTING] = b"true"
        return data

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> CASet:
        nxt = Authority(certs.load_cert(data[NEXT_CERT]), certs.load_key(data[NEXT_KEY])) if NEXT_CERT in data else None
        since = data.get(SIGNING_SINCE)
        return cls(
            signer=Authority.from_secret_data(data),
            next=nxt,
            previous=certs.load_cert(data[PREVIOUS_CERT]) if PREVIOUS_CERT in data else None,
            signing_since=datetime.strptime(since.decode(), "%Y-%m-%dT%H:%M:%S%z") if since else None,
            generation=int(data.get(GENERATION, b"1")),
            request=data.get(ROLLOVER_REQUEST, b"").decode(),
            restarting=data.get(RESTARTING) == b"true",
        )


def member_bundle(
    ca: CASet,
    names: ClusterNames,
    ordinals: range,
    side: str,
    now: datetime,
    new_key: KeyFactory,
    new_serial: SerialFactory,
    existing: Mapping[str, bytes] | None = None,
    lifetime: certs.Lifetime = certs.DEFAULT_LIFETIME,
) -> dict[str, bytes]:
    """`ca.crt` (every trusted CA) plus a pair per member; pairs the signer issued that are still valid and
    cover their names are kept."""
    existing = existing or {}
    signer = ca.signer
    data: dict[str, bytes] = {"ca.crt": ca.bundle()}
    for ordinal in ordinals:
        pod = names.pod(ordinal)
        hosts = names.member_hosts(ordinal)
        kept = existing.get(f"{pod}.crt"), existing.get(f"{pod}.key")
        if all(kept):
            cert = certs.load_cert(kept[0])  # type: ignore[arg-type]
            # A pair due only by age that this CA cannot extend stays: reissuing
            # it would change the files on every pass and gain nothing.
            if certs.issued_by(cert, signer.cert) and (
                not certs.due_for_renewal(cert, now, hosts, lifetime)
                or (certs.covers(cert, hosts) and not certs.can_extend(signer.cert, cert))
            ):
                data[f"{pod}.crt"], data[f"{pod}.key"] = kept  # type: ignore[assignment]
                continue
        key = new_key()
        cert = certs.issue(signer.cert, signer.key, key, f"{pod} {side}", hosts, now, new_serial(),
                           validity=lifetime.validity)  # fmt: skip
        data[f"{pod}.crt"], data[f"{pod}.key"] = certs.cert_pem(cert), certs.key_pem(key)
    return data


def client_bundle(
    ca: CASet,
    common_name: str,
    now: datetime,
    key: certs.PrivateKey,
    serial: int,
    lifetime: certs.Lifetime = certs.DEFAULT_LIFETIME,
) -> dict[str, bytes]:
    signer = ca.signer
    cert = certs.issue(
        signer.cert, signer.key, key, common_name, [], now, serial, usages=certs.CLIENT_ONLY, validity=lifetime.validity
    )
    return {"tls.crt": certs.cert_pem(cert), "tls.key": certs.key_pem(key), "ca.crt": ca.bundle()}
