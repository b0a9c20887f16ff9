"""spec.restore: a running cluster restored in place, pass by pass, and resumed after a crash at every step."""

from __future__ import annotations

import base64
import json

import pytest

from etcd_operator.models.cluster import MaintenanceRecord
from etcd_operator.reconcile import membership as mp
from etcd_operator.reconcile.desired import default_token

from .test_pass import IDENTITY, Cluster

CREDS = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
DEST = {"s3": {"endpoint": "https://s3.example", "bucket": "backups", "prefix": "etcd", "credentialsSecret": "s3-creds",
               "forcePathStyle": True}}  # fmt: skip
TOKEN = default_token(IDENTITY)


def backup(phase: str = "Completed") -> dict:
    return {"kind": "EtcdBackup", "metadata": {"name": "nightly", "namespace": "db"},
            "spec": {"clusterRef": {"name": "main"}, "destination": DEST},
            "status": {"phase": phase, "location": "s3://backups/etcd/db/main/nightly.db", "revision": 4242}}  # fmt: skip


def running(replicas: int = 3, phase: str | None = "Completed") -> Cluster:
    cluster = Cluster({"replicas": replicas})
    cluster.converge()
    if phase:
        cluster.kube.objects[("EtcdBackup", "db", "nightly")] = backup(phase)
    secret = {"kind": "Secret", "metadata": {"name": "s3-creds", "namespace": "db"},
              "data": {k: base64.b64encode(v.encode()).decode() for k, v in CREDS.items()}}  # fmt: skip
    cluster.kube.objects[("Secret", "db", "s3-creds")] = secret
    return cluster


def ask(cluster: Cluster, request_id: str = "r1", **extra) -> None:
    cluster.edit(restore={"backupRef": {"name": "nightly"}, "requestID": request_id, **extra})


def request(cluster: Cluster) -> dict | None:
    secret = cluster.kube.objects.get(("Secret", "db", "main-restore"))
    return json.loads(base64.b64decode(secret["data"]["restore.json"])) if secret else None


def template_token(cluster: Cluster) -> str:
    env = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "ETCD_INITIAL_CLUSTER_TOKEN")


def ids(cluster: Cluster) -> set[str]:
    return {m.id for m in cluster.status.members or []}


def stops(cluster: Cluster) -> int:
    return sum(r.plan.step == mp.ScaleStatefulSet(0) for r in cluster.results)


def test_each_phase_is_one_pass_and_the_outcome_is_a_new_cluster_under_the_same_names():
    cluster = running()
    old_ids, old_cluster = ids(cluster), cluster.status.cluster_id
    cluster.status = cluster.status.model_copy(update={"maintenance": MaintenanceRecord(compacted_revision=99)})
    ask(cluster)

    stop = cluster.once()
    assert stop.plan.step == mp.ScaleStatefulSet(0) and cluster.world.replicas() == 0
    assert cluster.conditions()["Progressing"] == ("True", "Restoring")
    assert "stopping every member (1 of 3)" in stop.status.conditions[1].message
    assert [e.reason for e in stop.plan.in_place.events] == ["RestoreStarted"]
    assert request(cluster) is None and template_token(cluster) == TOKEN  # nothing written before the stop

    start = cluster.once()
    assert start.plan.step == mp.ScaleStatefulSet(3) and cluster.status.phase == "Restoring"
    assert cluster.conditions()["Available"] == ("False", "Restoring")
    assert "(2 of 3)" in cluster.status.conditions[1].message
    req = request(cluster)
    assert req["requestID"] == "r1" and req["token"] == f"{TOKEN}-r1" and req["members"] == 3
    assert req["bumpRevision"] == 1_000_000_000 and req["markCompacted"] is True
    assert req["initialCluster"].count("=https://main-") == 3 and "main-2=https://main-2.main.db.svc" in req["initialCluster"]
    assert "--s3-key=etcd/db/main/nightly.db" in req["source"]
    assert template_token(cluster) == f"{TOKEN}-r1"  # etcd-node restores only for a pod of the request's token

    record = cluster.once()
    assert record.status.restore is not None and record.status.restore.request_id == "r1"
    assert record.status.restore.revision == 4242 and "EtcdBackup nightly" in record.status.restore.source
    assert [e.reason for e in record.plan.in_place.events] == ["Restored"]
    assert request(cluster) is not None  # retired by the next pass, not this one

    retire = cluster.once()
    assert "delete Secret/main-restore" in cluster.kube.writes and request(cluster) is None
    assert not retire.plan.in_place.active

    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.restored == ["r1"] and stops(cluster) == 1
    assert ids(cluster).isdisjoint(old_ids) and cluster.status.cluster_id != old_cluster
    assert cluster.status.restore.cluster_id == cluster.status.cluster_id
    assert {m.name for m in cluster.status.members} == {"main-0", "main-1", "main-2"}
    assert template_token(cluster) == f"{TOKEN}-r1"  # kept: no rollout when the request goes
    assert cluster.status.maintenance.compacted_revision is None  # the old cluster's revisions are gone


@pytest.mark.parametrize("crash_after", [1, 2, 3, 4])
def test_an_operator_crash_after_any_pass_resumes_where_it_stopped(crash_after):
    """The status write of pass N is lost (the operator died after applying it) and the operator restarts."""
    cluster = running()
    ask(cluster)
    for _ in range(crash_after):
        before = cluster.status
        cluster.once()
    cluster.status = before  # that pass's status never reached the API server
    cluster.clients = type(cluster.clients)(lambda access, secret: cluster.etcd)  # a new operator process
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.restored == ["r1"] and stops(cluster) == 1
    assert cluster.status.restore.request_id == "r1" and request(cluster) is None


def test_a_crash_between_writing_the_request_and_starting_the_members():
    cluster = running()
    ask(cluster)
    cluster.once()  # stop
    cluster.kube.refuse["StatefulSet/main"] = (500, "etcdserver: leader changed")  # the scale never happens
    cluster.once()
    assert request(cluster)["requestID"] == "r1" and cluster.world.replicas() == 0
    del cluster.kube.refuse["StatefulSet/main"]
    resumed = cluster.once()
    assert resumed.plan.step == mp.ScaleStatefulSet(3)
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.restored == ["r1"] and stops(cluster) == 1


@pytest.mark.parametrize(("phase", "words"), [(None, "EtcdBackup nightly does not exist"),
                                              ("Running", "is Running, not Completed")])  # fmt: skip
def test_a_backup_that_cannot_be_restored_is_refused_and_no_member_stops(phase, words):
    cluster = running(phase=phase)
    ask(cluster)
    for _ in range(3):
        cluster.once()
    assert cluster.world.replicas() == 3 and stops(cluster) == 0
    status, reason = cluster.conditions()["Degraded"]
    assert (status, reason) == ("True", "RestoreRefused")
    message = cluster.status.conditions[2].message
    assert words in message and "spec.restore" in message and "members keep running" in message
    assert cluster.conditions()["Available"] == ("True", "QuorumHealthy")
    cluster.kube.objects[("EtcdBackup", "db", "nightly")] = backup("Completed")
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.restored == ["r1"]


def test_missing_store_credentials_are_refused_with_the_secrets_name():
    cluster = running()
    cluster.kube.remove("Secret", "db", "s3-creds")
    ask(cluster)
    cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "RestoreRefused") and cluster.world.replicas() == 3
    assert "Secret s3-creds" in cluster.status.conditions[2].message


def test_the_same_request_is_done_once_and_a_new_one_restores_again():
    cluster = running()
    ask(cluster)
    cluster.converge()
    first_ids, first_cluster = ids(cluster), cluster.status.cluster_id
    for _ in range(3):
        idle = cluster.once()
        assert not idle.plan.in_place.active
    assert cluster.world.restored == ["r1"] and stops(cluster) == 1
    ask(cluster, "r2", bumpRevision=0, markCompacted=False)
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.restored == ["r1", "r2"] and stops(cluster) == 2
    assert ids(cluster).isdisjoint(first_ids) and cluster.status.cluster_id != first_cluster
    assert template_token(cluster) == f"{TOKEN}-r2" and cluster.status.restore.request_id == "r2"


def test_the_restored_cluster_has_spec_replicas_members_and_scales_as_usual_afterwards():
    cluster = running(replicas=3)
    ask(cluster)
    cluster.converge()
    cluster.edit(replicas=5)
    cluster.converge()
    cluster.assert_settled(5)
    assert cluster.world.restored == ["r1"]


def test_a_backup_gone_after_the_stop_keeps_members_stopped_until_spec_restore_is_removed():
    cluster = running()
    old_ids = ids(cluster)
    ask(cluster)
    cluster.once()  # stopped
    cluster.kube.remove("EtcdBackup", "db", "nightly")
    for _ in range(3):
        cluster.once()
    assert cluster.world.replicas() == 0 and request(cluster) is None
    assert cluster.conditions()["Degraded"] == ("True", "RestoreRefused")
    assert "remove spec.restore to start the old members again" in cluster.status.conditions[2].message
    cluster.spec = cluster.spec.model_copy(update={"restore": None})
    cluster.converge()
    cluster.assert_settled(3)
    assert ids(cluster) == old_ids and cluster.world.restored == []  # the same members, with their data


def test_a_cluster_that_never_restored_in_place_pays_no_read_and_keeps_its_template():
    cluster = running()
    requests = cluster.kube.requests
    idle = cluster.once()
    assert cluster.kube.requests - requests == 5 and not idle.plan.objects
    assert template_token(cluster) == TOKEN
    volumes = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["volumes"]
    assert "restore" not in {v["name"] for v in volumes}


def test_hibernation_blocks_the_restore():
    cluster = running()
    cluster.edit(hibernate=True)
    cluster.converge()
    ask(cluster)  # the API server refuses this combination; the planner does too
    cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "RestoreRefused")
    assert "wake the cluster first" in cluster.status.conditions[2].message


def test_the_request_the_operator_writes_is_the_one_each_member_restores_with():
    """Cross-contract: the agent parses the operator's request, and finds its own pod's name and peer URL in it."""
    from etcd_node.bootstrap_restore import RestoreRequest, restore_argv
    from etcd_node.contract import RESTORE_FILE
    from etcd_node.kube import derived_options, identity_from_env

    cluster = running()
    ask(cluster)
    cluster.once()
    cluster.once()
    parsed = RestoreRequest.parse(json.dumps(request(cluster)))
    assert parsed.in_place and parsed.request_id == "r1" and parsed.token == template_token(cluster)
    env = {e["name"]: e.get("value", "") for e in
           cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["containers"][0]["env"]}
    for ordinal in range(3):
        pod_env = {**env, "ETCD_NODE_POD_NAME": f"main-{ordinal}", "ETCD_NODE_POD_NAMESPACE": "db"}
        identity = identity_from_env(pod_env)
        options = {**derived_options(identity, pod_env), "data-dir": env["ETCD_DATA_DIR"],
                   "initial-cluster-token": env["ETCD_INITIAL_CLUSTER_TOKEN"]}  # fmt: skip
        argv = restore_argv(parsed, options)
        own = f"main-{ordinal}={options['initial-advertise-peer-urls']}"
        assert own in parsed.initial_cluster.split(",") and f"--initial-cluster={parsed.initial_cluster}" in argv
        assert f"--initial-cluster-token={parsed.token}" in argv and "--bump-revision=1000000000" in argv
    pod = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert f"{mounts['restore']}/restore.json" == RESTORE_FILE  # where the agent reads it
    assert any(v["name"] == "restore" and v["secret"]["secretName"] == "main-restore" for v in pod["volumes"])


def test_a_backup_jobs_pod_with_the_clusters_labels_is_not_a_member_left_running():
    """The pods the pass lists by the cluster's labels include the backup Job's: only members count as running."""
    cluster = running()
    job_pod = {"kind": "Pod", "metadata": {"name": "nightly-backup-x7k2p", "namespace": "db", "uid": "job-pod",
               "labels": {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": "main"}}}  # fmt: skip
    cluster.kube.objects[("Pod", "db", "nightly-backup-x7k2p")] = job_pod
    ask(cluster)
    cluster.once()  # stop
    start = cluster.once()
    assert start.plan.step == mp.ScaleStatefulSet(3), cluster.status.conditions[1].message
    cluster.converge()
    cluster.assert_settled(3)


def test_hibernation_is_not_held_up_by_a_backup_jobs_pod_either():
    cluster = running()
    job_pod = {"kind": "Pod", "metadata": {"name": "nightly-backup-x7k2p", "namespace": "db", "uid": "job-pod",
               "labels": {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": "main"}}}  # fmt: skip
    cluster.kube.objects[("Pod", "db", "nightly-backup-x7k2p")] = job_pod
    cluster.edit(hibernate=True)
    cluster.converge()
    assert cluster.conditions()["Progressing"] == ("False", "Hibernated")


def test_a_volume_backup_is_restored_with_its_claim_mounted_only_until_the_restore_is_recorded():
    """All members are stopped for the restore anyway: the claim joins the template then, at no cost; it leaves
    once the restore is recorded, one member at a time, as any template change does."""
    cluster = running()
    cluster.kube.objects[("EtcdBackup", "db", "nightly")] = {
        **backup(), "spec": {"clusterRef": {"name": "main"}, "destination": {"volume": {"claimName": "backups"}}},
        "status": {"phase": "Completed", "location": "/backup/db/main/nightly.db", "revision": 4242}}  # fmt: skip
    cluster.kube.remove("Secret", "db", "s3-creds")  # a volume needs no store credentials
    ask(cluster)

    def claim() -> dict | None:
        pod = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]
        return next((v for v in pod["volumes"] if v["name"] == "restore-volume"), None)

    cluster.once()  # stop
    assert cluster.world.replicas() == 0 and claim() is None
    cluster.once()  # start: request, token and claim in the template before the members start
    req = request(cluster)
    assert req["source"] == ["--path=/etc/etcd-node/restore-volume/db/main/nightly.db"] and req["claim"] == "backups"
    assert req["from"] == "EtcdBackup nightly (db/main/nightly.db on claim backups, revision 4242)"
    assert set(cluster.kube.objects[("Secret", "db", "main-restore")]["data"]) == {"restore.json"}
    assert claim() == {"name": "restore-volume", "persistentVolumeClaim": {"claimName": "backups", "readOnly": True}}
    started = dict(cluster.world.restarts)

    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.restored == ["r1"] and cluster.status.restore.request_id == "r1"
    assert claim() is None and request(cluster) is None
    assert cluster.world.restarts == {o: n + 1 for o, n in started.items()}  # one rolling restart releases it
    assert template_token(cluster) == f"{TOKEN}-r1"
