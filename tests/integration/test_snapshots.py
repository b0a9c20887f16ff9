"""`etcd-node backup` and `etcd-node restore` against real etcd members and a real S3 store (versitygw).

Every scenario drives the agent's command line as the backup Job and the
restoring member pod do, and checks the outcome through a real etcdctl: the
restored cluster holds what the backed-up one acknowledged, damaged or
foreign snapshots are refused before anything reaches a data dir.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from etcd_node.snapshots import BackupRecord
from tests.support.binaries import etcd_dir
from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.objectstore import S3Server
from tests.support.snapshot_cli import agent, all_keys, backup_args, restore_args

pytestmark = pytest.mark.etcd


def restore_cluster(tmp_path: Path, pki: LoopbackPKI, s3: S3Server, key: str, token: str, size: int = 3, **extra):
    target = LoopbackCluster(tmp_path / token, pki, size=size, token=token)
    for i in range(size):
        done, _ = agent("restore", [*restore_args(target, i, **extra), *s3.flags("backups", key)], tmp_path, env=s3.env())
        assert done.returncode == 0, done.stderr
    return target


def test_backup_to_s3_then_restore_into_a_new_three_member_cluster(tmp_path, source, s3):
    expected = all_keys(source)
    revision = source.revision()
    old_cluster_id = source.etcdctl_json("endpoint", "status", endpoints=source.endpoints[:1])[0]["Status"]["header"]["cluster_id"]
    leader = next(s["Endpoint"] for s in source.etcdctl_json("endpoint", "status")
                  if s["Status"]["leader"] == s["Status"]["header"]["member_id"])  # fmt: skip

    done, termination = agent("backup", [*backup_args(source, tmp_path / "scratch"), *s3.flags("backups", "main/one.db")],
                              tmp_path, env=s3.env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = BackupRecord.from_json(done.stdout.strip())
    assert BackupRecord.from_json(termination) == record  # what the operator reads from the Job's pod
    assert record.location == "s3://backups/main/one.db" and record.revision == revision
    assert record.member != leader  # a follower served the snapshot
    assert record.etcd_version.startswith("3.6") and record.member_version == etcd_dir().name.removeprefix("etcd-v")
    stored = s3.client().get_object(Bucket="backups", Key="main/one.db")
    body = stored["Body"].read()
    assert hashlib.sha256(body).hexdigest() == record.sha256 and len(body) == record.size_bytes
    assert stored["Metadata"]["sha256"] == record.sha256 and stored["Metadata"]["revision"] == str(revision)
    assert not list((tmp_path / "scratch").iterdir())  # the local copy does not outlive the upload

    target = restore_cluster(tmp_path, source.pki, s3, "main/one.db", "restored").start_all()
    try:
        assert all_keys(target) == expected and "/data/deleted" not in expected
        assert expected["/data/overwritten"] == "round-4" and len(expected) == 101
        assert target.revision() == revision  # revisions as they were: no bump asked for
        status = target.etcdctl_json("endpoint", "status")
        assert len(status) == 3 and len({s["Status"]["leader"] for s in status}) == 1
        assert status[0]["Status"]["header"]["cluster_id"] != old_cluster_id  # a new cluster, not a rejoin
        members = target.etcdctl_json("member", "list")["members"]
        assert sorted(m["name"] for m in members) == ["m0", "m1", "m2"] and not any(m.get("isLearner") for m in members)
        target.etcdctl("put", "/after/restore", "ok")
        assert all_keys(target, "/after/") == {"/after/restore": "ok"}
    finally:
        target.close()


def test_bump_revision_and_mark_compacted(tmp_path, source, s3):
    revision = source.revision()
    done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), *s3.flags("backups", "bump.db")], tmp_path,
                    env=s3.env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    bump = 1_000_000
    target = restore_cluster(tmp_path, source.pki, s3, "bump.db", "bumped", size=1, bump_revision=str(bump),
                             mark_compacted="").start_all()  # fmt: skip
    try:
        assert target.revision() >= revision + bump
        put = json.loads(target.etcdctl("put", "/after", "x", "-w", "json").stdout)
        assert int(put["header"]["revision"]) > revision + bump  # every new revision is above the backup's
        # A watcher resuming from a revision it saw before the restore is told it was compacted.
        watch = target.etcdctl("watch", "/data/k000", f"--rev={revision}", check=False, timeout=20)
        assert "compacted" in (watch.stderr + watch.stdout).lower()
        assert all_keys(target, "/data/k00") == {f"/data/k00{i}": f"v{i}" for i in range(10)}
    finally:
        target.close()


def test_a_damaged_snapshot_is_refused_and_nothing_reaches_the_data_dir(tmp_path, source, s3):
    done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), *s3.flags("backups", "damaged.db")],
                    tmp_path, env=s3.env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    client = s3.client()
    stored = client.get_object(Bucket="backups", Key="damaged.db")
    body = bytearray(stored["Body"].read())
    body[len(body) // 2] ^= 0xFF
    client.put_object(Bucket="backups", Key="damaged.db", Body=bytes(body), Metadata=stored["Metadata"])
    target = LoopbackCluster(tmp_path / "damaged", source.pki, size=1, token="damaged")
    done, termination = agent("restore", [*restore_args(target, 0), *s3.flags("backups", "damaged.db")], tmp_path,
                              env=s3.env())  # fmt: skip
    assert done.returncode == 1
    assert termination.startswith("etcd-node: error[SnapshotHashMismatch]:") and "restore another backup" in termination
    assert not target.data_dir(0).exists() and not list(target.workdir.parent.glob("damaged/*"))


def test_a_snapshot_damaged_before_it_was_recorded_is_caught_by_etcdutl(tmp_path, source):
    """The sha256 only proves the bytes are those uploaded; etcd's own checksum proves they are a snapshot."""
    path = tmp_path / "vol" / "snap.db"
    done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), f"--path={path}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(path.with_name("snap.db.json").read_text())["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    body = bytearray(path.read_bytes())
    body[-40] ^= 0xFF  # inside the checksum etcd appends to a snapshot
    path.write_bytes(bytes(body))
    record = json.loads(path.with_name("snap.db.json").read_text())
    path.with_name("snap.db.json").write_text(json.dumps({**record, "sha256": hashlib.sha256(body).hexdigest()}))
    target = LoopbackCluster(tmp_path / "bad", source.pki, size=1, token="bad")
    done, termination = agent("restore", [*restore_args(target, 0), f"--path={path}"], tmp_path)
    assert done.returncode == 1, done.stderr
    assert termination.startswith(("etcd-node: error[RestoreFailed]:", "etcd-node: error[SnapshotInvalid]:")), termination
    assert not target.data_dir(0).exists()


def test_a_newer_etcds_snapshot_is_refused_by_an_older_etcd(tmp_path, source):
    path = tmp_path / "vol" / "new.db"
    done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), f"--path={path}"], tmp_path)
    assert done.returncode == 0, done.stderr
    target = LoopbackCluster(tmp_path / "old", source.pki, size=1, token="old", version_key="ETCD_V2_VERSION")
    done, termination = agent("restore", [*restore_args(target, 0), f"--path={path}"], tmp_path,
                              version_key="ETCD_V2_VERSION")  # fmt: skip
    assert done.returncode == 1
    assert termination.startswith("etcd-node: error[SnapshotVersionRefused]:") and "newer than this etcd 3.5" in termination
    assert not target.data_dir(0).exists()


def test_restore_never_writes_over_a_member_and_a_restarted_pod_keeps_its_data(tmp_path, source):
    path = tmp_path / "vol" / "again.db"
    done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), f"--path={path}"], tmp_path)
    assert done.returncode == 0, done.stderr
    target = LoopbackCluster(tmp_path / "again", source.pki, size=1, token="again")
    assert agent("restore", [*restore_args(target, 0), f"--path={path}"], tmp_path)[0].returncode == 0
    target.start_all()
    try:
        target.etcdctl("put", "/written/after", "restore")
    finally:
        target.close()
    done, termination = agent("restore", [*restore_args(target, 0), f"--path={path}"], tmp_path)
    assert done.returncode == 1 and termination.startswith("etcd-node: error[DataDirNotEmpty]:")
    done, _ = agent("restore", [*restore_args(target, 0, skip_if_initialized=""), f"--path={path}"], tmp_path)
    assert done.returncode == 0 and "not restored again" in done.stderr
    target.start_all()
    try:
        assert all_keys(target, "/written/") == {"/written/after": "restore"}  # the member's own data, untouched
    finally:
        target.close()


def test_backup_under_a_writer_with_a_member_down_keeps_every_acknowledged_write(tmp_path, source):
    source.stop(2)  # one member down: the backup is taken from another
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            key = f"/writer/{n:05d}"
            if source.etcdctl("put", key, str(n), endpoints=source.endpoints[:2], check=False).returncode == 0:
                acked.append(key)
            n += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while len(acked) < 20:
            threading.Event().wait(0.1)
        before = list(acked)  # acknowledged before the backup started
        path = tmp_path / "vol" / "writer.db"
        done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), f"--path={path}"], tmp_path)
        assert done.returncode == 0, done.stderr
        record = BackupRecord.from_json(done.stdout.strip())
        assert record.member in source.endpoints[:2]
    finally:
        stop.set()
        thread.join(30)
    target = LoopbackCluster(tmp_path / "writer", source.pki, size=1, token="writer")
    assert agent("restore", [*restore_args(target, 0), f"--path={path}"], tmp_path)[0].returncode == 0
    target.start_all()
    try:
        restored = all_keys(target, "/writer/")
        missing = [k for k in before if k not in restored]
        assert not missing, f"{len(missing)} writes acknowledged before the backup are missing: {missing[:5]}"
        assert len(restored) >= len(before)
        print(f"acknowledged before backup: {len(before)}; in the snapshot: {len(restored)}; lost: 0")
    finally:
        target.close()


def test_a_store_that_refuses_the_upload_gives_a_coded_reason_and_keeps_nothing(tmp_path, source, s3):
    wrong = {**s3.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    done, termination = agent("backup", [*backup_args(source, tmp_path / "scratch"), *s3.flags("backups", "refused.db")],
                              tmp_path, env=wrong)  # fmt: skip
    assert done.returncode == 1
    assert termination.startswith("etcd-node: error[StoreFailed]: cannot upload to s3://backups/refused.db at https://")
    assert s3.client().list_objects_v2(Bucket="backups").get("KeyCount", 0) == 0
    assert not list((tmp_path / "scratch").iterdir())
