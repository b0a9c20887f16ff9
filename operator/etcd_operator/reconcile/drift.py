"""Whether a live object still carries what the operator wants in it.

The API server adds defaults (clusterIP, protocol, terminationMessagePath...)
and other managers add their own fields, so a live object is right when every
field of the desired one is there with the same value: a subset, not equality.
A pass applies only objects that drifted, which keeps an idle cluster free of
writes; server-side apply makes the write itself idempotent either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def contains(live: Any, desired: Any) -> bool:
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        return (
            isinstance(live, Sequence)
            and not isinstance(live, str)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def drifted(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """True when `live` is missing or lacks part of `desired` (status is never compared)."""
    if live is None:
        return True
    wanted = {k: v for k, v in desired.items() if k != "status"}
    return not contains(live, wanted)
