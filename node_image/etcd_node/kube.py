"""A member's identity inside a Kubernetes pod, from the downward API and the headless Service.

The operator sets a few `ETCD_NODE_*` variables instead of templating etcd's
long per-member flag lists; the StatefulSet's stable pod names and the headless
Service's DNS names give every member a fixed name and peer URL. Every name,
URL and variable comes from `contract`, the module the operator builds the
StatefulSet and its `member add` calls with, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import contract


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

    @property
    def statefulset(self) -> str:
        return _split(self.pod)[0]

    @property
    def ordinal(self) -> int:
        return _split(self.pod)[1]

    @property
    def domain(self) -> str:
        """The headless Service's domain: also the DNS SRV discovery domain."""
        return contract.service_domain(self.service, self.namespace, self.cluster_domain)

    def peer_url(self, pod: str | None = None) -> str:
        return self._url(self.peer_scheme, pod or self.pod, contract.PEER_PORT)

    def client_url(self, pod: str | None = None) -> str:
        return self._url(self.client_scheme, pod or self.pod, contract.CLIENT_PORT)

    def _url(self, scheme: str, pod: str, port: int) -> str:
        return contract.member_url(scheme, pod, self.service, self.namespace, self.cluster_domain, port)


def _split(pod: str) -> tuple[str, int]:
    split = contract.split_pod_name(pod)
    if split is None:
        raise PodIdentityError(f"pod name {pod!r} has no StatefulSet ordinal (expected NAME-N)")
    return split


def identity_from_env(environ: Mapping[str, str]) -> PodIdentity | None:
    """None outside Kubernetes (no ETCD_NODE_POD_NAME)."""
    pod = environ.get(contract.ENV_POD_NAME)
    if not pod:
        return None
    missing = [v for v in (contract.ENV_POD_NAMESPACE, contract.ENV_SERVICE) if not environ.get(v)]
    if missing:
        raise PodIdentityError(f"{contract.ENV_POD_NAME} is set but {', '.join(missing)} is not")
    _split(pod)
    return PodIdentity(
        pod=pod,
        namespace=environ[contract.ENV_POD_NAMESPACE],
        service=environ[contract.ENV_SERVICE],
        cluster_domain=environ.get(contract.ENV_CLUSTER_DOMAIN, "cluster.local"),
        peer_scheme=environ.get(contract.ENV_PEER_SCHEME, "http"),
        client_scheme=environ.get(contract.ENV_CLIENT_SCHEME, "http"),
    )


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
        "listen-peer-urls": f"{identity.peer_scheme}://0.0.0.0:{contract.PEER_PORT}",
        "listen-client-urls": f"{identity.client_scheme}://0.0.0.0:{contract.CLIENT_PORT}",
    }
    mode = environ.get(contract.ENV_BOOTSTRAP, "static")
    raw_initial = environ.get(contract.ENV_INITIAL_MEMBERS, "1")
    try:
        initial = int(raw_initial)
    except ValueError:
        raise PodIdentityError(f"{contract.ENV_INITIAL_MEMBERS}={raw_initial!r} is not a number of members") from None
    if identity.ordinal >= initial:
        options["initial-cluster-state"] = "existing"
    elif mode == "static":
        pods = [contract.pod_name(identity.statefulset, i) for i in range(initial)]
        options["initial-cluster"] = ",".join(f"{pod}={identity.peer_url(pod)}" for pod in pods)
    elif mode == "dns-srv":
        options["discovery-srv"] = identity.domain
        if environ.get(contract.ENV_SRV_NAME):
            options["discovery-srv-name"] = environ[contract.ENV_SRV_NAME]
    elif mode != "discovery":
        raise PodIdentityError(f"{contract.ENV_BOOTSTRAP}={mode!r}: use static, dns-srv or discovery")
    return options
