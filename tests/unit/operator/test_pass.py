"""Whole reconcile passes against an in-memory API server and etcd: what a user would check after each scenario."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from etcd_operator import GROUP, KIND, VERSION
from etcd_operator.controller import EtcdClients, reconcile_once
from etcd_operator.models.cluster import EtcdClusterSpec, EtcdClusterStatus
from etcd_operator.pki import bundles, certs
from etcd_operator.reconcile import membership as mp
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.observed import REPLICAS_MANAGER
from etcd_operator.reconcile.plan import ClusterContext
from etcd_operator.reconcile.secrets import REISSUE_CA
from etcd_operator.resources.meta import Owner
from etcd_operator.resources.secrets import build_secret
from tests.support.pki import make_ca, make_cert

from .fakes import FakeEtcd, FakeKube, World

IDENTITY = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Cluster:
    """An EtcdCluster driven pass by pass; the World plays the StatefulSet controller and the kubelet."""

    def __init__(self, spec: dict, now: datetime = T0):
        self.kube, self.etcd = FakeKube(), FakeEtcd()
        self.world = World(self.kube, self.etcd)
        self.spec = EtcdClusterSpec.model_validate(spec)
        self.status = EtcdClusterStatus()
        self.now = now
        self.annotations: dict[str, str] = {}
        self.clients = EtcdClients(lambda access, secret: self.etcd)
        self.results = []

    def edit(self, **fields) -> None:
        self.spec = EtcdClusterSpec.model_validate({**self.spec.model_dump(by_alias=True, exclude_none=True), **fields})

    def once(self):
        ctx = ClusterContext(IDENTITY, self.spec, self.status, 1, "etcd-node", self.annotations)
        result = asyncio.run(reconcile_once(self.kube, ctx, self.clients, self.now))
        self.status = result.status
        self.results.append(result)
        self.world.settle()
        return result

    def converge(self, limit: int = 40):
        """Passes until one changes nothing and takes no step; returns that quiet pass."""
        for _ in range(limit):
            result = self.once()
            quiet = not result.plan.objects and not result.busy
            if quiet and isinstance(result.outcome.step, mp.Noop | None) and self.conditions()["Progressing"][0] == "False":
                return result
        raise AssertionError(f"no convergence in {limit} passes: {self.conditions()}")

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c.type: (c.status.value, c.reason) for c in self.status.conditions or []}

    def pdb_min_available(self) -> int:
        return self.kube.objects[("PodDisruptionBudget", "db", "main")]["spec"]["minAvailable"]

    def assert_settled(self, replicas: int) -> None:
        """Everything a user checks: conditions, phase, members, the PDB, the StatefulSet's size."""
        assert self.conditions() == {
            "Available": ("True", "QuorumHealthy"),
            "Progressing": ("False", "Reconciled"),
            "Degraded": ("False", "AsExpected"),
        }
        assert self.status.phase == "Running"
        members = self.status.members or []
        assert len(members) == replicas and not any(m.is_learner for m in members) and all(m.healthy for m in members)
        assert self.pdb_min_available() == (replicas // 2 + 1 if replicas > 1 else 0)
        assert self.world.replicas() == replicas


def test_bootstrap_settles_and_an_idle_pass_writes_nothing():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.assert_settled(3)
    writes, requests, etcd_calls = len(cluster.kube.writes), cluster.kube.requests, cluster.etcd.calls
    idle = cluster.once()
    assert not idle.plan.objects and cluster.kube.writes[writes:] == []
    # Reads of one idle pass: StatefulSet, pods, Services, PDB, Secrets; one etcd round (list + 3 statuses).
    assert cluster.kube.requests - requests == 5
    assert cluster.etcd.calls - etcd_calls == 4


def test_replicas_has_one_writer_and_survives_the_object_apply_leaving_it_out():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    assert REPLICAS_MANAGER in cluster.kube.replicas_owners["main"]
    sts_applies = [w for w in cluster.kube.writes if w == "StatefulSet/main"]
    cluster.edit(resources={"requests": {"cpu": "200m"}})  # a template change: the object apply runs again
    cluster.converge()
    assert [w for w in cluster.kube.writes if w == "StatefulSet/main"] == [*sts_applies, "StatefulSet/main"]
    assert cluster.kube.replicas_owners["main"] == {REPLICAS_MANAGER}  # the object apply no longer carries it
    cluster.assert_settled(3)


def test_pdb_follows_every_scale_step():
    cluster = Cluster({"replicas": 1})
    cluster.converge()
    cluster.assert_settled(1)
    for replicas in (3, 5, 3):
        cluster.edit(replicas=replicas)
        cluster.converge()
        cluster.assert_settled(replicas)
    seen = {r.plan.step.__class__.__name__ for r in cluster.results}
    assert {"AddLearner", "Promote", "RemoveMember"} <= seen


def test_a_healed_member_stays_healthy_and_is_not_removed_again():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    before = {m.name: m.id for m in cluster.status.members}
    cluster.world.wiped.add(2)  # pod and claim deleted: the new pod has an empty volume
    cluster.world.settle()
    cluster.converge()
    cluster.assert_settled(3)
    after = {m.name: m.id for m in cluster.status.members}
    assert after["main-2"] != before["main-2"] and after["main-0"] == before["main-0"]
    # The kubelet still shows the old termination message; a running container is not an error.
    for _ in range(5):
        quiet = cluster.once()
        assert quiet.outcome.step == mp.Noop()
    cluster.assert_settled(3)
    assert {m.name: m.id for m in cluster.status.members} == after


def test_deleted_children_come_back_in_the_next_pass():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    for kind, name in (("Service", "main-client"), ("PodDisruptionBudget", "main"), ("Service", "main")):
        cluster.kube.remove(kind, "db", name)
    repaired = cluster.once()
    assert {f"{o['kind']}/{o['metadata']['name']}" for o in repaired.plan.objects} == {
        "Service/main-client", "PodDisruptionBudget/main", "Service/main"}  # fmt: skip
    cluster.converge()
    cluster.assert_settled(3)


def test_a_hand_edited_child_is_put_back():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.kube.objects[("Service", "db", "main-client")]["spec"]["selector"] = {"app": "other"}
    cluster.once()
    assert cluster.kube.objects[("Service", "db", "main-client")]["spec"]["selector"] == {
        "app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": "main", "app": "other"}  # fmt: skip


def test_certificates_are_renewed_by_the_pass_before_they_expire():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    peer_before = cluster.kube.secret("db", "main-peer-tls")
    ca_before = cluster.kube.secret("db", "main-peer-ca")
    cluster.now = T0 + timedelta(days=300)
    assert not cluster.once().plan.objects  # not due yet
    cluster.now = T0 + timedelta(days=336)  # 365-day leaves, renewed 30 days before the end
    renewed = cluster.once()
    names = {o["metadata"]["name"] for o in renewed.plan.objects}
    assert {"main-peer-tls", "main-server-tls", "main-client-tls"} <= names
    assert cluster.kube.secret("db", "main-peer-ca") == ca_before
    assert cluster.kube.secret("db", "main-peer-tls")["main-0.crt"] != peer_before["main-0.crt"]
    assert not cluster.once().plan.objects  # renewed once, not on every pass
    cluster.assert_settled(3)


def test_a_missing_ca_is_reported_not_silently_replaced():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    peer_tls = cluster.kube.secret("db", "main-peer-tls")
    cluster.kube.remove("Secret", "db", "main-peer-ca")
    result = cluster.once()
    assert ("Secret", "db", "main-peer-ca") not in cluster.kube.objects
    assert cluster.kube.secret("db", "main-peer-tls") == peer_tls
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert (degraded.status.value, degraded.reason) == ("True", "CASecretMissing")
    assert REISSUE_CA in degraded.message and "main-peer-ca" in degraded.message
    assert result.outcome.step == mp.Noop()  # membership is still served
    cluster.annotations[REISSUE_CA] = "true"
    cluster.once()
    assert ("Secret", "db", "main-peer-ca") in cluster.kube.objects
    assert cluster.kube.secret("db", "main-peer-tls")["ca.crt"] != peer_tls["ca.crt"]


def test_the_statefulset_follows_an_add_that_a_crash_interrupted():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.edit(replicas=5)
    # The operator died right after `member add`: etcd has the learner, the StatefulSet is still 3.
    url = "https://main-3.main.db.svc.cluster.local:2380"
    asyncio.run(cluster.etcd.member_add([url], learner=True))
    result = cluster.once()
    assert result.outcome.step == mp.ScaleStatefulSet(4)
    cluster.converge()
    cluster.assert_settled(5)


def test_add_and_statefulset_in_one_pass():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.edit(replicas=4)
    result = cluster.once()
    assert isinstance(result.outcome.step, mp.AddLearner) and result.plan.follow_up == mp.ScaleStatefulSet(4)
    assert result.busy  # the next pass comes at the busy interval: the learner is promoted as soon as it can be
    assert cluster.world.replicas() == 4


def test_a_refused_apply_is_reported_with_the_api_servers_words():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.kube.remove("Service", "db", "main-client")
    cluster.kube.refuse["Service/main-client"] = (422, 'Service "main-client" is invalid: spec.ports[0].port: Invalid value')
    cluster.once()
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert (degraded.status.value, degraded.reason) == ("True", "ApplyFailed")
    assert "spec.ports[0].port: Invalid value" in degraded.message and "422" in degraded.message
    assert not cluster.results[-1].busy  # a refused write is retried at the idle interval, not hammered
    del cluster.kube.refuse["Service/main-client"]
    cluster.converge()
    cluster.assert_settled(3)


@pytest.mark.parametrize("replicas", [3, 5])
def test_hibernate_and_wake_keep_members(replicas):
    cluster = Cluster({"replicas": replicas})
    cluster.converge()
    ids = {m.name: m.id for m in cluster.status.members}
    cluster.edit(hibernate=True)
    cluster.once()
    assert cluster.world.replicas() == 0
    cluster.once()
    assert cluster.status.phase == "Hibernated"
    cluster.edit(hibernate=False)
    cluster.once()
    assert cluster.world.replicas() == replicas  # every member at once, from the last known membership
    cluster.converge()
    cluster.assert_settled(replicas)
    assert {m.name: m.id for m in cluster.status.members} == ids


def test_etcd_unreachable_keeps_objects_right_and_the_last_members():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.etcd.reachable = False
    cluster.kube.remove("Service", "db", "main-client")
    result = cluster.once()
    assert "Service/main-client" in {f"{o['kind']}/{o['metadata']['name']}" for o in result.plan.objects}
    assert result.outcome.step is None
    assert cluster.status.phase == "Unavailable" and len(cluster.status.members) == 3
    assert cluster.pdb_min_available() == 2  # from the last known membership


def test_drift_ignores_defaults_and_omitted_empties_but_names_the_changed_field():
    from etcd_operator.reconcile.drift import drift

    desired = {"spec": {"args": [], "ports": [{"port": 2379}], "selector": {"a": "b"}}}
    live = {"spec": {"ports": [{"port": 2379, "protocol": "TCP"}], "selector": {"a": "b"}, "clusterIP": "None"}}
    assert drift(desired, live) is None
    assert drift(desired, {"spec": {**live["spec"], "selector": {"a": "c"}}}) == ".spec.selector.a"
    assert drift(desired, {"spec": {**live["spec"], "ports": []}}) == ".spec.ports"
    assert drift(desired, None) == "missing"


def test_fast_passes_while_members_start_but_not_for_ever():
    cluster = Cluster({"replicas": 3})
    cluster.etcd.reachable = False  # members never answer: a bootstrap that does not finish
    first = cluster.once()
    assert first.busy  # objects were created
    starting = cluster.once()
    assert starting.outcome.step is None and starting.busy  # members starting: watch closely
    cluster.now = T0 + timedelta(minutes=6)
    assert not cluster.once().busy  # still not up after minutes: back to the idle interval


def _deletes(cluster: Cluster) -> list[str]:
    return [w.removeprefix("delete Pod/") for w in cluster.kube.writes if w.startswith("delete Pod/")]


def test_an_upgrade_restarts_each_member_once_followers_first_leader_last():
    cluster = Cluster({"replicas": 3, "version": "3.5.35"})
    cluster.converge()
    cluster.assert_settled(3)
    leader = cluster.status.leader
    cluster.edit(version="3.6.16")
    cluster.once()  # the template changes; OnDelete restarts nothing by itself
    assert _deletes(cluster) == []
    progress = []
    for _ in range(20):
        result = cluster.once()
        progressing = next(c for c in cluster.status.conditions if c.type == "Progressing")
        progress.append((progressing.reason, progressing.message))
        if progressing.status.value == "False":
            break
    cluster.assert_settled(3)
    deleted = _deletes(cluster)
    assert sorted(deleted) == ["main-0", "main-1", "main-2"]  # each member exactly once
    assert deleted[-1] == leader  # the leader last, after leadership moved away
    assert cluster.status.leader != leader
    assert all(n == 1 for n in cluster.world.restarts.values())
    assert {m.version for m in cluster.status.members} == {"3.6.16"}
    reasons = {r for r, _ in progress}
    assert "Upgrading" in reasons and "LeaderMoving" in reasons
    assert any("1 of 3 members at 3.6.16" in m for _, m in progress)
    assert result.outcome.step == mp.Noop()


def test_a_version_the_path_rules_refuse_touches_no_pod_and_keeps_the_template():
    cluster = Cluster({"replicas": 3, "version": "3.5.35"})
    cluster.converge()
    cluster.edit(version="3.7.0")  # as if admission had been bypassed (an older CRD)
    cluster.once()
    cluster.once()
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert (degraded.status.value, degraded.reason) == ("True", "MinorVersionSkipped")
    assert "3.7.0" in degraded.message and "3.5.35" in degraded.message
    assert _deletes(cluster) == []
    image = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "etcd-node:3.5.35"
    cluster.edit(replicas=5)  # a scale-out meanwhile starts members at the version they all run
    cluster.converge()
    assert {m.version for m in cluster.status.members} == {"3.5.35"}


def test_a_template_change_rolls_one_member_at_a_time():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.edit(resources={"requests": {"cpu": "300m"}})
    seen = []
    for _ in range(20):
        result = cluster.once()
        if isinstance(result.outcome.step, mp.RestartMember):
            seen.append(result.outcome.step.pod)
        if cluster.conditions()["Progressing"][0] == "False" and not result.busy:
            break
    cluster.assert_settled(3)
    assert len(seen) == 3 and len(set(seen)) == 3  # one restart per pass, each member once
    assert all(r.outcome.step.reason == "RollingUpdate" for r in cluster.results
               if isinstance(r.outcome.step, mp.RestartMember))  # fmt: skip


def provide_data(cluster: Cluster, name: str, data: dict[str, bytes]) -> None:
    """A user's Secret (not the operator's: no owner), as the API server stores it."""
    import base64

    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    cluster.kube.objects[("Secret", "db", name)] = {"metadata": {"name": name}, "data": encoded}


SECRET_MODE = {"peer": {"mode": "secret", "secretName": "byo-peer"},
               "client": {"mode": "secret", "secretName": "byo-server"}, "operatorClientSecretName": "byo-operator"}


def test_user_certificates_the_members_would_refuse_are_reported_in_the_agents_words_before_anything_starts():
    ca, other = make_ca(T0, "byo CA"), make_ca(T0, "another CA")
    cluster = Cluster({"replicas": 3, "tls": SECRET_MODE})
    provide_data(cluster, "byo-peer", make_cert(ca, "peer", ["main-0.main.db.svc.cluster.local"], T0).cert_manager_secret(ca))
    provide_data(cluster, "byo-server", make_cert(other, "srv", ["*.main.db.svc.cluster.local"], T0).cert_manager_secret(ca))
    cluster.once()
    assert ("StatefulSet", "db", "main") not in cluster.kube.objects
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert degraded.reason == "TLSSecretInvalid"
    assert "[CertificateSANMissing] --peer-cert-file (Secret byo-peer tls.crt) does not cover " \
           "main-1.main.db.svc.cluster.local, main-2.main.db.svc.cluster.local" in degraded.message
    assert "[CertificateNotSignedByCA] --cert-file (Secret byo-server tls.crt)" in degraded.message


def test_a_scale_out_the_user_certificates_do_not_cover_is_refused_not_started():
    ca = make_ca(T0, "byo CA")
    cluster = Cluster({"replicas": 3, "tls": SECRET_MODE})
    hosts = [f"main-{o}.main.db.svc.cluster.local" for o in range(3)]  # named, no wildcard
    for name in ("byo-peer", "byo-server"):
        provide_data(cluster, name, make_cert(ca, name, hosts, T0).cert_manager_secret(ca))
    provide_data(cluster, "byo-operator", make_cert(ca, "etcd-operator", [], T0).cert_manager_secret(ca))
    cluster.converge()
    cluster.assert_settled(3)
    cluster.edit(replicas=4)
    cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "TLSSecretInvalid")
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert degraded.message.startswith("not adding member 3: [CertificateSANMissing]")
    assert "main-3.main.db.svc.cluster.local" in degraded.message and len(cluster.etcd.members) == 3
    assert cluster.world.replicas() == 3


def test_secret_mode_scales_with_the_operators_own_client_certificate_and_follows_its_rotation():
    import base64

    spec = {"replicas": 3, "tls": {"peer": {"mode": "secret", "secretName": "byo-peer"},
                                   "client": {"mode": "secret", "secretName": "byo-server"},
                                   "operatorClientSecretName": "byo-operator"}}  # fmt: skip
    cluster = Cluster(spec)
    built = []
    cluster.clients = EtcdClients(lambda access, secret: built.append(dict(secret)) or cluster.etcd)
    def provide(serial: str, name: str = "byo-operator", keys=("tls.crt", "tls.key", "ca.crt")) -> None:
        data = {k: base64.b64encode(f"{k}-{serial}".encode()).decode() for k in keys}
        cluster.kube.objects[("Secret", "db", name)] = {"metadata": {"name": name}, "data": data}

    # The members' Secrets are missing or lack a key: nothing starts, and status says which and what to do.
    provide("1", "byo-peer", keys=("tls.crt", "tls.key"))
    ca = make_ca(T0, "byo CA")
    member = make_cert(ca, "byo", ["*.main.db.svc.cluster.local"], T0)  # cert-manager's wildcard layout
    cluster.once()
    assert ("StatefulSet", "db", "main") not in cluster.kube.objects and cluster.conditions()["Progressing"] == (
        "True", "WaitingForTLSSecret")  # fmt: skip
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert degraded.reason == "TLSSecretInvalid" and "Secret byo-peer has no ca.crt" in degraded.message
    assert "Secret byo-server does not exist" in degraded.message
    for name in ("byo-peer", "byo-server"):
        provide_data(cluster, name, member.cert_manager_secret(ca))
    cluster.once()
    assert "Secret byo-operator not created yet" in cluster.status.conditions[0].message  # says what it lacks
    provide("1")
    cluster.converge()
    cluster.assert_settled(3)
    for replicas in (5, 3):
        cluster.edit(replicas=replicas)
        cluster.converge()
        cluster.assert_settled(replicas)
    before = len(built)
    provide("2")  # cert-manager renewed it: the next pass uses the new pair, no restart
    cluster.once()
    assert {b["tls.crt"] for b in built[:before]} == {b"tls.crt-1"} and built[before:] == [built[-1]]
    assert built[-1]["tls.crt"] == b"tls.crt-2"
    cluster.assert_settled(3)


def test_a_scheduled_backup_is_created_by_the_pass_and_reported_in_status():
    dest = {"s3": {"bucket": "backups", "credentialsSecret": "creds"}}
    cluster = Cluster({"replicas": 3, "backup": {"schedule": "*/5 * * * *", "destination": dest,
                                                  "retention": {"keep": 1}}}, now=T0 + timedelta(minutes=1))  # fmt: skip
    cluster.converge()
    assert cluster.status.backup is not None and cluster.status.backup.next_schedule_time == "2026-01-01T00:05:00Z"
    assert not [k for k in cluster.kube.objects if k[0] == "EtcdBackup"]
    cluster.now = T0 + timedelta(minutes=5, seconds=10)
    result = cluster.once()
    assert result.outcome.step == mp.Noop()  # an object write, not the pass's membership step
    backup = cluster.kube.objects[("EtcdBackup", "db", "main-202601010005")]
    assert backup["metadata"]["ownerReferences"][0]["uid"] == IDENTITY.owner.uid
    assert cluster.status.backup.last_schedule_time == "2026-01-01T00:05:00Z"
    assert cluster.status.backup.next_schedule_time == "2026-01-01T00:10:00Z"
    cluster.once()  # the same run again: nothing more
    assert [k[2] for k in cluster.kube.objects if k[0] == "EtcdBackup"] == ["main-202601010005"]
    # The backup's own pass completes it; the next run is created and, once it completes, the first is pruned.
    backup["status"] = {"phase": "Completed", "completionTime": "2026-01-01T00:05:40Z"}
    cluster.now = T0 + timedelta(minutes=10, seconds=5)
    cluster.once()
    assert cluster.status.backup.last_successful_backup == "main-202601010005"
    cluster.kube.objects[("EtcdBackup", "db", "main-202601010010")]["status"] = {"phase": "Completed"}
    cluster.once()
    assert [k[2] for k in cluster.kube.objects if k[0] == "EtcdBackup"] == ["main-202601010010"]
    assert "delete EtcdBackup/main-202601010005" in cluster.kube.writes


def test_no_scheduled_backup_while_hibernated():
    dest = {"volume": {"claimName": "backups"}}
    cluster = Cluster({"replicas": 1, "hibernate": True, "backup": {"schedule": "* * * * *", "destination": dest}})
    for minute in range(1, 4):
        cluster.now = T0 + timedelta(minutes=minute)
        cluster.once()
    assert not [k for k in cluster.kube.objects if k[0] == "EtcdBackup"]


def test_an_operator_client_secret_without_a_usable_certificate_is_reported_not_fatal():
    import base64

    from etcd_operator.controller import connect

    spec = {"replicas": 3, "tls": {"client": {"mode": "secret", "secretName": "byo-server"},
                                   "operatorClientSecretName": "byo-operator"}}  # fmt: skip
    cluster = Cluster(spec)
    cluster.clients = EtcdClients(connect)  # the real one: it loads the certificate
    ca = make_ca(T0, "byo CA")
    provide_data(cluster, "byo-server", make_cert(ca, "byo", ["*.main.db.svc.cluster.local"], T0).cert_manager_secret(ca))
    data = {k: base64.b64encode(b"not a certificate").decode() for k in ("tls.crt", "tls.key", "ca.crt")}
    cluster.kube.objects[("Secret", "db", "byo-operator")] = {"metadata": {"name": "byo-operator"}, "data": data}
    result = cluster.once()  # no exception: the pass completes and says why it cannot reach etcd
    assert "client certificate Secret byo-operator: cannot load" in result.observed.etcd_error
    assert ("StatefulSet", "db", "main") in cluster.kube.objects  # members are not held back by the operator's own


def test_configured_short_lifetimes_renew_every_leaf_on_time_and_status_shows_when_each_ends():
    lifetime = {"validity": "5m", "renewBefore": "2m"}
    cluster = Cluster({"replicas": 3, "tls": {"certificates": lifetime}})
    cluster.converge()
    issued = {c.secret: c.not_after for c in cluster.status.certificates or []}
    assert set(issued) == {"main-peer-ca", "main-client-ca", "main-peer-tls", "main-server-tls", "main-client-tls"}
    for secret in ("main-peer-tls", "main-server-tls", "main-client-tls"):
        assert issued[secret] == (cluster.now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert issued["main-peer-ca"].startswith("2035-")  # CAs keep their ten years
    start, peer = cluster.now, cluster.kube.secret("db", "main-peer-tls")
    cluster.now = start + timedelta(minutes=2, seconds=59)
    assert not cluster.once().plan.objects  # 2m01s left: not due
    cluster.now = start + timedelta(minutes=3)
    names = {o["metadata"]["name"] for o in cluster.once().plan.objects}
    assert names == {"main-peer-tls", "main-server-tls", "main-client-tls"}
    renewed = cluster.kube.secret("db", "main-peer-tls")
    assert all(renewed[f"main-{o}.crt"] != peer[f"main-{o}.crt"] for o in range(3))
    assert not cluster.once().plan.objects  # once, not on every pass
    ends = {c.secret: c.not_after for c in cluster.status.certificates or []}
    assert ends["main-peer-tls"] == (cluster.now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.assert_settled(3)


def test_shortening_validity_reissues_the_leaves_that_would_live_longer_once():
    cluster = Cluster({"replicas": 1})
    cluster.converge()
    cluster.edit(tls={"certificates": {"validity": "168h", "renewBefore": "24h"}})
    names = {o["metadata"]["name"] for o in cluster.once().plan.objects}
    assert {"main-peer-tls", "main-server-tls", "main-client-tls"} <= names
    assert not cluster.once().plan.objects
    cluster.assert_settled(1)


def _ca_stage(data: dict[str, bytes]) -> str:
    if "next.crt" in data:
        return "trusting"
    if "previous.crt" in data:
        return "signing"
    return "dropping" if "restarting" in data else "stable"


def _pems(bundle: bytes) -> list[bytes]:
    return [b"-----BEGIN CERTIFICATE-----" + p for p in bundle.split(b"-----BEGIN CERTIFICATE-----")[1:]]


def test_a_ca_rollover_on_request_trusts_both_then_signs_with_the_new_then_drops_the_old():
    from etcd_operator.pki import certs
    from etcd_operator.reconcile.rollover import DELIVERY, ROTATE_CA

    cluster = Cluster({"replicas": 3, "tls": {"clients": [{"name": "alice"}]}})
    cluster.converge()
    old = {side: cluster.kube.secret("db", f"main-{side}-ca")["tls.crt"] for side in ("peer", "client")}
    cluster.annotations[ROTATE_CA] = "2026-01-01"
    seen: list[str] = []
    restarts: dict[str, list[str]] = {"trusting": [], "signing": [], "dropping": []}
    signing_from = None
    for _ in range(120):
        stage = _ca_stage(cluster.kube.secret("db", "main-peer-ca"))
        assert _ca_stage(cluster.kube.secret("db", "main-client-ca")) == stage  # both sides in step
        result = cluster.once()
        if isinstance(result.outcome.step, mp.RestartMember):
            restarts[stage].append(result.outcome.step.pod)
            assert result.outcome.step.reason == "CARollover"
        if not seen or seen[-1] != stage:
            seen.append(stage)
        stage = _ca_stage(cluster.kube.secret("db", "main-peer-ca"))  # what this pass left
        peer = cluster.kube.secret("db", "main-peer-tls")
        trusted = _pems(peer["ca.crt"])
        if stage == "trusting":  # both CAs trusted, the old one still signs
            assert len(trusted) == 2 and old["peer"] in trusted
            assert all(certs.issued_by(certs.load_cert(peer[f"main-{o}.crt"]), certs.load_cert(old["peer"]))
                       for o in range(3))  # fmt: skip
        if stage == "signing":
            signing_from = signing_from or cluster.now
            assert len(trusted) == 2
        if stage == "stable" and len(seen) > 1 and not result.busy and cluster.conditions()["Progressing"][0] == "False":
            break
        cluster.now += timedelta(seconds=5)
    assert seen == ["stable", "trusting", "signing", "dropping", "stable"], seen
    # Two rolling restarts, each member once, none while the new certificates are delivered.
    assert sorted(restarts["trusting"]) == sorted(restarts["dropping"]) == ["main-0", "main-1", "main-2"], restarts
    assert restarts["signing"] == []
    assert signing_from is not None and cluster.now - signing_from >= DELIVERY
    reasons = {c.type: c.reason for r in cluster.results for c in r.status.conditions or [] if c.reason == "CARollover"}
    assert reasons == {"Progressing": "CARollover"}
    cluster.assert_settled(3)
    # Only the new CA is trusted, and it signed every leaf.
    for side, leaf_secrets in (("peer", ["main-peer-tls"]),
                               ("client", ["main-server-tls", "main-client-tls", "main-user-alice"])):  # fmt: skip
        new = cluster.kube.secret("db", f"main-{side}-ca")
        assert new["tls.crt"] != old[side] and new["generation"] == b"2"
        for name in leaf_secrets:
            data = cluster.kube.secret("db", name)
            assert _pems(data["ca.crt"]) == [new["tls.crt"]]
            leaves = [v for k, v in data.items() if k.endswith(".crt") and k != "ca.crt"]
            assert leaves and all(certs.issued_by(certs.load_cert(p), certs.load_cert(new["tls.crt"])) for p in leaves)
    # The same request is carried out once.
    for _ in range(3):
        assert not cluster.once().plan.objects and not isinstance(cluster.results[-1].outcome.step, mp.RestartMember)


def test_a_ca_is_rolled_over_by_itself_while_it_can_still_issue_a_full_leaf():
    from etcd_operator.pki import certs

    cluster = Cluster({"replicas": 1})
    cluster.converge()
    ca = certs.load_cert(cluster.kube.secret("db", "main-peer-ca")["tls.crt"])
    cluster.now = ca.not_valid_after_utc - timedelta(days=396)  # 365-day leaves + 30 days to spare, and a day
    cluster.once()  # the leaves, long expired, are renewed; the CA is not due yet
    assert _ca_stage(cluster.kube.secret("db", "main-peer-ca")) == "stable"
    cluster.now += timedelta(days=2)
    cluster.once()
    assert _ca_stage(cluster.kube.secret("db", "main-peer-ca")) == "trusting"
    assert cluster.conditions()["Progressing"] == ("True", "CARollover")


def test_each_user_gets_a_certificate_and_a_removed_one_is_revoked_before_its_secret_goes():
    from etcd_operator.pki import certs, crl

    cluster = Cluster({"replicas": 3})
    cluster.converge()
    sts_env = lambda: {e["name"] for e in cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["containers"][0]["env"]}  # noqa: E731
    assert "ETCD_CLIENT_CRL_FILE" not in sts_env()  # no users: the template is what it always was
    cluster.edit(tls={"clients": [{"name": "alice"}, {"name": "bob"}]})
    cluster.converge()
    cluster.assert_settled(3)
    ca = certs.load_cert(cluster.kube.secret("db", "main-client-ca")["tls.crt"])
    users = {u: cluster.kube.secret("db", f"main-user-{u}") for u in ("alice", "bob")}
    for user, data in users.items():
        cert = certs.load_cert(data["tls.crt"])
        assert cert.subject.rfc4514_string().startswith(f"CN={user}") and certs.issued_by(cert, ca)
        assert data["ca.crt"] == certs.cert_pem(ca)
    server = cluster.kube.secret("db", "main-server-tls")
    assert crl.read(server["client.crl"]) == {}  # a list exists (etcd needs the file), empty
    assert "ETCD_CLIENT_CRL_FILE" in sts_env()
    assert {c.secret for c in cluster.status.certificates or []} >= {"main-user-alice", "main-user-bob"}

    bob = certs.load_cert(users["bob"]["tls.crt"]).serial_number
    cluster.edit(tls={"clients": [{"name": "alice"}]})
    first = cluster.once()
    assert list(crl.read(cluster.kube.secret("db", "main-server-tls")["client.crl"])) == [bob]
    assert ("Secret", "db", "main-user-bob") in cluster.kube.objects  # not before the list names it
    assert not [r for r in first.plan.objects if r["kind"] == "StatefulSet"]  # revocation restarts nothing
    cluster.once()
    assert ("Secret", "db", "main-user-bob") not in cluster.kube.objects
    assert cluster.kube.secret("db", "main-user-alice") == users["alice"]
    cluster.converge()
    cluster.assert_settled(3)
    for _ in range(2):
        assert not cluster.once().plan.objects  # the list is not rewritten on every pass
    # The entry is dropped once no certificate it names can still be valid: a year (validity) later.
    cluster.now += timedelta(days=366)
    cluster.once()
    assert crl.read(cluster.kube.secret("db", "main-server-tls")["client.crl"]) == {}


def _lose_quorum(cluster: Cluster, survivor: int = 0) -> int:
    """All members but `survivor` lose their volumes, which keeps its data: etcd has no quorum. Returns its ID."""
    by_name = {m.name: m.id for m in cluster.etcd.members.values()}
    cluster.etcd.reachable = False
    cluster.etcd.survivors = {by_name[f"main-{survivor}"]}
    cluster.world.wiped |= {0, 1, 2} - {survivor}
    cluster.world.settle()
    return by_name[f"main-{survivor}"]


def test_quorum_loss_names_the_survivor_and_the_way_out_and_changes_nothing():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    _lose_quorum(cluster)
    result = cluster.once()
    assert cluster.conditions()["Available"] == ("False", "QuorumLost")
    assert cluster.conditions()["Degraded"] == ("True", "QuorumLost")
    available = next(c for c in cluster.status.conditions if c.type == "Available")
    assert "1 of 3 voting members answer, 2 needed" in available.message
    assert "main-0 (raft index" in available.message and "silent: main-1, main-2" in available.message
    assert "main-1, main-2 lost their data" in available.message
    assert "spec.recovery {fromMember: main-0" in available.message
    assert result.outcome.step is None and cluster.world.replicas() == 3  # nothing is planned without a request
    assert cluster.status.phase == "Unavailable"


@pytest.mark.parametrize("survivor", [0, 2])
def test_recovery_from_the_survivor_keeps_its_member_and_grows_back_to_three(survivor):
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster_id = cluster.status.cluster_id
    survivor_id = _lose_quorum(cluster, survivor)
    cluster.once()
    events = []

    cluster.edit(recovery={"fromMember": "main-1", "requestID": "r1"})
    result = cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "RecoveryRefused")
    assert "main-1 does not answer" in result.outcome.problems[0].message
    assert cluster.world.replicas() == 3

    cluster.edit(recovery={"fromMember": f"main-{survivor}", "requestID": "r2"})
    result = cluster.once()  # 1: every member stops
    events += [e.reason for e in result.plan.recovery.events]
    assert result.outcome.step == mp.ScaleStatefulSet(0) and cluster.world.replicas() == 0
    assert cluster.status.phase == "Recovering"
    assert cluster.conditions()["Progressing"] == ("True", "Recovering")
    result = cluster.once()  # 2: the request, then the pods up to the survivor's
    assert result.outcome.step == mp.ScaleStatefulSet(survivor + 1)
    assert cluster.kube.secret("db", "main-recovery")
    assert cluster.world.recovered == ["r2"]
    result = cluster.once()  # 3: it answers alone: recorded
    events += [e.reason for e in result.plan.recovery.events]
    assert cluster.status.recovery is not None and cluster.status.recovery.request_id == "r2"
    assert cluster.status.recovery.member == f"main-{survivor}"
    cluster.converge()
    assert ("Secret", "db", "main-recovery") not in cluster.kube.objects  # retired once recorded
    cluster.assert_settled(3)
    assert events == ["RecoveryStarted", "Recovered"]
    ids = {m.name: int(m.id, 16) for m in cluster.status.members}
    assert ids[f"main-{survivor}"] == survivor_id and cluster.status.cluster_id == cluster_id  # the same member
    assert cluster.world.recovered == ["r2"]  # forced once: later starts of main-0 are plain restarts
    volumes = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["volumes"]
    assert any(v["name"] == "recovery" for v in volumes)  # kept, so the template does not change again


def test_a_recovery_request_while_quorum_holds_is_refused_and_stops_nothing():
    cluster = Cluster({"replicas": 3})
    cluster.converge()
    cluster.edit(recovery={"fromMember": "main-0", "requestID": "r1"})
    result = cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "RecoveryRefused")
    assert "quorum holds" in result.outcome.problems[0].message
    assert cluster.world.replicas() == 3 and isinstance(result.outcome.step, mp.Noop)
    volumes = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]["volumes"]
    assert not any(v["name"] == "recovery" for v in volumes)  # no template change, so no rolling restart


class _Crash(BaseException):
    """The operator process dies here (raised where a failpoint would exit)."""


@pytest.mark.parametrize("crash_after", ["stop", "request"])
def test_a_recovery_resumes_after_an_operator_crash(crash_after, monkeypatch):
    """The operator dies right after the stop, or after writing the request but before starting the survivor:
    a new process, with nothing remembered but Kubernetes and the last status, finishes the same recovery once."""
    from etcd_operator import scaling

    cluster = Cluster({"replicas": 3})
    cluster.converge()
    _lose_quorum(cluster)
    cluster.once()
    cluster.edit(recovery={"fromMember": "main-0", "requestID": "r1"})
    cluster.once()  # stopped
    if crash_after == "request":
        def die(*args, **kwargs):
            raise _Crash

        with monkeypatch.context() as patched:
            patched.setattr(scaling, "execute", die)
            with pytest.raises(_Crash):
                cluster.once()  # the request and the template are applied, then the process dies
        cluster.world.settle()
        assert cluster.kube.secret("db", "main-recovery") and cluster.world.replicas() == 0
    cluster.clients = EtcdClients(lambda access, secret: cluster.etcd)  # a new operator process
    cluster.converge()
    cluster.assert_settled(3)
    assert cluster.world.recovered == ["r1"]


def test_a_user_certificate_ending_within_renew_before_is_reported_but_changes_nothing():
    ca = make_ca(T0, "byo CA")
    cluster = Cluster({"replicas": 3, "tls": SECRET_MODE})
    hosts = [f"main-{o}.main.db.svc.cluster.local" for o in range(5)]
    provide_data(cluster, "byo-peer", make_cert(ca, "byo-peer", hosts, T0).cert_manager_secret(ca))
    provide_data(cluster, "byo-server", make_cert(ca, "byo-server", hosts, T0, days=20).cert_manager_secret(ca))
    provide_data(cluster, "byo-operator", make_cert(ca, "etcd-operator", [], T0).cert_manager_secret(ca))
    for _ in range(30):
        cluster.once()
    assert cluster.world.replicas() == 3 and len(cluster.etcd.members) == 3  # it started: the certificate works
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert degraded.status.value == "True" and degraded.reason == "TLSCertificateExpiring"
    assert "Secret byo-server tls.crt ends 2026-01-20T23:55:00Z" in degraded.message and "renewBefore (720h)" in degraded.message
    cluster.edit(replicas=4)  # a scale-out is not held back by it
    cluster.once()
    cluster.once()
    assert len(cluster.etcd.members) == 4
    provide_data(cluster, "byo-server", make_cert(ca, "byo-server", hosts, T0).cert_manager_secret(ca))  # renewed
    cluster.converge()
    cluster.assert_settled(4)


SEED_UID = "5eed0000-0000-4000-8000-000000000000"


def _seed(cluster: Cluster) -> bundles.CASet:
    """Another EtcdCluster with selfSigned client TLS: its object, client CA and operator certificate."""
    owner = Owner("seed", SEED_UID)
    cluster.kube.objects[("EtcdCluster", "db", "seed")] = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "spec": {"replicas": 1},
        "metadata": {"name": "seed", "namespace": "db", "uid": SEED_UID}}  # fmt: skip
    ca = bundles.CASet(bundles.new_authority("seed.db etcd client CA", T0, certs.new_key(), 7))
    operator = bundles.client_bundle(ca, "etcd-operator", T0, certs.new_key(), 8)
    for name, data in (("seed-client-ca", ca.secret_data()), ("seed-client-tls", operator)):
        cluster.kube.objects[("Secret", "db", name)] = build_secret(name, "db", owner, data, "tls")
    return ca


def _mounted_secrets(cluster: Cluster) -> set[str]:
    template = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]["spec"]
    return {v["secret"]["secretName"] for v in template["volumes"] if "secret" in v}


def test_discovery_through_another_cluster_uses_a_credential_of_its_own_until_bootstrapped_and_survives_its_loss():
    cluster = Cluster({"replicas": 3, "bootstrap": {"mode": "discovery", "discoveryClusterRef": {"name": "seed"}}})
    ca = _seed(cluster)
    first = cluster.once()
    assert ("/_etcd/registry/db-main-6f1c2d3e/_config/size", "3") in cluster.etcd.puts  # seeded in the seed
    mounted = _mounted_secrets(cluster)
    assert "main-discovery-tls" in mounted and not any(s.startswith("seed-") for s in mounted)
    written = [o["metadata"]["name"] for o in first.plan.objects]
    assert written.index("main-discovery-tls") < written.index("main")  # the Secret before the members
    credential = cluster.kube.secret("db", "main-discovery-tls")
    cert = certs.load_cert(credential["tls.crt"])
    assert certs.issued_by(cert, ca.signer.cert) and credential["ca.crt"] == ca.bundle()
    assert credential["tls.crt"] != cluster.kube.secret("db", "seed-client-tls")["tls.crt"]
    assert "discovery:db/main" in cert.subject.rfc4514_string()

    cluster.converge()
    cluster.assert_settled(3)
    # Bootstrapped: nobody reads the credential again, so it is gone, and the template did not change for it.
    assert ("Secret", "db", "main-discovery-tls") not in cluster.kube.objects
    assert "delete Secret/main-discovery-tls" in cluster.kube.writes
    template = cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"]

    # The seed goes, with its Secrets: nothing of it is read, nothing changes, no member restarts.
    for kind, namespace, name in [k for k in cluster.kube.objects if k[2].startswith("seed")]:
        cluster.kube.remove(kind, namespace, name)
    writes, restarts = len(cluster.kube.writes), dict(cluster.world.restarts)
    idle = cluster.converge()
    cluster.assert_settled(3)
    assert cluster.kube.objects[("StatefulSet", "db", "main")]["spec"]["template"] == template
    assert cluster.kube.writes[writes:] == [] and cluster.world.restarts == restarts and not idle.plan.objects
    # One read more than a cluster without discovery (its own credential Secret, to know it is gone), none of the seed.
    before = cluster.kube.requests
    cluster.once()
    assert cluster.kube.requests - before == 6
