"""spec.tls.memberKeys podCertificate: the signer's decision, the pod template and the Secrets, with a fixed clock."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from pydantic import ValidationError

from etcd_node import tls as node_tls
from etcd_node.findings import errors
from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.pki import bundles, certs, podcerts
from etcd_operator.reconcile import rollover
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.secrets import tls_secrets
from etcd_operator.resources.meta import Owner
from etcd_operator.resources.naming import ClusterNames
from etcd_operator.resources.statefulset import MemberTemplateInputs, build_statefulset

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NAMES = ClusterNames("main", "db")
IDENTITY = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")
SERIALS = count(100)
POD_MODE = {"replicas": 3, "tls": {"memberKeys": "podCertificate",
                                   "certificates": {"validity": "24h", "renewBefore": "8h"}}}  # fmt: skip


def spec(**tls) -> EtcdClusterSpec:
    return EtcdClusterSpec.model_validate({**POD_MODE, "tls": {**POD_MODE["tls"], **tls}})


def authority(name: str = "main peer CA", now: datetime = NOW) -> bundles.Authority:
    return bundles.new_authority(name, now, certs.new_key(), next(SERIALS))


def request(key: ec.EllipticCurvePrivateKey, signer: str = podcerts.SIGNERS["peer"], pod: str = "main-1",
            max_seconds: int = 86400) -> podcerts.Request:  # fmt: skip
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return podcerts.Request.from_object({
        "metadata": {"namespace": "db", "name": "req-1"},
        "spec": {"signerName": signer, "podName": pod, "podUID": "uid-1", "maxExpirationSeconds": max_seconds,
                 "pkixPublicKey": base64.b64encode(der).decode()},
    })  # fmt: skip


MEMBER = podcerts.MemberPod(uid="uid-1", cluster="main", controller="main", ordinal=1)


def test_a_members_request_gets_a_certificate_for_its_own_key_with_its_names(tmp_path):
    key, ca = ec.generate_private_key(ec.SECP256R1()), bundles.CASet(authority())
    issued = podcerts.decide(request(key), MEMBER, spec(), NAMES, ca, NOW, 7)
    assert isinstance(issued, podcerts.Issued)
    cert = x509.load_pem_x509_certificate(issued.chain)
    assert cert.public_key() == key.public_key() and certs.issued_by(cert, ca.signer.cert)
    # Within kube-apiserver's bounds: notBefore near now, at least an hour, refresh 10 minutes inside each end.
    assert issued.not_before == NOW - podcerts.BACKDATE and issued.not_after == issued.not_before + timedelta(hours=24)
    assert issued.begin_refresh_at == issued.not_after - timedelta(hours=8)
    # The agent's own pre-start check accepts it, with the key that never left the "node".
    (tmp_path / "member.crt").write_bytes(issued.chain)
    (tmp_path / "member.key").write_bytes(certs.key_pem(key))
    (tmp_path / "ca.crt").write_bytes(ca.bundle())
    files = node_tls.CertFiles("peer", "peer-", str(tmp_path / "member.crt"), str(tmp_path / "member.key"),
                               str(tmp_path / "ca.crt"), True)  # fmt: skip
    assert errors(node_tls.check(node_tls.load(files), NAMES.member_hosts(1), NOW)) == []  # a day: "expires soon" only
    status = podcerts.status(issued, NOW)
    assert status["conditions"][0]["type"] == "Issued" and status["certificateChain"] == issued.chain.decode()
    assert status["notBefore"] == "2026-06-01T11:59:00Z" and status["beginRefreshAt"] == "2026-06-02T03:59:00Z"


def test_the_lifetime_follows_the_request_and_the_ca_and_the_refresh_stays_inside_the_window():
    key = ec.generate_private_key(ec.SECP256R1())
    short = podcerts.decide(request(key, max_seconds=3600), MEMBER, spec(), NAMES, bundles.CASet(authority()), NOW, 7)
    assert isinstance(short, podcerts.Issued) and short.not_after - short.not_before == timedelta(hours=1)
    # renewBefore (8h) is longer than that hour: the refresh starts 10 minutes after the start.
    assert short.begin_refresh_at == short.not_before + podcerts.REFRESH_MARGIN
    old_ca = bundles.CASet(authority(now=NOW - certs.CA_VALIDITY + timedelta(minutes=30)))
    ending = podcerts.decide(request(key), MEMBER, spec(), NAMES, old_ca, NOW, 7)
    assert isinstance(ending, podcerts.Refused) and (ending.kind, ending.reason) == ("Failed", "CAEnding")


@pytest.mark.parametrize(("pod", "cluster", "signer", "reason"), [
    (None, spec(), podcerts.SIGNERS["peer"], "PodGone"),
    (replace(MEMBER, uid="other"), spec(), podcerts.SIGNERS["peer"], "PodGone"),
    (replace(MEMBER, controller="intruder"), spec(), podcerts.SIGNERS["peer"], "NotAMember"),
    (replace(MEMBER, ordinal=None), spec(), podcerts.SIGNERS["peer"], "NotAMember"),
    (MEMBER, None, podcerts.SIGNERS["peer"], "NotAMember"),
    (MEMBER, EtcdClusterSpec.model_validate({"replicas": 3}), podcerts.SIGNERS["peer"], "NotPodCertificateMode"),
    (MEMBER, spec(client={"mode": "none"}), podcerts.SIGNERS["server"], "NotPodCertificateMode"),
    (MEMBER, spec(), "example.com/other", "UnknownSigner"),
])  # fmt: skip
def test_only_members_of_a_cluster_in_that_mode_are_signed(pod, cluster, signer, reason):
    key = ec.generate_private_key(ec.SECP256R1())
    got = podcerts.decide(request(key, signer=signer), pod, cluster, NAMES if cluster else None,
                          bundles.CASet(authority()), NOW, 7)  # fmt: skip
    assert isinstance(got, podcerts.Refused) and (got.kind, got.reason) == ("Denied", reason), got
    assert podcerts.status(got, NOW)["conditions"][0]["type"] == "Denied"


def test_a_key_that_cannot_sign_a_handshake_is_refused_and_a_missing_ca_fails_for_a_retry():
    der = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    bad = replace(request(ec.generate_private_key(ec.SECP256R1())), public_key=der)
    got = podcerts.decide(bad, MEMBER, spec(), NAMES, bundles.CASet(authority()), NOW, 7)
    assert isinstance(got, podcerts.Refused) and got.reason == "BadPublicKey"
    got = podcerts.decide(request(ec.generate_private_key(ec.SECP256R1())), MEMBER, spec(), NAMES, None, NOW, 7)
    assert isinstance(got, podcerts.Refused) and (got.kind, got.reason) == ("Failed", "CAMissing")
    assert podcerts.answered({"status": podcerts.status(got, NOW)})
    assert not podcerts.answered({"status": {}})


@pytest.mark.parametrize(("tls", "words"), [
    ({"certificates": {"validity": "30m", "renewBefore": "10m"}}, "between 1h and 2184h"),
    ({"certificates": {"validity": "3000h", "renewBefore": "720h"}}, "between 1h and 2184h"),
    ({"certificates": {"validity": "1h", "renewBefore": "55m"}}, "10m shorter than validity"),
    ({"peer": {"mode": "none"}, "client": {"mode": "none"}}, "needs a selfSigned side"),
])  # fmt: skip
def test_the_model_refuses_what_the_api_server_refuses(tls, words):
    with pytest.raises(ValidationError, match=words):
        spec(**tls)


def template(spec_: EtcdClusterSpec, **inputs) -> dict:
    sts = build_statefulset(NAMES, spec_, Owner("main", "uid"),
                            MemberTemplateInputs(replicas=3, initial_members=3, cluster_token="t",
                                                 node_image="etcd-node:3.6.16", **inputs))  # fmt: skip
    return sts["spec"]["template"]["spec"]


def test_the_template_mounts_the_cas_and_the_members_own_pod_certificate_never_the_secrets_keys():
    pod = template(spec(), pod_certificates=True, client_crl=True)
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    for volume, signer, secret, prefix in (("peer-tls", "peer", "main-peer-tls", "ETCD_PEER_"),
                                           ("server-tls", "server", "main-server-tls", "ETCD_")):  # fmt: skip
        sources = volumes[volume]["projected"]["sources"]
        items = [i["key"] for i in sources[0]["secret"]["items"]]
        assert sources[0]["secret"]["name"] == secret and "ca.crt" in items and not any(k.endswith(".key") for k in items)
        assert sources[1]["podCertificate"] == {
            "signerName": podcerts.SIGNERS[signer], "keyType": "ECDSAP256", "maxExpirationSeconds": 86400,
            "keyPath": "member.key", "certificateChainPath": "member.crt"}  # fmt: skip
        assert env[f"{prefix}CERT_FILE"].endswith("/member.crt") and env[f"{prefix}KEY_FILE"].endswith("/member.key")
    assert "client.crl" in [i["key"] for i in volumes["server-tls"]["projected"]["sources"][0]["secret"]["items"]]
    # Without the operator's signer the members keep the Secret-held pairs: nothing would answer the kubelet.
    plain = template(spec(), pod_certificates=False)
    assert {v["name"]: v.get("secret", {}).get("secretName") for v in plain["volumes"] if v["name"].endswith("-tls")} == {
        "peer-tls": "main-peer-tls", "server-tls": "main-server-tls"}  # fmt: skip


def secrets_of(plan) -> dict[str, dict[str, bytes]]:
    return {s["metadata"]["name"]: {k: base64.b64decode(v) for k, v in s["data"].items()} for s in plan.secrets}


def test_the_secrets_drop_member_keys_only_once_every_member_runs_the_pod_certificate_template():
    first = secrets_of(tls_secrets(IDENTITY, spec(memberKeys="secret"), 3, {}, NOW))
    assert "main-1.key" in first["main-peer-tls"]
    # Switched while members still read their pairs from the Secret: the pairs stay.
    switching = tls_secrets(IDENTITY, spec(), 3, first, NOW, pod_certificates=True, pod_certificates_live=False)
    assert "main-peer-tls" not in secrets_of(switching)
    # Every member runs the new template: only the CAs (and the revocation list) remain.
    done = secrets_of(tls_secrets(IDENTITY, spec(), 3, first, NOW, pod_certificates=True, pod_certificates_live=True))
    assert set(done["main-peer-tls"]) == {"ca.crt"} and set(done["main-server-tls"]) == {"ca.crt"}
    assert "tls.key" in first["main-client-tls"] and "main-client-tls" not in done  # the operator's own pair stays
    # Later rollouts (members not all on the template for a while) never bring keys back, nor does a scale-out.
    later = {**first, **done}
    assert tls_secrets(IDENTITY, spec(), 5, later, NOW, pod_certificates=True, pod_certificates_live=False).secrets == []
    # A new cluster in that mode never puts a member key in a Secret.
    fresh = secrets_of(tls_secrets(IDENTITY, spec(), 3, {}, NOW, pod_certificates=True))
    assert not any(k.endswith(".key") for k in fresh["main-peer-tls"]) and set(fresh["main-server-tls"]) == {"ca.crt"}


PEER_ONLY = spec(client={"mode": "none"})


def test_a_ca_rollover_delivers_the_new_cas_pod_certificates_by_a_restart_before_dropping_the_old_ca():
    first = secrets_of(tls_secrets(IDENTITY, PEER_ONLY, 3, {}, NOW, pod_certificates=True))
    trusting = replace(bundles.CASet.from_secret_data(first["main-peer-ca"]), next=authority(), generation=2,
                       request="r")  # fmt: skip
    existing = {**first, "main-peer-ca": trusting.secret_data()}
    trusted = rollover.trust_digest([trusting], pod_certificates=True)
    # Members restarted to trust both: the new CA signs, and the template now names it.
    signing = tls_secrets(IDENTITY, PEER_ONLY, 3, existing, NOW, rotate_ca="r", trusted_ca_live=trusted,
                          pod_certificates=True, pod_certificates_live=True)  # fmt: skip
    new_ca = bundles.CASet.from_secret_data(secrets_of(signing)["main-peer-ca"])
    assert new_ca.previous is not None and signing.trusted_ca != trusted
    existing["main-peer-ca"] = new_ca.secret_data()
    late = NOW + rollover.DELIVERY + timedelta(minutes=1)
    # The old template still runs: the members' certificates are the old CA's, which stays trusted.
    waiting = tls_secrets(IDENTITY, PEER_ONLY, 3, existing, late, rotate_ca="r", trusted_ca_live=trusted,
                          pod_certificates=True, pod_certificates_live=True)  # fmt: skip
    assert "delivered" in waiting.rollover and "main-peer-ca" not in secrets_of(waiting)
    # Every member restarted on the template naming the new signer: their kubelets asked it; the old CA goes.
    dropping = tls_secrets(IDENTITY, PEER_ONLY, 3, existing, late, rotate_ca="r", trusted_ca_live=signing.trusted_ca,
                           pod_certificates=True, pod_certificates_live=True)  # fmt: skip
    dropped = bundles.CASet.from_secret_data(secrets_of(dropping)["main-peer-ca"])
    assert dropped.previous is None and dropped.restarting
