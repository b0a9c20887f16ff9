"""After bootstrap: joining through the runtime API, restarting from a data dir, the gateway, the hand-over."""

import os
import signal

import pytest

from tests.integration.etcdlab import GUIDE_IPS, endpoints, guide_static_flags
from tests.integration.netlab import wait_until

pytestmark = pytest.mark.etcd


def static_cluster(lab):
    hosts = lab.add_guide_hosts(srv="http")
    procs = {}
    for i, host in enumerate(hosts.values()):
        procs[host.name] = lab.start(host, guide_static_flags(i, data_dir=lab.data_dir(host.name)))
    lab.wait_healthy(hosts["infra0"], endpoints())
    return hosts, procs


def member_id(lab, host, eps, name):
    for member in lab.members(host, eps):
        if member.get("name") == name or f"http://{GUIDE_IPS[name]}:2380" in member.get("peerURLs", []):
            return format(int(member["ID"]), "x")  # etcdctl takes IDs in hex
    raise AssertionError(f"{name} not in member list")


def test_add_learner_join_promote_and_remove(lab):
    hosts, procs = static_cluster(lab)
    first = hosts["infra0"]
    infra3 = lab.net.add_host("infra3", GUIDE_IPS["infra3"], hostname="infra3.example.com")
    lab.net.start_dns()

    def added() -> bool:
        args = ("member", "add", "infra3", "--peer-urls=http://10.0.1.13:2380", "--learner")
        return lab.etcdctl(first, endpoints(), *args).returncode == 0

    # A fresh cluster answers "etcdserver: unhealthy cluster" until it has settled (a few seconds).
    wait_until(added, 30, interval=0.5, message="member add was refused for 30s")
    join_flags = [
        "--name", "infra3",
        "--initial-advertise-peer-urls", "http://10.0.1.13:2380",
        "--listen-peer-urls", "http://10.0.1.13:2380",
        "--listen-client-urls", "http://10.0.1.13:2379,http://127.0.0.1:2379",
        "--advertise-client-urls", "http://10.0.1.13:2379",
        "--initial-cluster-state", "existing",
        "--join-endpoints", endpoints(),
        "--data-dir", str(lab.data_dir("infra3")),
    ]  # fmt: skip
    plan = lab.run_node(infra3, ["--dry-run", *join_flags])
    assert plan.returncode == 0, plan.stderr
    assert (
        "--initial-cluster=infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,"
        "infra2=http://10.0.1.12:2380,infra3=http://10.0.1.13:2380"
    ) in plan.stdout
    procs["infra3"] = lab.start(infra3, join_flags)
    new_id = member_id(lab, first, endpoints(), "infra3")

    def promoted() -> bool:
        return lab.etcdctl(first, endpoints(), "member", "promote", new_id).returncode == 0

    # etcd refuses until the learner has caught up ("can only promote a learner member which is in sync").
    wait_until(promoted, 60, interval=0.5, message="learner infra3 was never promoted")
    # Asked of a member that stays: infra0 itself may stop before it answers ("etcdserver: server stopped").
    staying = "http://10.0.1.11:2379,http://10.0.1.12:2379"
    removed = lab.etcdctl(hosts["infra1"], staying, "member", "remove", member_id(lab, first, endpoints(), "infra0"))
    assert removed.returncode == 0, removed.stderr
    # The removed member stops, and the agent's watcher says why in plain words.
    procs["infra0"].wait_for_log("this member was removed from the cluster", 30)
    remaining = "http://10.0.1.11:2379,http://10.0.1.12:2379,http://10.0.1.13:2379"
    lab.wait_healthy(hosts["infra1"], remaining)
    lab.assert_put_get(infra3, remaining)
    assert {m["name"] for m in lab.members(infra3, remaining)} == {"infra1", "infra2", "infra3"}


def test_joining_before_member_add_is_refused(lab):
    static_cluster(lab)
    infra3 = lab.net.add_host("infra3", GUIDE_IPS["infra3"])
    result = lab.run_node(
        infra3,
        [
            "--name", "infra3", "--initial-advertise-peer-urls", "http://10.0.1.13:2380",
            "--initial-cluster-state", "existing", "--join-endpoints", endpoints(),
        ],
    )  # fmt: skip
    assert result.returncode == 1
    assert "etcdctl member add infra3 --peer-urls=http://10.0.1.13:2380 --learner" in result.stderr


def test_restart_with_data_dir_warns_that_bootstrap_flags_are_ignored(lab):
    hosts, procs = static_cluster(lab)
    # etcd handles SIGTERM, shuts down cleanly, then re-raises the signal to exit with it.
    assert procs["infra2"].stop() == -signal.SIGTERM
    restarted = lab.start(hosts["infra2"], guide_static_flags(2, data_dir=lab.data_dir("infra2")), log="infra2-again")
    restarted.wait_for_log("BootstrapFlagsIgnored", 30)
    assert "ignored: " in restarted.log() and "already holds this member's data" in restarted.log()
    lab.wait_healthy(hosts["infra2"], endpoints())
    lab.assert_put_get(hosts["infra2"], endpoints())


def test_agent_hands_over_to_etcd_in_place(lab):
    hosts, procs = static_cluster(lab)
    proc = procs["infra1"]
    # `ip netns exec` and then etcd-node exec in place: the spawned PID is etcd itself.
    assert os.path.realpath(f"/proc/{proc.pid}/exe") == os.path.realpath(lab.etcd)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.popen.wait(30) == -signal.SIGTERM
    assert "received signal; shutting down" in proc.log()


def test_client_through_gateway_found_by_srv(lab):
    hosts, _ = static_cluster(lab)
    client = lab.net.add_host("client", "10.0.1.20")
    gateway = client.spawn(
        lab.node_argv(["gateway", "--discovery-srv", "example.com", "--listen-addr", "127.0.0.1:23790"]),
        env=lab.env(),
        log_name="gateway",
    )
    gateway.wait_for_log("ready to proxy client requests", 30)
    lab.wait_healthy(client, "127.0.0.1:23790")
    lab.assert_put_get(client, "127.0.0.1:23790")
    assert "infra0.example.com:2379" in gateway.log()
