from datetime import UTC, datetime, timedelta

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from etcd_node import tls
from etcd_node.findings import Severity
from tests.support.pki import make_ca, make_cert

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca():
    return make_ca(NOW)


def side(tmp_path, issued, ca, prefix="peer-"):
    cert, key = issued.write(tmp_path, "member")
    ca_cert, _ = ca.write(tmp_path, "ca")
    return tls.CertFiles(
        side="peer" if prefix else "client", prefix=prefix, cert_file=str(cert), key_file=str(key), ca_file=str(ca_cert)
    )


def codes(findings):
    return [f.code for f in findings]


def test_good_peer_certificate_passes(tmp_path, ca):
    issued = make_cert(ca, "infra0", ["infra0.example.com", "10.0.1.10", "example.com"], NOW)
    files = side(tmp_path, issued, ca)
    assert tls.check(tls.load(files), ["10.0.1.10", "example.com"], NOW, "example.com") == []


@pytest.mark.parametrize(
    ("make", "hosts", "when", "code", "severity"),
    [
        (lambda ca: make_cert(ca, "x", ["10.0.1.10"], NOW, days=10), ["10.0.1.10"], NOW + timedelta(days=11),
         "CertificateExpired", Severity.ERROR),
        (lambda ca: make_cert(ca, "x", ["10.0.1.10"], NOW, not_before=NOW + timedelta(days=1)), ["10.0.1.10"], NOW,
         "CertificateNotYetValid", Severity.ERROR),
        (lambda ca: make_cert(ca, "x", ["10.0.1.10"], NOW, days=10), ["10.0.1.10"], NOW,
         "CertificateExpiresSoon", Severity.WARNING),
        (lambda ca: make_cert(ca, "x", ["10.0.1.10"], NOW), ["10.0.1.11"], NOW,
         "CertificateSANMissing", Severity.ERROR),
        (lambda ca: make_cert(ca, "x", ["10.0.1.10"], NOW, usages=(ExtendedKeyUsageOID.SERVER_AUTH,)), ["10.0.1.10"],
         NOW, "CertificateUsage", Severity.ERROR),
        (lambda ca: make_cert(make_ca(NOW, "other CA"), "x", ["10.0.1.10"], NOW), ["10.0.1.10"], NOW,
         "CertificateNotSignedByCA", Severity.ERROR),
    ],
)
def test_certificate_problems(tmp_path, ca, make, hosts, when, code, severity):
    files = side(tmp_path, make(ca), ca)
    findings = tls.check(tls.load(files), hosts, when)
    assert [(f.code, f.severity) for f in findings] == [(code, severity)]


def test_srv_domain_missing_from_san_is_explained(tmp_path, ca):
    files = side(tmp_path, make_cert(ca, "x", ["10.0.1.10"], NOW), ca)
    (finding,) = tls.check(tls.load(files), ["10.0.1.10", "example.com"], NOW, "example.com")
    assert finding.code == "CertificateSANMissing"
    assert "SRV domain example.com must be a DNS SAN" in finding.message


def test_key_of_another_certificate_is_refused(tmp_path, ca):
    files = side(tmp_path, make_cert(ca, "x", ["10.0.1.10"], NOW), ca)
    _, other_key = make_cert(ca, "y", ["10.0.1.10"], NOW).write(tmp_path / "other", "y")
    files = tls.CertFiles(files.side, files.prefix, files.cert_file, str(other_key), files.ca_file)
    assert codes(tls.check(tls.load(files), ["10.0.1.10"], NOW)) == ["KeyMismatch"]


def test_missing_and_garbage_files(tmp_path, ca):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    files = tls.CertFiles("client", "", str(tmp_path / "absent.crt"), str(garbage), str(garbage))
    assert codes(tls.check(tls.load(files), [], NOW)) == ["CertificateFileUnreadable", "KeyInvalid", "CAInvalid"]


def test_wildcard_san_covers_one_label():
    ca = make_ca(NOW)
    cert = make_cert(ca, "x", ["*.etcd.ns.svc.cluster.local"], NOW).cert
    assert tls.covers(cert, "etcd-0.etcd.ns.svc.cluster.local")
    assert not tls.covers(cert, "a.b.etcd.ns.svc.cluster.local")


def test_hosts_needed_follow_tls_urls_and_srv_domain():
    options = {
        "initial-advertise-peer-urls": "https://infra0.example.com:2380",
        "advertise-client-urls": "http://10.0.1.10:2379",
    }
    assert tls.hosts_needed(options, "peer", "example.com") == ["infra0.example.com", "example.com"]
    assert tls.hosts_needed(options, "client", "example.com") == []
