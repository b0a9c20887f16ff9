"""Bootstrapping through another EtcdCluster (bootstrap.discoveryClusterRef): what the members get of it. Pure.

A cluster B that bootstraps through cluster A's etcd (v3 discovery) needs, for
its first start only, A's client URL and, when A checks client certificates, a
certificate A's client CA signed. B's members never see A's own Secrets: B's
pass issues B a certificate of its own from A's client CA, with a CommonName
that names B (`discovery_user`), into a Secret B owns (`<B>-discovery-tls`).

What that certificate can do: A's members accept any certificate their client
CA signed. Without etcd auth on A, it is a full client of A, like A's operator
certificate: the difference is that it is B's own identity (revoked by deleting
it, or by turning A's auth on without a user for it), lives a day at most, and
exists only while B bootstraps. Once A enforces etcd auth, etcd maps the
CommonName to a user, and `discovery_grant` names the user, the role and the one
key prefix the registry needs, for the auth management to create.

Once B has been Available, its initial members have all registered and the
discovery service is never asked again (a restarted member starts from its
data; a new one joins from B's member list), so the Secret is deleted. The pod
template keeps the discovery variables and an optional volume of B's own
Secret, taken from the live StatefulSet rather than from A: deleting the
Secret, or A, changes nothing in the template and restarts no member.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..models.cluster import EtcdClusterSpec
from ..pki import bundles, certs
from ..resources.naming import ClusterNames
from ..resources.secrets import build_secret
from .desired import ClusterIdentity
from .observed import DiscoveryService
from .problems import Problem
from .secrets import leaf_lifetime

REGISTRY = "/_etcd/registry"  # etcd's v3 discovery keeps every cluster's keys under <REGISTRY>/<token>/
# At most a day, renewed a third of it before its end; shorter when the cluster's own leaves are.
DISCOVERY_LIFETIME = certs.Lifetime(timedelta(hours=24), timedelta(hours=8))
MAX_COMMON_NAME = 64  # X.509's upper bound for a CommonName


def discovery_user(names: ClusterNames) -> str:
    """The discovery certificate's CommonName, and the etcd user it is once the discovery cluster enforces auth.

    `discovery:<namespace>/<name>`: neither part holds ':' or '/', so no two clusters share it. Longer
    than a CommonName may be, it keeps its start and ends with a digest of the whole.
    """
    full = f"discovery:{names.namespace}/{names.name}"
    if len(full) <= MAX_COMMON_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:16]
    return f"{full[: MAX_COMMON_NAME - len(digest) - 1]}-{digest}"


def registry_prefix(token: str) -> str:
    """The keys a cluster's discovery reads and writes in the discovery cluster: `_config/size` and its members."""
    return f"{REGISTRY}/{token}/"


@dataclass(frozen=True)
class DiscoveryGrant:
    """What the discovery cluster's etcd auth would allow the credential: read and write under `prefix`, no more."""

    user: str  # the certificate's CommonName: etcd's user when client-cert-auth and auth are on
    role: str
    prefix: str  # readwrite on [prefix, prefix_end): etcdctl role grant-permission ROLE readwrite PREFIX --prefix


def discovery_grant(names: ClusterNames, token: str) -> DiscoveryGrant:
    """The seam for etcd auth on the discovery cluster: the user and role to create, and their one prefix."""
    user = discovery_user(names)
    return DiscoveryGrant(user=user, role=user, prefix=registry_prefix(token))


def discovery_lifetime(spec: EtcdClusterSpec) -> certs.Lifetime:
    """DISCOVERY_LIFETIME, or the cluster's own leaf policy (spec.tls.certificates) where that is shorter."""
    own = leaf_lifetime(spec.tls.certificates)
    return certs.Lifetime(min(own.validity, DISCOVERY_LIFETIME.validity),
                          min(own.renew_before, DISCOVERY_LIFETIME.renew_before))  # fmt: skip


def live_discovery(statefulset: Mapping[str, Any] | None) -> tuple[str, bool] | None:
    """(endpoints, presents a certificate) as the live pod template has them; None without a StatefulSet."""
    if statefulset is None:
        return None
    containers = statefulset.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    env = {e.get("name"): e.get("value", "") for e in containers[0].get("env") or []}
    return str(env.get("ETCD_DISCOVERY_ENDPOINTS") or ""), "ETCD_DISCOVERY_CERT" in env


@dataclass(frozen=True)
class DiscoveryPlan:
    endpoints: str = ""  # the template's ETCD_DISCOVERY_ENDPOINTS
    tls_secret: str = ""  # the Secret the members mount as their discovery credential ("" : none)
    secret: dict[str, Any] | None = None  # the credential Secret to write (new, renewed, or a new CA bundle)
    retire: bool = False  # delete the credential Secret: nobody needs it any more
    wait: str = ""  # members cannot be started yet: why
    problem: Problem | None = None


def plan_discovery(
    identity: ClusterIdentity,
    spec: EtcdClusterSpec,
    observed: DiscoveryService,
    live: tuple[str, bool] | None,
    bootstrapped: bool,
    now: datetime,
    new_key: Callable[[], certs.PrivateKey] = certs.new_key,
    new_serial: Callable[[], int] = certs.x509.random_serial_number,
) -> DiscoveryPlan:
    """The members' discovery inputs, and B's own discovery credential: issued, renewed, kept or retired.

    `live`: the live template's discovery inputs (`live_discovery`), which win over the discovery
    cluster's once members exist. `bootstrapped`: the cluster has been Available, so every initial member
    registered and nothing asks the discovery service again.
    """
    if spec.bootstrap.discovery_cluster_ref is None:
        return DiscoveryPlan()
    names, ref = identity.names, spec.bootstrap.discovery_cluster_ref.name
    endpoints, tls = live if live is not None else (observed.endpoints, bool(observed.client_ca_secret))
    mounted = names.discovery_tls_secret if tls else ""
    current = observed.credential
    if bootstrapped or not tls:
        return DiscoveryPlan(endpoints, mounted, retire=current is not None)
    ca_data = observed.client_ca
    authority, why = None, ""
    if not observed.client_ca_secret:
        why = f"EtcdCluster {ref} is not readable, or no longer checks client certificates with its own CA"
    elif ca_data is None:
        why = f"Secret {observed.client_ca_secret} (EtcdCluster {ref}'s client CA) does not exist yet"
    else:
        try:
            authority = bundles.CASet.from_secret_data(ca_data)
        except (KeyError, ValueError) as exc:
            why = f"Secret {observed.client_ca_secret} holds no usable CA ({exc})"
    if authority is None:
        message = (f"no discovery certificate can be issued from EtcdCluster {ref}'s client CA: {why}; "
                   "members start once it can")  # fmt: skip
        if live is None:
            return DiscoveryPlan(endpoints, mounted, wait=message)
        # Members run already: what they mount stays as it is until the CA can be read again.
        return DiscoveryPlan(endpoints, mounted, problem=Problem("WaitingForDiscovery", message))
    data = discovery_credential(authority, discovery_user(names), current, now, discovery_lifetime(spec),
                                new_key, new_serial)  # fmt: skip
    secret = None
    if dict(current or {}) != data:
        secret = build_secret(names.discovery_tls_secret, names.namespace, identity.owner, data, "discovery-tls")
    return DiscoveryPlan(endpoints, mounted, secret=secret)


def discovery_credential(
    ca: bundles.CASet,
    common_name: str,
    current: Mapping[str, bytes] | None,
    now: datetime,
    lifetime: certs.Lifetime,
    new_key: Callable[[], certs.PrivateKey],
    new_serial: Callable[[], int],
) -> dict[str, bytes]:
    """tls.crt/tls.key (a client-only certificate for `common_name`) and ca.crt: every CA of the discovery
    cluster's client side, which signs its members' server certificates too. The pair is kept while the
    signer issued it, it names `common_name` and it is not due; ca.crt follows a rollover of that CA."""
    current = current or {}
    if "tls.crt" in current and "tls.key" in current:
        try:
            cert = certs.load_cert(current["tls.crt"])
        except ValueError:
            cert = None
        if (cert is not None and certs.issued_by(cert, ca.signer.cert) and _common_name(cert) == common_name
                and not (certs.due_by_age(cert, now, lifetime) and certs.can_extend(ca.signer.cert, cert))):  # fmt: skip
            return {"tls.crt": current["tls.crt"], "tls.key": current["tls.key"], "ca.crt": ca.bundle()}
    return bundles.client_bundle(ca, common_name, now, new_key(), new_serial(), lifetime)


def _common_name(cert: certs.x509.Certificate) -> str:
    found = cert.subject.get_attributes_for_oid(certs.NameOID.COMMON_NAME)
    return str(found[0].value) if found else ""
