"""The clustering guide's error cases, run for real: each ends in one clear line, never in a touched data dir."""

import json
import re
import time

import pytest

from etcd_node.contract import parse_agent_error
from tests.integration.etcdlab import GUIDE_IPS, endpoints, exited, guide_static_flags
from tests.unit.node import guide

pytestmark = pytest.mark.etcd
GRACE = 5.0  # ETCD_NODE_ID_MISMATCH_GRACE for the mismatch test: short, but well above the log's poll interval


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


def test_cluster_id_mismatch_stops_a_member_that_never_belonged_and_only_explains_one_with_data(lab):
    hosts = lab.add_guide_hosts(srv=None)
    members = [lab.start(host, guide_static_flags(i, data_dir=lab.data_dir(host.name)))
               for i, host in enumerate(hosts.values())]  # fmt: skip
    lab.wait_healthy(hosts["infra0"], endpoints())
    running = cluster_id(lab, hosts["infra0"])
    # The guide's example: infra3 bootstraps its own "new" cluster naming infra0 and infra1 as peers. It runs as
    # PID 1 of its own PID namespace, as etcd does in a pod (where etcd would exit 0 on SIGTERM).
    infra3 = lab.net.add_host("infra3", GUIDE_IPS["infra3"])
    termination_log = lab.net.tmpdir / "infra3.termination-log"
    env = lab.env(ETCD_NODE_TERMINATION_LOG=str(termination_log), ETCD_NODE_ID_MISMATCH_GRACE=str(GRACE))
    argv = guide_flags(guide.CLUSTER_ID_MISMATCH, lab.data_dir("infra3"))
    proc = infra3.spawn(["unshare", "--pid", "--fork", "--mount-proc", *lab.node_argv(argv)], env=env, log_name="infra3")
    proc.wait_for_log("cluster ID mismatch: this member and its peers belong to different clusters", 60)
    seen = time.monotonic()
    assert "etcdctl member add" in proc.log()
    # The guide: it "will report a cluster ID mismatch and will exit". etcd 3.6 would retry forever.
    code = exited(proc, GRACE + 10)
    elapsed = time.monotonic() - seen
    assert code != 0, proc.log_tail()
    assert GRACE - 1 <= elapsed <= GRACE + 3, elapsed
    refusal = parse_agent_error(termination_log.read_text())
    assert refusal is not None and refusal.code == "ClusterIDMismatch", termination_log.read_text()
    ids = re.match(r"conflicting cluster ID to the target cluster \((\w+) != (\w+)\)\. Exiting\.", refusal.message)
    assert ids is not None and ids[2] == running, refusal.message
    assert "\n  fix: empty its data dir" in termination_log.read_text()
    # The running cluster is unharmed: its members, fresh too, heard from a stranger but were not rejected.
    assert all(member.returncode is None for member in members)
    assert "of another cluster (" in members[0].log() and "this member is unaffected" in members[0].log()
    lab.assert_put_get(hosts["infra2"], endpoints())
    assert cluster_id(lab, hosts["infra2"]) == running

    # Started again, infra3 restarts from the data it now has: that is only explained, never stopped.
    termination_log.unlink()
    again = lab.start(infra3, argv, env=env, log="infra3-again")
    again.wait_for_log("cluster ID mismatch: this member and its peers belong to different clusters", 60)
    time.sleep(GRACE + 2)  # waiting out the grace period is the point: nothing may stop it
    assert again.returncode is None, again.log_tail()
    assert parse_agent_error(termination_log.read_text()).message.startswith("cluster ID mismatch: ")
    again.stop()
    assert all(member.returncode is None for member in members)
    lab.assert_put_get(hosts["infra1"], endpoints())


def cluster_id(lab, host) -> str:
    """The running cluster's ID in hex, as etcd logs it."""
    statuses = json.loads(lab.etcdctl(host, endpoints(), "endpoint", "status", "-w", "json").stdout)
    (cid,) = {s["Status"]["header"]["cluster_id"] for s in statuses}
    return format(cid, "x")
