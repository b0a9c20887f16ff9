"""Causes of `Degraded` that planning finds (as opposed to what etcd or the pods report)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    reason: str  # a Degraded reason, e.g. CASecretMissing
    message: str  # what is wrong and how to fix it
