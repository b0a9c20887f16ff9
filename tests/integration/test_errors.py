"""The clustering guide's error cases, run for real: each ends in one clear line, never in a touched data dir."""

import pytest

from tests.integration.etcdlab import GUIDE_IPS, endpoints, guide_static_flags
from tests.unit.node import guide

pytestmark = pytest.mark.etcd


def guide_flags(command: str, data_dir) -> list[str]:
    return [*guide.args(command), "--data-dir", str(data_dir)]


@pytest.mark.parametrize(
    ("command", "host", "expected"),
    [
        (guide.NOT_LISTED, "infra1", "infra1 not listed in the initial cluster config"),
        (
            guide.URL_MISMATCH,
            "infra0",
            "infra0 has different advertised URLs in the cluster and advertised peer URLs list",
        ),
    ],
)
def test_guide_static_errors_stop_before_etcd(lab, command, host, expected):
    hosts = lab.add_guide_hosts(srv=None)
    data_dir = lab.data_dir(host)
    result = lab.run_node(hosts[host], guide_flags(command, data_dir))
    assert result.returncode == 1
    assert expected in result.stderr
    assert '"fix"' in result.stderr
    assert not data_dir.exists()  # etcd never ran


def test_domain_name_in_listen_urls(lab):
    hosts = lab.add_guide_hosts(srv=None)
    flags = guide_static_flags(0, data_dir=lab.data_dir("infra0"))
    flags[flags.index("--listen-peer-urls") + 1] = "http://infra0.example.com:2380"
    result = lab.run_node(hosts["infra0"], flags)
    assert result.returncode == 1
    assert "rejects a domain name ('infra0.example.com')" in result.stderr
    assert "http://0.0.0.0:2380" in result.stderr


def test_localhost_only_advertise_client_urls_warns_but_starts(lab):
    hosts = lab.add_guide_hosts(srv=None)
    procs = []
    for i, host in enumerate(hosts.values()):
        flags = guide_static_flags(i, data_dir=lab.data_dir(host.name))
        if i == 0:
            flags[flags.index("--advertise-client-urls") + 1] = "http://127.0.0.1:2379"
        procs.append(lab.start(host, flags))
    procs[0].wait_for_log("AdvertiseClientURLsLocalhost", 20)
    assert "common mistake" in procs[0].log()
    lab.wait_healthy(hosts["infra1"], endpoints())
    lab.assert_put_get(hosts["infra1"], endpoints())


def test_cluster_id_mismatch_is_reported_in_plain_words(lab):
    hosts = lab.add_guide_hosts(srv=None)
    for i, host in enumerate(hosts.values()):
        lab.start(host, guide_static_flags(i, data_dir=lab.data_dir(host.name)))
    lab.wait_healthy(hosts["infra0"], endpoints())
    # The guide's example: infra3 bootstraps its own "new" cluster naming infra0 and infra1 as peers.
    infra3 = lab.net.add_host("infra3", GUIDE_IPS["infra3"])
    proc = lab.start(infra3, guide_flags(guide.CLUSTER_ID_MISMATCH, lab.data_dir("infra3")))
    proc.wait_for_log("cluster ID mismatch: this member and its peers belong to different clusters", 60)
    assert "etcdctl member add" in proc.log()
    # The running cluster is unharmed.
    lab.assert_put_get(hosts["infra2"], endpoints())
