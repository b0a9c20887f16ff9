"""The pure decisions of `etcd-node backup` / `restore`, and the directory store's completeness rule."""

import json
import re

import pytest

from etcd_node.objectstore import DirectoryStore, StoreError
from etcd_node.snapshots import (
    BackupRecord,
    EndpointStatus,
    backup_parser,
    choose_source,
    restore_parser,
    restore_refusal,
)

from .test_plan import readme_table


def status(member_id, leader=1, learner=False, applied=100, errors=()):
    return EndpointStatus(f"https://m{member_id}:2379", member_id, leader, learner, applied, "3.6.16", tuple(errors))


def test_a_follower_is_snapshotted_before_the_leader_and_the_most_applied_one_wins():
    chosen = choose_source([status(1), status(2, applied=90), status(3, applied=99)])
    assert chosen.member_id == 3


def test_the_leader_is_used_when_it_is_the_only_voting_member_left():
    assert choose_source([status(1), status(2, learner=True, applied=500)]).member_id == 1


def test_learners_and_members_with_errors_are_never_chosen():
    assert choose_source([status(2, learner=True), status(3, errors=["alarm:CORRUPT"])]) is None
    assert choose_source([]) is None


def test_endpoint_status_parses_etcdctl_json():
    entry = json.loads(
        '{"Endpoint":"https://a:2379","Status":{"header":{"cluster_id":1,"member_id":12345678901234567890,'
        '"revision":9},"version":"3.6.16","leader":12345678901234567890,"raftIndex":40,"raftAppliedIndex":39,'
        '"isLearner":false}}'
    )
    parsed = EndpointStatus.from_etcdctl(entry)
    assert parsed.member_id == parsed.leader == 12345678901234567890  # 64-bit IDs survive
    assert parsed.applied_index == 39 and not parsed.learner and parsed.version == "3.6.16"


@pytest.mark.parametrize(
    ("snapshot", "tool", "refused"),
    [
        ("3.6.0", "3.6.16", None),
        ("3.5.0", "3.6.16", None),  # one minor up: etcd's upgrade path
        ("", "3.6.16", None),  # no storage version recorded: etcdutl checks what it can read
        ("3.6.0", "3.5.35", "newer than this etcd 3.5"),
        ("3.4.0", "3.6.16", "only starts from data of the previous minor"),
        ("4.0.0", "3.6.16", "newer than this etcd"),
    ],
)
def test_restore_follows_etcds_upgrade_path(snapshot, tool, refused):
    reason = restore_refusal(snapshot, tool)
    assert (reason is None) if refused is None else (refused in reason)


def test_backup_record_round_trips_through_the_termination_message():
    record = BackupRecord("s3://b/k", 42, 1024, "ab" * 32, "3.6.0", "https://m1:2379", "3.6.16", "t0", "t1")
    text = record.to_json()
    assert json.loads(text)["sizeBytes"] == 1024 and len(text) < 4096  # the kubelet keeps 4 KiB
    assert BackupRecord.from_json(text) == record
    assert record.store_record() == {"sha256": "ab" * 32, "revision": "42", "etcd-version": "3.6.0", "size": "1024"}


def test_directory_store_writes_data_then_record_and_reads_both(tmp_path):
    source = tmp_path / "snap.db"
    source.write_bytes(b"x" * 3000)
    store = DirectoryStore(tmp_path / "backups" / "one.db")
    assert store.put(source, {"sha256": "s", "revision": "7"}) == str(tmp_path / "backups" / "one.db")
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == ["one.db", "one.db.json"]
    fetched = tmp_path / "fetched.db"
    assert store.get(fetched) == {"sha256": "s", "revision": "7"}
    assert fetched.read_bytes() == source.read_bytes()
    store.delete()
    assert not any((tmp_path / "backups").iterdir())


def test_a_snapshot_without_its_record_is_an_unfinished_upload(tmp_path):
    (tmp_path / "one.db").write_bytes(b"partial")
    with pytest.raises(StoreError, match="upload never finished"):
        DirectoryStore(tmp_path / "one.db").get(tmp_path / "out.db")


SUBCOMMANDS = readme_table("| Subcommand | Meaning |")


@pytest.mark.parametrize("row", SUBCOMMANDS, ids=lambda row: row[0].split()[1])
def test_every_flag_the_readme_names_is_one_the_subcommand_takes(row):
    text = " ".join(row)
    command = row[0].strip("`").split()[1]
    parser = backup_parser() if command == "backup" else restore_parser()
    known = {opt for action in parser._actions for opt in action.option_strings}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text.replace("/--", " --")))
    assert named and named <= known, f"README names flags etcd-node {command} does not take: {named - known}"
