"""Every name the operator derives from an EtcdCluster, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from etcd_node import contract
from etcd_node.contract import CLIENT_PORT, METRICS_PORT, PEER_PORT

__all__ = ["CLIENT_PORT", "METRICS_PORT", "PEER_PORT", "ClusterNames"]


@dataclass(frozen=True)
class ClusterNames:
    name: str
    namespace: str
    cluster_domain: str = "cluster.local"

    @property
    def peer_service(self) -> str:
        """Headless Service: stable pod DNS names and the SRV records members bootstrap from."""
        return self.name

    @property
    def client_service(self) -> str:
        return f"{self.name}-client"

    @property
    def statefulset(self) -> str:
        return self.name

    @property
    def pdb(self) -> str:
        return self.name

    @property
    def peer_ca_secret(self) -> str:
        return f"{self.name}-peer-ca"

    @property
    def client_ca_secret(self) -> str:
        return f"{self.name}-client-ca"

    @property
    def peer_tls_secret(self) -> str:
        return f"{self.name}-peer-tls"

    @property
    def server_tls_secret(self) -> str:
        return f"{self.name}-server-tls"

    @property
    def client_tls_secret(self) -> str:
        """Client certificate for the operator and for users (tls.crt, tls.key, ca.crt)."""
        return f"{self.name}-client-tls"

    @property
    def discovery_tls_secret(self) -> str:
        """This cluster's own client certificate for its discovery cluster (bootstrap.discoveryClusterRef)."""
        return f"{self.name}-discovery-tls"

    def user_secret(self, user: str) -> str:
        """A user's own client certificate (spec.tls.clients)."""
        return f"{self.name}-user-{user}"

    def user_of(self, secret: str) -> str | None:
        """The user whose certificate Secret this is, or None."""
        prefix = f"{self.name}-user-"
        return secret[len(prefix):] if secret.startswith(prefix) else None

    @property
    def gateway_client_secret(self) -> str:
        """The operator's client certificate without a CommonName, for etcd's JSON gateway once auth is on."""
        return f"{self.name}-gateway-client-tls"

    @property
    def auth_secret(self) -> str:
        """The operator's etcd password (username, password), made once a user of tls.clients has access."""
        return f"{self.name}-etcd-auth"

    @property
    def restore_secret(self) -> str:
        """The restore request (bootstrap.restore), mounted by the members only while the cluster bootstraps."""
        return f"{self.name}-restore"

    @property
    def recovery_secret(self) -> str:
        """The quorum recovery request (spec.recovery), mounted by the members while a recovery is under way."""
        return f"{self.name}-recovery"

    @property
    def domain(self) -> str:
        """The headless Service's DNS domain, which is also the SRV discovery domain."""
        return contract.service_domain(self.peer_service, self.namespace, self.cluster_domain)

    def pod(self, ordinal: int) -> str:
        return contract.pod_name(self.statefulset, ordinal)

    def pod_fqdn(self, ordinal: int) -> str:
        return f"{self.pod(ordinal)}.{self.domain}"

    def _member_url(self, ordinal: int, tls: bool, port: int) -> str:
        scheme = "https" if tls else "http"
        return contract.member_url(scheme, self.pod(ordinal), self.peer_service, self.namespace, self.cluster_domain, port)

    def peer_url(self, ordinal: int, tls: bool) -> str:
        """The peer URL etcd-node advertises for this ordinal, and the one `member add` names."""
        return self._member_url(ordinal, tls, PEER_PORT)

    def member_client_url(self, ordinal: int, tls: bool) -> str:
        """One member's own client URL (reachable without the client Service)."""
        return self._member_url(ordinal, tls, CLIENT_PORT)

    def ordinal_in_url(self, url: str) -> int | None:
        """The ordinal of this cluster's pod that a member URL names; None for anything else."""
        return contract.ordinal_in_url(url, self.statefulset, self.peer_service)

    def client_url(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.client_service}.{self.namespace}.svc.{self.cluster_domain}:{CLIENT_PORT}"

    def member_hosts(self, ordinal: int) -> list[str]:
        """Names a member's certificates must cover: its own, the SRV domain, and the client Service's."""
        pod = self.pod(ordinal)
        client = self.client_service
        return [
            self.pod_fqdn(ordinal),
            f"{pod}.{self.peer_service}.{self.namespace}.svc",
            f"{pod}.{self.peer_service}.{self.namespace}",
            self.domain,
            f"{client}.{self.namespace}.svc.{self.cluster_domain}",
            f"{client}.{self.namespace}.svc",
            f"{client}.{self.namespace}",
            client,
            "localhost",
            "127.0.0.1",
        ]
