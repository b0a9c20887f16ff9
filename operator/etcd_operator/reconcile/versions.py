"""etcd's upgrade path rules, as data: one minor at a time, no downgrade, a patch minimum before a minor.

The same table gives the CEL rules the API server applies to a `spec.version`
edit (models.cluster) and the planner's check against the versions members
actually run (reconcile.rollout), which catches what admission cannot see:
a second edit made while the first upgrade is still rolling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Before a cluster moves from minor X to X+1, its members must run at least this patch of X.
# etcd's upgrade guides raised these over time (3.5: .20 -> .24 -> .26 -> .32); the newest is kept.
UPGRADE_MINIMUM: dict[int, int] = {5: 32, 6: 11}

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        match = _VERSION.match(text.strip())
        return cls(int(match[1]), int(match[2]), int(match[3])) if match else None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class PathRefusal:
    reason: str  # a Degraded reason
    message: str  # the rule and the fix


def upgrade_refusal(running: Version, wanted: Version) -> PathRefusal | None:
    """Why members at `running` may not go to `wanted`, or None when the step is allowed."""
    if wanted < running:
        return PathRefusal("DowngradeNotSupported", f"spec.version {wanted} is older than the running {running}: "
                           f"downgrades are not supported; set spec.version back to {running} or later")  # fmt: skip
    if wanted.minor > running.minor + 1 or wanted.major != running.major:
        step = f"{running.major}.{running.minor + 1}"
        return PathRefusal("MinorVersionSkipped", f"spec.version {wanted}: etcd upgrades one minor version at a "
                           f"time; upgrade {running} to the newest {step}.x first")  # fmt: skip
    minimum = UPGRADE_MINIMUM.get(running.minor)
    if wanted.minor == running.minor + 1 and minimum is not None and running.patch < minimum:
        floor = f"{running.major}.{running.minor}.{minimum}"
        return PathRefusal("PatchBelowUpgradeMinimum", f"spec.version {wanted}: members run {running}, and etcd "
                           f"supports the move to {wanted.major}.{wanted.minor} only from {floor} or later; "
                           f"upgrade to {floor} first")  # fmt: skip
    return None


def cel_rules() -> list[tuple[str, str]]:
    """(rule, messageExpression) pairs on the `spec.version` string: `self` is the new value, `oldSelf` the old."""
    new, old = "int(self.split('.')[{}])", "int(oldSelf.split('.')[{}])"
    minor, patch, old_minor, old_patch = new.format(1), new.format(2), old.format(1), old.format(2)
    change = "'spec.version ' + oldSelf + ' -> ' + self + ': '"
    rules = [
        (f"{minor} > {old_minor} || ({minor} == {old_minor} && {patch} >= {old_patch})",
         f"{change} + 'downgrades are not supported; set it back to ' + oldSelf + ' or later'"),
        (f"{minor} <= {old_minor} + 1",
         f"{change} + 'etcd upgrades one minor version at a time; go to the newest patch of the next minor "
         "version first'"),
    ]  # fmt: skip
    for from_minor, floor in sorted(UPGRADE_MINIMUM.items()):
        rules.append((  # noqa: PERF401 - one tuple per table row reads better than a comprehension
            f"{minor} != {old_minor} + 1 || {old_minor} != {from_minor} || {old_patch} >= {floor}",
            f"{change} + 'etcd moves from 3.{from_minor} to 3.{from_minor + 1} only from 3.{from_minor}.{floor} "
            f"or later; upgrade to 3.{from_minor}.{floor} first'",
        ))  # fmt: skip
    return rules
