"""Scheduled backups with a fixed clock: when a run is taken, and what retention drops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from etcd_operator.models.backup import MAX_BACKUP_NAME
from etcd_operator.models.cluster import MAX_NAME_LENGTH, BackupSchedule, BackupScheduleStatus
from etcd_operator.reconcile.observed import BackupView
from etcd_operator.reconcile.schedule import (
    SCHEDULE_LABEL,
    SCHEDULED_AT,
    backup_name,
    backup_view,
    plan_schedule,
    schedule_status,
)
from etcd_operator.resources.meta import Owner

OWNER = Owner("main", "uid-main")
T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
DEST = {"s3": {"bucket": "backups", "credentialsSecret": "creds"}}


def sched(**fields) -> BackupSchedule:
    return BackupSchedule.model_validate({"schedule": "*/5 * * * *", "destination": DEST, **fields})


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def backup(minute: int, phase: str = "Completed") -> BackupView:
    when = at(minute)
    done = (when + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ") if phase == "Completed" else ""
    return BackupView(backup_name("main", when), f"uid-{minute}", when, phase, done)


def seen(next_time: datetime, last: datetime | None = None) -> BackupScheduleStatus:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return BackupScheduleStatus(next_schedule_time=next_time.strftime(fmt),
                                last_schedule_time=last.strftime(fmt) if last else None)  # fmt: skip


def test_a_new_schedule_waits_for_its_next_time_then_runs_once():
    first = plan_schedule(OWNER, "db", sched(), [], None, at(2))
    assert first.create is None
    status = schedule_status(sched(), [], None, at(2), None)
    assert status is not None and status.next_schedule_time == "2026-01-01T00:05:00Z"
    due = plan_schedule(OWNER, "db", sched(), [], status, at(5.2))
    assert due.create is not None and due.scheduled == at(5)
    meta = due.create["metadata"]
    assert meta["name"] == "main-202601010005"
    assert meta["labels"][SCHEDULE_LABEL] == "main"
    assert meta["annotations"][SCHEDULED_AT] == "2026-01-01T00:05:00Z"
    assert meta["ownerReferences"][0]["uid"] == "uid-main" and meta["ownerReferences"][0]["controller"]
    assert due.create["spec"] == {"clusterRef": {"name": "main"}, "destination": {"s3": {
        "bucket": "backups", "credentialsSecret": "creds", "prefix": "", "region": "us-east-1",
        "forcePathStyle": False}}, "deletionPolicy": "Delete"}  # fmt: skip
    after = schedule_status(sched(), [], status, at(5.2), due.scheduled)
    assert after is not None
    assert (after.last_schedule_time, after.next_schedule_time) == ("2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z")


def test_the_same_pass_twice_creates_nothing_more():
    """After the create (status written or not: a crash in between), the listed backup stops a second one."""
    status = seen(at(5))
    created = BackupView("main-202601010005", "u", at(5), "")
    assert plan_schedule(OWNER, "db", sched(), [created], status, at(5.3)).create is None
    done = BackupView("main-202601010005", "u", at(5), "Completed")
    assert plan_schedule(OWNER, "db", sched(), [done], seen(at(10), at(5)), at(9)).create is None


def test_missed_runs_take_only_the_latest():
    plan = plan_schedule(OWNER, "db", sched(), [backup(5)], seen(at(10), at(5)), at(33))
    assert plan.scheduled == at(30) and plan.create is not None
    assert plan.create["metadata"]["name"] == "main-202601010030"


def test_forbid_while_a_scheduled_backup_runs():
    for phase in ("", "Pending", "Running"):
        plan = plan_schedule(OWNER, "db", sched(), [backup(5, phase)], seen(at(10), at(5)), at(11))
        assert plan.create is None and "still running" in plan.waiting


def test_an_unavailable_cluster_waits_and_the_run_is_taken_when_it_is_back():
    waiting = plan_schedule(OWNER, "db", sched(), [backup(5)], seen(at(10), at(5)), at(11), "the cluster is not Available")
    assert waiting.create is None and "not Available" in waiting.waiting
    back = plan_schedule(OWNER, "db", sched(), [backup(5)], seen(at(15), at(5)), at(12))
    assert back.scheduled == at(10)


def test_a_first_run_that_waits_stays_due():
    status = seen(at(5))
    assert plan_schedule(OWNER, "db", sched(), [], status, at(6), "the cluster is hibernated").create is None
    kept = schedule_status(sched(), [], status, at(6), None)
    assert kept is not None and kept.next_schedule_time == "2026-01-01T00:05:00Z"
    assert plan_schedule(OWNER, "db", sched(), [], kept, at(7)).scheduled == at(5)


def test_suspend_creates_nothing_but_retention_still_applies():
    backups = [backup(m) for m in (5, 10, 15)]
    plan = plan_schedule(OWNER, "db", sched(suspend=True, retention={"keep": 1}), backups, seen(at(20), at(15)), at(40))
    assert plan.create is None
    assert sorted(b.name for b in plan.prune) == ["main-202601010005", "main-202601010010"]
    status = schedule_status(sched(suspend=True), backups, None, at(40), None)
    assert status is not None and status.next_schedule_time is None


def test_retention_by_count_keeps_the_newest():
    backups = [backup(m) for m in (5, 10, 15, 20)] + [backup(25, "Running")]
    plan = plan_schedule(OWNER, "db", sched(retention={"keep": 2}), backups, seen(at(30), at(25)), at(26))
    assert [b.name for b in plan.prune] == ["main-202601010010", "main-202601010005"]


def test_retention_by_age_but_never_the_last_completed():
    backups = [backup(5), backup(10), backup(15, "Failed")]
    young = plan_schedule(OWNER, "db", sched(retention={"maxAge": "1h"}), backups, seen(at(20), at(15)), at(20))
    assert young.prune == ()
    old = plan_schedule(OWNER, "db", sched(retention={"maxAge": "1h"}), backups, seen(at(20), at(15)), at(600))
    assert [b.name for b in old.prune] == ["main-202601010005"]  # 00:10 is the newest Completed: kept


def test_only_the_newest_three_failed_are_kept():
    backups = [backup(m, "Failed") for m in (5, 10, 15, 20, 25)] + [backup(1)]
    plan = plan_schedule(OWNER, "db", sched(), backups, seen(at(30), at(25)), at(26))
    assert sorted(b.name for b in plan.prune) == ["main-202601010005", "main-202601010010"]


def test_status_names_the_newest_completed():
    backups = [backup(5), backup(10), backup(15, "Failed")]
    status = schedule_status(sched(), backups, None, at(16), None)
    assert status is not None
    assert status.last_successful_backup == "main-202601010010"
    assert status.last_successful_time == "2026-01-01T00:10:30Z"
    assert status.last_schedule_time == "2026-01-01T00:15:00Z"
    assert schedule_status(None, backups, status, at(16), None) is None


def test_long_cluster_names_get_short_distinct_backup_names():
    long_a, long_b = "a" * MAX_NAME_LENGTH, "a" * (MAX_NAME_LENGTH - 1) + "b"
    a, b = backup_name(long_a, T0), backup_name(long_b, T0)
    assert len(a) <= MAX_BACKUP_NAME and len(b) <= MAX_BACKUP_NAME and a != b
    assert a == backup_name(long_a, T0) and a.endswith("-202601010000")
    assert backup_name("x" * 43, T0) == "x" * 43 + "-202601010000"  # fits: unchanged


def test_backup_view_reads_the_scheduled_time_and_phase():
    view = backup_view({"metadata": {"name": "main-202601010005", "uid": "u", "creationTimestamp": "2026-01-01T00:05:02Z",
                                     "annotations": {SCHEDULED_AT: "2026-01-01T00:05:00Z"}},
                        "status": {"phase": "Completed", "completionTime": "2026-01-01T00:05:40Z"}})  # fmt: skip
    assert view == BackupView("main-202601010005", "u", at(5), "Completed", "2026-01-01T00:05:40Z")
    bare = backup_view({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:07:00Z"}})
    assert bare.scheduled == at(7) and bare.phase == ""


@pytest.mark.parametrize("bad", ["* * * *", "* * * * * *", "61 * * * *", "* 24 * * *", "every minute", "@often"])
def test_the_model_refuses_a_bad_schedule(bad):
    with pytest.raises(ValidationError):
        sched(schedule=bad)


@pytest.mark.parametrize("good", ["*/5 * * * *", "0 3 * * *", "0 0 1,15 * sun", "30 2 * jan-mar MON-FRI", "@daily"])
def test_the_model_takes_cron_expressions(good):
    assert sched(schedule=good).schedule == good


def test_a_backup_already_being_deleted_is_not_deleted_again_nor_counted():
    going = BackupView("main-202601010005", "u", at(5), "Completed", "x", deleting=True)
    backups = [going, backup(10), backup(15)]
    plan = plan_schedule(OWNER, "db", sched(retention={"keep": 2}), backups, seen(at(20), at(15)), at(16))
    assert plan.prune == ()
    assert backup_view({"metadata": {"name": "n", "deletionTimestamp": "2026-01-01T00:00:00Z"}}).deleting
