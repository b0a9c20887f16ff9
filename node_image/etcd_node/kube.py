"""A member's identity inside a Kubernetes pod, from the downward API and the headless Service.

The operator sets a few `ETCD_NODE_*` variables instead of templating etcd's
long per-member flag lists; the StatefulSet's stable pod names and the headless
Service's DNS names give every member a fixed name and peer URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_ORDINAL = re.compile(r"^(?P<set>.+)-(?P<ordinal>\d+)$")


class PodIdentityError(ValueError):
    """The pod's environment does not describe a StatefulSet member."""


@dataclass(frozen=True)
class PodIdentity:
    pod: str
    namespace: str
    service: str
    cluster_domain: str = "cluster.local"
    peer_scheme: str = "http"
    client_scheme: str = "http"
    peer_port: int = 2380
    client_port: int = 2379

    @property
    def statefulset(self) -> str:
        return _split(self.pod)[0]

    @property
    def ordinal(self) -> int:
        return _split(self.pod)[1]

    @property
    def domain(self) -> str:
        """The headless Service's domain: also the DNS SRV discovery domain."""
        return f"{self.service}.{self.namespace}.svc.{self.cluster_domain}"

    def fqdn(self, pod: str | None = None) -> str:
        return f"{pod or self.pod}.{self.domain}"

    def peer_url(self, pod: str | None = None) -> str:
        return f"{self.peer_scheme}://{self.fqdn(pod)}:{self.peer_port}"

    def client_url(self, pod: str | None = None) -> str:
        return f"{self.client_scheme}://{self.fqdn(pod)}:{self.client_port}"


def _split(pod: str) -> tuple[str, int]:
    match = _ORDINAL.match(pod)
    if not match:
        raise PodIdentityError(f"pod name {pod!r} has no StatefulSet ordinal (expected NAME-N)")
    return match["set"], int(match["ordinal"])


def identity_from_env(environ: Mapping[str, str]) -> PodIdentity | None:
    """None outside Kubernetes (no ETCD_NODE_POD_NAME)."""
    pod = environ.get("ETCD_NODE_POD_NAME")
    if not pod:
        return None
    missing = [v for v in ("ETCD_NODE_POD_NAMESPACE", "ETCD_NODE_SERVICE") if not environ.get(v)]
    if missing:
        raise PodIdentityError(f"ETCD_NODE_POD_NAME is set but {', '.join(missing)} is not")
    identity = PodIdentity(
        pod=pod,
        namespace=environ["ETCD_NODE_POD_NAMESPACE"],
        service=environ["ETCD_NODE_SERVICE"],
        cluster_domain=environ.get("ETCD_NODE_CLUSTER_DOMAIN", "cluster.local"),
        peer_scheme=environ.get("ETCD_NODE_PEER_SCHEME", "http"),
        client_scheme=environ.get("ETCD_NODE_CLIENT_SCHEME", "http"),
        peer_port=int(environ.get("ETCD_NODE_PEER_PORT", "2380")),
        client_port=int(environ.get("ETCD_NODE_CLIENT_PORT", "2379")),
    )
    _split(pod)
    return identity


def derived_options(identity: PodIdentity, environ: Mapping[str, str]) -> dict[str, str]:
    """etcd options implied by the pod's identity; explicit flags and ETCD_* variables win over these.

    Bootstrap (`ETCD_NODE_BOOTSTRAP`): `static` lists the StatefulSet's first
    `ETCD_NODE_INITIAL_MEMBERS` pods; `dns-srv` points etcd at the headless
    Service's SRV records. A pod beyond the initial members joins as existing.
    """
    options = {
        "name": identity.pod,
        "initial-advertise-peer-urls": identity.peer_url(),
        "advertise-client-urls": identity.client_url(),
        "listen-peer-urls": f"{identity.peer_scheme}://0.0.0.0:{identity.peer_port}",
        "listen-client-urls": f"{identity.client_scheme}://0.0.0.0:{identity.client_port}",
    }
    mode = environ.get("ETCD_NODE_BOOTSTRAP", "static")
    initial = int(environ.get("ETCD_NODE_INITIAL_MEMBERS", "1"))
    if identity.ordinal >= initial:
        options["initial-cluster-state"] = "existing"
    elif mode == "static":
        options["initial-cluster"] = ",".join(
            f"{identity.statefulset}-{i}={identity.peer_url(f'{identity.statefulset}-{i}')}" for i in range(initial)
        )
    elif mode == "dns-srv":
        options["discovery-srv"] = identity.domain
        if environ.get("ETCD_NODE_SRV_NAME"):
            options["discovery-srv-name"] = environ["ETCD_NODE_SRV_NAME"]
    elif mode != "discovery":
        raise PodIdentityError(f"ETCD_NODE_BOOTSTRAP={mode!r}: use static, dns-srv or discovery")
    return options
