"""A PodDisruptionBudget that never lets voluntary disruptions take quorum away."""

from __future__ import annotations

from typing import Any

from ..reconcile.observed import fault_tolerance
from .meta import Owner, metadata, selector
from .naming import ClusterNames


def min_available(members: int, voting: int) -> int:
    """Pods that must stay up: every member but as many voting ones as quorum can spare.

    Computed from etcd's membership, not the StatefulSet's size, so it follows
    every scale step. With no learners this is the voting members' quorum; a
    learner being added counts as a pod that must stay, so an eviction can
    never take a voting member beyond what quorum tolerates. A single voting
    member has no quorum to protect: blocking its eviction would only block
    node drains.
    """
    if voting <= 1:
        return 0
    return members - fault_tolerance(voting)


def build_pdb(names: ClusterNames, members: int, voting: int, owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(names.pdb, names.namespace, owner, "member"),
        "spec": {"minAvailable": min_available(members, voting), "selector": {"matchLabels": selector(owner.name)}},
    }
