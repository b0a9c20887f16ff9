"""Scheduled backups (`spec.backup`), pure: from the schedule, the backups it made and the clock to at most
one EtcdBackup to create and the ones retention drops.

It behaves like a CronJob with `concurrencyPolicy: Forbid`: no new backup
while one the schedule made is still Pending or Running (two snapshots of the
same cluster at once only double the load), and after missed runs (operator
down, cluster unavailable, suspended) only the latest one is taken, never the
backlog. The backup's name is derived from its scheduled time, so a second
pass, or a pass after a crash between the create and the status write, finds
the backup it would create and creates nothing. A schedule added to a cluster
first runs at its next time, not at once (as a CronJob does).

Retention never deletes the newest Completed backup, whatever `keep` and
`maxAge` say: a schedule whose runs keep failing must not end with no backup
at all. Failed ones are kept only as far as they help a person see why (the
newest three).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from .. import GROUP, VERSION
from ..models.backup import BACKUP_KIND, MAX_BACKUP_NAME
from ..models.cluster import BackupSchedule, BackupScheduleStatus, parse_duration
from ..resources.meta import Owner, labels
from .observed import BackupView

SCHEDULE_LABEL = f"{GROUP}/schedule"  # value: the cluster's name
SCHEDULED_AT = f"{GROUP}/scheduled-at"  # the cron time the backup was created for (RFC 3339)
FAILED_KEPT = 3
STAMP = "%Y%m%d%H%M"
TIME = "%Y-%m-%dT%H:%M:%SZ"
ACTIVE = ("", "Pending", "Running")


@dataclass(frozen=True)
class SchedulePlan:
    create: dict[str, Any] | None = None  # the EtcdBackup to create
    scheduled: datetime | None = None  # the run `create` is for
    prune: tuple[BackupView, ...] = ()
    waiting: str = ""  # why a due run is not taken now


def _time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, TIME).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def backup_view(obj: Mapping[str, Any]) -> BackupView:
    """An EtcdBackup as the schedule sees it: when it was scheduled for, and how it ended."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    scheduled = _time(str((meta.get("annotations") or {}).get(SCHEDULED_AT, "")))
    created = _time(str(meta.get("creationTimestamp") or "")) or datetime.fromtimestamp(0, UTC)
    return BackupView(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        scheduled=scheduled or created,
        phase=str(status.get("phase") or ""),
        completion_time=str(status.get("completionTime") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def backup_name(cluster: str, when: datetime) -> str:
    """`<cluster>-<YYYYMMDDHHMM>`; a long cluster name is cut and a hash of it added, so names stay distinct."""
    stamp = when.strftime(STAMP)
    name = f"{cluster}-{stamp}"
    if len(name) <= MAX_BACKUP_NAME:
        return name
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:6]
    head = cluster[: MAX_BACKUP_NAME - len(stamp) - len(digest) - 2].rstrip("-")
    return f"{head}-{digest}-{stamp}"


def latest_run(schedule: str, now: datetime) -> datetime:
    """The latest scheduled time at or before `now` (cron times are whole minutes)."""
    after = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    found: datetime = croniter(schedule, after).get_prev(datetime)
    return found.astimezone(UTC)


def next_run(schedule: str, now: datetime) -> datetime:
    found: datetime = croniter(schedule, now).get_next(datetime)
    return found.astimezone(UTC)


def scheduled_backup(
    owner: Owner, namespace: str, schedule: BackupSchedule, when: datetime
) -> dict[str, Any]:
    """The EtcdBackup for the run at `when`: owned by the cluster (it goes with it) and labelled for the list."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": BACKUP_KIND,
        "metadata": {
            "name": backup_name(owner.name, when),
            "namespace": namespace,
            "labels": labels(owner.name, "backup", {SCHEDULE_LABEL: owner.name}),
            "annotations": {SCHEDULED_AT: when.strftime(TIME)},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "clusterRef": {"name": owner.name},
            "destination": schedule.destination.model_dump(by_alias=True, exclude_none=True, mode="json"),
            # Retention deletes these backups: their snapshots must go with them.
            "deletionPolicy": "Delete",
        },
    }


def _newest_first(backups: Sequence[BackupView]) -> list[BackupView]:
    return sorted(backups, key=lambda b: (b.scheduled, b.name), reverse=True)


def to_prune(schedule: BackupSchedule, backups: Sequence[BackupView], now: datetime) -> tuple[BackupView, ...]:
    """A backup already being deleted is neither kept nor deleted again (each pass would repeat the call)."""
    completed = _newest_first([b for b in backups if b.phase == "Completed" and not b.deleting])
    failed = _newest_first([b for b in backups if b.phase == "Failed" and not b.deleting])
    keep, max_age = schedule.retention.keep, schedule.retention.max_age
    oldest = now - parse_duration(max_age) if max_age else None
    dropped = [b for i, b in enumerate(completed) if i > 0 and (i >= keep or (oldest and b.scheduled < oldest))]
    return tuple(dropped + failed[FAILED_KEPT:])


def plan_schedule(
    owner: Owner,
    namespace: str,
    schedule: BackupSchedule | None,
    backups: Sequence[BackupView],
    previous: BackupScheduleStatus | None,
    now: datetime,
    ready: str = "",
) -> SchedulePlan:
    """`ready`: empty when the cluster can be backed up now, else why not (hibernated, not Available)."""
    if schedule is None:
        return SchedulePlan()
    prune = to_prune(schedule, backups, now)
    if schedule.suspend:
        return SchedulePlan(prune=prune)
    due = latest_run(schedule.schedule, now)
    taken = [b.scheduled for b in backups]
    if previous is not None and (last := _time(previous.last_schedule_time or "")):
        taken.append(last)
    if taken:
        if due <= max(taken):
            return SchedulePlan(prune=prune)
    else:
        # Never run: the first run is the first scheduled time after a pass saw the schedule.
        seen_next = _time(previous.next_schedule_time or "") if previous is not None else None
        if seen_next is None or due < seen_next:
            return SchedulePlan(prune=prune)
    if running := [b.name for b in backups if b.phase in ACTIVE]:
        return SchedulePlan(prune=prune, waiting=f"EtcdBackup {running[0]} is still running; the run due at "
                            f"{due.strftime(TIME)} waits for it")  # fmt: skip
    if ready:
        return SchedulePlan(prune=prune, waiting=f"the run due at {due.strftime(TIME)} waits: {ready}")
    return SchedulePlan(scheduled_backup(owner, namespace, schedule, due), due, prune)


def schedule_status(
    schedule: BackupSchedule | None,
    backups: Sequence[BackupView],
    previous: BackupScheduleStatus | None,
    now: datetime,
    created: datetime | None,
) -> BackupScheduleStatus | None:
    """status.backup from the same observation; `created` is the run whose EtcdBackup this pass created."""
    if schedule is None:
        return None
    previous = previous or BackupScheduleStatus()
    times = [t for t in (_time(previous.last_schedule_time or ""), created, *(b.scheduled for b in backups)) if t]
    completed = _newest_first([b for b in backups if b.phase == "Completed" and not b.deleting])
    newest = completed[0] if completed else None
    upcoming = None if schedule.suspend else next_run(schedule.schedule, now)
    missed_first = _time(previous.next_schedule_time or "")
    if not times and upcoming is not None and missed_first is not None and missed_first <= now:
        upcoming = missed_first  # the first run is due but waits (cluster not ready): keep it due
    return BackupScheduleStatus(
        last_schedule_time=max(times).strftime(TIME) if times else None,
        last_successful_backup=newest.name if newest else previous.last_successful_backup,
        last_successful_time=(newest.completion_time or None) if newest else previous.last_successful_time,
        next_schedule_time=upcoming.strftime(TIME) if upcoming else None,
    )
