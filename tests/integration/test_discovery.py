"""Discovery-service bootstrap: a private etcd (v2 keys), the public service's own server, and v3 discovery."""

import re
import secrets

import pytest

from tests.integration.etcdlab import endpoints
from tests.integration.netlab import wait_until

pytestmark = pytest.mark.etcd

DISCO_IP = "10.0.1.9"


def discovery_flags(i: int, url: str) -> list[str]:
    ip = f"10.0.1.1{i}"
    return [
        "--name", f"infra{i}",
        "--initial-advertise-peer-urls", f"http://{ip}:2380",
        "--listen-peer-urls", f"http://{ip}:2380",
        "--listen-client-urls", f"http://{ip}:2379,http://127.0.0.1:2379",
        "--advertise-client-urls", f"http://{ip}:2379",
        "--discovery", url,
    ]  # fmt: skip


def start_discovery_etcd(lab, etcd_dir, *extra: str):
    """A one-member etcd at 10.0.1.9 that serves as the discovery service."""
    host = lab.net.add_host("disco", DISCO_IP, hostname="myetcd.example.com")
    lab.net.start_dns()
    argv = [
        str(etcd_dir / "etcd"), "--name", "disco", "--data-dir", str(lab.data_dir("disco")),
        "--listen-client-urls", f"http://{DISCO_IP}:2379,http://127.0.0.1:2379",
        "--advertise-client-urls", f"http://{DISCO_IP}:2379",
        "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", "disco=http://127.0.0.1:2380", *extra,
    ]  # fmt: skip
    host.spawn(argv, env=lab.env(), log_name="disco-etcd")
    ctl = str(etcd_dir / "etcdctl")

    def up() -> bool:
        return host.run([ctl, f"--endpoints=http://{DISCO_IP}:2379", "endpoint", "health"], env=lab.env()).returncode == 0

    wait_until(up, 30, interval=0.2, message="discovery etcd did not start")
    return host


def test_private_etcd_as_v2_discovery_service(lab, v2_etcd_dir):
    disco = start_discovery_etcd(lab, v2_etcd_dir, "--enable-v2")
    hosts = lab.add_guide_hosts(srv=None)
    token = secrets.token_hex(20)
    url = f"http://{DISCO_IP}:2379/v2/keys/discovery/{token}"
    # Before the size key exists: the guide's "Discovery server errors" case, caught before etcd starts.
    missing = lab.run_node(hosts["infra0"], discovery_flags(0, url))
    assert missing.returncode == 1
    assert f"the cluster doesn’t have a size configuration value in {url}/_config" in missing.stderr
    assert f"curl -X PUT {url}/_config/size -d value=3" in missing.stderr
    # The guide: curl -X PUT https://myetcd.local/v2/keys/discovery/<token>/_config/size -d value=3
    put = disco.run(["curl", "-sS", "-X", "PUT", f"{url}/_config/size", "-d", "value=3"])
    assert put.returncode == 0 and '"value":"3"' in put.stdout, put.stdout + put.stderr
    for i, host in enumerate(hosts.values()):
        lab.start(host, [*discovery_flags(i, url), "--data-dir", str(lab.data_dir(host.name))])
    client = hosts["infra0"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())


def test_public_discovery_service_new_size_3_and_duplicate_name(lab, v2_etcd_dir):
    disco = start_discovery_etcd(lab, v2_etcd_dir, "--enable-v2")
    service = f"http://{DISCO_IP}:8087"
    disco.spawn(
        ["/usr/bin/discovery.etcd.io", "-a", f"{DISCO_IP}:8087", "-e", "http://127.0.0.1:2379", "-h", service],
        env=lab.env(),
        log_name="discovery-service",
    )
    hosts = lab.add_guide_hosts(srv=None)

    def new_url() -> str | None:
        got = disco.run(["curl", "-sS", "--max-time", "2", f"{service}/new?size=3"])
        return got.stdout.strip() if got.returncode == 0 and got.stdout.startswith(service) else None

    url = wait_until(new_url, 30, interval=0.3, message="discovery service did not answer /new?size=3")
    assert re.fullmatch(rf"{service}/[0-9a-f]{{32}}", url), url
    procs = {}
    for i, host in enumerate(hosts.values()):
        if i == 2:
            # A second member that reuses infra0's name: the guide's "discovery will fail due to duplicated names".
            wait_until(lambda: "infra0=" in disco.run(["curl", "-sS", url]).stdout, 30, message="no registration")
            dup = lab.run_node(host, [*discovery_flags(2, url)[:0], *["--name", "infra0"], *discovery_flags(2, url)[2:]])
            assert dup.returncode == 1
            assert "DuplicateMemberName" in dup.stderr and "infra0 is already registered" in dup.stderr
        procs[host.name] = lab.start(host, [*discovery_flags(i, url), "--data-dir", str(lab.data_dir(host.name))])
    client = hosts["infra1"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())


def test_v3_discovery_on_etcd_36(lab):
    disco = start_discovery_etcd(lab, lab.etcd_dir)
    hosts = lab.add_guide_hosts(srv=None)
    token = "etcd-cluster-v3-" + secrets.token_hex(4)

    def v3_flags(i: int) -> list[str]:
        flags = discovery_flags(i, "")[:-2]
        return [*flags, f"--discovery-endpoints=http://{DISCO_IP}:2379", f"--discovery-token={token}"]

    missing = lab.run_node(hosts["infra0"], v3_flags(0))
    assert missing.returncode == 1
    assert f"/_etcd/registry/{token}/_config/size" in missing.stderr
    size = lab.etcdctl(disco, f"http://{DISCO_IP}:2379", "put", f"/_etcd/registry/{token}/_config/size", "3")
    assert size.returncode == 0, size.stderr
    for i, host in enumerate(hosts.values()):
        lab.start(host, [*v3_flags(i), "--data-dir", str(lab.data_dir(host.name))])
    client = hosts["infra2"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())


def test_discovery_through_the_http_proxy_named_by_etcd_discovery_proxy(lab, v2_etcd_dir):
    disco = start_discovery_etcd(lab, v2_etcd_dir, "--enable-v2")
    proxy = lab.net.add_host("proxy", "10.0.1.8")
    # privoxy, not tinyproxy: tinyproxy closes every client connection after one
    # request without saying so, and etcd's PUT on the reused connection then
    # fails with EOF, now and then, failing the bootstrap. No actions files: no
    # filtering, a plain forwarding proxy; debug 1 logs every request.
    conf = lab.net.tmpdir / "privoxy.conf"
    log = lab.net.tmpdir / "privoxy.log"
    conf.write_text(f"confdir {lab.net.tmpdir}\nlogdir {lab.net.tmpdir}\nlogfile privoxy.log\n"
                    "listen-address 10.0.1.8:8888\ntoggle 0\nkeep-alive-timeout 30\nsocket-timeout 60\n"
                    "debug 1\n")  # fmt: skip
    proxy.spawn(["privoxy", "--no-daemon", str(conf)], env=lab.env(), log_name="privoxy")
    hosts = lab.add_guide_hosts(srv=None)
    for host in hosts.values():
        # Members cannot reach the discovery service directly: only through the proxy.
        host.run(["ip", "route", "add", "prohibit", f"{DISCO_IP}/32"], check=True)
    blocked = hosts["infra0"].run(["curl", "-sS", "--max-time", "2", f"http://{DISCO_IP}:2379/version"])
    assert blocked.returncode != 0
    token = secrets.token_hex(20)
    url = f"http://{DISCO_IP}:2379/v2/keys/discovery/{token}"
    assert disco.run(["curl", "-sS", "-X", "PUT", f"{url}/_config/size", "-d", "value=3"]).returncode == 0
    env = lab.env(ETCD_DISCOVERY_PROXY="http://10.0.1.8:8888")
    for i, host in enumerate(hosts.values()):
        lab.start(host, [*discovery_flags(i, url), "--data-dir", str(lab.data_dir(host.name))], env=env)
    client = hosts["infra1"]
    lab.wait_healthy(client, endpoints())
    lab.assert_put_get(client, endpoints())
    seen = log.read_text()
    assert f"/v2/keys/discovery/{token}/_config/size" in seen  # the agent's own check went through the proxy
    assert seen.count(f"/v2/keys/discovery/{token}") >= 6  # and so did etcd's registration
