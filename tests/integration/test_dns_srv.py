"""DNS SRV discovery from the clustering guide: names, IPs, TLS and --discovery-srv-name, with dnsmasq."""

from datetime import UTC, datetime

import pytest

from tests.integration.etcdlab import TOKEN, ClientTLS, endpoints
from tests.support.pki import make_ca, make_cert

pytestmark = pytest.mark.etcd


def srv_flags(name: str, host_or_ip: str, scheme: str = "http", listen_ip: str = "0.0.0.0") -> list[str]:
    return [
        "--name", name,
        "--discovery-srv", "example.com",
        "--initial-advertise-peer-urls", f"{scheme}://{host_or_ip}:2380",
        "--initial-cluster-token", TOKEN,
        "--initial-cluster-state", "new",
        "--advertise-client-urls", f"{scheme}://{host_or_ip}:2379",
        "--listen-client-urls", f"{scheme}://{listen_ip}:2379",
        "--listen-peer-urls", f"{scheme}://{listen_ip}:2380",
    ]  # fmt: skip


def tls_flags(cert, key, ca_file) -> list[str]:
    """One certificate for both sides, client and peer certificate auth on."""
    return [
        f"--cert-file={cert}", f"--key-file={key}", f"--trusted-ca-file={ca_file}", "--client-cert-auth",
        f"--peer-cert-file={cert}", f"--peer-key-file={key}", f"--peer-trusted-ca-file={ca_file}",
        "--peer-client-cert-auth",
    ]  # fmt: skip


def lab_ca(lab):
    """A CA for this lab: (authority, certificate dir, CA file, issue time)."""
    now = datetime.now(UTC)
    ca = make_ca(now)
    certs = lab.net.tmpdir / "pki"
    ca_file, _ = ca.write(certs, "ca")
    return ca, certs, ca_file, now


def test_dns_srv_with_domain_names(lab):
    hosts = lab.add_guide_hosts(srv="http")
    for host in hosts.values():
        lab.start(host, [*srv_flags(host.name, host.hostname), "--data-dir", str(lab.data_dir(host.name))])
    client = hosts["infra0"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())


def test_dns_srv_with_ip_addresses_and_srv_name(lab):
    hosts = lab.add_guide_hosts(srv="http", srv_name="foo")
    for host in hosts.values():
        flags = srv_flags(host.name, host.ip, listen_ip=host.ip) + ["--discovery-srv-name", "foo"]
        lab.start(host, [*flags, "--data-dir", str(lab.data_dir(host.name))])
    client = hosts["infra1"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())


def test_dns_srv_over_tls(lab):
    hosts = lab.add_guide_hosts(srv="https")
    ca, certs, ca_file, now = lab_ca(lab)
    for host in hosts.values():
        # The SRV domain must be a SAN, or peers reject each other (the guide's "Notes for DNS SRV").
        cert, key = make_cert(ca, host.name, [host.hostname, "example.com", host.ip], now).write(certs, host.name)
        flags = srv_flags(host.name, host.hostname, scheme="https")
        lab.start(host, [*flags, *tls_flags(cert, key, ca_file), "--data-dir", str(lab.data_dir(host.name))])
    user_cert, user_key = make_cert(ca, "user", [], now).write(certs, "user")
    tls = ClientTLS(ca=str(ca_file), cert=str(user_cert), key=str(user_key))
    client = hosts["infra2"]
    lab.wait_healthy(client, endpoints("https"), tls)
    lab.assert_put_get(client, endpoints("https"), tls)


def test_srv_domain_missing_from_certificate_stops_before_etcd(lab):
    hosts = lab.add_guide_hosts(srv="https")
    ca, certs, ca_file, now = lab_ca(lab)
    host = hosts["infra0"]
    cert, key = make_cert(ca, host.name, [host.hostname, host.ip], now).write(certs, host.name)
    flags = [*srv_flags(host.name, host.hostname, scheme="https"), *tls_flags(cert, key, ca_file),
             "--data-dir", str(lab.data_dir(host.name))]  # fmt: skip
    result = lab.run_node(host, flags)
    assert result.returncode == 1
    assert "CertificateSANMissing" in result.stderr
    assert "the SRV domain example.com must be a DNS SAN" in result.stderr
    assert not lab.data_dir(host.name).exists()


def test_member_missing_from_srv_records_is_refused(lab):
    hosts = lab.add_guide_hosts(count=3, srv=None)
    for name in ("infra0", "infra1"):
        lab.add_srv_records(name, tls=False)
    lab.net.start_dns()
    result = lab.run_node(hosts["infra2"], srv_flags("infra2", "infra2.example.com"))
    assert result.returncode == 1
    assert "NotInSRVRecords" in result.stderr
    assert "infra0.example.com:2380 -> 10.0.1.10" in result.stderr
