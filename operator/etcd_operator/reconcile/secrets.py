"""Which TLS Secrets a selfSigned cluster needs, issuing only what is missing or due.

Existing CA and member pairs are reused, so re-running is harmless and members
never see their certificates change without a reason (expiry or new names).
Runs on every pass with the pass's clock, so certificates are renewed in a
cluster nobody touches.

A CA is created only for a cluster that has no members yet. Members read their
trusted CA once at start: a CA Secret that disappears under running members
and is silently replaced would make every restarted member distrust the others,
an outage. Such a loss is reported (`CASecretMissing`) until the Secret is
restored, or until the user asks for a new CA with the REISSUE_CA annotation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import GROUP
from ..models.cluster import CertificateLifetime, EtcdClusterSpec, TLSMode, parse_duration
from ..pki import bundles, certs
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from .desired import ClusterIdentity
from .problems import Problem

Existing = Mapping[str, Mapping[str, bytes]]  # secret name -> its data
REISSUE_CA = f"{GROUP}/reissue-ca"  # annotation: "true" lets a pass create a CA whose Secret was lost


@dataclass(frozen=True)
class TLSPlan:
    secrets: list[dict[str, Any]] = field(default_factory=list)  # Secrets whose contents must change
    problems: list[Problem] = field(default_factory=list)


def tls_secrets(
    identity: ClusterIdentity,
    spec: EtcdClusterSpec,
    members: int,
    existing: Existing,
    now: datetime,
    *,
    bootstrapped: bool = False,
    reissue_ca: bool = False,
    new_key: Callable[[], certs.PrivateKey] = certs.new_key,
    new_serial: Callable[[], int] = certs.x509.random_serial_number,
) -> TLSPlan:
    """Secrets whose contents differ from `existing`, and what stops issuing them.

    `bootstrapped`: members exist (or existed), so a missing CA is a loss, not a first start.
    """
    names, owner = identity.names, identity.owner
    lifetime = leaf_lifetime(spec.tls.certificates)
    wanted: dict[str, tuple[dict[str, bytes], str]] = {}
    problems: list[Problem] = []

    def authority(secret: str, common_name: str, side: str) -> bundles.Authority | None:
        data = existing.get(secret)
        if data and "tls.crt" in data and "tls.key" in data:
            ca = bundles.Authority.from_secret_data(data)
            if now >= ca.cert.not_valid_after_utc:
                problems.append(Problem("CAExpired", f"the {side} CA in Secret {secret} expired at "
                                        f"{ca.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}; no certificate can be "
                                        f"issued from it. Delete Secret {secret}, annotate the EtcdCluster with "
                                        f"{REISSUE_CA}=true and restart every member at once"))  # fmt: skip
                return None
            if certs.expiring(ca.cert, now, certs.CA_WARN_BEFORE):
                problems.append(Problem("CAExpiring", f"the {side} CA in Secret {secret} expires at "
                                        f"{ca.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}; certificates issued "
                                        "from it end then too. Plan a CA rollover before that date"))  # fmt: skip
            return ca
        if bootstrapped and not reissue_ca:
            problems.append(Problem("CASecretMissing", f"Secret {secret} (the {side} CA) is missing but members "
                                    "exist and trust that CA; a new CA would cut them off from each other. Restore "
                                    f"the Secret from a backup, or annotate the EtcdCluster with {REISSUE_CA}=true to "
                                    "issue a new CA and new certificates, then restart every member at once "
                                    f"(kubectl delete pod -l app.kubernetes.io/instance={names.name})"))  # fmt: skip
            return None
        ca = bundles.new_authority(common_name, now, new_key(), new_serial())
        wanted[secret] = (ca.secret_data(), "ca")
        return ca

    ordinals = range(members)
    if spec.tls.peer.mode is TLSMode.SELF_SIGNED:
        peer_ca = authority(names.peer_ca_secret, f"{names.name}.{names.namespace} etcd peer CA", "peer")
        if peer_ca is not None:
            data = bundles.member_bundle(
                peer_ca, names, ordinals, "peer", now, new_key, new_serial, existing.get(names.peer_tls_secret), lifetime
            )
            wanted[names.peer_tls_secret] = (data, "peer-tls")
    if spec.tls.client.mode is TLSMode.SELF_SIGNED:
        client_ca = authority(names.client_ca_secret, f"{names.name}.{names.namespace} etcd client CA", "client")
        if client_ca is not None:
            data = bundles.member_bundle(
                client_ca, names, ordinals, "server", now, new_key, new_serial, existing.get(names.server_tls_secret),
                lifetime,
            )
            wanted[names.server_tls_secret] = (data, "server-tls")
            current = existing.get(names.client_tls_secret)
            valid = (
                current
                and current.get("ca.crt") == certs.cert_pem(client_ca.cert)
                and "tls.crt" in current
                and not (
                    certs.due_by_age(loaded := certs.load_cert(current["tls.crt"]), now, lifetime)
                    and certs.can_extend(client_ca.cert, loaded)
                )
            )
            if not valid:
                wanted[names.client_tls_secret] = (
                    bundles.client_bundle(client_ca, "etcd-operator", now, new_key(), new_serial(), lifetime),
                    "client-tls",
                )
    secrets = [
        build_secret(name, names.namespace, owner, data, component)
        for name, (data, component) in wanted.items()
        if dict(existing.get(name) or {}) != data
    ]
    return TLSPlan(secrets, problems)


def leaf_lifetime(policy: CertificateLifetime) -> certs.Lifetime:
    return certs.Lifetime(parse_duration(policy.validity), parse_duration(policy.renew_before))


# What a Secret given with tls mode secret must hold (cert-manager's layout): the members mount it as is.
PROVIDED_TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")


def provided_tls_secrets(spec: EtcdClusterSpec) -> tuple[str, ...]:
    """The user's Secrets the members mount (tls mode secret), peer then client, each once."""
    names = [side.secret_name for side in (spec.tls.peer, spec.tls.client)
             if side.mode is TLSMode.SECRET and side.secret_name]  # fmt: skip
    return tuple(dict.fromkeys(names))


def provided_tls_problem(spec: EtcdClusterSpec, found: Mapping[str, Mapping[str, bytes] | None]) -> Problem | None:
    """Why the members cannot mount the user's TLS Secrets, or None; names the Secret, the keys and the fix."""
    wrong = []
    for name in provided_tls_secrets(spec):
        data = found.get(name)
        if data is None:
            wrong.append(f"Secret {name} does not exist")
        elif missing := [k for k in PROVIDED_TLS_KEYS if not data.get(k)]:
            wrong.append(f"Secret {name} has no {', '.join(missing)}")
    if not wrong:
        return None
    return Problem("TLSSecretInvalid", "; ".join(wrong) + ": tls mode secret needs a Secret with tls.crt, tls.key "
                   "and ca.crt (as cert-manager writes them) in the cluster's namespace; members cannot start "
                   "without it")  # fmt: skip


@dataclass(frozen=True)
class IssuedCertificate:
    """When an operator-issued certificate ends: a CA, or the earliest leaf of a Secret (status and metrics)."""

    secret: str
    kind: str  # "ca" or "leaf"
    not_after: float  # seconds since the epoch


@functools.lru_cache(maxsize=512)
def _not_after(pem: bytes) -> float:
    return certs.load_cert(pem).not_valid_after_utc.timestamp()


def issued_certificates(names: ClusterNames, secrets: Existing) -> tuple[IssuedCertificate, ...]:
    """The notAfter of each CA the operator issued, and the earliest of each Secret's leaf certificates."""
    found = []
    for secret in (names.peer_ca_secret, names.client_ca_secret):
        if pem := (secrets.get(secret) or {}).get("tls.crt"):
            found.append(IssuedCertificate(secret, "ca", _not_after(pem)))
    for secret in (names.peer_tls_secret, names.server_tls_secret, names.client_tls_secret):
        data = secrets.get(secret) or {}
        leaves = [_not_after(pem) for key, pem in data.items() if key.endswith(".crt") and key != "ca.crt"]
        if leaves:
            found.append(IssuedCertificate(secret, "leaf", min(leaves)))
    return tuple(found)
