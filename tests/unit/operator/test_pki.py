from datetime import UTC, datetime, timedelta
from itertools import count

from cryptography.x509.oid import ExtendedKeyUsageOID

from etcd_node import tls as node_tls
from etcd_operator.pki import bundles, certs
from etcd_operator.resources.naming import ClusterNames

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NAMES = ClusterNames("main", "db")


def authority():
    return bundles.new_authority("main peer CA", NOW, certs.new_key(), 1)


def test_member_certificates_cover_every_name_and_verify_with_the_node_agent(tmp_path):
    ca = authority()
    serials = count(2)
    data = bundles.member_bundle(ca, NAMES, range(3), "peer", NOW, certs.new_key, lambda: next(serials))
    assert sorted(data) == ["ca.crt", "main-0.crt", "main-0.key", "main-1.crt", "main-1.key", "main-2.crt", "main-2.key"]
    for name, blob in data.items():
        (tmp_path / name).write_bytes(blob)
    # The agent's own pre-start checks accept what the operator issues: one source of truth for "valid".
    files = node_tls.CertFiles("peer", "peer-", str(tmp_path / "main-1.crt"), str(tmp_path / "main-1.key"),
                               str(tmp_path / "ca.crt"), True)
    hosts = ["main-1.main.db.svc.cluster.local", "main.db.svc.cluster.local"]
    assert node_tls.check(node_tls.load(files), hosts, NOW, "main.db.svc.cluster.local") == []


def test_valid_pairs_are_kept_and_stale_ones_reissued():
    ca = authority()
    serials = count(2)
    first = bundles.member_bundle(ca, NAMES, range(3), "peer", NOW, certs.new_key, lambda: next(serials))
    again = bundles.member_bundle(ca, NAMES, range(3), "peer", NOW, certs.new_key, lambda: next(serials), first)
    assert again == first
    grown = bundles.member_bundle(ca, NAMES, range(4), "peer", NOW, certs.new_key, lambda: next(serials), first)
    assert {k: grown[k] for k in first} == first and "main-3.crt" in grown
    late = NOW + timedelta(days=340)
    renewed = bundles.member_bundle(ca, NAMES, range(3), "peer", late, certs.new_key, lambda: next(serials), first)
    assert renewed["main-0.crt"] != first["main-0.crt"]


def test_client_certificate_is_client_only_and_ca_round_trips():
    ca = authority()
    data = bundles.client_bundle(ca, "etcd-operator", NOW, certs.new_key(), 9)
    cert = certs.load_cert(data["tls.crt"])
    usages = list(cert.extensions.get_extension_for_class(certs.x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.cert)
    again = bundles.Authority.from_secret_data(ca.secret_data())
    assert again.cert == ca.cert and certs.key_pem(again.key) == certs.key_pem(ca.key)


def test_due_for_renewal():
    ca = authority()
    leaf = certs.issue(ca.cert, ca.key, certs.new_key(), "x", ["a.example"], NOW, 5)
    assert not certs.due_for_renewal(leaf, NOW, ["a.example"])
    assert certs.due_for_renewal(leaf, NOW, ["b.example"])
    assert certs.due_for_renewal(leaf, NOW + timedelta(days=336))
