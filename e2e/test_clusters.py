"""An EtcdCluster per bootstrap and TLS mode, created with kubectl on a real cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from e2e.support import (
    IDLE_INTERVAL,
    Kube,
    condition,
    create_namespace,
    etcdctl,
    member_ids,
    patch_spec,
    restart_member_pod,
    start_client_pod,
    wait_settled,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def apply_example(kube: Kube, namespace: str, file: str) -> str:
    obj = yaml.safe_load((EXAMPLES / file).read_text())
    kube.apply(namespace, obj)
    return obj["metadata"]["name"]


@pytest.fixture(scope="module")
def tls_cluster(kube: Kube, operator: str) -> Iterator[tuple[str, str]]:
    """examples/etcdcluster.yaml (static bootstrap, self-signed TLS) in its own namespace, shared by the
    tests below in file order: the later ones delete a pod, hibernate and wake it, then delete it."""
    namespace = "e2e-static-tls"
    kube.run("delete", "namespace", namespace, "--ignore-not-found", "--timeout=120s", timeout=150)
    create_namespace(kube, namespace)
    name = apply_example(kube, namespace, "etcdcluster.yaml")
    yield namespace, name
    kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def test_static_tls_cluster_becomes_available_and_reports_its_members(kube: Kube, tls_cluster) -> None:
    namespace, name = tls_cluster
    status = wait_settled(kube, namespace, name, replicas=3)
    assert sorted(m["name"] for m in status["members"]) == [f"{name}-0", f"{name}-1", f"{name}-2"]
    assert status["leader"] in {m["name"] for m in status["members"]} | {m["id"] for m in status["members"]}
    # Every peer URL is the pod's stable name under the headless Service, over TLS.
    for m in status["members"]:
        assert m["peerURLs"] == [f"https://{m['name']}.{name}.{namespace}.svc.cluster.local:2380"]


def test_client_reads_and_writes_through_the_client_service_with_the_user_certificate(
    kube: Kube, tls_cluster
) -> None:
    namespace, name = tls_cluster
    wait_settled(kube, namespace, name, replicas=3)
    start_client_pod(kube, namespace, name)
    etcdctl(kube, namespace, name, "put", "greeting", "hello")
    assert etcdctl(kube, namespace, name, "get", "greeting", "--print-value-only").stdout.strip() == "hello"
    # Client certificate authentication is enforced: without the certificate etcd refuses.
    refused = etcdctl(kube, namespace, name, "get", "greeting", tls="server-only", check=False)
    assert refused.returncode != 0
    assert "certificate" in refused.stderr.lower() or "tls" in refused.stderr.lower(), refused.stderr


def test_deleted_member_pod_comes_back_with_its_member_id_and_data(kube: Kube, tls_cluster) -> None:
    namespace, name = tls_cluster
    wait_settled(kube, namespace, name, replicas=3)
    start_client_pod(kube, namespace, name)
    before = member_ids(kube, namespace, name)
    for i in range(20):
        etcdctl(kube, namespace, name, "put", f"before-delete/{i}", str(i))
    restart_member_pod(kube, namespace, name, f"{name}-1", replicas=3)

    assert member_ids(kube, namespace, name) == before  # same members, same IDs: no re-bootstrap
    values = etcdctl(kube, namespace, name, "get", "before-delete/", "--prefix", "--print-value-only").stdout.split()
    assert sorted(values, key=int) == [str(i) for i in range(20)]


def _as_built(obj: dict) -> dict:
    """What the operator decides about an object; the API server's allocations (cluster IPs) left out."""
    spec = {k: v for k, v in obj["spec"].items() if k not in ("clusterIP", "clusterIPs")}
    meta = obj["metadata"]
    return {"labels": meta.get("labels"), "ownerReferences": meta.get("ownerReferences"), "spec": spec}


def test_client_service_and_pdb_deleted_by_hand_come_back_within_an_idle_interval(kube: Kube, tls_cluster) -> None:
    namespace, name = tls_cluster
    wait_settled(kube, namespace, name, replicas=3)
    start_client_pod(kube, namespace, name)
    etcdctl(kube, namespace, name, "put", "before-repair", "kept")
    before = {key: kube.get(namespace, *key) for key in [("service", f"{name}-client"), ("poddisruptionbudget", name)]}

    for kind, obj in before:
        kube.run("-n", namespace, "delete", kind, obj, "--timeout=30s", timeout=45)

    def recreated() -> dict | None:
        now = {key: kube.get(namespace, *key) for key in before}
        fresh = all(obj and obj["metadata"]["uid"] != before[key]["metadata"]["uid"] for key, obj in now.items())
        return now if fresh else None

    # Every pass makes every owned object right, so the next idle pass brings both back.
    after = wait_until("the client Service and the PDB recreated", recreated, timeout=3 * IDLE_INTERVAL, interval=1)
    for key, obj in after.items():
        assert _as_built(obj) == _as_built(before[key]), key
    wait_settled(kube, namespace, name, replicas=3)
    # The recreated Service has a new cluster IP: allow for DNS to follow before reading through it.
    read = wait_until("the key written before read through the recreated client Service", lambda: (
        (r := etcdctl(kube, namespace, name, "get", "before-repair", "--print-value-only", check=False))
        .returncode == 0 and r.stdout.strip()), timeout=60)
    assert read == "kept"


def test_hibernation_stops_every_member_and_waking_brings_back_the_same_members_and_data(
    kube: Kube, tls_cluster
) -> None:
    namespace, name = tls_cluster
    wait_settled(kube, namespace, name, replicas=3)
    start_client_pod(kube, namespace, name)
    before = member_ids(kube, namespace, name)
    etcdctl(kube, namespace, name, "put", "hibernated", "kept")

    patch_spec(kube, namespace, name, hibernate=True)

    def hibernated() -> dict | None:
        obj = kube.get(namespace, "etcdcluster", name) or {}
        pods = kube.items(namespace, "pod", f"app.kubernetes.io/instance={name}")
        done = (condition(obj, "Progressing") or {}).get("reason") == "Hibernated"
        return obj["status"] if done and not pods and obj["status"].get("phase") == "Hibernated" else None

    status = wait_until("every member stopped and the cluster Hibernated", hibernated)
    assert (condition(kube.get(namespace, "etcdcluster", name), "Available") or {}).get("reason") == "Hibernated"
    assert sorted(m["name"] for m in status["members"]) == sorted(before)  # the membership is remembered
    assert {c["metadata"]["name"] for c in kube.items(namespace, "pvc")} == {f"data-{name}-{i}" for i in range(3)}

    patch_spec(kube, namespace, name, hibernate=False)
    wait_settled(kube, namespace, name, replicas=3)
    assert member_ids(kube, namespace, name) == before  # the same members woke up: no re-bootstrap
    assert etcdctl(kube, namespace, name, "get", "hibernated", "--print-value-only").stdout.strip() == "kept"


def test_deleting_the_cluster_removes_its_objects_and_keeps_the_volumes(kube: Kube, tls_cluster) -> None:
    namespace, name = tls_cluster
    claims = {c["metadata"]["name"] for c in kube.items(namespace, "pvc")}
    assert claims == {f"data-{name}-{i}" for i in range(3)}

    kube.run("-n", namespace, "delete", "etcdcluster", name, "--timeout=120s", timeout=150)

    def children_gone() -> bool:
        left = kube.run(
            "-n", namespace, "get", "statefulsets,services,secrets,poddisruptionbudgets",
            "-l", f"app.kubernetes.io/instance={name}", "-o", "name",
        ).stdout.split()
        return not left and not any(p["metadata"]["name"].startswith(f"{name}-") for p in kube.items(namespace, "pod"))

    wait_until("the cluster's StatefulSet, Services, Secrets, PDB and pods to be deleted", children_gone)
    # storage.whenDeleted defaults to Retain: the data outlives the EtcdCluster.
    assert {c["metadata"]["name"] for c in kube.items(namespace, "pvc")} == claims


@pytest.mark.parametrize(
    ("example", "tls"),
    [("dns-srv.yaml", "cert"), ("auto-tls.yaml", "server-only")],
    ids=["dns-srv-bootstrap", "auto-tls"],
)
def test_cluster_mode_becomes_available_and_serves_clients(
    kube: Kube, namespace: str, example: str, tls: str
) -> None:
    name = apply_example(kube, namespace, example)
    wait_settled(kube, namespace, name, replicas=3)
    start_client_pod(kube, namespace, name, client_tls=tls == "cert")
    etcdctl(kube, namespace, name, "put", "mode", example, tls=tls)
    assert etcdctl(kube, namespace, name, "get", "mode", "--print-value-only", tls=tls).stdout.strip() == example
    assert len(member_ids(kube, namespace, name, tls=tls)) == 3
