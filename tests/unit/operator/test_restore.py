"""A cluster that starts from a backup: the restore request, the wait for the backup, and its removal once done."""

from __future__ import annotations

import base64
import json

import pytest

from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.reconcile import membership as mp
from etcd_operator.reconcile.observed import RestoreSources
from etcd_operator.reconcile.restore import plan_restore

from .test_pass import IDENTITY, Cluster

CREDS = {"AWS_ACCESS_KEY_ID": b"id", "AWS_SECRET_ACCESS_KEY": b"secret"}
DEST = {"s3": {"endpoint": "https://s3.example", "bucket": "backups", "prefix": "etcd", "credentialsSecret": "s3-creds",
               "caSecret": "s3-ca", "forcePathStyle": True}}  # fmt: skip


def backup(phase="Completed", destination=None, location="s3://backups/etcd/db/old/nightly.db"):
    return {"metadata": {"name": "nightly", "namespace": "db"},
            "spec": {"clusterRef": {"name": "old"}, "destination": destination or DEST},
            "status": {"phase": phase, "location": location, "revision": 4242}}  # fmt: skip


def restore_spec(**restore):
    return EtcdClusterSpec.model_validate({"bootstrap": {"restore": restore or {"backupRef": {"name": "nightly"}}}})


def planned(sources, started=False, done=False, restored_from=None, **restore):
    spec = restore_spec(**restore)
    return plan_restore(IDENTITY.names, IDENTITY.owner, spec.bootstrap.restore, restored_from, sources, "tok",
                        started=started, done=done)  # fmt: skip


def request_of(secret):
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    return json.loads(data["restore.json"]), data


def test_the_members_wait_for_a_backup_that_is_missing_or_unfinished():
    assert "does not exist" in planned(RestoreSources()).waiting
    assert "is Running" in planned(RestoreSources(backup=backup("Running"), credentials=CREDS)).waiting
    # Once members run they have restored already: a backup deleted later is no reason to wait.
    assert planned(RestoreSources(), started=True).waiting == ""


VOLUME_BACKUP = backup(destination={"volume": {"claimName": "backups", "path": "etcd"}},
                       location="/backup/etcd/db/old/nightly.db")


def test_a_volume_backup_is_read_from_its_claim_mounted_where_the_request_says():
    plan = planned(RestoreSources(backup=VOLUME_BACKUP))  # no store, so no credentials to wait for
    assert plan.waiting == "" and plan.claim == "backups"
    request, data = request_of(plan.request)
    assert request == {"token": "tok", "bumpRevision": 0, "markCompacted": False, "claim": "backups",
                       "source": ["--path=/etc/etcd-node/restore-volume/etcd/db/old/nightly.db"],
                       "from": "EtcdBackup nightly (etcd/db/old/nightly.db on claim backups, revision 4242)"}  # fmt: skip
    assert set(data) == {"restore.json"}  # nothing copied: the members read the claim itself
    done = planned(RestoreSources(backup=VOLUME_BACKUP, request=data), started=True, done=True)
    assert done.restored_from == "EtcdBackup nightly (etcd/db/old/nightly.db on claim backups, revision 4242)"
    assert done.claim == "" and done.retire_request  # released once every initial member started from it


def test_a_volume_snapshot_named_directly_needs_no_backup_object():
    plan = planned(RestoreSources(), volume={"claimName": "old-backups", "path": "x/y.db"})
    request, _ = request_of(plan.request)
    assert request["source"] == ["--path=/etc/etcd-node/restore-volume/x/y.db"] and plan.claim == "old-backups"
    started = planned(RestoreSources(request=_), started=True, volume={"claimName": "old-backups", "path": "x/y.db"})
    assert started.request is None and started.claim == "old-backups"  # kept while the restore is pending


def test_members_that_started_keep_the_claim_their_request_names_even_if_the_backup_goes():
    data = request_of(planned(RestoreSources(backup=VOLUME_BACKUP)).request)[1]
    gone = planned(RestoreSources(request=data), started=True)
    assert gone.waiting == "" and gone.claim == "backups" and gone.request is None
    # ... and the restore is still recorded, the request retired and the claim released once they run.
    done = planned(RestoreSources(request=data), started=True, done=True)
    assert done.restored_from == "EtcdBackup nightly (etcd/db/old/nightly.db on claim backups, revision 4242)"
    assert done.retire_request and done.claim == ""


def test_a_backup_without_a_usable_location_keeps_the_members_waiting():
    odd = backup(destination={"volume": {"claimName": "v"}}, location="elsewhere/nightly.db")
    assert "records no location a member can restore from" in planned(RestoreSources(backup=odd)).waiting


@pytest.mark.parametrize("restore", [
    {}, {"backupRef": {"name": "b"}, "volume": {"claimName": "c", "path": "x.db"}},
    {"s3": {"bucket": "b-1", "key": "x.db", "credentialsSecret": "c"}, "volume": {"claimName": "c", "path": "x.db"}},
])  # fmt: skip
def test_exactly_one_source(restore):
    with pytest.raises(ValueError, match="exactly one of backupRef, s3 or volume"):
        EtcdClusterSpec.model_validate({"bootstrap": {"restore": restore}})


def test_missing_credentials_or_ca_keep_the_members_waiting():
    assert "s3-creds" in planned(RestoreSources(backup=backup(), credentials=None)).waiting
    assert "s3-ca with ca.crt" in planned(RestoreSources(backup=backup(), credentials=CREDS)).waiting


def test_the_request_names_the_backups_object_and_carries_the_stores_secrets():
    plan = planned(RestoreSources(backup=backup(), credentials=CREDS, ca={"ca.crt": b"PEM"}), bumpRevision=1000,
                   markCompacted=True, backupRef={"name": "nightly"})  # fmt: skip
    assert plan.waiting == "" and plan.request["metadata"]["name"] == "main-restore"
    request, data = request_of(plan.request)
    assert request == {"token": "tok", "bumpRevision": 1000, "markCompacted": True, "source": [
        "--s3-bucket=backups", "--s3-key=etcd/db/old/nightly.db", "--s3-region=us-east-1",
        "--s3-endpoint=https://s3.example", "--s3-ca-file=/etc/etcd-node/restore/ca.crt", "--s3-force-path-style"],
        "from": "EtcdBackup nightly (s3://backups/etcd/db/old/nightly.db, revision 4242)"}
    assert data["AWS_ACCESS_KEY_ID"] == b"id" and data["ca.crt"] == b"PEM"
    assert plan.request["metadata"]["ownerReferences"][0]["uid"] == IDENTITY.owner.uid
    # The same request already in place: nothing to write.
    live = {k: base64.b64decode(v) for k, v in plan.request["data"].items()}
    again = planned(RestoreSources(backup=backup(), credentials=CREDS, ca={"ca.crt": b"PEM"}, request=live),
                    bumpRevision=1000, markCompacted=True, backupRef={"name": "nightly"})  # fmt: skip
    assert again.request is None and again.waiting == ""


def test_an_s3_key_without_a_backup_object():
    plan = planned(RestoreSources(credentials=CREDS), s3={"bucket": "b-1", "key": "x/y.db", "credentialsSecret": "c"})
    request, _ = request_of(plan.request)
    assert request["source"] == ["--s3-bucket=b-1", "--s3-key=x/y.db", "--s3-region=us-east-1"]


def test_once_every_initial_member_runs_the_request_goes_and_status_names_the_source():
    live = {"restore.json": b"{}"}
    plan = planned(RestoreSources(backup=backup(), credentials=CREDS, ca={"ca.crt": b"x"}, request=live), started=True,
                   done=True)  # fmt: skip
    assert plan.retire_request and plan.request is None
    assert plan.restored_from == "EtcdBackup nightly (s3://backups/etcd/db/old/nightly.db, revision 4242)"
    assert planned(RestoreSources(), restored_from="EtcdBackup nightly (...)") == type(plan)()


def test_a_whole_pass_waits_for_the_backup_then_starts_from_it_and_forgets_the_request():
    cluster = Cluster({"replicas": 3, "bootstrap": {"restore": {"backupRef": {"name": "nightly"}}}})
    result = cluster.once()
    assert isinstance(result.outcome.step, mp.Wait) and result.outcome.step.reason == "WaitingForBackup"
    assert ("StatefulSet", "db", "main") not in cluster.kube.objects  # no member may start without the request
    assert cluster.conditions()["Progressing"] == ("True", "WaitingForBackup")

    cluster.kube.objects[("EtcdBackup", "db", "nightly")] = backup()
    for name, data in (("s3-creds", CREDS), ("s3-ca", {"ca.crt": b"PEM"})):
        cluster.kube.objects[("Secret", "db", name)] = {"metadata": {"name": name, "namespace": "db"},
                                                        "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}  # fmt: skip
    cluster.kube.writes.clear()
    cluster.once()
    writes = cluster.kube.writes
    assert "Secret/main-restore" in writes and writes.index("Secret/main-restore") < writes.index("StatefulSet/main")
    pod = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]
    assert {"name": "restore", "secret": {"secretName": "main-restore", "optional": True, "defaultMode": 0o440}} in pod["volumes"]
    env = {e["name"]: e.get("valueFrom") for e in pod["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "main-restore", "key": "AWS_ACCESS_KEY_ID", "optional": True}}

    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.status.restored_from.startswith("EtcdBackup nightly (s3://backups/etcd/db/old/nightly.db")
    assert ("Secret", "db", "main-restore") not in cluster.kube.objects
    # Later passes neither read the backup nor write the request again, even if the backup is gone.
    del cluster.kube.objects[("EtcdBackup", "db", "nightly")]
    cluster.kube.writes.clear()
    cluster.converge()
    assert not cluster.kube.writes and ("Secret", "db", "main-restore") not in cluster.kube.objects
    cluster.assert_settled(3)


def template_volumes(cluster: Cluster) -> tuple[list[dict], dict[str, dict]]:
    pod = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]
    return pod["volumes"], {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}


def test_a_whole_pass_from_a_volume_backup_mounts_its_claim_until_the_cluster_started_then_restarts_once_without():
    from etcd_node.contract import RESTORE_VOLUME_DIR

    cluster = Cluster({"replicas": 3, "bootstrap": {"restore": {"backupRef": {"name": "nightly"}}}})
    cluster.kube.objects[("EtcdBackup", "db", "nightly")] = VOLUME_BACKUP
    cluster.once()
    volumes, mounts = template_volumes(cluster)
    assert {"name": "restore-volume", "persistentVolumeClaim": {"claimName": "backups", "readOnly": True}} in volumes
    assert mounts["restore-volume"] == {"name": "restore-volume", "mountPath": RESTORE_VOLUME_DIR, "readOnly": True}
    request, _ = request_of(cluster.kube.objects[("Secret", "db", "main-restore")])
    assert request["source"][0].startswith(f"--path={mounts['restore-volume']['mountPath']}/")  # where it is mounted

    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.status.restored_from == "EtcdBackup nightly (etcd/db/old/nightly.db on claim backups, revision 4242)"
    volumes, mounts = template_volumes(cluster)
    assert "restore-volume" not in {v["name"] for v in volumes} and "restore-volume" not in mounts
    # Releasing the claim is one rolling restart, a member at a time; nothing restarts after it.
    assert cluster.world.restarts == {0: 1, 1: 1, 2: 1}
    assert any(r.plan.step and r.plan.step.reason == "RollingUpdate" for r in cluster.results)
    cluster.converge()
    assert cluster.world.restarts == {0: 1, 1: 1, 2: 1}
    cluster.assert_settled(3)


def test_a_restore_from_s3_restarts_nobody_after_the_start():
    cluster = Cluster({"replicas": 3, "bootstrap": {"restore": {"backupRef": {"name": "nightly"}}}})
    cluster.kube.objects[("EtcdBackup", "db", "nightly")] = backup()
    for name, data in (("s3-creds", CREDS), ("s3-ca", {"ca.crt": b"PEM"})):
        cluster.kube.objects[("Secret", "db", name)] = {"metadata": {"name": name, "namespace": "db"},
                                                        "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}  # fmt: skip
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.status.restored_from and cluster.world.restarts == {0: 0, 1: 0, 2: 0}
    assert "restore-volume" not in {v["name"] for v in template_volumes(cluster)[0]}


def test_members_that_cannot_be_placed_with_the_claim_are_reported_with_the_schedulers_words():
    from etcd_operator.reconcile.pods import pod_view
    from etcd_operator.reconcile.restore import claim_problem

    message = "0/3 nodes are available: 2 node(s) had volume node affinity conflict."

    def pod(name, scheduled):
        condition = {"type": "PodScheduled", "status": "True"} if scheduled else {
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        return pod_view({"metadata": {"name": name}, "status": {"conditions": [condition]}}, "main")

    pods = [pod("main-0", True), pod("main-2", False), pod("main-1", False), pod("nightly-backup-x", False)]
    problem = claim_problem("backups", pods)
    assert problem.reason == "RestoreVolumeUnavailable" and message in problem.message
    assert "main-1, main-2 cannot be scheduled while they must mount claim backups" in problem.message
    assert "ReadWriteOnce claim is attached to one node at a time" in problem.message
    assert claim_problem("", pods) is None  # no claim to restore from: not this problem
    assert claim_problem("backups", pods[:1]) is None
