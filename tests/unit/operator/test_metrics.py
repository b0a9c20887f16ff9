"""The operator's metrics: values computed from whole passes, the series the Recorder keeps and drops, a real scrape."""

from __future__ import annotations

import asyncio
import urllib.request
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from etcd_operator import metrics
from etcd_operator.adapters.etcd import EtcdClient
from etcd_operator.controller import PassResult
from etcd_operator.models.cluster import EtcdClusterSpec, EtcdClusterStatus, MemberStatus
from etcd_operator.pki import certs
from etcd_operator.reconcile import membership as mp
from etcd_operator.reconcile.observed import EtcdView, MaintenanceStatus, Member, Observed
from etcd_operator.reconcile.plan import ClusterContext, Plan
from etcd_operator.reconcile.status import Outcome

from .test_pass import IDENTITY, Cluster

MiB = 2**20


def ctx(spec: dict[str, Any] | None = None) -> ClusterContext:
    return ClusterContext(IDENTITY, EtcdClusterSpec.model_validate(spec or {"replicas": 3}), EtcdClusterStatus(), 1, "etcd-node")


def report(cluster: Cluster, applied: dict[int, int], db: int = 40 * MiB, in_use: int = 10 * MiB, quota: int = 0) -> None:
    """Every member answers its status: `applied` is each ordinal's raftAppliedIndex."""
    by_ordinal = {cluster.world._ordinal(m): m for m in cluster.etcd.members.values()}
    cluster.etcd.statuses = {
        by_ordinal[o].id: MaintenanceStatus(by_ordinal[o].id, cluster.etcd.leader or 0, db_size=db, db_size_in_use=in_use,
                                            db_size_quota=quota, raft_applied_index=index)
        for o, index in applied.items()
    }  # fmt: skip


def settled(spec: dict[str, Any]) -> Cluster:
    cluster = Cluster(spec)
    cluster.converge()
    return cluster


def test_a_settled_cluster():
    cluster = settled({"replicas": 3, "etcd": {"quotaBackendBytes": 512 * MiB}})
    leader = cluster.world._ordinal(cluster.etcd.members[cluster.etcd.leader])
    report(cluster, {0: 90, 1: 90, 2: 90} | {leader: 100})
    s = metrics.sample(ctx(cluster.spec.model_dump(by_alias=True, exclude_none=True)), cluster.once())
    assert (s.namespace, s.cluster, s.phase) == ("db", "main", "Running")
    assert (s.desired, s.voting, s.learners, s.healthy) == (3, 3, 0, 3)
    assert s.leader_id == cluster.etcd.leader
    assert s.quota_bytes == 512 * MiB  # etcd 3.5 does not say its quota: the spec's
    assert [m.member for m in s.members] == ["main-0", "main-1", "main-2"]
    by_pod = {m.member: m for m in s.members}
    assert [p for p, m in by_pod.items() if m.leader] == [f"main-{leader}"]
    assert {p: m.applied_lag for p, m in by_pod.items()} == {f"main-{o}": 0 if o == leader else 10 for o in range(3)}
    assert {(m.db_size, m.db_size_in_use) for m in s.members} == {(40 * MiB, 10 * MiB)}
    assert s.steps == () and s.refused == ""


def test_quota_etcd_reports_wins_and_the_default_is_etcds():
    cluster = settled({"replicas": 1})
    report(cluster, {0: 5}, quota=100 * MiB)
    assert metrics.sample(ctx({"replicas": 1}), cluster.once()).quota_bytes == 100 * MiB
    cluster.etcd.statuses = {}
    s = metrics.sample(ctx({"replicas": 1}), cluster.once())
    assert s.quota_bytes == 2 * 2**30
    assert s.members[0].db_size is None and s.members[0].applied_lag is None  # no status: no size series


def test_certificates_not_after_from_the_secrets_the_pass_read():
    cluster = settled({"replicas": 3})
    result = cluster.once()
    s = metrics.sample(ctx(), result)
    found = {(c.secret, c.kind): c.not_after for c in s.certificates}
    assert set(found) == {("main-peer-ca", "ca"), ("main-client-ca", "ca"), ("main-peer-tls", "leaf"),
                          ("main-server-tls", "leaf"), ("main-client-tls", "leaf")}  # fmt: skip
    ca = certs.load_cert(cluster.kube.secret("db", "main-peer-ca")["tls.crt"])
    assert found[("main-peer-ca", "ca")] == ca.not_valid_after_utc.timestamp()
    peer = cluster.kube.secret("db", "main-peer-tls")
    leaves = [certs.load_cert(peer[f"main-{o}.crt"]).not_valid_after_utc.timestamp() for o in range(3)]
    assert found[("main-peer-tls", "leaf")] == min(leaves) < found[("main-peer-ca", "ca")]


def test_no_certificates_without_generated_tls():
    cluster = settled({"replicas": 1, "tls": {"peer": {"mode": "none"}, "client": {"mode": "none"}}})
    assert metrics.sample(ctx(), cluster.once()).certificates == ()


def test_scale_out_counts_each_step_and_the_learner():
    cluster = settled({"replicas": 1})
    cluster.edit(replicas=3)
    cluster.converge()
    samples = [metrics.sample(ctx({"replicas": 3}), r) for r in cluster.results]
    steps = [step for s in samples for step in s.steps]
    assert steps.count(("AddLearner", "done")) == 2 and steps.count(("Promote", "done")) == 2
    assert ("ScaleStatefulSet", "done") in steps  # the StatefulSet following the add, in the same pass
    assert any(s.learners == 1 for s in samples)
    assert samples[-1].voting == 3 and samples[-1].learners == 0


def test_a_step_etcd_asks_to_retry_counts_as_retry_and_not_its_follow_up():
    step, follow = mp.AddLearner(3, "https://main-3.main:2380"), mp.ScaleStatefulSet(4)
    result = PassResult(EtcdClusterStatus(phase="Running"), Plan(step=step, follow_up=follow),
                        Outcome(step, step_error="etcdserver: unhealthy cluster"), Observed(1, None), True)  # fmt: skip
    assert metrics.sample(ctx(), result).steps == (("AddLearner", "retry"),)


def test_etcd_unreachable_keeps_the_last_members_none_healthy_no_leader():
    cluster = settled({"replicas": 3})
    cluster.etcd.reachable = False
    s = metrics.sample(ctx(), cluster.once())
    assert (s.voting, s.healthy, s.leader_id) == (3, 0, None)
    assert {m.member for m in s.members} == {"main-0", "main-1", "main-2"} and not any(m.healthy for m in s.members)


def test_a_leader_outside_the_member_list_is_no_leader():
    members = (Member(1, "main-0", ("https://main-0.main.db.svc.cluster.local:2380",), healthy=True),)
    observed = Observed(1, None, etcd=EtcdView(members, leader_id=99))
    result = PassResult(EtcdClusterStatus(phase="Running"), Plan(), Outcome(), observed, False)
    s = metrics.sample(ctx(), result)
    assert s.leader_id is None and not s.members[0].leader


def test_a_refused_step():
    refuse = mp.Refuse("QuorumAtRisk", "removing member 2 would leave 1 of 3")
    result = PassResult(EtcdClusterStatus(phase="Degraded"), Plan(step=refuse), Outcome(refuse), Observed(1, None), False)
    s = metrics.sample(ctx(), result)
    assert s.refused == "QuorumAtRisk" and s.steps == ()


def test_leader_changed():
    assert not metrics.leader_changed(None, 1)  # first sight
    assert not metrics.leader_changed(1, None)  # lost: not a change yet
    assert not metrics.leader_changed(1, 1)
    assert metrics.leader_changed(1, 2)


# The Recorder: series from samples.

BASE = metrics.ClusterSample("db", "main", "Running", 3, 3, 0, 3, 1, 2 * 2**30)


def values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return values(registry).get((name, tuple(sorted({"namespace": "db", "cluster": "main", **labels}.items()))))


def member(pod: str, **fields: Any) -> metrics.MemberSample:
    return replace(metrics.MemberSample(pod, healthy=True, leader=False, learner=False, db_size=1, db_size_in_use=1,
                                        applied_lag=0), **fields)  # fmt: skip


def test_recorder_counts_leader_changes_between_passes():
    recorder = metrics.Recorder()
    for leader in (1, 1, None, 1, 2, 2, 3):
        recorder.record(replace(BASE, leader_id=leader))
    assert value(recorder.registry, "etcd_operator_cluster_leader_changes_total") == 2
    assert value(recorder.registry, "etcd_operator_cluster_has_leader") == 1
    recorder.record(replace(BASE, leader_id=None))
    assert value(recorder.registry, "etcd_operator_cluster_has_leader") == 0


def test_recorder_counts_a_refusal_when_it_starts_and_shows_it_while_it_lasts():
    recorder = metrics.Recorder()
    for refused in ("", "QuorumAtRisk", "QuorumAtRisk", "QuorumAtRisk"):
        recorder.record(replace(BASE, refused=refused))
    assert value(recorder.registry, "etcd_operator_membership_refusals_total", reason="QuorumAtRisk") == 1
    assert value(recorder.registry, "etcd_operator_membership_step_refused", reason="QuorumAtRisk") == 1
    recorder.record(BASE)
    assert value(recorder.registry, "etcd_operator_membership_step_refused", reason="QuorumAtRisk") is None
    assert value(recorder.registry, "etcd_operator_membership_refusals_total", reason="QuorumAtRisk") == 1


def test_recorder_drops_series_of_a_removed_member_and_keeps_counters():
    recorder = metrics.Recorder()
    pods = (member("main-0", leader=True), member("main-1", db_size=7 * MiB), member("main-2"))
    recorder.record(replace(BASE, members=pods, steps=(("RemoveMember", "done"),)))
    assert value(recorder.registry, "etcd_operator_member_db_size_bytes", member="main-1") == 7 * MiB
    recorder.record(replace(BASE, voting=1, healthy=1, members=pods[:1]))
    got = values(recorder.registry)
    assert not [k for k in got if ("member", "main-1") in k[1] or ("member", "main-2") in k[1]]
    assert value(recorder.registry, "etcd_operator_member_is_leader", member="main-0") == 1
    assert value(recorder.registry, "etcd_operator_membership_steps_total", step="RemoveMember", result="done") == 1
    assert value(recorder.registry, "etcd_operator_cluster_members", role="voting") == 1


def test_recorder_phase_is_one_hot():
    recorder = metrics.Recorder()
    recorder.record(replace(BASE, phase="Hibernated"))
    phases = {dict(k[1])["phase"]: v for k, v in values(recorder.registry).items() if k[0] == "etcd_operator_cluster_phase"}
    assert phases == {p: float(p == "Hibernated") for p in metrics.PHASES}


def test_forget_removes_every_series_of_the_cluster_and_only_those():
    recorder = metrics.Recorder()
    cert = metrics.IssuedCertificate("main-peer-ca", "ca", 2e9)
    recorder.record(replace(BASE, members=(member("main-0"),), steps=(("Promote", "done"),), refused="ScaleToZero",
                            certificates=(cert,)))  # fmt: skip
    recorder.observe_pass("db", "main", 0.2, failed=True)
    recorder.record(replace(BASE, cluster="other"))
    recorder.observe_pass("db", "other", 0.1, failed=False)
    assert value(recorder.registry, "etcd_operator_reconcile_errors_total") == 1
    assert value(recorder.registry, "etcd_operator_reconcile_duration_seconds_count") == 1
    assert value(recorder.registry, "etcd_operator_certificate_not_after_timestamp_seconds", secret="main-peer-ca",
                 kind="ca") == 2e9  # fmt: skip
    recorder.forget("db", "main")
    left = values(recorder.registry)
    assert left and all(dict(labels).get("cluster") == "other" for _, labels in left)
    recorder.record(replace(BASE, leader_id=2))  # the same name again: a new cluster, a counter from zero
    assert value(recorder.registry, "etcd_operator_cluster_leader_changes_total") == 0


def test_operator_wide_counters_are_read_at_scrape_time():
    recorder = metrics.Recorder()
    calls = [3]
    recorder.count("etcd_operator_etcd_calls", "etcd requests", lambda: calls[0])
    assert values(recorder.registry)[("etcd_operator_etcd_calls_total", ())] == 3
    calls[0] = 10
    assert values(recorder.registry)[("etcd_operator_etcd_calls_total", ())] == 10


def test_a_whole_pass_recorded_and_scraped_over_http():
    """The real endpoint on a loopback port, read with prometheus_client's own parser."""
    cluster = settled({"replicas": 3})
    report(cluster, {0: 7, 1: 7, 2: 7})
    registry = metrics.new_registry()
    recorder = metrics.Recorder(registry)
    recorder.count("etcd_operator_kube_requests", "Kubernetes API requests", lambda: cluster.kube.requests)
    recorder.record(metrics.sample(ctx(), cluster.once()))
    recorder.observe_pass("db", "main", 0.03, failed=False)
    server = metrics.serve("127.0.0.1:0", registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["etcd_operator_cluster_healthy_members"].samples[0].value == 3
    assert families["etcd_operator_cluster_healthy_members"].samples[0].labels == {"namespace": "db", "cluster": "main"}
    assert families["etcd_operator_kube_requests"].type == "counter"
    assert families["etcd_operator_kube_requests"].samples[0].value == cluster.kube.requests
    assert {s.labels["member"] for s in families["etcd_operator_member_db_size_bytes"].samples} == {
        "main-0", "main-1", "main-2"}  # fmt: skip
    durations = {s.name: s.value for s in families["etcd_operator_reconcile_duration_seconds"].samples}
    assert durations["etcd_operator_reconcile_duration_seconds_count"] == 1
    assert "process_resident_memory_bytes" in families  # the operator's RSS, for the idle-cost figures
    assert not [name for name in text.split() if name.endswith("_created")]


@pytest.mark.parametrize(
    ("address", "expected"),
    [("0.0.0.0:8081", ("0.0.0.0", 8081)), (":9000", ("0.0.0.0", 9000)), ("[::1]:8081", ("::1", 8081))],
)
def test_parse_address(address, expected):
    assert metrics.parse_address(address) == expected


@pytest.mark.parametrize("address", ["8081", "host:", "host:http"])
def test_parse_address_refuses(address):
    with pytest.raises(ValueError, match="host:port"):
        metrics.parse_address(address)


class AnsweringClient(EtcdClient):
    """The real adapter with canned gateway answers (int64 as strings, zeros left out, as the gateway writes them)."""

    def __init__(self, answers: dict[str, dict[str, Any]]):
        super().__init__(["https://main-0.main:2379"])
        self.answers = answers

    async def _call(self, endpoint: str, path: str, body: Any = None, timeout: float | None = None) -> dict[str, Any]:
        EtcdClient.total_calls += 1
        return self.answers[f"{endpoint}{path}"]


def test_the_adapter_carries_the_maintenance_status_into_the_view():
    url = "https://main-0.main:2379"
    before = EtcdClient.total_calls
    client = AnsweringClient({
        f"{url}/v3/cluster/member/list": {"header": {}, "members": [
            {"ID": "17", "name": "main-0", "peerURLs": ["https://main-0.main:2380"], "clientURLs": [url]}]},
        f"{url}/v3/maintenance/status": {
            "header": {"member_id": "17", "cluster_id": "5", "revision": "42", "raft_term": "3"},
            "version": "3.6.16", "dbSize": "4096", "dbSizeInUse": "1024", "leader": "17", "raftIndex": "60",
            "raftTerm": "3", "raftAppliedIndex": "59", "dbSizeQuota": "2147483648"},
        f"{url}/version": {"etcdserver": "3.6.16", "etcdcluster": "3.6.0"},
    })  # fmt: skip
    view = asyncio.run(client.view())
    assert view.status == {17: MaintenanceStatus(17, leader_id=17, db_size=4096, db_size_in_use=1024,
                                                 db_size_quota=2**31, raft_index=60, raft_applied_index=59,
                                                 raft_term=3, revision=42)}  # fmt: skip
    assert EtcdClient.total_calls - before == 3


def test_status_members_carry_over_when_etcd_is_unreachable():
    status = EtcdClusterStatus(phase="Unavailable", members=[
        MemberStatus(name="main-0", id="11", peer_urls=["https://main-0.main.db.svc.cluster.local:2380"], is_learner=False,
                     healthy=True),
        MemberStatus(name="", id="12", peer_urls=["https://main-1.main.db.svc.cluster.local:2380"], is_learner=True,
                     healthy=False)])  # fmt: skip
    s = metrics.sample(ctx(), PassResult(status, Plan(), Outcome(), Observed(1, None), False))
    assert (s.voting, s.learners, s.healthy) == (1, 1, 0)
    assert [m.member for m in s.members] == ["main-0", "main-1"]
