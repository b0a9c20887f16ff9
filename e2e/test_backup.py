"""EtcdBackup on a real cluster: a snapshot of a running cluster under a writer, into a real S3 store.

The store is versitygw (built here, e2e/images/build.sh) running as a pod with
TLS from a CA the test makes; the backup reaches it through a Service and
trusts it through `caSecret`. What the operator reports is then checked
against the store itself, and the snapshot is restored with etcd-node restore
into a throwaway etcd to prove it holds every write acknowledged before the
backup started.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from e2e.support import (
    CLIENT_POD,
    NODE_IMAGE,
    Kube,
    assert_stays_settled,
    condition,
    etcd_cluster,
    etcdctl,
    member_ids,
    operator_crashed_at_failpoint,
    patch_spec,
    restart_member_pod,
    restricted,
    start_client_pod,
    wait_settled,
    wait_until,
)
from e2e.writer import acked_writes, assert_no_acknowledged_write_lost, run_under_writer
from tests.support.pki import make_ca, make_cert

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

STORE_IMAGE = "localhost/etcd-operator/versitygw:1.8.0"
ACCESS, SECRET = "e2e-backup", "e2e-backup-secret-0123456789"
STORE_CLIENT = "s3-client"


def secret(name: str, data: dict[str, bytes | str]) -> dict:
    raw = {k: v.encode() if isinstance(v, str) else v for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v).decode() for k, v in raw.items()}}  # fmt: skip


@pytest.fixture
def store(kube: Kube, namespace: str) -> Iterator[str]:
    """versitygw over TLS at https://s3.<namespace>.svc:7070, a bucket `backups`, and a client pod for checks."""
    from cryptography.hazmat.primitives import serialization

    now = datetime.now(UTC)
    ca = make_ca(now, "e2e object store CA")
    hosts = ["s3", f"s3.{namespace}", f"s3.{namespace}.svc", f"s3.{namespace}.svc.cluster.local"]
    leaf = make_cert(ca, "s3", hosts, now)
    pem = serialization.Encoding.PEM
    key = leaf.key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    kube.apply(namespace, secret("s3-tls", {"tls.crt": leaf.cert.public_bytes(pem), "tls.key": key}))
    kube.apply(namespace, secret("s3-ca", {"ca.crt": ca.cert.public_bytes(pem)}))
    kube.apply(namespace, secret("s3-creds", {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET}))
    labels = {"app": "s3"}
    kube.apply(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "s3", "labels": labels},
        "spec": {
            "securityContext": {"fsGroup": 65532},
            "containers": [restricted({
                "name": "versitygw", "image": STORE_IMAGE, "imagePullPolicy": "IfNotPresent",
                "args": ["--port", ":7070", "--cert", "/tls/tls.crt", "--key", "/tls/tls.key", "posix", "/data"],
                "env": [{"name": "ROOT_ACCESS_KEY", "value": ACCESS}, {"name": "ROOT_SECRET_KEY", "value": SECRET}],
                "ports": [{"containerPort": 7070, "name": "s3"}],
                "readinessProbe": {"tcpSocket": {"port": 7070}, "periodSeconds": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tls", "mountPath": "/tls"}],
            })],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tls", "secret": {"secretName": "s3-tls"}}],
        },
    })  # fmt: skip
    kube.apply(namespace, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3"},
                           "spec": {"selector": labels, "ports": [{"name": "s3", "port": 7070}]}})  # fmt: skip
    # A pod with boto3, etcd and etcdutl (the node image) that trusts the store's CA.
    kube.apply(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": STORE_CLIENT},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [restricted({
                "name": "client", "image": NODE_IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "infinity"],
                "envFrom": [{"secretRef": {"name": "s3-creds"}}],
                "volumeMounts": [{"name": "ca", "mountPath": "/ca"}, {"name": "work", "mountPath": "/work"}],
            })],
            "volumes": [{"name": "ca", "secret": {"secretName": "s3-ca"}}, {"name": "work", "emptyDir": {}}],
        },
    })  # fmt: skip
    for pod in ("s3", STORE_CLIENT):
        kube.run("-n", namespace, "wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=120s", timeout=150)
    # A Ready pod is not yet a reachable Service: until kube-proxy programs the new endpoint, the
    # ClusterIP refuses connections. Wait for the Service itself, failing at once on any other error.
    def bucket_created() -> bool:
        proc = s3_run(kube, namespace, "s3.create_bucket(Bucket='backups')")
        if proc.returncode != 0 and "Could not connect to the endpoint URL" not in proc.stderr:
            pytest.fail(f"creating the bucket failed:\n{proc.stderr}", pytrace=False)
        return proc.returncode == 0

    wait_until("the store's Service to accept connections", bucket_created, timeout=60, interval=1)
    yield f"https://s3.{namespace}.svc:7070"


def s3_run(kube: Kube, namespace: str, body: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `body` in the client pod with `s3`, a boto3 client of the store, in scope."""
    code = (
        "import boto3, hashlib, json\n"
        f"s3 = boto3.client('s3', endpoint_url='https://s3.{namespace}.svc:7070', region_name='us-east-1', "
        "verify='/ca/ca.crt', config=boto3.session.Config(s3={'addressing_style': 'path'}))\n" + body
    )
    return kube.run("-n", namespace, "exec", STORE_CLIENT, "--", "python3", "-c", code, check=check, timeout=120)


def s3_python(kube: Kube, namespace: str, body: str) -> str:
    return s3_run(kube, namespace, body, check=True).stdout


def backup(name: str, cluster: str, endpoint: str, credentials: str = "s3-creds") -> dict:
    return {
        "apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdBackup", "metadata": {"name": name},
        "spec": {"clusterRef": {"name": cluster}, "destination": {"s3": {
            "endpoint": endpoint, "bucket": "backups", "prefix": "etcd", "credentialsSecret": credentials,
            "caSecret": "s3-ca", "forcePathStyle": True}}},
    }  # fmt: skip


def finished(kube: Kube, namespace: str, name: str) -> dict | None:
    obj = kube.get(namespace, "etcdbackup", name)
    phase = ((obj or {}).get("status") or {}).get("phase")
    return obj if phase in ("Completed", "Failed") else None


def test_a_backup_of_a_running_cluster_holds_every_write_acknowledged_before_it(kube: Kube, namespace: str, store: str) -> None:
    cluster = "main"
    run_under_writer(kube, namespace, etcd_cluster(cluster, replicas=3), acked=20)
    before = acked_writes(kube, namespace)  # acknowledged before the backup was asked for

    kube.apply(namespace, backup("first", cluster, store))
    done = wait_until("EtcdBackup first to finish", lambda: finished(kube, namespace, "first"), timeout=300)
    status = done["status"]
    assert status["phase"] == "Completed", json.dumps(status, indent=1)
    assert (condition(done, "Complete") or {}).get("status") == "True"
    assert status["location"] == f"s3://backups/etcd/{namespace}/{cluster}/first.db"
    assert re.fullmatch(r"[0-9a-f]{64}", status["sha256"]) and status["sizeBytes"] > 0 and status["revision"] > len(before)
    assert status["etcdVersion"].startswith("3.6") and status["member"].startswith(f"https://{cluster}-")
    assert status["startTime"] <= status["completionTime"] and status["jobName"] == "first-backup"
    reasons = {e["reason"] for e in kube.items(namespace, "events") if e["involvedObject"].get("name") == "first"}
    assert {"BackupRunning", "BackupCompleted"} <= reasons
    job_pod = kube.items(namespace, "pods", "etcd.operator.dev/backup=first")[0]["spec"]
    assert job_pod["automountServiceAccountToken"] is False and job_pod["enableServiceLinks"] is False

    # The store holds exactly what the status says.
    stored = json.loads(s3_python(kube, namespace, (
        f"o = s3.get_object(Bucket='backups', Key='etcd/{namespace}/{cluster}/first.db')\n"
        "print(json.dumps({'sha256': hashlib.sha256(o['Body'].read()).hexdigest(), 'meta': o['Metadata']}))"
    )))  # fmt: skip
    assert stored["sha256"] == status["sha256"] and stored["meta"]["revision"] == str(status["revision"])

    # Restored into a throwaway single-member etcd, the snapshot has every write acknowledged before the backup.
    script = (
        f"etcd-node restore --s3-endpoint={store} --s3-bucket=backups --s3-key=etcd/{namespace}/{cluster}/first.db "
        "--s3-ca-file=/ca/ca.crt --s3-force-path-style --data-dir=/work/restored --name=check "
        "--initial-cluster=check=http://127.0.0.1:22380 --initial-advertise-peer-urls=http://127.0.0.1:22380 "
        "--initial-cluster-token=e2e-check >/work/restore.log 2>&1 || { cat /work/restore.log; exit 1; }; "
        "etcd --name=check --data-dir=/work/restored --listen-client-urls=http://127.0.0.1:22379 "
        "--advertise-client-urls=http://127.0.0.1:22379 --listen-peer-urls=http://127.0.0.1:22380 "
        "--initial-advertise-peer-urls=http://127.0.0.1:22380 --initial-cluster=check=http://127.0.0.1:22380 "
        ">/work/etcd.log 2>&1 & pid=$!; "
        "for i in $(seq 50); do etcdctl --endpoints=http://127.0.0.1:22379 endpoint health >/dev/null 2>&1 && break; "
        "sleep 0.2; done; etcdctl --endpoints=http://127.0.0.1:22379 get w/ --prefix --keys-only; kill $pid"
    )
    keys = kube.run("-n", namespace, "exec", STORE_CLIENT, "--", "sh", "-c", script, timeout=120).stdout.split()
    restored = {int(k.removeprefix("w/")) for k in keys if k.startswith("w/")}
    missing = [i for i in before if i not in restored]
    assert not missing, f"{len(missing)} writes acknowledged before the backup are not in it: {missing[:10]}"
    print(f"acknowledged before the backup: {len(before)}; in the snapshot: {len(restored)}; lost: 0")

    # The cluster was not disturbed, and nothing acknowledged meanwhile was lost.
    kube.run("-n", namespace, "exec", CLIENT_POD, "--", "touch", "/tmp/stop")
    wait_settled(kube, namespace, cluster, replicas=3)
    assert_no_acknowledged_write_lost(kube, namespace, cluster)


def test_a_backup_the_store_refuses_fails_with_the_reason(kube: Kube, namespace: str, store: str) -> None:
    cluster = "small"
    kube.apply(namespace, etcd_cluster(cluster, replicas=1))
    wait_settled(kube, namespace, cluster, replicas=1)
    kube.apply(namespace, secret("wrong-creds", {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}))
    kube.apply(namespace, backup("refused", cluster, store, credentials="wrong-creds"))
    done = wait_until("EtcdBackup refused to finish", lambda: finished(kube, namespace, "refused"), timeout=300)
    failed = condition(done, "Failed") or {}
    assert done["status"]["phase"] == "Failed" and failed.get("status") == "True"
    assert failed.get("reason") == "StoreFailed" and f"s3://backups/etcd/{namespace}/{cluster}/refused.db" in failed["message"]
    listed = s3_python(kube, namespace, "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='backups').get('Contents', [])]))")
    assert json.loads(listed) == []  # nothing that looks like a backup was left behind
    # A cluster that does not exist keeps a backup Pending with the reason, not Failed.
    kube.apply(namespace, backup("early", "not-yet", store))
    pending = wait_until("EtcdBackup early to report", lambda: (condition(kube.get(namespace, "etcdbackup", "early") or {}, "Complete") or {}).get("reason"), timeout=60)  # fmt: skip
    assert pending == "ClusterNotFound"
    assert kube.get(namespace, "etcdbackup", "early")["status"]["phase"] == "Pending"


def scheduled(kube: Kube, namespace: str, cluster: str) -> dict[str, dict]:
    """The cluster's scheduled EtcdBackups by name."""
    return {b["metadata"]["name"]: b for b in kube.items(namespace, "etcdbackup", f"etcd.operator.dev/schedule={cluster}")}


def stored_keys(kube: Kube, namespace: str) -> list[str]:
    listed = s3_python(kube, namespace, "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='backups').get('Contents', [])]))")
    return json.loads(listed)


def test_scheduled_backups_every_minute_keep_two_and_prune_the_first_with_its_object(
    kube: Kube, namespace: str, store: str
) -> None:
    cluster = "sched"
    destination = backup("x", cluster, store)["spec"]["destination"]
    kube.apply(namespace, etcd_cluster(cluster, replicas=1, backup={
        "schedule": "* * * * *", "destination": destination, "retention": {"keep": 2}}))  # fmt: skip
    wait_settled(kube, namespace, cluster, replicas=1)
    completed: list[str] = []  # in the order they were first seen Completed

    def third_completed() -> list[str] | None:
        for name, obj in sorted(scheduled(kube, namespace, cluster).items()):
            if (obj.get("status") or {}).get("phase") == "Completed" and name not in completed:
                completed.append(name)
        return completed if len(completed) >= 3 else None

    wait_until("three Completed scheduled backups", third_completed, timeout=420, interval=3)
    first = sorted(completed)[0]
    key = f"etcd/{namespace}/{cluster}/{first}.db"
    first_obj_spec = {"deletionPolicy": "Delete", "clusterRef": {"name": cluster}}
    assert first.startswith(f"{cluster}-") and re.fullmatch(rf"{cluster}-\d{{12}}", first)
    wait_until(f"{first} pruned from the API", lambda: first not in scheduled(kube, namespace, cluster) or None,
               timeout=120)  # fmt: skip
    wait_until(f"{key} gone from the store", lambda: key not in stored_keys(kube, namespace) or None, timeout=120)
    left = scheduled(kube, namespace, cluster)
    done = sorted(n for n, o in left.items() if (o.get("status") or {}).get("phase") == "Completed")
    assert len(done) <= 2 and sorted(completed)[-1] in done, sorted(left)
    for name in done:
        assert {k: left[name]["spec"][k] for k in first_obj_spec} == first_obj_spec
        assert f"etcd/{namespace}/{cluster}/{name}.db" in stored_keys(kube, namespace)
    status = kube.get(namespace, "etcdcluster", cluster)["status"]["backup"]
    assert status["lastSuccessfulBackup"] in done and status["nextScheduleTime"] > status["lastScheduleTime"]

    # Deleting the cluster takes its scheduled backups with it, and their snapshots (while the store is up).
    kube.run("-n", namespace, "delete", "etcdcluster", cluster, "--wait=false")
    wait_until("scheduled backups gone with the cluster", lambda: not scheduled(kube, namespace, cluster) or None,
               timeout=180)  # fmt: skip
    assert not [k for k in stored_keys(kube, namespace) if k.startswith(f"etcd/{namespace}/{cluster}/")]


def test_a_new_cluster_starts_from_a_backup(kube: Kube, namespace: str, store: str) -> None:
    """bootstrap.restore.backupRef: every initial member restores the snapshot, then the request is gone."""
    plain = {"client": {"mode": "none"}}  # reached over plain HTTP by the test's client pod
    kube.apply(namespace, etcd_cluster("src", replicas=1, tls=plain))
    wait_settled(kube, namespace, "src", replicas=1)
    start_client_pod(kube, namespace, "src", client_tls=False)
    for i in range(50):
        etcdctl(kube, namespace, "src", "put", f"k/{i:02d}", f"v{i}", tls="none")
    kube.apply(namespace, backup("seed", "src", store))
    done = wait_until("EtcdBackup seed to finish", lambda: finished(kube, namespace, "seed"), timeout=300)
    assert done["status"]["phase"] == "Completed", json.dumps(done["status"], indent=1)
    revision = done["status"]["revision"]

    # A cluster whose backup does not exist yet waits with the reason, and starts no member.
    kube.apply(namespace, etcd_cluster("early", replicas=1, bootstrap={"restore": {"backupRef": {"name": "later"}}}))
    waiting = wait_until("cluster early to wait for its backup",
                         lambda: (condition(kube.get(namespace, "etcdcluster", "early") or {}, "Progressing") or {}).get("reason"),
                         timeout=60)  # fmt: skip
    assert waiting == "WaitingForBackup" and kube.get(namespace, "statefulset", "early") is None

    bump = 1_000_000
    kube.apply(namespace, etcd_cluster("copy", replicas=3, tls=plain, bootstrap={"restore": {
        "backupRef": {"name": "seed"}, "bumpRevision": bump, "markCompacted": True}}))  # fmt: skip
    status = wait_settled(kube, namespace, "copy", replicas=3)
    restored_from = wait_until("status.restoredFrom", lambda: (kube.get(namespace, "etcdcluster", "copy") or {}).get(
        "status", {}).get("restoredFrom"), timeout=60)  # fmt: skip
    assert restored_from == f"EtcdBackup seed (s3://backups/etcd/{namespace}/src/seed.db, revision {revision})"
    assert kube.get(namespace, "secret", "copy-restore") is None  # no later pod can restore again
    out = etcdctl(kube, namespace, "copy", "get", "k/", "--prefix", "-w", "json", tls="none").stdout
    kvs = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode() for kv in json.loads(out)["kvs"]}
    assert kvs == {f"k/{i:02d}": f"v{i}" for i in range(50)}
    assert json.loads(out)["header"]["revision"] >= revision + bump
    source_id = (kube.get(namespace, "etcdcluster", "src") or {})["status"]["clusterID"]
    assert status["clusterID"] != source_id  # a new cluster, not a member of the old one
    assert sorted(m["name"] for m in status["members"]) == ["copy-0", "copy-1", "copy-2"]
    etcdctl(kube, namespace, "copy", "put", "after", "restore", tls="none")
    assert_stays_settled(kube, namespace, "copy", replicas=3, seconds=15, tls="none")


def present_writes(kube: Kube, namespace: str, cluster: str) -> set[int]:
    out = etcdctl(kube, namespace, cluster, "get", "w/", "--prefix", "--keys-only", "-w", "json", timeout=60).stdout
    return {int(base64.b64decode(kv["key"]).decode().removeprefix("w/")) for kv in json.loads(out).get("kvs") or []}


def test_a_running_cluster_is_restored_in_place_under_its_name(kube: Kube, namespace: str, store: str) -> None:
    """spec.restore: a bad write is undone by restoring a backup into the same cluster, under a writer.

    The writer keeps going through the restore, through the same client Service with the same client
    certificate: its writes fail while the members are stopped and succeed again once the restored cluster
    serves, with no client configuration changed.
    """
    cluster = "main"
    run_under_writer(kube, namespace, etcd_cluster(cluster, replicas=3), acked=20)
    etcdctl(kube, namespace, cluster, "put", "config/mode", "good")
    before_backup = acked_writes(kube, namespace)
    kube.apply(namespace, backup("good", cluster, store))
    done = wait_until("EtcdBackup good to finish", lambda: finished(kube, namespace, "good"), timeout=300)
    assert done["status"]["phase"] == "Completed", json.dumps(done["status"], indent=1)
    revision = done["status"]["revision"]
    after_backup = acked_writes(kube, namespace)

    # The disaster: a bad write, and more writes after the backup that the restore will undo.
    etcdctl(kube, namespace, cluster, "put", "config/mode", "bad")
    wait_until("writes after the backup", lambda: len(acked_writes(kube, namespace)) >= len(after_backup) + 20, timeout=120)
    old = kube.get(namespace, "etcdcluster", cluster)["status"]
    old_ids = member_ids(kube, namespace, cluster)
    before_restore = acked_writes(kube, namespace)

    patch_spec(kube, namespace, cluster, restore={"backupRef": {"name": "good"}, "requestID": "undo-bad-write"})
    restoring = wait_until("Progressing=True/Restoring", lambda: (c := condition(
        kube.get(namespace, "etcdcluster", cluster) or {}, "Progressing") or {}).get("reason") == "Restoring" and c,
        timeout=60, interval=1)  # fmt: skip
    assert "undo-bad-write" in restoring["message"] and "EtcdBackup good" in restoring["message"]
    record = wait_until("status.restore", lambda: (kube.get(namespace, "etcdcluster", cluster) or {}).get(
        "status", {}).get("restore"), timeout=600, interval=2)  # fmt: skip
    status = wait_settled(kube, namespace, cluster, replicas=3)
    wait_until("the request Secret retired", lambda: kube.get(namespace, "secret", f"{cluster}-restore") is None or None,
               timeout=60)  # fmt: skip
    assert record["requestID"] == "undo-bad-write" and record["revision"] == revision
    assert record["source"] == f"EtcdBackup good (s3://backups/etcd/{namespace}/{cluster}/good.db, revision {revision})"
    assert status["clusterID"] != old["clusterID"] and record["clusterID"] == status["clusterID"]
    new_ids = member_ids(kube, namespace, cluster)
    assert sorted(new_ids) == sorted(old_ids) == [f"{cluster}-{i}" for i in range(3)]
    assert set(new_ids.values()).isdisjoint(old_ids.values())
    reasons = [e["reason"] for e in kube.items(namespace, "events") if e["involvedObject"].get("name") == cluster]
    assert "RestoreStarted" in reasons and "Restored" in reasons

    # The data is the snapshot's: the bad write and everything after the backup are gone.
    mode = etcdctl(kube, namespace, cluster, "get", "config/mode", "--print-value-only").stdout.strip()
    assert mode == "good"
    header = json.loads(etcdctl(kube, namespace, cluster, "get", "config/mode", "-w", "json").stdout)["header"]
    assert header["revision"] >= revision + 1_000_000_000  # bumped: watchers never see a revision twice
    present = present_writes(kube, namespace, cluster)
    missing = [i for i in before_backup if i not in present]
    assert not missing, f"{len(missing)} writes acknowledged before the backup are gone: {missing[:10]}"
    undone = [i for i in before_restore if i > max(after_backup) and i in present]
    assert not undone, f"{len(undone)} writes acknowledged after the backup survived the restore: {undone[:10]}"

    # The writer reconnected through the same Service: new writes are acknowledged and kept.
    settled_acks = acked_writes(kube, namespace)
    wait_until("writes acknowledged by the restored cluster",
               lambda: len(acked_writes(kube, namespace)) >= len(settled_acks) + 20, timeout=120)  # fmt: skip
    kube.run("-n", namespace, "exec", CLIENT_POD, "--", "touch", "/tmp/stop")
    wait_until("the writer to stop", lambda: kube.run("-n", namespace, "exec", CLIENT_POD, "--", "test", "-e",
               "/tmp/stopped", check=False).returncode == 0 or None, timeout=30)  # fmt: skip
    final = acked_writes(kube, namespace)
    present = present_writes(kube, namespace, cluster)
    # Acknowledged once the restored cluster had settled (writes acknowledged by the old members between
    # the request and the stop are undone too, like every write after the backup).
    new = [i for i in final if i > max(settled_acks)]
    lost_new = [i for i in new if i not in present]
    assert new and not lost_new, f"{len(lost_new)} of {len(new)} writes acknowledged after the restore are missing"
    print(f"acknowledged before the backup: {len(before_backup)} (all present); acknowledged after the backup and "
          f"undone by the restore: {len([i for i in before_restore if i > max(after_backup)])}; acknowledged after "
          f"the restore: {len(new)} (all present)")

    # A member restarted later starts from its restored data: no second restore, the same members.
    restart_member_pod(kube, namespace, cluster, f"{cluster}-1", replicas=3)
    assert member_ids(kube, namespace, cluster) == new_ids
    assert etcdctl(kube, namespace, cluster, "get", "config/mode", "--print-value-only").stdout.strip() == "good"
    assert_stays_settled(kube, namespace, cluster, replicas=3, seconds=10)


@pytest.mark.parametrize("failpoint", ["after-restore-stop", "after-restore-request"])
def test_an_in_place_restore_survives_an_operator_crash(kube: Kube, namespace: str, store: str, operator: str,
                                                        failpoint: str) -> None:  # fmt: skip
    """The operator dies right after stopping the members, or right after writing the request (no member
    started); the restarted operator carries the restore on from what it finds, once."""
    cluster = "crash"
    plain = {"client": {"mode": "none"}}
    kube.apply(namespace, etcd_cluster(cluster, replicas=3, tls=plain))
    wait_settled(kube, namespace, cluster, replicas=3)
    start_client_pod(kube, namespace, cluster, client_tls=False)
    for i in range(20):
        etcdctl(kube, namespace, cluster, "put", f"k/{i:02d}", f"v{i}", tls="none")
    kube.apply(namespace, backup("snap", cluster, store))
    done = wait_until("EtcdBackup snap to finish", lambda: finished(kube, namespace, "snap"), timeout=300)
    assert done["status"]["phase"] == "Completed", json.dumps(done["status"], indent=1)
    etcdctl(kube, namespace, cluster, "put", "k/after", "lost", tls="none")
    old_id = kube.get(namespace, "etcdcluster", cluster)["status"]["clusterID"]

    deploy = "deploy/etcd-operator"
    kube.run("-n", operator, "set", "env", deploy, f"ETCD_OPERATOR_FAILPOINT={failpoint}")
    kube.run("-n", operator, "rollout", "status", deploy, "--timeout=180s", timeout=200)
    try:
        patch_spec(kube, namespace, cluster, restore={"backupRef": {"name": "snap"}, "requestID": "r1"})
        wait_until(f"the operator to crash at {failpoint}", lambda: operator_crashed_at_failpoint(kube, operator) or None,
                   timeout=300)  # fmt: skip
    finally:
        kube.run("-n", operator, "set", "env", deploy, "ETCD_OPERATOR_FAILPOINT-")
        kube.run("-n", operator, "rollout", "status", deploy, "--timeout=180s", timeout=200)
    record = wait_until("status.restore", lambda: (kube.get(namespace, "etcdcluster", cluster) or {}).get(
        "status", {}).get("restore"), timeout=600)  # fmt: skip
    status = wait_settled(kube, namespace, cluster, replicas=3)
    assert record["requestID"] == "r1" and status["clusterID"] != old_id
    out = etcdctl(kube, namespace, cluster, "get", "k/", "--prefix", "-w", "json", tls="none").stdout
    kvs = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode() for kv in json.loads(out)["kvs"]}
    assert kvs == {f"k/{i:02d}": f"v{i}" for i in range(20)}
    started = [e for e in kube.items(namespace, "events")
               if e["involvedObject"].get("name") == cluster and e["reason"] == "RestoreStarted"]  # fmt: skip
    assert sum(e.get("count") or 1 for e in started) <= 2  # stopped once (a crash may lose the status, not the stop)
    wait_until("the request Secret retired", lambda: kube.get(namespace, "secret", f"{cluster}-restore") is None or None,
               timeout=60)  # fmt: skip
