"""Kubernetes I/O: server-side apply with one field manager, reads that return plain dicts.

Server-side apply makes every write idempotent (apply twice, get the same
object) and lets users' own fields on our objects survive.
"""

from __future__ import annotations

import contextlib
import json
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


class ApiError(RuntimeError):
    """The API server refused a write; `message` is its own explanation (field and reason)."""

    def __init__(self, what: str, status: int, message: str):
        super().__init__(f"{what}: {status} {message}")
        self.what, self.status, self.message = what, status, message

    @classmethod
    def of(cls, exc: ApiException, what: str) -> ApiError:
        message = exc.reason or ""
        with contextlib.suppress(ValueError, AttributeError):
            message = json.loads(exc.body or "{}").get("message") or message
        return cls(what, int(exc.status or 0), message)


class Kube:
    def __init__(self, api_client: client.ApiClient | None = None):
        self._dynamic = DynamicClient(api_client or client.ApiClient())
        self._resources: dict[tuple[str, str], Any] = {}
        self.requests = 0  # API requests made, for the operator's own accounting and tests

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def apply(self, obj: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply; raises ApiError with the API server's words when it refuses."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        self.requests += 1
        try:
            applied = resource.server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=manager,
                force_conflicts=True,
            )
        except ApiException as exc:
            raise ApiError.of(exc, f"{obj['kind']}/{meta['name']}") from exc
        return applied.to_dict()

    def delete(self, api_version: str, kind: str, name: str, namespace: str, uid: str = "") -> None:
        """Delete one object; with `uid`, only that incarnation (a replacement of the same name is left alone)."""
        resource = self._resource(api_version, kind)
        self.requests += 1
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            resource.delete(name=name, namespace=namespace, body=body)
        except ApiException as exc:
            if exc.status in (404, 409):  # gone already, or already replaced: nothing left to do
                return
            raise ApiError.of(exc, f"{kind}/{name}") from exc

    def patch_status(self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        """A merge patch of the status subresource."""
        resource = self._resource(api_version, kind)
        self.requests += 1
        try:
            resource.status.patch(
                body={"status": status}, name=name, namespace=namespace,
                content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            raise ApiError.of(exc, f"{kind}/{name} status") from exc

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        self.requests += 1
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except (NotFoundError, ApiException) as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        self.requests += 1
        found = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in found.items]
