"""tls.clients[].access through whole passes: etcd auth on, refused, changed and off, as a user sees it in status."""

from __future__ import annotations

import asyncio

from cryptography import x509
from cryptography.x509.oid import NameOID

from etcd_operator.controller import EtcdClients, reconcile_once
from etcd_operator.models.cluster import EtcdClusterSpec, EtcdClusterStatus
from etcd_operator.reconcile import auth
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.plan import ClusterContext

from .test_pass import T0, Cluster

ALICE = {"name": "alice", "access": [{"prefix": "/app/", "permission": "readwrite"}]}


def watched(spec: dict) -> tuple[Cluster, list[tuple[str | None, list[str]]]]:
    """A cluster whose etcd client factory records the certificate Secret and password keys it was given."""
    cluster = Cluster(spec)
    seen: list[tuple[str | None, list[str]]] = []

    def factory(access, secret):
        seen.append((access.secret, sorted(k for k in secret if k.startswith("etcd-auth."))))
        return cluster.etcd

    cluster.clients = EtcdClients(factory)
    return cluster, seen


def test_access_turns_auth_on_with_its_own_password_and_certificate_and_off_again():
    cluster, seen = watched({"replicas": 3, "tls": {"clients": [{"name": "alice"}, {"name": "bob"}]}})
    cluster.converge()
    assert cluster.status.access is None and "AccessApplied" not in cluster.conditions() and seen[-1] == (
        "main-client-tls", [])  # fmt: skip
    cluster.edit(tls={"clients": [ALICE, {"name": "bob"}]})
    cluster.converge()
    assert cluster.conditions() == {
        "Available": ("True", "QuorumHealthy"),
        "Progressing": ("False", "Reconciled"),
        "Degraded": ("False", "AsExpected"),
        "AccessApplied": ("True", "AccessApplied"),
    }
    assert cluster.status.phase == "Running"
    applied = next(c for c in cluster.status.conditions if c.type == "AccessApplied")
    assert applied.message == "etcd auth is on; alice: readwrite /app/*; bob: full access"
    store = cluster.etcd.auth
    assert store.enabled and store.users["alice"] == {"user-alice"} and store.users["bob"] == {"root", "user-bob"}
    assert store.users["etcd-operator"] == {"root", "user-etcd-operator"}
    assert store.roles["user-alice"] == {auth.Grant(b"/app/", b"/app0", "READWRITE")}
    assert cluster.status.access.enabled and cluster.status.access.auth_revision == store.revision
    # The password Secret came first, then the certificate without a CommonName; the client switched to both.
    password = cluster.kube.secret("db", "main-etcd-auth")
    assert password["username"] == b"etcd-operator" and len(password["password"]) >= 32
    gateway = x509.load_pem_x509_certificate(cluster.kube.secret("db", "main-gateway-client-tls")["tls.crt"])
    assert gateway.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    assert seen[-1] == ("main-gateway-client-tls", ["etcd-auth.password", "etcd-auth.username"])
    reasons = [r.status.conditions[-1].reason for r in cluster.results if r.status.conditions[-1].type == "AccessApplied"]
    assert reasons[0] == "AccessApplying" and reasons[-1] == "AccessApplied"
    # Idle: one more etcd call than a cluster without access (the auth revision), and no writes.
    writes, calls, log = len(cluster.kube.writes), cluster.etcd.calls, list(cluster.etcd.auth_log)
    cluster.once()
    assert cluster.etcd.calls - calls == 4 + 1 and cluster.kube.writes[writes:] == [] and cluster.etcd.auth_log == log
    # A snapshot restored in place is a new cluster (new ID) with its own auth store: read it all again.
    cluster.etcd.cluster_id, calls = 0xC2, cluster.etcd.calls
    cluster.once()
    assert cluster.etcd.calls - calls > 4 + 1 and cluster.etcd.auth_log == log
    assert cluster.status.access.spec_hash.endswith(".c2")

    # No user with access any more: auth off, the operator's users and roles gone, and so is its certificate.
    cluster.edit(tls={"clients": [{"name": "alice"}, {"name": "bob"}]})
    cluster.converge()
    disabling = [r.status.conditions[-1] for r in cluster.results[-4:] if r.status.conditions[-1].type == "AccessApplied"]
    assert disabling and disabling[-1].reason == "AccessApplying" and "disable auth" in disabling[-1].message
    store = cluster.etcd.auth
    assert not store.enabled and store.names == frozenset() and store.roles == {}
    assert cluster.status.access is None and "AccessApplied" not in cluster.conditions()
    cluster.once()  # the first pass that manages no auth retires the certificate without a CommonName
    assert ("Secret", "db", "main-gateway-client-tls") not in cluster.kube.objects
    assert seen[-1] == ("main-client-tls", [])
    assert cluster.conditions()["Degraded"] == ("False", "AsExpected") and cluster.status.phase == "Running"


def test_a_refused_call_names_the_user_in_status_and_the_next_pass_resumes():
    cluster, _ = watched({"replicas": 1, "tls": {"clients": [ALICE]}})
    cluster.converge()
    cluster.edit(tls={"clients": [ALICE, {"name": "carol", "access": [{"prefix": "/c/", "permission": "read"}]}]})
    cluster.etcd.refuse_auth = "etcdserver: permission denied"
    cluster.once()
    assert cluster.conditions()["Degraded"] == ("True", "AccessFailed")
    assert cluster.conditions()["AccessApplied"] == ("False", "AccessFailed")
    degraded = next(c for c in cluster.status.conditions if c.type == "Degraded")
    assert degraded.message == "etcd auth for tls.clients: add role user-carol: etcdserver: permission denied"
    assert cluster.status.access.auth_revision is None  # the next pass reads users and roles again
    cluster.etcd.refuse_auth = ""
    cluster.converge()
    assert cluster.conditions()["AccessApplied"] == ("True", "AccessApplied")
    assert cluster.conditions()["Degraded"] == ("False", "AsExpected")
    assert cluster.etcd.auth.users["carol"] == {"user-carol"}


def test_a_cluster_seeding_a_discovery_cluster_with_auth_on_uses_its_gateway_certificate_and_password():
    seed, _ = watched({"replicas": 1, "tls": {"clients": [ALICE]}})
    seed.converge()
    seed.kube.objects[("EtcdCluster", "db", "main")] = {"metadata": {"name": "main"},
                                                         "spec": seed.spec.model_dump(by_alias=True)}  # fmt: skip
    given = []

    def factory(access, secret):
        given.append((access.secret, sorted(k for k in secret if k.startswith("etcd-auth."))))
        return seed.etcd

    child = ClusterContext(ClusterIdentity.of("child", "db", "7a2b3c4d-0000-4000-8000-000000000000"),
                           EtcdClusterSpec.model_validate({"bootstrap": {"mode": "discovery",
                                                                         "discoveryClusterRef": {"name": "main"}}}),
                           EtcdClusterStatus(), 1, "etcd-node")  # fmt: skip
    result = asyncio.run(reconcile_once(seed.kube, child, EtcdClients(factory), T0))
    assert result.plan.seed_discovery and not result.outcome.problems
    assert given == [("main-gateway-client-tls", ["etcd-auth.password", "etcd-auth.username"])]
