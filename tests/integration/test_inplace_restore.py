"""In-place restore through etcd-node on real etcd: a running cluster is stopped and restarted from its backup.

Three members started through the agent write data, a backup is taken, more
is written; then every member is stopped and started again with the request
the operator would mount (a requestID, the same initial cluster, a new token)
and the token the operator's new pod template gives them. Afterwards the data
is exactly the snapshot's, the cluster is a new one under the same names, each
old data dir is kept beside the new one, and a restart with the request still
there does not restore again.
"""

from __future__ import annotations

import json

import pytest

from tests.support.loopback import LoopbackCluster
from tests.support.snapshot_cli import agent, all_keys, backup_args, damaged_snapshot

pytestmark = pytest.mark.etcd


def cluster_id(cluster: LoopbackCluster) -> int:
    return int(cluster.etcdctl_json("member", "list")["header"]["cluster_id"])


def member_ids(cluster: LoopbackCluster) -> set[int]:
    return {int(m["ID"]) for m in cluster.etcdctl_json("member", "list")["members"]}


def test_members_restore_in_place_once_and_keep_their_old_data(tmp_path, source):
    request_file = tmp_path / "request" / "restore.json"  # absent until the restore: the normal case
    env = {"ETCD_NODE_RESTORE_FILE": str(request_file)}
    live = LoopbackCluster(tmp_path / "live", source.pki, token="live", agent_env=env).start_all()
    try:
        for i in range(50):
            live.etcdctl("put", f"/data/k{i:03d}", f"v{i}")
        live.etcdctl("put", "/data/overwritten", "before-backup")
        snapshot = tmp_path / "vol" / "live.db"
        done, _ = agent("backup", [*backup_args(live, tmp_path / "scratch"), f"--path={snapshot}"], tmp_path)
        assert done.returncode == 0, done.stderr
        revision = json.loads(done.stdout)["revision"]
        expected = all_keys(live)
        # The bad writes the restore undoes.
        live.etcdctl("put", "/data/overwritten", "after-backup")
        live.etcdctl("put", "/after/backup", "lost")
        live.etcdctl("del", "/data/k000")
        old_cluster, old_members = cluster_id(live), member_ids(live)

        live.close()  # the operator scales the StatefulSet to 0
        request_file.parent.mkdir()
        request_file.write_text(json.dumps({
            "token": "live-r1", "source": [f"--path={snapshot}"], "bumpRevision": 1000, "markCompacted": True,
            "requestID": "r1", "initialCluster": live.initial_cluster, "members": 3,
        }))  # fmt: skip
        live.token = "live-r1"  # the new pod template's ETCD_INITIAL_CLUSTER_TOKEN
        live.start_all()

        assert all_keys(live) == expected
        assert all_keys(live, "/after/") == {}
        assert live.revision() >= revision + 1000
        assert cluster_id(live) != old_cluster
        assert member_ids(live).isdisjoint(old_members)
        members = live.etcdctl_json("member", "list")["members"]
        assert sorted(m["name"] for m in members) == ["m0", "m1", "m2"]
        assert sorted(m["peerURLs"][0] for m in members) == sorted(live.peer_url(i) for i in range(3))
        for i in range(3):
            aside = live.workdir / f"m{i}.pre-restore-r1"
            assert (aside / "member" / "wal").is_dir(), f"m{i}'s old data dir was not kept"
            marker = json.loads((live.workdir / f"m{i}.restores.json").read_text())
            assert marker == {"applied": ["r1"]}

        # Written after the restore; a member restarts with the request still mounted: no second restore.
        live.etcdctl("put", "/since/restore", "kept")
        live.stop(1)
        live.start(1)
        live.wait_healthy()
        live.close()
        live.start_all()  # and every member at once
        assert all_keys(live, "/since/") == {"/since/restore": "kept"}
        for i in range(3):
            log = (live.workdir / f"m{i}.log").read_text()
            assert log.count("restored r1 in place") == 1, log[-2000:]
            assert "restore r1 was applied already" in log
        assert not (live.workdir / "m1.pre-restore-r1.1").exists()
    finally:
        live.close()


def test_a_damaged_snapshot_stops_the_member_and_keeps_its_data(tmp_path, source):
    snapshot = damaged_snapshot(source, tmp_path)
    request = tmp_path / "restore.json"
    termination = tmp_path / "termination.log"
    one = LoopbackCluster(tmp_path / "one", source.pki, size=1, token="one-r1",
                          agent_env={"ETCD_NODE_RESTORE_FILE": str(request),
                                     "ETCD_NODE_TERMINATION_LOG": str(termination)})  # fmt: skip
    one.data_dir(0).mkdir(parents=True)
    (one.data_dir(0) / "keep").write_text("old")
    request.write_text(json.dumps({"token": "one-r1", "source": [f"--path={snapshot}"], "requestID": "r1",
                                   "initialCluster": one.initial_cluster}))  # fmt: skip
    one.start(0)
    assert one.procs[0].wait(60) == 1
    assert termination.read_text().startswith("etcd-node: error[SnapshotHashMismatch]: restoring the backup failed")
    assert (one.workdir / "m0.pre-restore-r1" / "keep").read_text() == "old"
    assert not (one.workdir / "m0.restores.json").exists()
    one.procs.clear()
