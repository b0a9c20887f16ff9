"""Whether a live object still carries what the operator wants in it, and where it differs.

The API server adds defaults (clusterIP, protocol, terminationMessagePath...)
and other managers add their own fields, so a live object is right when every
field of the desired one is there with the same value: a subset, not equality.
A pass applies only objects that drifted, which keeps an idle cluster free of
writes; server-side apply makes the write itself idempotent either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def difference(live: Any, desired: Any, path: str = "") -> str | None:
    """The first path where `live` lacks what `desired` holds, or None when it has all of it."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return path or "."
        for key, value in desired.items():
            where = f"{path}.{key}"
            if key not in live:
                if value in ({}, [], "", None):
                    continue  # the API server omits empty values (omitempty): absent is the same
                return where
            if (found := difference(live[key], value, where)) is not None:
                return found
        return None
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(live, Sequence) or isinstance(live, str) or len(live) != len(desired):
            return path or "."
        for i, (a, b) in enumerate(zip(live, desired, strict=True)):
            if (found := difference(a, b, f"{path}[{i}]")) is not None:
                return found
        return None
    return None if live == desired else (path or ".")


def drift(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
    """Where `live` differs from `desired` ("missing" when it does not exist); status is never compared."""
    if live is None:
        return "missing"
    return difference(live, {k: v for k, v in desired.items() if k != "status"})
