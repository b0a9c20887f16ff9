"""Client and peer TLS from Secrets the user provides, in exactly cert-manager's layout, with RSA 2048 and ECDSA.

The Secrets are what a cert-manager Certificate with wildcard DNS names
produces (type kubernetes.io/tls; tls.crt, tls.key in PKCS#1 or SEC1, ca.crt);
`tls.operatorClientSecretName` gives the operator its own client certificate.
With it the operator must scale and heal such a cluster like any other, and a
renewal of the Secrets by their owner must reach the members without a restart.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from e2e.support import (
    IDLE_INTERVAL,
    Kube,
    assert_stays_settled,
    available_status,
    containers,
    create_namespace,
    etcd_cluster,
    member_ids,
    patch_spec,
    served_serials,
    start_client_pod,
    wait_settled,
    wait_until,
)
from e2e.writer import assert_no_acknowledged_write_lost, start_writer
from tests.support.pki import Issued, make_ca, make_cert

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAME = "byo"


def tls_secret(name: str, data: dict[str, bytes]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}  # fmt: skip


def member_names(namespace: str) -> list[str]:
    """The DNS names a cert-manager Certificate for every member (any ordinal) would list."""
    domain = f"{NAME}.{namespace}.svc"
    client = f"{NAME}-client.{namespace}.svc"
    return [f"*.{domain}.cluster.local", f"*.{domain}", f"{domain}.cluster.local", f"{client}.cluster.local",
            client, f"{NAME}-client", "localhost", "127.0.0.1"]  # fmt: skip


class Certificates:
    """A CA and the Secrets issued from it, re-issuable as cert-manager renews them."""

    def __init__(self, kube: Kube, namespace: str, key_type: str) -> None:
        self.kube, self.namespace, self.key_type = kube, namespace, key_type
        self.ca = make_ca(datetime.now(UTC), "byo CA", key_type=key_type)

    def issue(self, secret: str, common_name: str, hosts: list[str], client_only: bool = False) -> Issued:
        usages = (ExtendedKeyUsageOID.CLIENT_AUTH,) if client_only else (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
        leaf = make_cert(self.ca, common_name, hosts, datetime.now(UTC), usages=usages, key_type=self.key_type)
        self.kube.apply(self.namespace, tls_secret(secret, leaf.cert_manager_secret(self.ca)))
        return leaf


@pytest.fixture
def byo(request, kube: Kube, operator: str) -> Iterator[tuple[str, Certificates]]:
    namespace = f"e2e-byo-{request.param}"
    kube.run("delete", "namespace", namespace, "--ignore-not-found", "--timeout=120s", timeout=150)
    create_namespace(kube, namespace)
    certs = Certificates(kube, namespace, request.param)
    certs.issue(f"{NAME}-peer", f"{NAME}-peer", member_names(namespace))
    certs.issue(f"{NAME}-server", f"{NAME}-server", member_names(namespace))
    certs.issue(f"{NAME}-operator", "etcd-operator", [], client_only=True)
    # The user's client certificate, where the test's client pod looks for it.
    certs.issue(f"{NAME}-client-tls", "e2e-user", [], client_only=True)
    kube.apply(namespace, etcd_cluster(NAME, replicas=3, tls={
        "peer": {"mode": "secret", "secretName": f"{NAME}-peer"},
        "client": {"mode": "secret", "secretName": f"{NAME}-server"},
        "operatorClientSecretName": f"{NAME}-operator"}, storage={"size": "1Gi", "whenScaled": "Delete"}))  # fmt: skip
    yield namespace, certs
    if hasattr(request.node, "rep_call") and request.node.rep_call.failed:
        print(kube.diagnostics(namespace, operator))
    kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def renew_and_check(kube: Kube, namespace: str, certs: Certificates, fresh: bool = True) -> None:
    """The owner renews the server certificate; every member serves it with no restart.

    fresh: no member has ever restarted (a member replaced by a heal restarts while it joins).
    """
    before = containers(kube, namespace, NAME)
    assert not fresh or all(restarts == 0 for _, restarts in before.values()), before
    renewed = certs.issue(f"{NAME}-server", f"{NAME}-server", member_names(namespace))
    serial = renewed.cert.serial_number
    wait_until("every member serving the renewed certificate", lambda: set(served_serials(kube, namespace, NAME, 3)) == {serial},
               timeout=240, interval=5)  # fmt: skip
    assert containers(kube, namespace, NAME) == before  # same containers, no restart


@pytest.mark.parametrize("byo", ["ecdsa"], indirect=True)  # RSA: renewed in the scaling scenario below
def test_user_provided_certificates_are_renewed_by_their_owner_without_a_restart(kube: Kube, byo) -> None:
    namespace, certs = byo
    status = wait_settled(kube, namespace, NAME, replicas=3)
    assert all(m["healthy"] for m in status["members"])  # the operator reads health with its own certificate
    start_client_pod(kube, namespace, NAME)
    start_writer(kube, namespace, NAME)
    renew_and_check(kube, namespace, certs)  # cert-manager rewrites the Secret in place
    wait_settled(kube, namespace, NAME, replicas=3)
    acked = assert_no_acknowledged_write_lost(kube, namespace, NAME)
    print(f"{certs.key_type}: renewal served by 3 members, 0 restarts, {acked} writes acknowledged, 0 lost")


@pytest.mark.parametrize("byo", ["rsa"], indirect=True)
def test_a_cluster_with_user_provided_certificates_scales_heals_and_is_renewed(kube: Kube, byo) -> None:
    namespace, certs = byo
    wait_settled(kube, namespace, NAME, replicas=3)
    start_client_pod(kube, namespace, NAME)
    start_writer(kube, namespace, NAME)
    patch_spec(kube, namespace, NAME, replicas=5)
    wait_settled(kube, namespace, NAME, replicas=5, timeout=600)
    patch_spec(kube, namespace, NAME, replicas=3)
    wait_settled(kube, namespace, NAME, replicas=3, timeout=600)
    before = member_ids(kube, namespace, NAME)
    victim = f"{NAME}-1"
    kube.run("-n", namespace, "delete", "pvc", f"data-{victim}", "--wait=false")
    kube.run("-n", namespace, "delete", "pod", victim, "--wait=false")

    def replaced() -> dict[str, str] | None:
        if not available_status(kube, namespace, NAME, members=3):
            return None
        now = member_ids(kube, namespace, NAME)
        return now if victim in now and now[victim] != before[victim] else None

    wait_until(f"{victim} replaced by a new member", replaced, timeout=600)
    wait_settled(kube, namespace, NAME, replicas=3)
    assert_stays_settled(kube, namespace, NAME, replicas=3, seconds=2 * IDLE_INTERVAL + 5)
    renew_and_check(kube, namespace, certs, fresh=False)
    wait_settled(kube, namespace, NAME, replicas=3)
    acked = assert_no_acknowledged_write_lost(kube, namespace, NAME)
    print(f"secret mode (rsa) 3->5->3, a replaced member, a renewal: {acked} writes acknowledged, 0 lost")
