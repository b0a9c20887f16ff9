"""A PodDisruptionBudget that never lets voluntary disruptions take quorum away."""

from __future__ import annotations

from typing import Any

from .meta import Owner, metadata, selector
from .naming import ClusterNames


def quorum(members: int) -> int:
    return members // 2 + 1


def build_pdb(names: ClusterNames, replicas: int, owner: Owner) -> dict[str, Any]:
    # A single member has no quorum to protect; blocking its eviction would only block node drains.
    min_available = quorum(replicas) if replicas > 1 else 0
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(names.pdb, names.namespace, owner, "member"),
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": selector(owner.name)}},
    }
