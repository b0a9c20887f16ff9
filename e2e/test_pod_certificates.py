"""spec.tls.memberKeys podCertificate on the real node: each member's key made by its kubelet, signed by the operator.

A cluster started with Secret-held keys is switched under a writer: the members restart one at a time on
pod certificates, the Secrets keep only the CAs, and each member serves a certificate for a key that no
Secret holds. It then scales 3 -> 5 -> 3 (new members get theirs the same way) with no write lost.
Needs the local cluster's pod certificate feature (e2e/local/up.sh enables it).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography import x509

from e2e.support import (
    NODE_IMAGE,
    Kube,
    condition,
    containers,
    etcd_cluster,
    patch_spec,
    restricted,
    served_certificates,
    wait_settled,
    wait_until,
)
from e2e.writer import acked_writes, assert_no_acknowledged_write_lost, run_under_writer
from etcd_operator.pki import podcerts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAME = "own"
LIFETIME = {"validity": "24h", "renewBefore": "8h"}  # pod certificates live 1h to 91 days


def issued_keys(kube: Kube, namespace: str, signer: str) -> dict[str, set[str]]:
    """pod -> sha256 of each public key the operator issued a certificate for, through that signer."""
    found: dict[str, set[str]] = {}
    for request in kube.items(namespace, "podcertificaterequests.certificates.k8s.io"):
        spec, status = request["spec"], request.get("status") or {}
        if spec["signerName"] == signer and any(c["type"] == "Issued" for c in status.get("conditions") or []):
            digest = hashlib.sha256(base64.b64decode(spec["pkixPublicKey"])).hexdigest()
            found.setdefault(spec["podName"], set()).add(digest)
    return found


def member_keys_in_secrets(kube: Kube, namespace: str) -> list[str]:
    """Every Secret key that holds a member's private key (`<pod>.key`)."""
    return [f"{s['metadata']['name']}/{key}" for s in kube.items(namespace, "secrets")
            for key in (s.get("data") or {}) if key.startswith(f"{NAME}-") and key.endswith(".key")]  # fmt: skip


def assert_on_pod_certificates(kube: Kube, namespace: str, replicas: int) -> None:
    assert member_keys_in_secrets(kube, namespace) == []
    for secret in (f"{NAME}-peer-tls", f"{NAME}-server-tls"):
        assert set(kube.get(namespace, "secret", secret)["data"]) <= {"ca.crt", "client.crl"}, secret
    server_keys = issued_keys(kube, namespace, podcerts.SIGNERS["server"])
    peer_keys = issued_keys(kube, namespace, podcerts.SIGNERS["peer"])
    presented = {f"{NAME}-{i}": c for i, c in enumerate(served_certificates(kube, namespace, NAME, replicas))}
    client_ca = kube.get(namespace, "secret", f"{NAME}-client-ca")["data"]["tls.crt"]
    assert client_ca
    for pod, cert in presented.items():
        # The key a member serves with is one its kubelet asked the operator to certify; no Secret has it.
        assert cert["key"] in server_keys.get(pod, set()), (pod, cert, server_keys.get(pod))
        assert peer_keys.get(pod), f"no peer certificate issued for {pod}"
        assert f"{pod}.{NAME}.{namespace}.svc.cluster.local" in cert["sans"], cert
        assert "client CA" in cert["issuer"], cert
    pods = kube.items(namespace, "pods", f"app.kubernetes.io/instance={NAME},app.kubernetes.io/component=member")
    assert len(pods) == replicas
    for pod in pods:
        sources = [s for v in pod["spec"]["volumes"] for s in (v.get("projected") or {}).get("sources") or []]
        signers = sorted(s["podCertificate"]["signerName"] for s in sources if "podCertificate" in s)
        assert signers == sorted(podcerts.SIGNERS.values()), pod["metadata"]["name"]


def test_a_cluster_moves_to_pod_certificates_and_scales_under_a_writer(kube: Kube, namespace: str) -> None:
    if "podcertificaterequests" not in kube.run("api-resources", "--api-group=certificates.k8s.io", "-o", "name",
                                                check=False).stdout:  # fmt: skip
        pytest.fail("the local cluster serves no PodCertificateRequests: e2e/local/up.sh enables them", pytrace=False)
    cluster = etcd_cluster(NAME, replicas=3, tls={"certificates": LIFETIME})
    run_under_writer(kube, namespace, cluster, acked=20)
    assert member_keys_in_secrets(kube, namespace)  # mode secret: every member's pair in the Secrets

    patch_spec(kube, namespace, NAME, tls={"memberKeys": "podCertificate", "certificates": LIFETIME})
    wait_until("the members restarted on pod certificates", lambda: not member_keys_in_secrets(kube, namespace)
               or None, timeout=600, interval=3)  # fmt: skip
    wait_settled(kube, namespace, NAME, replicas=3)
    assert_on_pod_certificates(kube, namespace, 3)
    switched = containers(kube, namespace, NAME)
    assert all(restarts == 0 for _, restarts in switched.values()), switched

    for replicas in (5, 3):
        before = len(acked_writes(kube, namespace))
        patch_spec(kube, namespace, NAME, replicas=replicas)
        wait_settled(kube, namespace, NAME, replicas=replicas, timeout=600)
        wait_until("writes during the scale", lambda start=before: len(acked_writes(kube, namespace)) >= start + 10
                   or None, timeout=120)  # fmt: skip
        assert_on_pod_certificates(kube, namespace, replicas)
    # The members that stayed kept running on their certificates: no restart since the switch.
    kept = containers(kube, namespace, NAME)
    assert {pod: kept[pod] for pod in switched} == switched
    print(f"acknowledged writes, none lost: {assert_no_acknowledged_write_lost(kube, namespace, NAME)}")

    # A pod that is no member, labelled as one and asking the peer signer, is denied: it never starts.
    intruder = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intruder",
                "labels": {"app.kubernetes.io/instance": NAME, "app.kubernetes.io/name": "etcd"}},
                "spec": {"automountServiceAccountToken": False,
                         "containers": [restricted({"name": "c", "image": NODE_IMAGE, "command": ["sleep", "600"],
                                                    "volumeMounts": [{"name": "x", "mountPath": "/x"}]})],
                         "volumes": [{"name": "x", "projected": {"sources": [{"podCertificate": {
                             "signerName": podcerts.SIGNERS["peer"], "keyType": "ECDSAP256",
                             "keyPath": "k", "certificateChainPath": "c"}}]}}]}}  # fmt: skip
    kube.apply(namespace, intruder)

    def denied() -> dict[str, Any] | None:
        for request in kube.items(namespace, "podcertificaterequests.certificates.k8s.io"):
            conditions = (request.get("status") or {}).get("conditions") or []
            if request["spec"]["podName"] == "intruder" and conditions:
                return conditions[0]
        return None

    answer = wait_until("the intruder's request answered", denied, timeout=120)
    assert (answer["type"], answer["reason"]) == ("Denied", "NotAMember"), answer
    assert kube.get(namespace, "pod", "intruder")["status"]["phase"] == "Pending"


def test_a_ca_rollover_reaches_pod_certificates_and_loses_no_write(kube: Kube, namespace: str) -> None:
    """With pod certificates the kubelets hold the leaves: after the new CA starts signing, every member is
    restarted once more so that its kubelet asks it, before the old CA leaves the bundles."""
    run_under_writer(kube, namespace, etcd_cluster(NAME, replicas=3, tls={"memberKeys": "podCertificate",
                                                                            "certificates": LIFETIME}), acked=20)  # fmt: skip
    old = {side: kube.get(namespace, "secret", f"{NAME}-{side}-ca")["data"]["tls.crt"] for side in ("peer", "client")}
    pods_before = {uid for uid, _ in containers(kube, namespace, NAME).values()}
    kube.run("-n", namespace, "annotate", "etcdcluster", NAME, "etcd.operator.dev/rotate-ca=e2e-pod-1")

    def rolled_over() -> bool:
        for side in ("peer", "client"):
            data = kube.get(namespace, "secret", f"{NAME}-{side}-ca")["data"]
            if data["tls.crt"] == old[side] or {"next.crt", "previous.crt", "restarting"} & set(data):
                return False
        return (condition(kube.get(namespace, "etcdcluster", NAME), "Progressing") or {}).get("status") == "False"

    wait_until("both CAs rolled over", rolled_over, timeout=900, interval=3)
    status = wait_settled(kube, namespace, NAME, replicas=3)
    assert {c["generation"] for c in status["certificates"] if c["kind"] == "ca"} == {2}
    assert not pods_before & {uid for uid, _ in containers(kube, namespace, NAME).values()}
    assert_on_pod_certificates(kube, namespace, 3)
    new_ca = x509.load_pem_x509_certificate(base64.b64decode(kube.get(namespace, "secret", f"{NAME}-client-ca")["data"]["tls.crt"]))
    new_id = x509.SubjectKeyIdentifier.from_public_key(new_ca.public_key()).digest.hex()
    served = served_certificates(kube, namespace, NAME, 3)
    assert [c["issuer_key_id"] for c in served] == [new_id] * 3, served
    print(f"CA rollover with pod certificates: generation 2, {assert_no_acknowledged_write_lost(kube, namespace, NAME)} "
          "writes acknowledged, 0 lost")
