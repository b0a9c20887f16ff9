"""Database upkeep: health-aware defragmentation, and recovery from etcd's NOSPACE alarm.

Pure, like the membership planner: one pass's `EtcdView` (the member list and
each member's own maintenance status, read in the pass's one etcd round) in,
exactly one step out. Defragmentation blocks the member it runs on and
rewrites its whole database file, so:

1. nothing while the same pass carries out a membership or rollout step (one
   step per pass);
2. a routine defrag only when no membership change, rollout or backup is under
   way, every member is healthy and has answered its status, and a member's
   file is both large enough and mostly free pages (the policy's thresholds);
3. one member per pass, followers first (most free bytes first), the leader
   last: a leader busy defragmenting stalls the whole cluster, a follower only
   itself; the next pass sees the member healthy again before it takes another;
4. NOSPACE (etcd refuses every write once a member's file reaches the quota):
   compact to the current revision, defragment each member that has free
   pages as above, then disarm; if the live data itself fills the quota,
   disarming would only re-arm the alarm, so refuse with the numbers and the
   fix instead. NOSPACE recovery is not held back by a change under way: the
   change waits on healthy members, which only the recovery gives back.

Each pass re-plans from what etcd says, so a crash between compact, defrag and
disarm is harmless: compacting to a revision already compacted and
defragmenting a compact file are cheap, and the alarm stays until disarmed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..models.cluster import DefragPolicy
from .observed import EtcdView, MaintenanceStatus, Member

MiB = 2**20
NOSPACE = "alarm:NOSPACE"
SLACK = 0.05  # under NOSPACE, a member whose file is more than this share free pages is defragmented
FULL = 0.95  # the live data fills this share of the quota: disarming would re-arm at once


@dataclass(frozen=True)
class Compact:
    revision: int  # compact the key-value history up to here (physical: the freed pages are reused)


@dataclass(frozen=True)
class Defragment:
    member_id: int
    name: str
    reason: str  # "Fragmented" | "DatabaseFull"
    free_bytes: int
    endpoint: str = ""  # the member's own client URL: defragmentation is asked of the member itself


@dataclass(frozen=True)
class Disarm:
    member_ids: tuple[int, ...]  # the members whose NOSPACE alarm is raised


@dataclass(frozen=True)
class Idle:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Refuse:
    reason: str
    message: str


Step = Compact | Defragment | Disarm | Idle | Refuse


_ALARM = re.compile(r"memberID:([0-9]+)\s+alarm:NOSPACE")  # etcd's AlarmMember as text: the ID in decimal


def alarmed_members(reports: Iterable[MaintenanceStatus]) -> tuple[int, ...]:
    """The members a NOSPACE alarm is raised for: every member lists every alarm, each naming its member."""
    found = {int(match[1]) for r in reports for e in r.errors if (match := _ALARM.search(e))}
    if not found and any(nospace(r) for r in reports):  # an alarm without a member ID: name the reporters
        found = {r.member_id for r in reports if nospace(r)}
    return tuple(sorted(found))


def nospace(status: MaintenanceStatus) -> bool:
    return any(NOSPACE in error for error in status.errors)


def _free(status: MaintenanceStatus) -> int:
    return max(status.db_size - status.db_size_in_use, 0)


def _share_free(status: MaintenanceStatus) -> float:
    return _free(status) / status.db_size if status.db_size else 0.0


def _name(member: Member) -> str:
    return member.name or f"{member.id:x}"


def _url(member: Member) -> str:
    return member.client_urls[0] if member.client_urls else ""


def _order(view: EtcdView, members: Sequence[Member]) -> list[Member]:
    """Followers first, the most free bytes first; the leader last."""
    return sorted(members, key=lambda m: (m.id == view.leader_id, -_free(view.status[m.id]), _name(m)))


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def plan(
    view: EtcdView | None,
    quota: int,
    policy: DefragPolicy | None = None,
    *,
    compacted_revision: int = 0,
    changing: bool = False,
    settling: bool = False,
) -> Step:
    """The one maintenance step of this pass.

    `quota`: the backend quota in bytes; `policy`: None turns routine defrag off;
    `compacted_revision`: the revision this cluster was last compacted to (0: unknown);
    `changing`: the pass carries out a membership or rollout step itself;
    `settling`: a membership change, rollout or backup is under way.
    """
    if view is None:
        return Idle("EtcdUnreachable", "etcd did not answer")
    if changing:
        return Idle("StepInProgress", "this pass changes membership or restarts a member")
    reports = view.status
    missing = [m for m in view.members if m.id not in reports]
    alarmed = alarmed_members(reports.values())
    if alarmed:
        return _recover(view, quota, compacted_revision, missing, alarmed)
    if policy is None:
        return Idle("DefragDisabled")
    if settling:
        return Idle("ChangeUnderWay", "a membership change, rollout or backup is under way")
    unhealthy = [m for m in view.members if not m.healthy or m.id not in reports]
    if unhealthy or view.leader_id is None:
        names = ", ".join(sorted(_name(m) for m in unhealthy)) or "no leader"
        return Idle("MembersUnhealthy", f"defragmentation waits for every member to be healthy ({names})")
    due = [
        m for m in view.members
        if reports[m.id].db_size >= policy.min_size_bytes
        and _share_free(reports[m.id]) >= policy.min_fragmentation_ratio
    ]  # fmt: skip
    if not due:
        return Idle("NothingToDefragment")
    first = _order(view, due)[0]
    return Defragment(first.id, _name(first), "Fragmented", _free(reports[first.id]), _url(first))


def _recover(
    view: EtcdView, quota: int, compacted: int, missing: Sequence[Member], alarmed: tuple[int, ...]
) -> Step:
    reports = view.status
    if missing or view.leader_id is None:
        names = ", ".join(sorted(_name(m) for m in missing)) or "no leader"
        return Idle("MembersUnresponsive", f"NOSPACE recovery waits for every member to answer ({names})")
    revision = max(r.revision for r in reports.values())
    if compacted < revision:
        return Compact(revision)
    due = [m for m in view.members if _share_free(reports[m.id]) > SLACK]
    if due:
        first = _order(view, due)[0]
        return Defragment(first.id, _name(first), "DatabaseFull", _free(reports[first.id]), _url(first))
    in_use = max(r.db_size_in_use for r in reports.values())
    if quota and in_use >= FULL * quota:
        return Refuse(
            "DatabaseFull",
            f"etcd's data itself is {_gib(in_use)} of its {_gib(quota)} quota after compaction and "
            "defragmentation, so the NOSPACE alarm would be raised again at once: raise "
            "spec.etcd.quotaBackendBytes (and storage.size with it), or delete data",
        )
    return Disarm(alarmed)
