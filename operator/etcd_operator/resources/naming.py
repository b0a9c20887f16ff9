"""Every name the operator derives from an EtcdCluster, in one place."""

from __future__ import annotations

from dataclasses import dataclass

PEER_PORT = 2380
CLIENT_PORT = 2379
METRICS_PORT = 2381


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
    def domain(self) -> str:
        """The headless Service's DNS domain, which is also the SRV discovery domain."""
        return f"{self.peer_service}.{self.namespace}.svc.{self.cluster_domain}"

    def pod(self, ordinal: int) -> str:
        return f"{self.statefulset}-{ordinal}"

    def pod_fqdn(self, ordinal: int) -> str:
        return f"{self.pod(ordinal)}.{self.domain}"

    def peer_url(self, ordinal: int, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.pod_fqdn(ordinal)}:{PEER_PORT}"

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
