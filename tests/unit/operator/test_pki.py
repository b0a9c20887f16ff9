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


def cas():
    return bundles.CASet(authority())


def test_member_certificates_cover_every_name_and_verify_with_the_node_agent(tmp_path):
    ca = cas()
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
    ca = cas()
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
    data = bundles.client_bundle(bundles.CASet(ca), "etcd-operator", NOW, certs.new_key(), 9)
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


def test_a_lifetime_sets_the_validity_and_when_renewal_is_due():
    ca = authority()
    short = certs.Lifetime(validity=timedelta(minutes=2), renew_before=timedelta(minutes=1))
    leaf = certs.issue(ca.cert, ca.key, certs.new_key(), "x", ["a.example"], NOW, 5, validity=short.validity)
    assert leaf.not_valid_after_utc == NOW + timedelta(minutes=2)
    assert not certs.due_for_renewal(leaf, NOW + timedelta(seconds=59), ["a.example"], short)
    assert certs.due_for_renewal(leaf, NOW + timedelta(seconds=60), ["a.example"], short)


def test_a_certificate_outliving_a_shortened_validity_is_due_but_a_fresh_one_never_is():
    ca = authority()
    year = certs.issue(ca.cert, ca.key, certs.new_key(), "x", [], NOW, 5)
    week = certs.Lifetime(validity=timedelta(days=7), renew_before=timedelta(days=1))
    assert certs.due_by_age(year, NOW, week)
    fresh = certs.issue(ca.cert, ca.key, certs.new_key(), "x", [], NOW, 6, validity=week.validity)
    for later in (NOW, NOW + timedelta(seconds=1), NOW + timedelta(days=5, hours=23)):
        assert not certs.due_by_age(fresh, later, week)


def test_a_leaf_never_outlives_its_ca_and_is_not_reissued_when_the_ca_cannot_extend_it():
    ca = cas()
    end = ca.signer.cert.not_valid_after_utc
    late = end - timedelta(days=10)
    serials = count(2)
    first = bundles.member_bundle(ca, NAMES, range(1), "peer", late, certs.new_key, lambda: next(serials))
    assert certs.load_cert(first["main-0.crt"]).not_valid_after_utc == end
    again = bundles.member_bundle(ca, NAMES, range(1), "peer", late + timedelta(days=1), certs.new_key,
                                  lambda: next(serials), first)  # fmt: skip
    assert again == first
