"""TLS Secrets as Kubernetes objects (contents come from pki.bundles)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from .meta import Owner, metadata


def build_secret(name: str, namespace: str, owner: Owner, data: Mapping[str, bytes], component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(name, namespace, owner, component),
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())},
    }


def secret_bytes(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    if not secret:
        return {}
    return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
