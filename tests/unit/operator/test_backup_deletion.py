"""Deleting an EtcdBackup with deletionPolicy Delete: the snapshot goes first, through a Job the agent runs.

The Job's arguments are parsed by the agent's own parser (a cross-contract
test): the Job that deletes must name the very object the backup Job wrote.
"""

import json
from pathlib import Path

from etcd_node import snapshots
from etcd_node.contract import ENV_TERMINATION_LOG, parse_agent_error
from etcd_node.objectstore import DirectoryStore, S3Store
from etcd_operator.models.backup import DeletionPolicy, EtcdBackupSpec, EtcdBackupStatus
from etcd_operator.reconcile.backup import BackupObserved, plan_backup, plan_deletion
from etcd_operator.resources.backup_job import BACKUP_LABEL, DELETE_LABEL

from .test_backup import S3, cluster, job

VOLUME = {"volume": {"claimName": "backups", "path": "etcd"}}


def seen(policy="Delete", destination=None, status=None, backup_job=None, delete_job=None, cluster_body=None):
    spec = {"clusterRef": {"name": "main"}, "destination": destination or S3, "deletionPolicy": policy}
    return BackupObserved(
        name="nightly", namespace="db", uid="uid-1", spec=EtcdBackupSpec.model_validate(spec),
        status=EtcdBackupStatus.model_validate(status or {}), cluster=cluster_body, job=backup_job, pods=[],
        node_repository="etcd-node", delete_job=delete_job,
    )  # fmt: skip


def finished_backup_job(destination=None):
    """The backup Job as the backup pass built it, finished."""
    planned = plan_backup(seen(destination=destination, cluster_body=cluster()), "2026-12-02T10:00:00Z")
    assert planned.create_job is not None
    return {**planned.create_job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}


def delete_job_of(destination=None):
    planned = plan_deletion(seen(destination=destination, backup_job=finished_backup_job(destination),
                                 status={"jobName": "nightly-backup"}))  # fmt: skip
    assert planned.create_job is not None and not planned.done
    return planned.create_job


def test_retain_is_the_default_and_deletes_nothing():
    assert EtcdBackupSpec.model_validate({"clusterRef": {"name": "m"}, "destination": S3}).deletion_policy is (
        DeletionPolicy.RETAIN)  # fmt: skip
    assert plan_deletion(seen(policy="Retain", backup_job=finished_backup_job())).done


def test_a_backup_that_never_ran_has_nothing_to_delete():
    planned = plan_deletion(seen())
    assert planned.done and planned.create_job is None


def test_the_snapshot_is_not_deleted_while_the_backup_job_may_still_upload():
    planned = plan_deletion(seen(backup_job=job(), status={"jobName": "nightly-backup"}))
    assert not planned.done and planned.create_job is None and "still taking the snapshot" in planned.wait


def test_the_delete_job_reaches_the_store_as_the_backup_job_did():
    backup, delete = finished_backup_job(), delete_job_of()
    assert delete["metadata"]["name"] == "nightly-delete"
    assert delete["metadata"]["ownerReferences"] == backup["metadata"]["ownerReferences"]
    assert BACKUP_LABEL not in delete["spec"]["template"]["metadata"]["labels"]
    assert delete["spec"]["template"]["metadata"]["labels"][DELETE_LABEL] == "nightly"
    (b,) = backup["spec"]["template"]["spec"]["containers"]
    (d,) = delete["spec"]["template"]["spec"]["containers"]
    assert d["image"] == b["image"] and d["env"] == b["env"] and d["securityContext"] == b["securityContext"]
    assert [m for m in b["volumeMounts"] if m["name"] in ("store-ca", "destination")] == d["volumeMounts"]
    assert d["args"][0] == "delete-snapshot"
    store_args = [a for a in b["args"] if a.startswith(("--s3-", "--path"))]
    assert d["args"][1:] == store_args
    assert not delete["spec"]["template"]["spec"]["automountServiceAccountToken"]
    # The agent parses the delete Job's arguments into the store the backup wrote to.
    parser = snapshots.delete_parser()
    store = snapshots.store_from(parser.parse_args(d["args"][1:]), parser)
    assert isinstance(store, S3Store) and store.location == "s3://backups/etcd/db/main/nightly.db"


def test_a_volume_backup_is_deleted_from_its_claim():
    (d,) = delete_job_of(VOLUME)["spec"]["template"]["spec"]["containers"]
    assert d["args"] == ["delete-snapshot", "--path=/backup/etcd/db/main/nightly.db"]
    assert {"name": "destination", "mountPath": "/backup"} in d["volumeMounts"]


def test_the_image_comes_from_the_backup_job_else_the_cluster_else_the_default():
    gone = {"metadata": {}, "spec": {"version": "3.5.21"}}
    planned = plan_deletion(seen(status={"jobName": "nightly-backup"}, cluster_body=gone))
    assert planned.create_job["spec"]["template"]["spec"]["containers"][0]["image"] == "etcd-node:3.5.21"
    planned = plan_deletion(seen(status={"jobName": "nightly-backup"}))
    assert planned.create_job["spec"]["template"]["spec"]["containers"][0]["image"] == "etcd-node:3.6.16"


def test_deletion_finishes_when_the_delete_job_completes_and_names_what_a_failure_left():
    status = {"jobName": "nightly-backup", "location": "s3://backups/etcd/db/main/nightly.db"}
    running = plan_deletion(seen(status=status, delete_job=job()))
    assert not running.done and running.create_job is None
    done = plan_deletion(seen(status=status, delete_job=job("Complete")))
    assert done.done and not done.left_in_store
    failed = plan_deletion(seen(status=status, delete_job=job("Failed")))
    assert failed.done and failed.left_in_store == "s3://backups/etcd/db/main/nightly.db"
    unknown = plan_deletion(seen(destination=VOLUME, status={"jobName": "nightly-backup"}, delete_job=job("Failed")))
    assert unknown.left_in_store == "etcd/db/main/nightly.db on claim backups"


def test_delete_snapshot_removes_file_and_record_and_a_second_run_succeeds(tmp_path: Path):
    snap = tmp_path / "db" / "main" / "nightly.db"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"snapshot")
    DirectoryStore(snap).record_path.write_text("{}")
    log = tmp_path / "termination-log"
    env = {ENV_TERMINATION_LOG: str(log)}
    assert snapshots.main_delete([f"--path={snap}"], env) == 0
    assert not snap.exists() and not DirectoryStore(snap).record_path.exists()
    assert json.loads(log.read_text()) == {"deleted": str(snap)}
    assert snapshots.main_delete([f"--path={snap}"], env) == 0  # already gone: success


def test_delete_snapshot_failure_is_a_coded_store_failure(tmp_path: Path):
    blocked = tmp_path / "dir.db"
    blocked.mkdir()
    (blocked / "inside").write_text("x")  # unlink of a non-empty directory fails
    log = tmp_path / "termination-log"
    assert snapshots.main_delete([f"--path={blocked}"], {ENV_TERMINATION_LOG: str(log)}) == 1
    error = parse_agent_error(log.read_text())
    assert error is not None and error.code == snapshots.STORE_FAILED
