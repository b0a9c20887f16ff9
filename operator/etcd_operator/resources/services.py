"""The headless peer Service (pod DNS names, SRV records) and the client Service."""

from __future__ import annotations

from typing import Any

from ..models.cluster import EtcdClusterSpec, TLSMode
from .meta import Owner, metadata, selector
from .naming import CLIENT_PORT, PEER_PORT, ClusterNames


def port_names(spec: EtcdClusterSpec) -> tuple[str, str]:
    """Port names that make Kubernetes DNS publish etcd's SRV records: `_etcd-server-ssl._tcp.<svc>...`."""
    peer_tls = spec.tls.peer.mode is not TLSMode.NONE
    client_tls = spec.tls.client.mode is not TLSMode.NONE
    return ("etcd-server-ssl" if peer_tls else "etcd-server", "etcd-client-ssl" if client_tls else "etcd-client")


def build_peer_service(names: ClusterNames, spec: EtcdClusterSpec, owner: Owner) -> dict[str, Any]:
    peer, client = port_names(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(names.peer_service, names.namespace, owner, "peer"),
        "spec": {
            "clusterIP": "None",
            # Members must resolve each other before they are ready, or bootstrap deadlocks.
            "publishNotReadyAddresses": True,
            "selector": selector(owner.name),
            "ports": [
                {"name": peer, "port": PEER_PORT, "targetPort": PEER_PORT, "protocol": "TCP"},
                {"name": client, "port": CLIENT_PORT, "targetPort": CLIENT_PORT, "protocol": "TCP"},
            ],
        },
    }


def build_client_service(names: ClusterNames, spec: EtcdClusterSpec, owner: Owner) -> dict[str, Any]:
    _, client = port_names(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(names.client_service, names.namespace, owner, "client"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner.name),
            "ports": [{"name": client, "port": CLIENT_PORT, "targetPort": CLIENT_PORT, "protocol": "TCP"}],
        },
    }
