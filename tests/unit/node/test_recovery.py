"""etcd-node's part of a quorum recovery: the decision table, and the marker on a real disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etcd_node import recovery
from etcd_node.findings import Finding
from etcd_node.recovery import FORCE_NEW_CLUSTER, Force, Proceed, RecoveryRequest, decide

REQUEST = RecoveryRequest("r1", "m0")


def options(tmp_path: Path, name: str = "m0") -> dict[str, str]:
    return {"name": name, "data-dir": str(tmp_path / "data")}


@pytest.mark.parametrize(
    ("name", "applied", "member_data", "members_answered", "expected"),
    [
        ("m0", set(), True, False, "force"),  # the survivor's first start under the request
        ("m0", {"r0"}, True, False, "force"),  # an earlier recovery does not count
        ("m0", {"r1"}, True, True, "plain"),  # forced once already: a restart must not drop the members added since
        ("m0", set(), False, False, "RecoveryMemberHasNoData"),  # nothing to recover from
        ("m1", set(), True, False, "RecoveryPending"),  # old data, the survivor not up: never the old membership
        ("m1", set(), False, False, "RecoveryPending"),  # no data, the survivor not up: never a new cluster
        ("m1", set(), False, True, "plain"),  # the survivor answers: the usual rules (wait to be added back)
    ],
)
def test_the_decision_table(tmp_path, name, applied, member_data, members_answered, expected):
    got = decide(REQUEST, options(tmp_path, name), frozenset(applied), member_data, members_answered)
    if expected == "force":
        assert got == Force(tmp_path / "data.recoveries.json")
    elif expected == "plain":
        assert isinstance(got, Proceed)
    else:
        assert isinstance(got, Finding) and got.code == expected and got.fix


def test_the_survivor_records_the_request_before_etcd_starts_and_forces_only_once(tmp_path):
    opts = options(tmp_path)
    flags, what, findings = recovery.apply(REQUEST, opts, member_data=True, members_answered=False)
    assert flags == [FORCE_NEW_CLUSTER] and not findings and "r1" in what
    assert json.loads((tmp_path / "data.recoveries.json").read_text()) == {"applied": ["r1"]}
    again = recovery.apply(REQUEST, opts, member_data=True, members_answered=False)
    assert again[0] == [] and not again[2]


def test_a_dry_run_writes_no_marker(tmp_path):
    flags, what, _ = recovery.apply(REQUEST, options(tmp_path), member_data=True, members_answered=False, dry_run=True)
    assert flags == [FORCE_NEW_CLUSTER] and what.startswith("would start")
    assert not (tmp_path / "data.recoveries.json").exists()


@pytest.mark.parametrize("text", ["{}", "not json", '{"requestID": "r1"}'])
def test_an_unreadable_request_is_an_error_not_a_silent_start(tmp_path, text):
    path = tmp_path / "recovery.json"
    path.write_text(text)
    found = recovery.read_request(path)
    assert isinstance(found, Finding) and found.code == "RecoveryRequestInvalid"
    assert recovery.read_request(tmp_path / "absent.json") is None
