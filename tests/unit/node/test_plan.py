"""The agent's one pure decision, `plan.decide(options, facts)`, against the README's tables."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from etcd_node import discovery, join, kube, plan, preflight, srv
from etcd_node.findings import errors
from etcd_node.join import Member

README = Path(__file__).resolve().parents[3] / "README.md"
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
DOMAIN = "main.db.svc.cluster.local"
POD_ENV = {
    "ETCD_NODE_POD_NAME": "main-2",
    "ETCD_NODE_POD_NAMESPACE": "db",
    "ETCD_NODE_SERVICE": "main",
    "ETCD_NODE_INITIAL_MEMBERS": "3",
}
DATA_DIR = "/var/lib/etcd/data"
ME = f"http://main-2.{DOMAIN}:2380"
OTHERS = (
    Member(0x10, "main-0", (f"http://main-0.{DOMAIN}:2380",), (f"http://main-0.{DOMAIN}:2379",)),
    Member(0x11, "main-1", (f"http://main-1.{DOMAIN}:2380",), (f"http://main-1.{DOMAIN}:2379",)),
)
# What the live member list says about this pod (main-2), in the README's words.
MEMBER_LISTS: dict[str, tuple[Member, ...] | None] = {
    "nobody answers": None,
    "listed, never started, voting": (*OTHERS, Member(0x12, "main-2", (ME,))),
    "listed, never started, learner": (*OTHERS, Member(0x13, "", (ME,), is_learner=True)),
    "listed and started before": (*OTHERS, Member(0x12, "main-2", (ME,), (f"http://main-2.{DOMAIN}:2379",))),
    "listed and started": (*OTHERS, Member(0x12, "main-2", (ME,), (f"http://main-2.{DOMAIN}:2379",))),
    "listed as a never-started learner": (*OTHERS, Member(0x13, "", (ME,), is_learner=True)),
    "not listed": OTHERS,
}
DATA_DIRS = {"empty": False, "holds a member": True}


def readme_table(header: str) -> list[list[str]]:
    """The rows of the README table whose header line is `header`, as stripped cells."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(header) + 2  # skip the | --- | line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


DATA_DIR_TABLE = readme_table("| Data dir | Member list says | etcd-node does |")


def pod_options(dry_run: bool = False) -> plan.Options:
    identity = kube.identity_from_env(POD_ENV)
    etcd = {"data-dir": DATA_DIR, "initial-cluster-token": "db-main-6f1c"} | kube.derived_options(identity, POD_ENV)
    return plan.Options(etcd=etcd, etcd_bin="/usr/local/bin/etcd", in_pod=True, dry_run=dry_run,
                        join_endpoints=("http://main-client.db.svc.cluster.local:2379",))  # fmt: skip


def facts_for(data_dir: str, member_list: str) -> plan.Facts:
    members = MEMBER_LISTS[member_list]
    failure = "connection refused" if members is None else ""
    return plan.Facts(now=NOW, member_data=DATA_DIRS[data_dir], members=members, members_failure=failure)


def expected_action(does: str) -> tuple[str, str]:
    """The README's "etcd-node does" cell read as (action, detail)."""
    if refused := re.search(r"refuse: `(\w+)`", does):
        return "refuse", refused[1]
    if "restart from it" in does:
        return "restart", ""
    if ".stale-" in does and "join" in does:
        return "set aside, join", ""
    if "`existing`" in does:
        return "join", ""
    if "`new`" in does:
        return "bootstrap", ""
    raise AssertionError(f"no test reads this README row: {does!r}")


def test_every_readme_row_has_member_list_fixtures():
    assert len(DATA_DIR_TABLE) == 7
    assert {(row[0], row[1]) for row in DATA_DIR_TABLE} <= {(d, m) for d in DATA_DIRS for m in MEMBER_LISTS}


@pytest.mark.parametrize(("data_dir", "member_list", "does"), DATA_DIR_TABLE, ids=lambda cell: cell[:24])
def test_readme_data_dir_by_member_list(data_dir, member_list, does):
    action, detail = expected_action(does)
    decided = plan.decide(pod_options(), facts_for(data_dir, member_list))
    argv, codes = decided.argv, [f.code for f in errors(decided.findings)]
    joined = "--initial-cluster=" + ",".join(
        f"main-{i}=http://main-{i}.{DOMAIN}:2380" for i in range(3)
    )  # sorted by name; this pod named as itself even where the list has no name yet
    if action == "refuse":
        assert codes == [detail]
        assert decided.set_aside is None
        return
    assert codes == []
    if action == "restart":
        assert decided.restarting and decided.set_aside is None
        return
    assert not decided.restarting
    if action == "bootstrap":
        assert joined in argv  # the StatefulSet's initial members, from the pod identity
        assert "--initial-cluster-state=existing" not in argv
        assert decided.set_aside is None
        return
    assert "--initial-cluster-state=existing" in argv
    assert joined in argv  # built from the live member list
    if action == "set aside, join":
        assert decided.set_aside == Path("/var/lib/etcd/data.stale-20260601T120000Z")
        assert "StaleDataSetAside" in [f.code for f in decided.findings]
    else:
        assert decided.set_aside is None


def test_a_dry_run_says_where_stale_data_would_go():
    decided = plan.decide(pod_options(dry_run=True), facts_for("holds a member", "listed as a never-started learner"))
    (aside,) = [f for f in decided.findings if f.code == "StaleDataSetAside"]
    assert "would be moved to /var/lib/etcd/data.stale-20260601T120000Z" in aside.message


def test_etcd_args_is_argv_and_findings():
    argv, findings = plan.etcd_args(pod_options(), facts_for("empty", "nobody answers"))
    assert argv[0] == "/usr/local/bin/etcd" and "--name=main-2" in argv
    assert errors(findings) == []


@pytest.mark.parametrize(
    ("member_data", "etcd", "in_pod", "timeout"),
    [
        (False, {"initial-cluster-state": "existing"}, False, plan.JOIN_TIMEOUT),  # a join needs the list
        (True, {"initial-cluster-state": "existing"}, False, None),  # restarting: etcd ignores the flags
        (False, {"initial-cluster-state": "new"}, False, None),  # outside a pod a bootstrap asks nobody
        (False, {}, True, plan.POD_CHECK_TIMEOUT),  # in a pod: a lost volume?
        (True, {}, True, plan.POD_CHECK_TIMEOUT),  # in a pod: a removed member's volume?
    ],
)
def test_member_list_is_read_only_when_the_decision_uses_it(member_data, etcd, in_pod, timeout):
    options = plan.Options(etcd=etcd, in_pod=in_pod, join_endpoints=("http://10.0.1.10:2379",))
    assert plan.member_list_timeout(options, member_data) == timeout
    assert plan.member_list_timeout(plan.Options(etcd=etcd, in_pod=in_pod), member_data) is None


def test_join_without_an_answer_is_refused_with_the_reason():
    options = plan.Options(etcd={"name": "infra3", "initial-advertise-peer-urls": "http://10.0.1.13:2380",
                                 "initial-cluster-state": "existing"}, join_endpoints=("http://10.0.1.10:2379",))  # fmt: skip
    _, findings = plan.etcd_args(options, plan.Facts(now=NOW, members_failure="http://10.0.1.10:2379: timed out"))
    (refused,) = errors(findings)
    assert refused.code == "JoinEndpointsUnreachable"
    assert "http://10.0.1.10:2379: timed out" in refused.message


def test_wanted_asks_dns_only_where_a_check_compares_addresses():
    static = plan.Options(etcd={"name": "infra0", "initial-advertise-peer-urls": "http://infra0.example.com:2380",
                                "initial-cluster": "infra0=http://infra0.example.com:2380"})  # fmt: skip
    assert plan.wanted(static, plan.Facts(now=NOW)) == plan.Wanted()
    by_ip = plan.Options(etcd=dict(static.etcd) | {"initial-cluster": "infra0=http://10.0.1.10:2380"})
    assert plan.wanted(by_ip, plan.Facts(now=NOW)).hosts == ("infra0.example.com",)
    srv = plan.Options(etcd={"name": "infra0", "initial-advertise-peer-urls": "http://infra0.example.com:2380",
                             "discovery-srv": "example.com"})  # fmt: skip
    wanted = plan.wanted(srv, plan.Facts(now=NOW))
    assert (wanted.srv, wanted.hosts) == (("example.com", ""), ("infra0.example.com",))
    assert plan.wanted(srv, plan.Facts(now=NOW, member_data=True)) == plan.Wanted()  # restarting: no bootstrap


def test_v3_discovery_on_etcd_3_5_is_refused_without_asking_the_registry():
    options = plan.Options(etcd={"name": "infra0", "discovery-endpoints": "http://10.0.1.9:2379",
                                 "discovery-token": "t", "initial-advertise-peer-urls": "http://10.0.1.10:2380"},
                           etcd_bin="/opt/etcd-3.5/etcd")  # fmt: skip
    wanted = plan.wanted(options, plan.Facts(now=NOW))
    assert wanted.etcd_version and wanted.discovery_v3 is not None
    assert not plan.v3_discovery_supported((3, 5, 21))
    _, findings = plan.etcd_args(options, plan.Facts(now=NOW, etcd_version=(3, 5, 21)))
    assert [f.code for f in errors(findings)] == ["DiscoveryV3Unsupported"]


def test_gather_reads_nothing_a_plain_static_start_does_not_use(monkeypatch, tmp_path):
    def no_io(*args, **kwargs):
        raise AssertionError("no I/O expected for a static start with matching URLs")

    for module, name in ((join, "member_list"), (srv, "lookup"), (srv, "resolve_host"), (discovery, "fetch_v2"),
                         (discovery, "fetch_v3"), (preflight, "etcd_version")):  # fmt: skip
        monkeypatch.setattr(module, name, no_io)
    etcd = {"name": "infra0", "initial-advertise-peer-urls": "http://infra0.example.com:2380",
            "initial-cluster": "infra0=http://infra0.example.com:2380", "data-dir": str(tmp_path / "data")}  # fmt: skip
    options = plan.Options(etcd=etcd, join_endpoints=("http://10.0.1.10:2379",))
    assert preflight.gather(options, NOW) == plan.Facts(now=NOW)


@pytest.mark.parametrize("ordinal", [3, 1])  # beyond the initial members; an initial member re-added after a loss
def test_a_member_joining_a_cluster_that_bootstrapped_by_v3_discovery_joins_from_the_member_list(ordinal):
    env = {"ETCD_NODE_POD_NAME": f"b-{ordinal}", "ETCD_NODE_POD_NAMESPACE": "ns", "ETCD_NODE_SERVICE": "b",
           "ETCD_NODE_BOOTSTRAP": "discovery", "ETCD_NODE_INITIAL_MEMBERS": "3"}  # fmt: skip
    derived = kube.derived_options(kube.identity_from_env(env), env)
    # What the pod template keeps for its initial members: the discovery cluster and the token.
    etcd = {**derived, "discovery-endpoints": "https://a-client.ns.svc:2379", "discovery-token": "tok"}
    options = plan.Options(etcd=etcd, in_pod=True, join_endpoints=("https://b-client.ns.svc:2379",))
    peer = derived["initial-advertise-peer-urls"]
    members = tuple(Member(i, f"b-{i}", (f"https://b-{i}.b.ns.svc.cluster.local:2380",), (f"https://b-{i}:2379",))
                    for i in range(3) if i != ordinal) + (Member(9, "", (peer,), is_learner=True),)  # fmt: skip
    facts = plan.Facts(now=NOW, members=members, etcd_version=(3, 6, 16))
    assert plan.wanted(options, facts).discovery_v3 is None  # the discovery cluster is not asked (it may be gone)
    decided = plan.decide(options, facts)
    assert errors(decided.findings) == []
    assert decided.options["initial-cluster-state"] == "existing" and f"b-{ordinal}=" in decided.options["initial-cluster"]
    assert "discovery-endpoints" not in decided.options and "discovery-token" not in decided.options
