"""etcd-node as it runs in a StatefulSet pod: identity from the environment, and a member that lost its volume.

The lab serves the names Kubernetes DNS would (pod FQDNs under the headless
Service, the client Service), so the agent runs exactly the code path it runs
in a pod, with real etcd.
"""

import json
import shutil

import pytest

from tests.integration.netlab import wait_until

pytestmark = pytest.mark.etcd

DOMAIN = "main.db.svc.cluster.local"
CLIENT = "http://main-client.db.svc.cluster.local:2379"


def pod_env(lab, ordinal: int) -> dict[str, str]:
    return lab.env(
        ETCD_NODE_POD_NAME=f"main-{ordinal}",
        ETCD_NODE_POD_NAMESPACE="db",
        ETCD_NODE_SERVICE="main",
        ETCD_NODE_INITIAL_MEMBERS="3",
        ETCD_NODE_JOIN_ENDPOINTS=CLIENT,
        ETCD_NODE_TERMINATION_LOG=str(lab.net.tmpdir / f"main-{ordinal}.termination-log"),
        ETCD_DATA_DIR=str(lab.data_dir(f"main-{ordinal}")),
        ETCD_INITIAL_CLUSTER_TOKEN="db-main-6f1c2d3e",
    )


def pods(lab):
    hosts = {}
    for i in range(3):
        hosts[i] = lab.net.add_host(f"p{i}", f"10.0.1.4{i}", hostname=f"main-{i}.{DOMAIN}")
        lab.net.add_a("main-client.db.svc.cluster.local", f"10.0.1.4{i}")
    lab.net.start_dns()
    return hosts


def running_statefulset(lab):
    """Three pods bootstrapped from their environment alone, healthy, with one key written."""
    hosts = pods(lab)
    procs = {i: lab.start(host, [], env=pod_env(lab, i), log=f"main-{i}") for i, host in hosts.items()}
    lab.wait_healthy(hosts[0], CLIENT)
    lab.assert_put_get(hosts[0], CLIENT)
    return hosts, procs


def member_by_name(lab, host, name):
    return next(m for m in lab.members(host, CLIENT) if m.get("name") == name)


def test_statefulset_members_bootstrap_then_a_lost_volume_is_refused_and_healed(lab):
    hosts, procs = running_statefulset(lab)
    client = hosts[0]
    assert {m["name"] for m in lab.members(client, CLIENT)} == {"main-0", "main-1", "main-2"}
    dry = lab.run_node(hosts[1], ["--dry-run"], env=pod_env(lab, 1))
    assert f"--initial-advertise-peer-urls=http://main-1.{DOMAIN}:2380" in dry.stdout, dry.stderr

    # main-2 loses its volume: the agent must not bootstrap a second cluster, and says what to do.
    procs[2].stop()
    old_id = format(int(member_by_name(lab, client, "main-2")["ID"]), "x")
    shutil.rmtree(lab.data_dir("main-2"))
    refused = lab.run_node(hosts[2], [], env=pod_env(lab, 2))
    assert refused.returncode == 1
    assert "MemberAlreadyBootstrapped" in refused.stderr and f"etcdctl member remove {old_id}" in refused.stderr
    assert "has already been bootstrapped" in (lab.net.tmpdir / "main-2.termination-log").read_text()

    # Healing as the operator does it: remove the stale entry, add it back as a learner, start, promote.
    assert lab.etcdctl(client, CLIENT, "member", "remove", old_id).returncode == 0

    def readded() -> bool:
        args = ("member", "add", "main-2", f"--peer-urls=http://main-2.{DOMAIN}:2380", "--learner")
        return lab.etcdctl(client, CLIENT, *args).returncode == 0

    wait_until(readded, 30, interval=0.5, message="member add refused for 30s")
    procs[2] = lab.start(hosts[2], [], env=pod_env(lab, 2), log="main-2-healed")
    new_id = format(int(next(m for m in lab.members(client, CLIENT) if m.get("isLearner"))["ID"]), "x")
    wait_until(lambda: lab.etcdctl(client, CLIENT, "member", "promote", new_id).returncode == 0, 60,
               interval=0.5, message="healed learner never promoted")  # fmt: skip
    assert "initial-cluster-state=existing" in procs[2].log()
    # The data written before the loss is served by the healed member itself.
    own = lab.etcdctl(hosts[2], "http://10.0.1.42:2379", "get", "/scenario/p0", "--print-value-only",
                      "--consistency=s")  # fmt: skip
    assert own.stdout.strip() == f"written-through-{CLIENT}"
    lab.assert_put_get(hosts[2], CLIENT)
    statuses = json.loads(lab.etcdctl(client, CLIENT, "endpoint", "status", "--cluster", "-w", "json").stdout)
    assert len(statuses) == 3 and len({s["Status"]["header"]["cluster_id"] for s in statuses}) == 1
    assert len({s["Status"]["leader"] for s in statuses}) == 1


def test_a_retained_volume_of_a_removed_member_is_set_aside_when_it_is_added_again(lab):
    hosts, procs = running_statefulset(lab)
    client = hosts[0]
    # Scale in: main-2 is removed and its pod goes, but its volume stays (whenScaled: Retain).
    old_id = format(int(member_by_name(lab, client, "main-2")["ID"]), "x")
    first = "http://10.0.1.40:2379"  # not through the Service name: it also points at the member going away

    def removed() -> bool:
        # A remove can be committed yet reported as failed (the answering member left): check the list.
        lab.etcdctl(client, first, "member", "remove", old_id)
        return all(m.get("name") != "main-2" for m in lab.members(client, first))

    wait_until(removed, 30, interval=0.5, message="member remove refused for 30s")
    procs[2].stop()
    # Restarted while not a member: refused, nothing touched (the check runs before etcd; --dry-run polls
    # until every member has applied the removal, since any of them may answer through the client Service).
    wait_until(lambda: "MemberRemoved" in lab.run_node(hosts[2], ["--dry-run"], env=pod_env(lab, 2)).stderr, 20,
               interval=0.5, message="removal never visible to the agent")  # fmt: skip
    refused = lab.run_node(hosts[2], [], env=pod_env(lab, 2))
    assert refused.returncode == 1 and "MemberRemoved" in refused.stderr
    assert lab.data_dir("main-2").exists()
    # Scale out again: the same ordinal is a new member; the old data must not be used, nor lost.
    wait_until(lambda: lab.etcdctl(client, CLIENT, "member", "add", "main-2", f"--peer-urls=http://main-2.{DOMAIN}:2380",
                                   "--learner").returncode == 0, 30, interval=0.5, message="member add refused")  # fmt: skip
    dry = lab.run_node(hosts[2], ["--dry-run"], env=pod_env(lab, 2))
    assert "would be moved" in dry.stderr and "--initial-cluster-state=existing" in dry.stdout
    assert (lab.data_dir("main-2") / "member" / "wal").is_dir()  # a dry run changes nothing
    procs[2] = lab.start(hosts[2], [], env=pod_env(lab, 2), log="main-2-again")
    new_id = format(int(next(m for m in lab.members(client, CLIENT) if m.get("isLearner"))["ID"]), "x")
    wait_until(lambda: lab.etcdctl(client, CLIENT, "member", "promote", new_id).returncode == 0, 60, interval=0.5,
               message="re-added member never promoted")  # fmt: skip
    assert "StaleDataSetAside" in procs[2].log()
    kept = list(lab.data_dir("main-2").parent.glob("main-2.stale-*"))
    assert len(kept) == 1 and (kept[0] / "member" / "wal").is_dir()
    lab.assert_put_get(hosts[2], CLIENT)
