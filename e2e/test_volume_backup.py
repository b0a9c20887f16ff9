"""Backups on a PersistentVolumeClaim on a real cluster: taken during a scale-out, and restored from.

The claim `backups` (ReadWriteOnce, the default StorageClass) holds the
snapshots the backup Jobs write. A reader pod with the node image mounts it
read-only to check what a Completed backup claims: the file's sha256 against
the status and the record beside it, and the snapshot restored into a
throwaway etcd holding every write acknowledged before the backup was asked
for. The whole outcome of each cluster is checked as after any change.
"""

from __future__ import annotations

import base64
import json

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
    patch_spec,
    restricted,
    wait_settled,
    wait_until,
)
from e2e.writer import acked_writes, assert_no_acknowledged_write_lost, run_under_writer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

CLAIM = "backups"
READER = "claim-reader"
# The membership steps of a scale-out, as Progressing reports them.
SCALING = {"MemberAdding", "StatefulSetScaling", "LearnerCatchingUp", "LearnerPromoting", "ScalingPending"}


def make_claim(kube: Kube, namespace: str) -> None:
    kube.apply(namespace, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM},
                           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})  # fmt: skip


def volume_backup(name: str, cluster: str) -> dict:
    return {"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdBackup", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": cluster}, "destination": {"volume": {"claimName": CLAIM, "path": "etcd"}}}}  # fmt: skip


def finished(kube: Kube, namespace: str, name: str) -> dict | None:
    obj = kube.get(namespace, "etcdbackup", name)
    phase = ((obj or {}).get("status") or {}).get("phase")
    return obj if phase in ("Completed", "Failed") else None


def start_reader(kube: Kube, namespace: str, claim: str = CLAIM, name: str = READER, writable: bool = False) -> None:
    """The node image (etcd, etcdutl, etcd-node) with a claim mounted (read-only unless asked) at /backup."""
    kube.apply(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [restricted({
                "name": "reader", "image": NODE_IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "infinity"],
                "volumeMounts": [{"name": "claim", "mountPath": "/backup", "readOnly": not writable},
                                 {"name": "work", "mountPath": "/work"}],
            })],
            "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": claim, "readOnly": not writable}},
                        {"name": "work", "emptyDir": {}}],
        },
    })  # fmt: skip
    kube.run("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)


def reader(kube: Kube, namespace: str, script: str, timeout: float = 120, pod: str = READER) -> str:
    return kube.run("-n", namespace, "exec", pod, "--", "sh", "-c", script, timeout=timeout).stdout


def check_snapshot(kube: Kube, namespace: str, status: dict) -> set[int]:
    """A Completed backup's file matches its status and record, and restores: the writes it holds."""
    path = status["location"]
    stored = json.loads(reader(kube, namespace, f"python3 -c \"import hashlib,json; print(json.dumps("
                                                f"{{'sha256': hashlib.sha256(open('{path}','rb').read()).hexdigest(), "
                                                f"'record': json.load(open('{path}.json'))}}))\""))  # fmt: skip
    assert stored["sha256"] == status["sha256"] == stored["record"]["sha256"], stored
    assert stored["record"]["revision"] == str(status["revision"]) and stored["record"]["etcd-version"] == status["etcdVersion"]
    script = (
        "rm -rf /work/restored; "
        f"etcd-node restore --path={path} --data-dir=/work/restored --name=check "
        "--initial-cluster=check=http://127.0.0.1:22380 --initial-advertise-peer-urls=http://127.0.0.1:22380 "
        "--initial-cluster-token=e2e-check >/work/restore.log 2>&1 || { cat /work/restore.log; exit 1; }; "
        "etcd --name=check --data-dir=/work/restored --listen-client-urls=http://127.0.0.1:22379 "
        "--advertise-client-urls=http://127.0.0.1:22379 --listen-peer-urls=http://127.0.0.1:22380 "
        "--initial-advertise-peer-urls=http://127.0.0.1:22380 --initial-cluster=check=http://127.0.0.1:22380 "
        ">/work/etcd.log 2>&1 & pid=$!; "
        "for i in $(seq 50); do etcdctl --endpoints=http://127.0.0.1:22379 endpoint health >/dev/null 2>&1 && break; "
        "sleep 0.2; done; etcdctl --endpoints=http://127.0.0.1:22379 get w/ --prefix --keys-only; kill $pid"
    )
    return {int(k.removeprefix("w/")) for k in reader(kube, namespace, script).split() if k.startswith("w/")}


def stop_writer(kube: Kube, namespace: str) -> None:
    kube.run("-n", namespace, "exec", CLIENT_POD, "--", "touch", "/tmp/stop")
    wait_until("the writer to stop", lambda: kube.run("-n", namespace, "exec", CLIENT_POD, "--", "test", "-e",
               "/tmp/stopped", check=False).returncode == 0 or None, timeout=30)  # fmt: skip


def test_a_backup_taken_while_a_scale_out_is_in_progress_completes_or_fails_cleanly(kube: Kube, namespace: str) -> None:
    """3 -> 5 under a writer, an EtcdBackup while members are being added: it ends Completed with a snapshot that
    holds every write acknowledged before it was asked for, or Failed with a reason; never stuck, never a
    Completed backup without a valid snapshot. The scale-out finishes as usual and loses nothing."""
    cluster = "grow"
    make_claim(kube, namespace)
    run_under_writer(kube, namespace, etcd_cluster(cluster, replicas=3), acked=20)

    patch_spec(kube, namespace, cluster, replicas=5)

    def scaling() -> str | None:
        obj = kube.get(namespace, "etcdcluster", cluster) or {}
        progressing = condition(obj, "Progressing") or {}
        members = (obj.get("status") or {}).get("members") or []
        learner = any(m.get("isLearner") for m in members)
        if progressing.get("status") == "True" and (progressing.get("reason") in SCALING or learner):
            return f"{progressing.get('reason')}: {progressing.get('message')}"
        return None

    during = wait_until("the scale-out under way", scaling, timeout=120, interval=0.5)
    before = acked_writes(kube, namespace)  # acknowledged before the backup was asked for
    kube.apply(namespace, volume_backup("during", cluster))
    done = wait_until("EtcdBackup during to finish", lambda: finished(kube, namespace, "during"), timeout=420)
    status = done["status"]
    print(f"backup requested while {during}; it ended {status['phase']}")
    if status["phase"] == "Completed":
        assert (condition(done, "Complete") or {}).get("status") == "True"
        assert status["location"] == f"/backup/etcd/{namespace}/{cluster}/during.db"
        start_reader(kube, namespace)
        restored = check_snapshot(kube, namespace, status)
        missing = [i for i in before if i not in restored]
        assert not missing, f"{len(missing)} writes acknowledged before the backup are not in it: {missing[:10]}"
        print(f"acknowledged before the backup: {len(before)}; in the snapshot: {len(restored)}; lost: 0")
    else:
        failed = condition(done, "Failed") or {}
        assert failed.get("status") == "True" and failed.get("reason") and failed.get("message"), done["status"]
        start_reader(kube, namespace)
        left = reader(kube, namespace, f"ls /backup/etcd/{namespace}/{cluster}/ 2>/dev/null || true").split()
        assert "during.db.json" not in left, f"a Failed backup left a record that looks complete: {left}"

    status = wait_settled(kube, namespace, cluster, replicas=5, timeout=600)
    assert sorted(m["name"] for m in status["members"]) == [f"{cluster}-{i}" for i in range(5)]
    stop_writer(kube, namespace)
    acked = assert_no_acknowledged_write_lost(kube, namespace, cluster)
    print(f"writes acknowledged through the scale-out and the backup: {acked}; lost: 0")
    assert_stays_settled(kube, namespace, cluster, replicas=5, seconds=10)


def claim_users(kube: Kube, namespace: str, cluster: str) -> list[str]:
    """Member pods whose spec mounts the backups claim."""
    pods = kube.items(namespace, "pods", f"app.kubernetes.io/instance={cluster},app.kubernetes.io/component=member")
    return sorted(p["metadata"]["name"] for p in pods
                  if any((v.get("persistentVolumeClaim") or {}).get("claimName") == CLAIM for v in p["spec"]["volumes"]))  # fmt: skip


def test_a_volume_backup_seeds_a_new_cluster_through_backup_ref(kube: Kube, namespace: str) -> None:
    """bootstrap.restore.backupRef to a backup on a claim: every initial member mounts the claim read-only and
    restores it; then the members are restarted one at a time without it, and nothing is lost."""
    make_claim(kube, namespace)
    run_under_writer(kube, namespace, etcd_cluster("src", replicas=3), acked=20)
    before = acked_writes(kube, namespace)
    kube.apply(namespace, volume_backup("seed", "src"))
    done = wait_until("EtcdBackup seed to finish", lambda: finished(kube, namespace, "seed"), timeout=300)
    assert done["status"]["phase"] == "Completed", json.dumps(done["status"], indent=1)
    revision = done["status"]["revision"]
    stop_writer(kube, namespace)

    plain = {"client": {"mode": "none"}}  # read through the same client pod, over plain HTTP
    kube.apply(namespace, etcd_cluster("copy", replicas=3, tls=plain,
                                       bootstrap={"restore": {"backupRef": {"name": "seed"}}}))  # fmt: skip
    template = wait_until("the copy's StatefulSet", lambda: kube.get(namespace, "statefulset", "copy"), timeout=60)
    pod_spec = template["spec"]["template"]["spec"]
    assert {"name": "restore-volume", "persistentVolumeClaim": {"claimName": CLAIM, "readOnly": True}} in pod_spec["volumes"]
    restored_from = wait_until("status.restoredFrom", lambda: (kube.get(namespace, "etcdcluster", "copy") or {}).get(
        "status", {}).get("restoredFrom"), timeout=300)  # fmt: skip
    assert restored_from == f"EtcdBackup seed (etcd/{namespace}/src/seed.db on claim {CLAIM}, revision {revision})"
    # Released: the template drops the claim and the rollout restarts every member without it.
    wait_until("no member pod mounts the claim", lambda: not claim_users(kube, namespace, "copy") or None, timeout=600)
    status = wait_settled(kube, namespace, "copy", replicas=3, timeout=600)
    assert kube.get(namespace, "secret", "copy-restore") is None
    assert status["clusterID"] != kube.get(namespace, "etcdcluster", "src")["status"]["clusterID"]
    assert sorted(member_ids(kube, namespace, "copy", tls="none")) == ["copy-0", "copy-1", "copy-2"]

    out = etcdctl(kube, namespace, "copy", "get", "w/", "--prefix", "-w", "json", tls="none", timeout=60).stdout
    values = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
              for kv in json.loads(out).get("kvs") or []}  # fmt: skip
    lost = [i for i in before if values.get(f"w/{i}") != str(i)]
    assert not lost, f"{len(lost)} of {len(before)} writes acknowledged before the backup are missing: {lost[:10]}"
    print(f"acknowledged before the backup: {len(before)}; present in the new cluster: {len(values)}; lost: 0")
    etcdctl(kube, namespace, "copy", "put", "after", "restore", tls="none")
    assert_stays_settled(kube, namespace, "copy", replicas=3, seconds=10, tls="none")


def test_a_running_cluster_is_restored_in_place_from_a_volume_backup(kube: Kube, namespace: str) -> None:
    """spec.restore with a backup on a claim: the members are stopped, restart with the claim mounted read-only and
    restore it, and once the restore is recorded they restart one at a time without it."""
    cluster = "main"
    make_claim(kube, namespace)
    run_under_writer(kube, namespace, etcd_cluster(cluster, replicas=3), acked=20)
    etcdctl(kube, namespace, cluster, "put", "config/mode", "good")
    before_backup = acked_writes(kube, namespace)
    kube.apply(namespace, volume_backup("good", cluster))
    done = wait_until("EtcdBackup good to finish", lambda: finished(kube, namespace, "good"), timeout=300)
    assert done["status"]["phase"] == "Completed", json.dumps(done["status"], indent=1)
    revision = done["status"]["revision"]
    etcdctl(kube, namespace, cluster, "put", "config/mode", "bad")
    stop_writer(kube, namespace)
    old_id = kube.get(namespace, "etcdcluster", cluster)["status"]["clusterID"]

    patch_spec(kube, namespace, cluster, restore={"backupRef": {"name": "good"}, "requestID": "from-volume"})
    record = wait_until("status.restore", lambda: (kube.get(namespace, "etcdcluster", cluster) or {}).get(
        "status", {}).get("restore"), timeout=600, interval=2)  # fmt: skip
    assert record["requestID"] == "from-volume" and record["revision"] == revision
    assert record["source"] == f"EtcdBackup good (etcd/{namespace}/{cluster}/good.db on claim {CLAIM}, revision {revision})"
    wait_until("no member pod mounts the claim", lambda: not claim_users(kube, namespace, cluster) or None, timeout=600)
    status = wait_settled(kube, namespace, cluster, replicas=3, timeout=600)
    assert status["clusterID"] != old_id and record["clusterID"] == status["clusterID"]
    assert etcdctl(kube, namespace, cluster, "get", "config/mode", "--print-value-only").stdout.strip() == "good"
    out = etcdctl(kube, namespace, cluster, "get", "w/", "--prefix", "--keys-only", "-w", "json", timeout=60).stdout
    present = {int(base64.b64decode(kv["key"]).decode().removeprefix("w/")) for kv in json.loads(out).get("kvs") or []}
    missing = [i for i in before_backup if i not in present]
    assert not missing, f"{len(missing)} writes acknowledged before the backup are gone: {missing[:10]}"
    print(f"acknowledged before the backup: {len(before_backup)} (all present after the in-place restore)")
    assert_stays_settled(kube, namespace, cluster, replicas=3, seconds=10)


def degraded(kube: Kube, namespace: str, cluster: str, reason: str) -> dict | None:
    found = condition(kube.get(namespace, "etcdcluster", cluster) or {}, "Degraded") or {}
    return found if found.get("status") == "True" and found.get("reason") == reason else None


def test_a_volume_source_that_cannot_be_restored_is_refused_with_a_condition_and_nothing_in_the_data_dir(
    kube: Kube, namespace: str
) -> None:
    """bootstrap.restore.volume: a claim that does not exist keeps the members unscheduled with a condition that
    says so; a tampered snapshot stops the member before etcd starts, with the agent's code in the condition,
    and its data volume stays empty."""
    kube.apply(namespace, etcd_cluster("nowhere", replicas=1, bootstrap={"restore": {
        "volume": {"claimName": "no-such-claim", "path": "etcd/x.db"}}}))  # fmt: skip
    missing = wait_until("Degraded=True/RestoreVolumeUnavailable",
                         lambda: degraded(kube, namespace, "nowhere", "RestoreVolumeUnavailable"), timeout=120)  # fmt: skip
    assert "nowhere-0 cannot be scheduled while they must mount claim no-such-claim" in missing["message"]
    assert 'persistentvolumeclaim "no-such-claim" not found' in missing["message"], missing["message"]

    make_claim(kube, namespace)
    kube.apply(namespace, etcd_cluster("src", replicas=1))
    wait_settled(kube, namespace, "src", replicas=1)
    kube.apply(namespace, volume_backup("seed", "src"))
    done = wait_until("EtcdBackup seed to finish", lambda: finished(kube, namespace, "seed"), timeout=300)
    assert done["status"]["phase"] == "Completed", json.dumps(done["status"], indent=1)
    key = f"etcd/{namespace}/src/seed.db"
    start_reader(kube, namespace, name="tamper", writable=True)
    reader(kube, namespace, f"python3 -c \"f = open('/backup/{key}', 'r+b'); f.seek(100); b = f.read(1); f.seek(100); "
                            f"f.write(bytes([b[0] ^ 0xFF])); f.close()\"", pod="tamper")  # fmt: skip
    kube.run("-n", namespace, "delete", "pod", "tamper", "--wait=true", timeout=120)

    kube.apply(namespace, etcd_cluster("bad", replicas=1, bootstrap={"restore": {
        "volume": {"claimName": CLAIM, "path": key}}}))  # fmt: skip
    refused = wait_until("Degraded=True/BootstrapError", lambda: degraded(kube, namespace, "bad", "BootstrapError"),
                         timeout=180)  # fmt: skip
    assert "bad-0: [SnapshotHashMismatch] restoring the backup failed" in refused["message"], refused["message"]
    assert "the snapshot is damaged; restore another backup" in refused["message"]
    assert (kube.get(namespace, "etcdcluster", "bad") or {})["status"]["phase"] == "Failed"
    # Nothing reached the member's volume: no data dir, no scratch copy, no half-restored dir.
    kube.run("-n", namespace, "delete", "etcdcluster", "bad", "--wait=true", timeout=180)
    wait_until("bad-0 gone", lambda: not kube.items(namespace, "pods", "app.kubernetes.io/instance=bad") or None,
               timeout=120)  # fmt: skip
    start_reader(kube, namespace, claim="data-bad-0", name="data-reader")
    left = reader(kube, namespace, "ls -A /backup", pod="data-reader").split()
    assert not [f for f in left if f != "lost+found"], f"the refused restore left {left} on the member's volume"
