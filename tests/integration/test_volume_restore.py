"""Restores from a snapshot on a claim, as the member pods see it: the operator's request, the claim read-only.

The backup is taken exactly as the backup Job takes it (`etcd-node backup
--path=<claim>/<path>/<namespace>/<cluster>/<backup>.db`); the operator plans the
restore request from the EtcdBackup's status as it does in a pass; the only
translation is the pod's mount point (contract.RESTORE_VOLUME_DIR) to the
directory standing in for the claim, which is bind-mounted read-only over
itself, as the members mount it. The members then restore through etcd-node
with the operator's request, and every check that guards an S3 restore guards
this one: the sha256 from the record, the version, a missing record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_node.contract import RESTORE_VOLUME_DIR
from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.observed import RestoreSources
from etcd_operator.reconcile.restore import plan_restore
from etcd_operator.resources.backup_job import VOLUME_DIR
from tests.support.loopback import LoopbackCluster
from tests.support.snapshot_cli import agent, all_keys, backup_args

pytestmark = pytest.mark.etcd

KEY = "etcd/db/src/nightly.db"  # <path>/<namespace>/<cluster>/<backup>.db, as the backup Job lays it out


@pytest.fixture
def claim(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "claim"
    directory.mkdir()
    yield directory
    subprocess.run(["umount", str(directory)], capture_output=True, check=False)


def read_only(directory: Path) -> None:
    """The claim as the members mount it (readOnly: true): a read-only bind mount of the directory over itself."""
    for argv in (["mount", "--bind", str(directory), str(directory)],
                 ["mount", "-o", "remount,bind,ro", str(directory), str(directory)]):  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here (needs root): {done.stderr.strip()}")
    with pytest.raises(OSError):
        (directory / "probe").write_text("x")


def back_up_to_claim(source: LoopbackCluster, claim: Path, workdir: Path) -> dict:
    done, _ = agent("backup", [*backup_args(source, workdir / "scratch"), f"--path={claim / KEY}"], workdir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def operator_request(workdir: Path, claim: Path, token: str, record: dict, **restore: object) -> Path:
    """The request the operator writes for an EtcdBackup with a volume destination, with the pod's mount point
    replaced by the claim's directory here."""
    backup = {"metadata": {"name": "nightly", "namespace": "db"},
              "spec": {"clusterRef": {"name": "src"}, "destination": {"volume": {"claimName": "backups", "path": "etcd"}}},
              "status": {"phase": "Completed", "location": f"{VOLUME_DIR}/{KEY}", "revision": record["revision"]}}  # fmt: skip
    spec = EtcdClusterSpec.model_validate({"bootstrap": {"restore": {"backupRef": {"name": "nightly"}, **restore}}})
    identity = ClusterIdentity.of("copy", "db", "6f1c2d3e-0000-4000-8000-000000000000")
    plan = plan_restore(identity.names, identity.owner, spec.bootstrap.restore, None, RestoreSources(backup=backup),
                        token, started=False, done=False)  # fmt: skip
    assert plan.claim == "backups" and plan.request is not None
    request = json.loads(base64.b64decode(plan.request["data"]["restore.json"]))
    assert request["source"] == [f"--path={RESTORE_VOLUME_DIR}/{KEY}"]
    request["source"] = [f"--path={claim}/{KEY}"]  # where the pod mounts the claim -> where it is here
    file = workdir / f"restore-{token}.json"
    file.write_text(json.dumps(request))
    return file


def contents(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def test_initial_members_restore_the_operators_request_from_a_read_only_claim(tmp_path, source, claim):
    expected = all_keys(source)
    record = back_up_to_claim(source, claim, tmp_path)
    assert record["location"] == str(claim / KEY) and (claim / f"{KEY}.json").exists()
    request = operator_request(tmp_path, claim, "copy", record, bumpRevision=500, markCompacted=True)
    read_only(claim)
    before = contents(claim)

    target = LoopbackCluster(tmp_path / "copy", source.pki, token="copy",
                             agent_env={"ETCD_NODE_RESTORE_FILE": str(request)}).start_all()  # fmt: skip
    try:
        assert all_keys(target) == expected
        assert target.revision() >= record["revision"] + 500
        assert sorted(m["name"] for m in target.etcdctl_json("member", "list")["members"]) == ["m0", "m1", "m2"]
        assert contents(claim) == before  # the snapshot was only read
    finally:
        target.close()


def _tamper(claim: Path) -> None:
    body = bytearray((claim / KEY).read_bytes())
    body[100] ^= 0xFF
    (claim / KEY).write_bytes(bytes(body))


def _newer(claim: Path) -> None:
    record_file = claim / f"{KEY}.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "etcd-version": "3.9.0"}))


def _unrecorded(claim: Path) -> None:
    (claim / f"{KEY}.json").unlink()


@pytest.mark.parametrize(("damage", "code", "words"), [
    (_tamper, "SnapshotHashMismatch", "the snapshot is damaged; restore another backup"),
    (_newer, "SnapshotVersionRefused", "written by etcd 3.9, newer than this etcd"),
    (_unrecorded, "StoreFailed", "has no record nightly.db.json"),
], ids=["tampered", "newer-etcd", "no-record"])  # fmt: skip
def test_a_snapshot_on_the_claim_that_fails_a_check_stops_the_member_before_anything_is_written(
    tmp_path, source, claim, damage, code, words
):
    record = back_up_to_claim(source, claim, tmp_path)
    request = operator_request(tmp_path, claim, "bad", record)
    damage(claim)
    read_only(claim)
    termination = tmp_path / "termination.log"
    target = LoopbackCluster(tmp_path / "bad", source.pki, size=1, token="bad", agent_env={
        "ETCD_NODE_RESTORE_FILE": str(request), "ETCD_NODE_TERMINATION_LOG": str(termination)})  # fmt: skip
    target.start(0)
    assert target.procs[0].wait(60) == 1
    target.procs.clear()
    text = termination.read_text()
    assert text.startswith(f"etcd-node: error[{code}]: restoring the backup failed") and words in text, text
    assert not target.data_dir(0).exists()
    assert sorted(p.name for p in target.workdir.iterdir()) == ["m0.log"]  # no data dir, no scratch left behind
