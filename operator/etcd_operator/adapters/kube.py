"""Kubernetes I/O: server-side apply with one field manager, reads that return plain dicts.

Server-side apply makes every write idempotent (apply twice, get the same
object) and lets users' own fields on our objects survive.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

FIELD_MANAGER = "etcd-operator"


def load_config() -> None:
    """In-cluster service account when running in a pod, KUBECONFIG otherwise."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


class Kube:
    def __init__(self, api_client: client.ApiClient | None = None):
        self._dynamic = DynamicClient(api_client or client.ApiClient())
        self._resources: dict[tuple[str, str], Any] = {}

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        applied = resource.server_side_apply(
            body=obj,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return applied.to_dict()

    def patch(self, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of a few fields (e.g. StatefulSet replicas during a membership change)."""
        resource = self._resource(api_version, kind)
        patched = resource.patch(
            body=body, name=name, namespace=namespace, content_type="application/merge-patch+json"
        )
        return patched.to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except (NotFoundError, ApiException) as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        found = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in found.items]
