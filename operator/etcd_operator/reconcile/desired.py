"""Spec -> the Kubernetes objects that should exist (Secrets aside: their contents come from pki)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models.cluster import EtcdClusterSpec, TLSMode
from ..resources.meta import Owner
from ..resources.naming import ClusterNames
from ..resources.pdb import build_pdb
from ..resources.services import build_client_service, build_peer_service
from ..resources.statefulset import MemberTemplateInputs, build_statefulset


@dataclass(frozen=True)
class ClusterIdentity:
    names: ClusterNames
    owner: Owner

    @classmethod
    def of(cls, name: str, namespace: str, uid: str, cluster_domain: str = "cluster.local") -> ClusterIdentity:
        return cls(ClusterNames(name, namespace, cluster_domain), Owner(name, uid))


def default_token(identity: ClusterIdentity) -> str:
    """Unique per cluster (from its UID), so a re-created cluster never shares member IDs with the old one."""
    return f"{identity.names.namespace}-{identity.names.name}-{identity.owner.uid[:8]}"


def needs_generated_tls(spec: EtcdClusterSpec) -> bool:
    return TLSMode.SELF_SIGNED in (spec.tls.peer.mode, spec.tls.client.mode)


def desired_objects(
    identity: ClusterIdentity, spec: EtcdClusterSpec, inputs: MemberTemplateInputs, members: int, voting: int
) -> list[dict[str, Any]]:
    """`members`/`voting`: etcd's membership as last seen, which the PodDisruptionBudget protects."""
    names, owner = identity.names, identity.owner
    return [
        build_peer_service(names, spec, owner),
        build_client_service(names, spec, owner),
        build_statefulset(names, spec, owner, inputs),
        build_pdb(names, members, voting, owner),
    ]
