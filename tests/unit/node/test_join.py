from etcd_node import join
from etcd_node.join import Member

RUNNING = [
    Member(0x8E9E05C52164694D, "infra0", ("http://10.0.1.10:2380",), ("http://10.0.1.10:2379",)),
    Member(0x91BC3C398FB3C146, "infra1", ("http://10.0.1.11:2380",), ("http://10.0.1.11:2379",)),
    Member(0xFD422379FDA50E48, "infra2", ("http://10.0.1.12:2380",), ("http://10.0.1.12:2379",)),
]


def test_initial_cluster_from_member_list_names_the_new_member():
    added = Member(0x1234, "", ("http://10.0.1.13:2380",), is_learner=True)
    initial, findings = join.initial_cluster("infra3", ["http://10.0.1.13:2380"], [*RUNNING, added])
    assert findings == []
    assert initial == (
        "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380,"
        "infra3=http://10.0.1.13:2380"
    )


def test_member_not_added_first():
    initial, (finding,) = join.initial_cluster("infra3", ["http://10.0.1.13:2380"], RUNNING)
    assert initial == ""
    assert finding.code == "MemberNotAdded"
    assert "etcdctl member add infra3 --peer-urls=http://10.0.1.13:2380 --learner" in finding.fix


def test_started_member_with_empty_data_dir_must_be_replaced():
    _, (finding,) = join.initial_cluster("infra1", ["http://10.0.1.11:2380"], RUNNING)
    assert finding.code == "MemberAlreadyBootstrapped"
    assert "etcdctl member remove 91bc3c398fb3c146" in finding.fix


def test_parse_members_from_json_gateway():
    answer = {"members": [{"ID": "10276657743932975437", "name": "infra0", "peerURLs": ["http://10.0.1.10:2380"],
                           "clientURLs": ["http://10.0.1.10:2379"]}, {"ID": "1", "peerURLs": ["u"], "isLearner": True}]}
    members = join.parse_members(answer)
    assert members[0].id == 10276657743932975437 and members[0].started
    assert members[1].is_learner and not members[1].started


ME = ["http://10.0.1.12:2380"]


def test_bootstrap_state_for_an_empty_volume():
    late = [*RUNNING[:2], Member(0xFD42, "infra2", tuple(ME))]  # static members are named before they start
    readded = [*RUNNING[:2], Member(0xAB, "", tuple(ME), is_learner=True)]
    assert join.bootstrap_state("infra2", ME, None) == ("new", [])  # nobody answers: cluster being created
    assert join.bootstrap_state("infra2", ME, late) == ("new", [])  # an initial member starting late
    assert join.bootstrap_state("infra2", ME, readded) == ("existing", [])  # re-added as a learner
    state, (lost,) = join.bootstrap_state("infra2", ME, RUNNING)  # started once, data gone
    assert state == "" and lost.code == "MemberAlreadyBootstrapped"
    state, (removed,) = join.bootstrap_state("infra2", ME, RUNNING[:2])
    assert state == "" and removed.code == "MemberNotAdded"


def test_restart_state_detects_a_removed_then_re_added_member():
    assert join.restart_state("infra2", ME, None) == ("restart", [])  # nobody answers: trust the data
    assert join.restart_state("infra2", ME, RUNNING) == ("restart", [])  # still this member
    readded = [*RUNNING[:2], Member(0xAB, "", tuple(ME), is_learner=True)]
    assert join.restart_state("infra2", ME, readded) == ("stale", [])
    state, (removed,) = join.restart_state("infra2", ME, RUNNING[:2])
    assert state == "" and removed.code == "MemberRemoved"
