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

from etcd_node import tls as node_tls
from etcd_node.findings import errors as node_errors

from .. import GROUP
from ..models.cluster import BootstrapMode, CertificateLifetime, EtcdClusterSpec, TLSMode, parse_duration
from ..pki import bundles, certs, crl
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from . import rollover
from .desired import ClusterIdentity
from .problems import Problem

Existing = Mapping[str, Mapping[str, bytes]]  # secret name -> its data
REISSUE_CA = f"{GROUP}/reissue-ca"  # annotation: "true" lets a pass create a CA whose Secret was lost


@dataclass(frozen=True)
class TLSPlan:
    secrets: list[dict[str, Any]] = field(default_factory=list)  # Secrets whose contents must change
    problems: list[Problem] = field(default_factory=list)
    trusted_ca: str = ""  # the pod template's rollover.TRUSTED_CA digest
    rollover: str = ""  # what a CA rollover is doing, "" when none is under way
    client_crl: bool = False  # the server-tls Secret holds crl.FILE: members get --client-crl-file
    retire: tuple[str, ...] = ()  # users' Secrets to delete: their certificates are revoked in the observed list


def tls_secrets(
    identity: ClusterIdentity,
    spec: EtcdClusterSpec,
    members: int,
    existing: Existing,
    now: datetime,
    *,
    bootstrapped: bool = False,
    reissue_ca: bool = False,
    rotate_ca: str = "",
    trusted_ca_live: str | None = None,
    gateway_client: bool = False,
    pod_certificates: bool = False,
    pod_certificates_live: bool = False,
    new_key: Callable[[], certs.PrivateKey] = certs.new_key,
    new_serial: Callable[[], int] = certs.x509.random_serial_number,
) -> TLSPlan:
    """Secrets whose contents differ from `existing`, and what stops issuing them.

    `bootstrapped`: members exist (or existed), so a missing CA is a loss, not a first start.
    `rotate_ca`: the rollover.ROTATE_CA annotation. `trusted_ca_live`: the TRUSTED_CA digest of the pod
    template that every member runs and is ready with; None while a rollout or a start is under way.
    `gateway_client`: etcd auth is (to be) on, so the operator needs its client certificate without a CommonName.
    `pod_certificates`: members get their own keys from their kubelets (pki.podcerts), so the peer and server
    Secrets hold only the CAs; `pod_certificates_live`: every member runs a template that mounts them. Until
    then the Secrets keep the pairs that members started from the Secret still read on each connection.
    """
    names, owner = identity.names, identity.owner
    lifetime = leaf_lifetime(spec.tls.certificates)
    problems: list[Problem] = []

    def authority(secret: str, common_name: str, side: str) -> tuple[bundles.CASet | None, bool]:
        """The side's CAs and whether they are new this pass (a new CA is never rolled over)."""
        data = existing.get(secret)
        if data and "tls.crt" in data and "tls.key" in data:
            ca = bundles.CASet.from_secret_data(data)
            end = ca.signer.cert.not_valid_after_utc
            if now >= end:
                problems.append(Problem("CAExpired", f"the {side} CA in Secret {secret} expired at "
                                        f"{end:%Y-%m-%dT%H:%M:%SZ}; no certificate can be "
                                        f"issued from it. Delete Secret {secret}, annotate the EtcdCluster with "
                                        f"{REISSUE_CA}=true and restart every member at once"))  # fmt: skip
                return None, False
            if certs.expiring(ca.signer.cert, now, certs.CA_WARN_BEFORE):
                problems.append(Problem("CAExpiring", f"the {side} CA in Secret {secret} expires at "
                                        f"{end:%Y-%m-%dT%H:%M:%SZ} and its rollover has not completed; "
                                        "certificates issued from it end then too"))  # fmt: skip
            return ca, False
        if bootstrapped and not reissue_ca:
            problems.append(Problem("CASecretMissing", f"Secret {secret} (the {side} CA) is missing but members "
                                    "exist and trust that CA; a new CA would cut them off from each other. Restore "
                                    f"the Secret from a backup, or annotate the EtcdCluster with {REISSUE_CA}=true to "
                                    "issue a new CA and new certificates, then restart every member at once "
                                    f"(kubectl delete pod -l app.kubernetes.io/instance={names.name})"))  # fmt: skip
            return None, False
        # A rollover request already on the cluster is not one for this CA.
        return bundles.CASet(new_authority(common_name), request=rotate_ca), True

    users = [c.name for c in spec.tls.clients or []]

    def leaf_secrets(side: str) -> tuple[str, ...]:
        if side == "peer":
            return (names.peer_tls_secret,)
        gateway = (names.gateway_client_secret,) if gateway_client else ()
        return (names.server_tls_secret, names.client_tls_secret, *gateway, *map(names.user_secret, users))

    def client_pair(ca: bundles.CASet, secret: str, common_name: str) -> dict[str, bytes]:
        """A client certificate Secret: the pair kept while the signer issued it and it is not due, else a new one."""
        current = existing.get(secret) or {}
        loaded = certs.load_cert(current["tls.crt"]) if "tls.crt" in current and "tls.key" in current else None
        if loaded is not None and certs.issued_by(loaded, ca.signer.cert) and not (
            certs.due_by_age(loaded, now, lifetime) and certs.can_extend(ca.signer.cert, loaded)
        ):
            return {"tls.crt": current["tls.crt"], "tls.key": current["tls.key"], "ca.crt": ca.bundle()}
        return bundles.client_bundle(ca, common_name, now, new_key(), new_serial(), lifetime)

    def held_by_kubelets(secret: str) -> bool:
        """The members' pairs of this Secret are their pod certificates: it holds none (any more)."""
        if not pod_certificates or secret not in (names.peer_tls_secret, names.server_tls_secret):
            return False
        return pod_certificates_live or not any(key.endswith(".key") for key in existing.get(secret) or {})

    def leaves_current(ca: bundles.CASet, side: str) -> bool:
        """Every leaf of the side was issued by `ca.signer`.

        Pod certificates are not in a Secret: the template names the signer (trust_digest), so once every
        member runs it, each member's certificate came from a request that this signer answered.
        """
        for secret in leaf_secrets(side):
            if held_by_kubelets(secret):
                if not restarted:
                    return False
                continue
            pems = [pem for key, pem in (existing.get(secret) or {}).items() if key.endswith(".crt") and key != "ca.crt"]
            if not pems or not all(certs.issued_by(certs.load_cert(pem), ca.signer.cert) for pem in pems):
                return False
        return True

    def member_data(ca: bundles.CASet, secret: str, side: str) -> dict[str, bytes]:
        if held_by_kubelets(secret):
            return {"ca.crt": ca.bundle()}
        return bundles.member_bundle(ca, names, range(members), side, now, new_key, new_serial, existing.get(secret),
                                     lifetime)  # fmt: skip

    def side_leaves(ca: bundles.CASet, side: str) -> dict[str, tuple[dict[str, bytes], str]]:
        """This side's leaf Secrets as they should be with `ca`."""
        if side == "peer":
            return {names.peer_tls_secret: (member_data(ca, names.peer_tls_secret, "peer"), "peer-tls")}
        server = member_data(ca, names.server_tls_secret, "server")
        if crl_file := revocations(ca):
            server[crl.FILE] = crl_file
        out = {names.server_tls_secret: (server, "server-tls"),
               names.client_tls_secret: (client_pair(ca, names.client_tls_secret, "etcd-operator"), "client-tls")}
        if gateway_client:
            out[names.gateway_client_secret] = (client_pair(ca, names.gateway_client_secret, ""), "gateway-client-tls")
        for user in users:
            out[names.user_secret(user)] = (client_pair(ca, names.user_secret(user), user), "user-tls")
        return out

    def revoked_users() -> dict[str, int | None]:
        """Users' Secrets whose user left spec.tls.clients -> the serial of their certificate (None: unreadable)."""
        gone: dict[str, int | None] = {}
        for secret, data in existing.items():
            if (user := names.user_of(secret)) is not None and user not in users:
                try:
                    gone[secret] = certs.load_cert(data["tls.crt"]).serial_number
                except (KeyError, ValueError):
                    gone[secret] = None
        return gone

    listed = crl.read((existing.get(names.server_tls_secret) or {}).get(crl.FILE))
    # An entry outlives every certificate it can name: those end at most `validity` after their revocation.
    kept_entries = {serial: when for serial, when in listed.items() if when + lifetime.validity + certs.CLOCK_SKEW > now}
    gone = revoked_users()
    entries = {**kept_entries, **{serial: now for serial in gone.values() if serial is not None and serial not in kept_entries}}
    # A Secret goes once the members' list names its certificate, never before.
    retire = tuple(secret for secret, serial in gone.items() if serial is None or serial in listed)
    if not gateway_client and names.gateway_client_secret in existing:
        retire += (names.gateway_client_secret,)  # auth is off and the operator's users are gone: not needed

    def revocations(ca: bundles.CASet) -> bytes | None:
        """The list's bytes: the current ones while they say the same and the signer signed them."""
        if not users and not entries:
            return None
        current = (existing.get(names.server_tls_secret) or {}).get(crl.FILE)
        if current and listed == entries and crl.signed_by(current, ca.signer):
            return current
        return crl.build(ca.signer, entries, now)

    def new_authority(common_name: str) -> bundles.Authority:
        return bundles.new_authority(common_name, now, new_key(), new_serial())

    found: list[tuple[str, str, str, bundles.CASet, bool]] = []
    for side, mode, secret, common_name in (
        ("peer", spec.tls.peer.mode, names.peer_ca_secret, f"{names.name}.{names.namespace} etcd peer CA"),
        ("client", spec.tls.client.mode, names.client_ca_secret, f"{names.name}.{names.namespace} etcd client CA"),
    ):
        if mode is TLSMode.SELF_SIGNED:
            ca, created = authority(secret, common_name, side)
            if ca is not None:
                found.append((side, secret, common_name, ca, created))
    # The members were started for the CAs as they are: every side shares the one pod template.
    restarted = trusted_ca_live is not None and trusted_ca_live == rollover.trust_digest(
        [f[3] for f in found], pod_certificates
    )
    wanted: dict[str, tuple[dict[str, bytes], str]] = {}
    authorities: dict[str, tuple[dict[str, bytes], str]] = {}
    final: list[bundles.CASet] = []
    doing: list[str] = []
    for side, secret, common_name, ca, created in found:
        stage = rollover.Stage(ca) if created else rollover.advance(
            ca, now, side=side, requested=rotate_ca, restarted=restarted,
            leaves_current=functools.partial(leaves_current, side=side), lifetime=lifetime,
            new_authority=functools.partial(new_authority, common_name),
        )  # fmt: skip
        final.append(stage.ca)
        doing += [stage.doing] if stage.doing else []
        authorities[secret] = (stage.ca.secret_data(), "ca")
        wanted.update(side_leaves(stage.ca, side))
    # Leaves first: a CA Secret that moved on while its leaves failed to be written would time the
    # delivery of certificates that were never delivered.
    wanted.update(authorities)
    secrets = [
        build_secret(name, names.namespace, owner, data, component)
        for name, (data, component) in wanted.items()
        if dict(existing.get(name) or {}) != data
    ]
    server = wanted.get(names.server_tls_secret, ({}, ""))[0]
    return TLSPlan(secrets, problems, rollover.trust_digest(final, pod_certificates), "; ".join(doing), crl.FILE in server,
                   retire if spec.tls.client.mode is TLSMode.SELF_SIGNED else ())  # fmt: skip


def leaf_lifetime(policy: CertificateLifetime) -> certs.Lifetime:
    return certs.Lifetime(parse_duration(policy.validity), parse_duration(policy.renew_before))


# What a Secret given with tls mode secret must hold (cert-manager's layout): the members mount it as is.
PROVIDED_TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")


def provided_tls_secrets(spec: EtcdClusterSpec) -> tuple[str, ...]:
    """The user's Secrets the members mount (tls mode secret), peer then client, each once."""
    names = [side.secret_name for side in (spec.tls.peer, spec.tls.client)
             if side.mode is TLSMode.SECRET and side.secret_name]  # fmt: skip
    return tuple(dict.fromkeys(names))


def provided_tls_problem(
    spec: EtcdClusterSpec,
    found: Mapping[str, Mapping[str, bytes] | None],
    names: ClusterNames,
    members: int,
    now: datetime,
) -> Problem | None:
    """Why the members cannot use the user's TLS Secrets, or None; names the Secret, what is wrong and the fix.

    The contents are checked by the agent's own checker (etcd_node.tls), for every member of `members`
    (its pod name is what etcd advertises), so a Secret the members would refuse is reported before
    they restart or a new member is added, in the words and codes the agent would use.
    """
    wrong, ending = [], []
    renew_before = parse_duration(spec.tls.certificates.renew_before)
    for name in provided_tls_secrets(spec):
        data = found.get(name)
        if data is None:
            wrong.append(f"Secret {name} does not exist")
        elif missing := [k for k in PROVIDED_TLS_KEYS if not data.get(k)]:
            wrong.append(f"Secret {name} has no {', '.join(missing)}")
    if wrong:
        return Problem("TLSSecretInvalid", "; ".join(wrong) + ": tls mode secret needs a Secret with tls.crt, "
                       "tls.key and ca.crt (as cert-manager writes them) in the cluster's namespace; members cannot "
                       "start without it")  # fmt: skip
    for side, prefix, tls in (("peer", "peer-", spec.tls.peer), ("client", "", spec.tls.client)):
        if tls.mode is not TLSMode.SECRET or not tls.secret_name:
            continue
        data, name = found[tls.secret_name] or {}, tls.secret_name
        files = node_tls.CertFiles(side, prefix, f"(Secret {name} tls.crt)", f"(Secret {name} tls.key)",
                                   f"(Secret {name} ca.crt)", client_cert_auth=True)  # fmt: skip
        loaded = node_tls.parse(files, data["tls.crt"], data["tls.key"], data["ca.crt"])
        srv = names.domain if side == "peer" and spec.bootstrap.mode is BootstrapMode.DNS_SRV else None
        hosts = [names.pod_fqdn(o) for o in range(members)] + ([srv] if srv else [])
        wrong += [f"[{f.code}] {f.message}: {f.fix}" for f in node_errors(node_tls.check(loaded, hosts, now, srv))]
        if loaded.cert is not None and loaded.cert.not_valid_after_utc - now < renew_before:
            ending.append(f"Secret {name} tls.crt ends {loaded.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    if wrong:
        return Problem("TLSSecretInvalid", "; ".join(wrong) + " (members refuse to start with it; running members "
                       "keep the certificate they loaded until they restart)")  # fmt: skip
    if ending:
        # Not the operator's to renew: say so while there is time, in the cluster's own renewal window.
        return Problem("TLSCertificateExpiring", "; ".join(ending) + f", within tls.certificates.renewBefore "
                       f"({spec.tls.certificates.renew_before}), and the operator does not renew certificates it did "
                       "not issue: renew the Secret (cert-manager renews its Certificates by itself; check its "
                       "Certificate's status) before then, or members refuse new connections once it ends")  # fmt: skip
    return None


@dataclass(frozen=True)
class IssuedCertificate:
    """When an operator-issued certificate ends: a CA, or the earliest leaf of a Secret (status and metrics)."""

    secret: str
    kind: str  # "ca", "next-ca" and "previous-ca" (during a rollover), or "leaf"
    not_after: float  # seconds since the epoch
    generation: int | None = None  # a CA's: 1 for the first, +1 per rollover


@functools.lru_cache(maxsize=512)
def _not_after(pem: bytes) -> float:
    return certs.load_cert(pem).not_valid_after_utc.timestamp()


def issued_certificates(names: ClusterNames, secrets: Existing) -> tuple[IssuedCertificate, ...]:
    """The notAfter of each CA the operator issued, and the earliest of each Secret's leaf certificates."""
    found = []
    for secret in (names.peer_ca_secret, names.client_ca_secret):
        data = secrets.get(secret) or {}
        generation = int(data.get(bundles.GENERATION, b"1"))
        for key, kind in (("tls.crt", "ca"), (bundles.NEXT_CERT, "next-ca"), (bundles.PREVIOUS_CERT, "previous-ca")):
            if pem := data.get(key):
                found.append(IssuedCertificate(secret, kind, _not_after(pem), generation))
    users = sorted(secret for secret in secrets if names.user_of(secret) is not None)
    for secret in (names.peer_tls_secret, names.server_tls_secret, names.client_tls_secret,
                   names.gateway_client_secret, *users):  # fmt: skip
        data = secrets.get(secret) or {}
        leaves = [_not_after(pem) for key, pem in data.items() if key.endswith(".crt") and key != "ca.crt"]
        if leaves:
            found.append(IssuedCertificate(secret, "leaf", min(leaves)))
    return tuple(found)
