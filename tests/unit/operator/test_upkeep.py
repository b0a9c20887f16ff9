"""Database upkeep in whole passes: NOSPACE reported and recovered one step per pass, then settled."""

from __future__ import annotations

from dataclasses import replace

from etcd_operator.reconcile.observed import MaintenanceStatus

from .test_pass import Cluster

MiB = 2**20


def full(cluster: Cluster) -> None:
    """Every member's file at the 8 MiB quota, mostly history; etcd's NOSPACE alarm raised by the leader."""
    leader = cluster.etcd.leader
    alarm = f"memberID:{leader} alarm:NOSPACE"  # decimal, as etcd writes it
    cluster.etcd.statuses = {
        m.id: MaintenanceStatus(m.id, leader, db_size=8 * MiB, db_size_in_use=8 * MiB, db_size_quota=8 * MiB,
                                revision=5000, errors=(alarm,))  # fmt: skip
        for m in cluster.etcd.members.values()
    }


def test_nospace_is_degraded_then_compacted_defragmented_leader_last_and_disarmed():
    cluster = Cluster({"replicas": 3, "etcd": {"quotaBackendBytes": 8 * MiB}})
    cluster.converge()
    full(cluster)
    leader = cluster.etcd.members[cluster.etcd.leader].name
    first = cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "DatabaseFull")
    assert cluster.conditions()["Available"] == ("True", "QuorumHealthy")  # reads still work: full, not down
    assert cluster.conditions()["Progressing"] == ("True", "Compacting") and first.busy
    for _ in range(6):
        cluster.once()
    steps = cluster.etcd.maintenance
    assert steps[0] == "compact 5000" and steps[-1].startswith("disarm")
    defrags = [s.removeprefix("defragment ") for s in steps if s.startswith("defragment")]
    assert sorted(defrags) == sorted(m.name for m in cluster.etcd.members.values()) and defrags[-1] == leader
    assert cluster.status.maintenance.compacted_revision == 5000
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.status.maintenance.last_step.startswith("Disarm")
    assert len(cluster.etcd.maintenance) == 5  # nothing more once disarmed: one compact, three defrags, one disarm


def test_data_that_fills_the_quota_is_refused_with_the_fix():
    cluster = Cluster({"replicas": 3, "etcd": {"quotaBackendBytes": 8 * MiB}})
    cluster.converge()
    cluster.etcd.live_bytes = 8 * MiB  # compaction frees nothing: it is all live data
    full(cluster)
    for _ in range(3):
        cluster.once()
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert (degraded.status.value, degraded.reason) == ("True", "DatabaseFull")
    assert "raise spec.etcd.quotaBackendBytes" in degraded.message
    assert not any(s.startswith("disarm") for s in cluster.etcd.maintenance)  # it would re-arm at once


def test_nospace_recovery_can_be_turned_off_and_then_only_reports():
    cluster = Cluster({"replicas": 3, "maintenance": {"nospaceRecovery": False}})
    cluster.converge()
    full(cluster)
    cluster.once()
    cluster.once()
    assert cluster.etcd.maintenance == []
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert degraded.reason == "DatabaseFull" and "do it by hand" in degraded.message


def test_routine_defragmentation_only_when_configured_and_fragmented():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    leader = cluster.etcd.leader
    cluster.etcd.statuses = {m.id: MaintenanceStatus(m.id, leader, db_size=400 * MiB, db_size_in_use=100 * MiB)
                             for m in cluster.etcd.members.values()}  # fmt: skip
    cluster.converge()
    assert cluster.etcd.maintenance == []  # off unless spec.maintenance.defrag is set
    cluster.edit(maintenance={"defrag": {"minFragmentationRatio": 0.5, "minSizeBytes": 100 * MiB}})
    cluster.converge()
    assert [s.split()[0] for s in cluster.etcd.maintenance] == ["defragment"] * 3
    assert cluster.etcd.maintenance[-1] == f"defragment {cluster.etcd.members[leader].name}"
    cluster.assert_settled(3)
    # Compacted files below the ratio: nothing more to do.
    cluster.etcd.statuses = {i: replace(s, db_size=110 * MiB) for i, s in cluster.etcd.statuses.items()}
    cluster.converge()
    assert len(cluster.etcd.maintenance) == 3


def test_the_metrics_show_the_full_database_and_the_step_taken():
    from etcd_operator import metrics
    from etcd_operator.reconcile.plan import ClusterContext

    from .test_pass import IDENTITY

    cluster = Cluster({"replicas": 3, "etcd": {"quotaBackendBytes": 8 * MiB}})
    cluster.converge()
    full(cluster)
    ctx = ClusterContext(IDENTITY, cluster.spec, cluster.status, 1, "etcd-node", {})
    sample = metrics.sample(ctx, cluster.once())
    assert sample.database_full and sample.maintained == "Compact"
    recorder = metrics.Recorder()
    recorder.record(sample)
    assert recorder.registry.get_sample_value("etcd_operator_cluster_database_full", {"namespace": "db", "cluster": "main"}) == 1
    assert recorder.registry.get_sample_value(
        "etcd_operator_maintenance_steps_total", {"namespace": "db", "cluster": "main", "step": "Compact"}) == 1


def test_routine_defragmentation_waits_for_a_scheduled_backup_that_runs():
    from datetime import UTC, datetime

    from etcd_operator.reconcile.observed import BackupView
    from etcd_operator.reconcile.plan import ClusterContext, plan

    from .test_pass import IDENTITY

    cluster = Cluster({"replicas": 3, "maintenance": {"defrag": {"minSizeBytes": 0}}})
    cluster.converge()
    leader = cluster.etcd.leader
    cluster.etcd.statuses = {m.id: MaintenanceStatus(m.id, leader, db_size=400 * MiB, db_size_in_use=100 * MiB)
                             for m in cluster.etcd.members.values()}  # fmt: skip
    observed = cluster.once().observed
    ctx = ClusterContext(IDENTITY, cluster.spec, cluster.status, 1, "etcd-node", {})
    running = BackupView("main-202612020300", "u1", datetime(2026, 12, 2, 3, tzinfo=UTC), phase="Running")
    assert plan(ctx, replace(observed, backups=(running,)), datetime.now(UTC)).upkeep.reason == "ChangeUnderWay"
    done = replace(running, phase="Completed")
    assert type(plan(ctx, replace(observed, backups=(done,)), datetime.now(UTC)).upkeep).__name__ == "Defragment"
