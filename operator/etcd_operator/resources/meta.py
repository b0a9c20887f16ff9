"""Labels, selectors and owner references shared by every object of a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import GROUP, KIND, VERSION

MANAGED_BY = "etcd-operator"


@dataclass(frozen=True)
class Owner:
    """The EtcdCluster that owns an object: children are garbage-collected with it."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def selector(cluster: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": cluster}


def labels(cluster: str, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **(extra or {}),
        **selector(cluster),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def metadata(name: str, namespace: str, owner: Owner, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels(owner.name, component),
        "ownerReferences": [owner.reference()],
    }
