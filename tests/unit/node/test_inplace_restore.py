"""etcd-node's part of an in-place restore: the decision table, and the data dir and marker on a real disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etcd_node import bootstrap_restore, inplace_restore
from etcd_node.bootstrap_restore import RestoreRequest
from etcd_node.findings import error
from etcd_node.inplace_restore import Restore, Skip, decide

REQUEST = RestoreRequest("tok-r1", ("--s3-bucket=b", "--s3-key=k"), 1000, True, "r1", "m0=https://m0:2380,m1=https://m1:2380")


def options(tmp_path: Path, token: str = "tok-r1") -> dict[str, str]:
    return {"name": "m0", "data-dir": str(tmp_path / "data"), "initial-cluster-token": token,
            "initial-advertise-peer-urls": "https://m0:2380"}  # fmt: skip


@pytest.mark.parametrize(
    ("token", "applied", "has_data", "expected"),
    [
        ("tok-r1", {"r1"}, True, "applied already"),  # a restart of a restored member
        ("tok-r1", {"r0"}, True, "restore, data aside"),  # a new request; older ones applied
        ("tok-r1", set(), True, "restore, data aside"),  # no marker yet: the first in-place restore
        ("tok-r1", set(), False, "restore, nothing aside"),  # a member whose volume was lost meanwhile
        ("old-token", set(), True, "another token"),  # a pod of the old template: not this restore's
    ],
)
def test_the_decision_table(tmp_path, token, applied, has_data, expected):
    got = decide(REQUEST, options(tmp_path, token), frozenset(applied), has_data, lambda p: False)
    if expected == "applied already":
        assert got == Skip("restore r1 was applied already: etcd restarts from the restored data")
    elif expected == "another token":
        assert isinstance(got, Skip) and "not this pod's restore" in got.reason
    else:
        assert got == Restore(tmp_path / "data.pre-restore-r1" if has_data else None)


def test_an_aside_name_taken_by_an_earlier_attempt_gets_a_counter(tmp_path):
    taken = {tmp_path / "data.pre-restore-r1", tmp_path / "data.pre-restore-r1.1"}
    assert decide(REQUEST, options(tmp_path), frozenset(), True, taken.__contains__) == Restore(
        tmp_path / "data.pre-restore-r1.2")


def test_the_request_format_and_what_the_bootstrap_path_does_with_it():
    raw = {"token": "t", "source": ["--path=/x"], "requestID": "r1", "initialCluster": "m0=https://m0:2380"}
    parsed = RestoreRequest.parse(json.dumps(raw))
    assert parsed.in_place and parsed.initial_cluster == "m0=https://m0:2380"
    # Never applied by the bootstrap path, even to an empty data dir of a new member of that token.
    assert not bootstrap_restore.applies(parsed, {"initial-cluster": "m0=x", "initial-cluster-token": "t"}, False)
    with pytest.raises(ValueError, match="initialCluster"):
        RestoreRequest.parse(json.dumps({**raw, "initialCluster": ""}))
    with pytest.raises(ValueError, match="requestID"):
        RestoreRequest.parse(json.dumps({**raw, "requestID": "../etc"}))
    argv = bootstrap_restore.restore_argv(parsed, {"data-dir": "/d", "name": "m0", "initial-cluster": "ignored",
                                                   "initial-advertise-peer-urls": "u", "initial-cluster-token": "t"})  # fmt: skip
    assert "--initial-cluster=m0=https://m0:2380" in argv


@pytest.fixture
def fake_restore(monkeypatch):
    """etcdutl's part: the snapshot becomes a member data dir (or the restore fails)."""
    calls: list[str] = []

    def restore(request, opts):
        calls.append(request.request_id)
        if getattr(restore, "fail", False):
            return [error("SnapshotHashMismatch", "damaged", "restore another backup")]
        data = Path(opts["data-dir"])
        (data / "member" / "wal").mkdir(parents=True)
        (data / "member" / "wal" / "0.wal").write_text(f"restored {request.request_id}")
        return []

    monkeypatch.setattr(bootstrap_restore, "restore", restore)
    restore.calls = calls  # type: ignore[attr-defined]
    return restore


def test_a_member_restores_once_keeps_its_old_data_and_records_the_request(tmp_path, fake_restore):
    opts = options(tmp_path)
    (tmp_path / "data" / "member").mkdir(parents=True)
    (tmp_path / "data" / "member" / "old").write_text("old data")
    done, findings = inplace_restore.apply(REQUEST, opts)
    assert findings == [] and "previous data dir is kept at" in done
    assert (tmp_path / "data.pre-restore-r1" / "member" / "old").read_text() == "old data"
    assert (tmp_path / "data" / "member" / "wal" / "0.wal").read_text() == "restored r1"
    marker = tmp_path / "data.restores.json"
    assert json.loads(marker.read_text()) == {"applied": ["r1"]}
    # The next start (a crash, an eviction) with the request still mounted: no second restore.
    done, findings = inplace_restore.apply(REQUEST, opts)
    assert "applied already" in done and fake_restore.calls == ["r1"]
    # A later request restores again; the marker keeps both.
    second = RestoreRequest("tok-r2", REQUEST.source, 0, False, "r2", REQUEST.initial_cluster)
    inplace_restore.apply(second, options(tmp_path, "tok-r2"))
    assert json.loads(marker.read_text()) == {"applied": ["r1", "r2"]}
    assert (tmp_path / "data.pre-restore-r2" / "member" / "wal" / "0.wal").read_text() == "restored r1"


def test_a_crash_before_the_marker_restores_again_and_keeps_both_copies(tmp_path, fake_restore):
    opts = options(tmp_path)
    (tmp_path / "data" / "member").mkdir(parents=True)
    inplace_restore.apply(REQUEST, opts)
    (tmp_path / "data.restores.json").unlink()  # the marker never reached the disk
    inplace_restore.apply(REQUEST, opts)
    assert fake_restore.calls == ["r1", "r1"]
    assert (tmp_path / "data.pre-restore-r1" / "member").is_dir()  # the original data
    assert (tmp_path / "data.pre-restore-r1.1" / "member" / "wal").is_dir()  # the first attempt's copy


def test_a_failed_restore_records_nothing_and_stops_the_member(tmp_path, fake_restore):
    fake_restore.fail = True
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("old")
    _, findings = inplace_restore.apply(REQUEST, options(tmp_path))
    assert [f.code for f in findings] == ["SnapshotHashMismatch"]
    assert not (tmp_path / "data.restores.json").exists()
    assert (tmp_path / "data.pre-restore-r1" / "x").read_text() == "old"  # aside, never deleted


def test_a_pod_of_another_token_touches_nothing(tmp_path, fake_restore):
    (tmp_path / "data").mkdir()
    done, findings = inplace_restore.apply(REQUEST, options(tmp_path, "old-token"))
    assert "not this pod's restore" in done and findings == [] and fake_restore.calls == []
    assert (tmp_path / "data").is_dir() and not (tmp_path / "data.restores.json").exists()
