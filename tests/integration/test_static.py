"""Static bootstrap from the clustering guide, over plain HTTP, self-signed TLS and auto TLS."""

from datetime import UTC, datetime

import pytest

from tests.integration.etcdlab import ClientTLS, endpoints, guide_static_flags
from tests.support.pki import make_ca, make_cert

pytestmark = pytest.mark.etcd


def test_static_http(lab):
    hosts = lab.add_guide_hosts(srv=None)
    for i, host in enumerate(hosts.values()):
        lab.start(host, guide_static_flags(i, data_dir=lab.data_dir(host.name)))
    client = hosts["infra0"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())


def test_static_self_signed_tls_with_client_and_peer_cert_auth(lab):
    hosts = lab.add_guide_hosts(srv=None)
    now = datetime.now(UTC)
    certs = lab.net.tmpdir / "pki"
    client_ca, peer_ca = make_ca(now, "etcd client CA"), make_ca(now, "etcd peer CA")
    client_ca_file, _ = client_ca.write(certs, "ca-client")
    peer_ca_file, _ = peer_ca.write(certs, "ca-peer")
    for i, host in enumerate(hosts.values()):
        names = [host.ip, f"{host.name}.example.com", "127.0.0.1", "localhost"]
        server_cert, server_key = make_cert(client_ca, host.name, names, now).write(certs, f"{host.name}-client")
        peer_cert, peer_key = make_cert(peer_ca, host.name, names, now).write(certs, f"{host.name}-peer")
        flags = guide_static_flags(i, scheme="https", data_dir=lab.data_dir(host.name)) + [
            "--client-cert-auth", f"--trusted-ca-file={client_ca_file}",
            f"--cert-file={server_cert}", f"--key-file={server_key}",
            "--peer-client-cert-auth", f"--peer-trusted-ca-file={peer_ca_file}",
            f"--peer-cert-file={peer_cert}", f"--peer-key-file={peer_key}",
        ]  # fmt: skip
        lab.start(host, flags)
    user_cert, user_key = make_cert(client_ca, "user", [], now).write(certs, "user")
    tls = ClientTLS(ca=str(client_ca_file), cert=str(user_cert), key=str(user_key))
    client = hosts["infra2"]
    lab.wait_healthy(client, endpoints("https"), tls)
    lab.assert_put_get(client, endpoints("https"), tls)
    # Client cert auth is really on: without a client certificate the server refuses.
    refused = lab.etcdctl(client, endpoints("https"), "get", "x", tls=ClientTLS(ca=str(client_ca_file)))
    assert refused.returncode != 0


def test_auto_tls(lab):
    hosts = lab.add_guide_hosts(srv=None)
    for i, host in enumerate(hosts.values()):
        flags = guide_static_flags(i, scheme="https", data_dir=lab.data_dir(host.name))
        lab.start(host, [*flags, "--auto-tls", "--peer-auto-tls"])
    tls = ClientTLS(insecure_skip_verify=True)
    client = hosts["infra1"]
    lab.wait_healthy(client, endpoints("https"), tls)
    lab.assert_put_get(client, endpoints("https"), tls)
