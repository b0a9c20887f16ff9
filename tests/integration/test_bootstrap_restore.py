"""A new cluster that starts from a backup through etcd-node itself: each initial member restores before etcd starts.

The members are started with `etcd-node` and a restore request file (what the
operator mounts while a cluster from a backup bootstraps); the request is only
honoured by members bootstrapping a new cluster of the request's token, never
on a restart.
"""

from __future__ import annotations

import json

import pytest

from tests.support.loopback import LoopbackCluster
from tests.support.snapshot_cli import agent, all_keys, backup_args, damaged_snapshot

pytestmark = pytest.mark.etcd


def request_file(tmp_path, token: str, path) -> str:
    file = tmp_path / f"restore-{token}.json"
    file.write_text(json.dumps({"token": token, "source": [f"--path={path}"], "bumpRevision": 100,
                                "markCompacted": True}))  # fmt: skip
    return str(file)


def test_initial_members_restore_the_backup_and_a_restart_keeps_what_was_written_since(tmp_path, source):
    expected = all_keys(source)
    snapshot = tmp_path / "vol" / "boot.db"
    done, _ = agent("backup", [*backup_args(source, tmp_path / "scratch"), f"--path={snapshot}"], tmp_path)
    assert done.returncode == 0, done.stderr
    revision = json.loads(done.stdout)["revision"]

    env = {"ETCD_NODE_RESTORE_FILE": request_file(tmp_path, "from-backup", snapshot)}
    target = LoopbackCluster(tmp_path / "from-backup", source.pki, token="from-backup", agent_env=env).start_all()
    try:
        assert all_keys(target) == expected
        assert target.revision() >= revision + 100  # bumped as the request asked
        members = target.etcdctl_json("member", "list")["members"]
        assert sorted(m["name"] for m in members) == ["m0", "m1", "m2"]
        target.etcdctl("put", "/since/restore", "kept")
        # A restart finds its own data: the request (still mounted) is not applied again.
        target.stop(1)
        target.start(1)
        target.wait_healthy()
        assert all_keys(target, "/since/") == {"/since/restore": "kept"}
        log = (target.workdir / "m1.log").read_text()
        assert "restore request not for this start" in log
        assert log.count("restoring the data dir from the backup") == 1
    finally:
        target.close()


def test_a_request_for_another_cluster_is_not_applied(tmp_path, source):
    snapshot = tmp_path / "vol" / "other.db"
    assert agent("backup", [*backup_args(source, tmp_path / "scratch"), f"--path={snapshot}"], tmp_path)[0].returncode == 0
    env = {"ETCD_NODE_RESTORE_FILE": request_file(tmp_path, "some-other-token", snapshot)}
    target = LoopbackCluster(tmp_path / "fresh", source.pki, size=1, token="fresh", agent_env=env).start_all()
    try:
        assert all_keys(target) == {}  # a new, empty cluster
    finally:
        target.close()


def test_a_damaged_backup_stops_the_member_before_etcd_starts(tmp_path, source):
    snapshot = damaged_snapshot(source, tmp_path)
    termination = tmp_path / "termination.log"
    env = {"ETCD_NODE_RESTORE_FILE": request_file(tmp_path, "bad", snapshot), "ETCD_NODE_TERMINATION_LOG": str(termination)}
    target = LoopbackCluster(tmp_path / "bad", source.pki, size=1, token="bad", agent_env=env)
    target.start(0)
    assert target.procs[0].wait(60) == 1
    assert termination.read_text().startswith("etcd-node: error[SnapshotHashMismatch]: restoring the backup failed")
    assert not target.data_dir(0).exists()
