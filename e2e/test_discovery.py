"""Bootstrapping through another EtcdCluster (discoveryClusterRef) with a credential of the cluster's own."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from e2e.support import (
    IDLE_INTERVAL,
    Kube,
    etcd_cluster,
    etcdctl,
    patch_spec,
    restart_member_pod,
    wait_settled,
    wait_until,
)
from e2e.writer import assert_no_acknowledged_write_lost, run_under_writer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _secret_cert(kube: Kube, namespace: str, name: str) -> x509.Certificate | None:
    found = kube.get(namespace, "secret", name)
    if found is None:
        return None
    return x509.load_pem_x509_certificate(base64.b64decode(found["data"]["tls.crt"]))


def _members(kube: Kube, namespace: str, cluster: str) -> list[dict]:
    return kube.items(namespace, "pods", f"app.kubernetes.io/instance={cluster},app.kubernetes.io/component=member")


def test_a_cluster_bootstraps_through_another_with_its_own_credential_and_outlives_it(kube: Kube, namespace: str):
    kube.apply(namespace, etcd_cluster("seed", replicas=1))
    wait_settled(kube, namespace, "seed", replicas=1)
    seed_secrets = {s["metadata"]["name"] for s in kube.items(namespace, "secrets", "app.kubernetes.io/instance=seed")}
    seed_operator = _secret_cert(kube, namespace, "seed-client-tls")
    seed_ca = _secret_cert(kube, namespace, "seed-client-ca")
    assert seed_operator is not None and seed_ca is not None and "seed-client-tls" in seed_secrets

    child = etcd_cluster("child", replicas=3, bootstrap={"mode": "discovery", "discoveryClusterRef": {"name": "seed"}})
    kube.apply(namespace, child)
    # The credential exists only while the child bootstraps: read it then.
    credential = wait_until("the child's own discovery credential",
                            lambda: _secret_cert(kube, namespace, "child-discovery-tls"), timeout=120, interval=0.5)  # fmt: skip
    assert credential.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"discovery:{namespace}/child"
    assert credential.issuer == seed_ca.subject and credential.serial_number != seed_operator.serial_number
    assert credential.fingerprint(credential.signature_hash_algorithm) != seed_operator.fingerprint(
        seed_operator.signature_hash_algorithm)  # fmt: skip
    usages = credential.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    owner = kube.get(namespace, "secret", "child-discovery-tls")
    assert owner is None or owner["metadata"]["ownerReferences"][0]["name"] == "child"

    name = run_under_writer(kube, namespace, child, acked=20)
    pods = _members(kube, namespace, name)
    assert len(pods) == 3
    for pod in pods:
        mounted = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
        assert not mounted & seed_secrets and not any(m.startswith("seed-") for m in mounted), mounted
        assert "child-discovery-tls" in mounted
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["ETCD_DISCOVERY_ENDPOINTS"] == f"https://seed-client.{namespace}.svc.cluster.local:2379"
        assert env["ETCD_DISCOVERY_CERT"].startswith("/etc/etcd/discovery-tls/")
    # Bootstrapped: the credential is gone, and the template did not change for it.
    wait_until("the discovery credential retired", lambda: kube.get(namespace, "secret", "child-discovery-tls") is None,
               timeout=60)  # fmt: skip
    etcdctl(kube, namespace, name, "put", "before-seed-deleted", "kept")
    generation = kube.get(namespace, "statefulset", name)["metadata"]["generation"]
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in _members(kube, namespace, name)}

    kube.run("-n", namespace, "delete", "etcdcluster", "seed", "--wait=true", "--timeout=180s", timeout=200)
    wait_until("the seed's Secrets collected",
               lambda: not kube.items(namespace, "secrets", "app.kubernetes.io/instance=seed"), timeout=120)  # fmt: skip
    time.sleep(2 * IDLE_INTERVAL)  # passes that would change the template if it still followed the seed
    assert kube.get(namespace, "statefulset", name)["metadata"]["generation"] == generation
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in _members(kube, namespace, name)} == uids

    restart_member_pod(kube, namespace, name, f"{name}-1", replicas=3)
    assert kube.get(namespace, "statefulset", name)["metadata"]["generation"] == generation
    got = etcdctl(kube, namespace, name, "get", "before-seed-deleted", "--print-value-only").stdout.strip()
    assert got == "kept"
    assert assert_no_acknowledged_write_lost(kube, namespace, name) >= 20

    # New members join from the child's own member list: the discovery cluster, gone, is not asked.
    patch_spec(kube, namespace, name, replicas=5)
    wait_settled(kube, namespace, name, replicas=5, timeout=600)
    assert kube.get(namespace, "secret", "child-discovery-tls") is None  # not issued again
    assert assert_no_acknowledged_write_lost(kube, namespace, name) >= 20
