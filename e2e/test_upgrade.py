"""Version upgrades and template rollouts orchestrated by the operator, on a real node.

One 3-member cluster at etcd 3.5 with a writer running: refused version edits
touch no pod; 3.5 -> 3.6 restarts each member exactly once, the leader last,
while the cluster version stays 3.5 until the end; a resources change rolls
one member at a time with quorum kept. No acknowledged write is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.support import Kube, create_namespace, etcd_cluster, patch_spec, wait_settled, wait_until
from e2e.writer import assert_no_acknowledged_write_lost, run_under_writer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

NAME = "upg"
NAMESPACE = "e2e-upgrade"
OLD, NEW = "3.5.35", "3.6.16"


@pytest.fixture(scope="module")
def cluster(kube: Kube, operator: str) -> Iterator[str]:
    kube.run("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s", timeout=150)
    create_namespace(kube, NAMESPACE)
    run_under_writer(kube, NAMESPACE, etcd_cluster(NAME, replicas=3, version=OLD))
    yield NAMESPACE
    kube.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def pods(kube: Kube) -> dict[str, dict[str, Any]]:
    items = kube.items(NAMESPACE, "pods", f"app.kubernetes.io/instance={NAME}")
    return {p["metadata"]["name"]: p for p in items}


def uids(kube: Kube) -> dict[str, str]:
    return {name: p["metadata"]["uid"] for name, p in pods(kube).items()}


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def status(kube: Kube) -> dict[str, Any]:
    return (kube.get(NAMESPACE, "etcdcluster", NAME) or {}).get("status") or {}


def test_refused_version_edits_touch_no_pod(kube: Kube, cluster: str) -> None:
    before = uids(kube)
    for version, words in (("3.7.0", "one minor version at a time"), ("3.5.30", "downgrades are not supported")):
        proc = kube.run("-n", NAMESPACE, "patch", "etcdcluster", NAME, "--type=merge", "-p",
                        json.dumps({"spec": {"version": version}}), check=False)  # fmt: skip
        assert proc.returncode != 0 and words in proc.stderr and "spec.version" in proc.stderr, proc.stderr
    time.sleep(12)  # longer than an idle pass: nothing may have been restarted
    assert uids(kube) == before
    wait_settled(kube, NAMESPACE, NAME, replicas=3)


def test_upgrade_restarts_each_member_once_leader_last(kube: Kube, cluster: str) -> None:
    first = uids(kube)
    leader = status(kube)["leader"]
    patch_spec(kube, NAMESPACE, NAME, version=NEW)
    seen: dict[str, list[str]] = {name: [uid] for name, uid in first.items()}
    order: list[str] = []
    mixed_versions: list[str | None] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for name, uid in uids(kube).items():
            if uid not in seen.setdefault(name, []):
                seen[name].append(uid)
                order.append(name)
        current = status(kube)
        versions = {m.get("version") for m in current.get("members") or []}
        if OLD in versions:
            mixed_versions.append(current.get("version"))
        if versions == {NEW} and all(len(v) == 2 for v in seen.values()):
            break
        time.sleep(1)
    settled = wait_settled(kube, NAMESPACE, NAME, replicas=3)
    assert {name: len(v) for name, v in seen.items()} == {f"{NAME}-{i}": 2 for i in range(3)}, seen
    assert sorted(order) == sorted(first) and order[-1] == leader, (order, leader)  # the leader last
    assert {m.get("version") for m in settled["members"]} == {NEW}
    # The cluster version moves once every member runs 3.6: etcd's leader decides that a few seconds
    # later, and the next pass reports it.
    wait_until("cluster version 3.6.0 in status", lambda: status(kube).get("version") == "3.6.0", timeout=60)
    assert mixed_versions and set(mixed_versions) == {"3.5.0"}, set(mixed_versions)
    for pod in pods(kube).values():
        assert pod["spec"]["containers"][0]["image"].endswith(f":{NEW}")
        assert all(c["restartCount"] == 0 for c in pod["status"]["containerStatuses"])
    acked = assert_no_acknowledged_write_lost(kube, NAMESPACE, NAME)
    print(f"upgrade {OLD} -> {NEW}: restarted {order}, {acked} acknowledged writes, 0 lost")


def test_a_resources_change_rolls_one_member_at_a_time(kube: Kube, cluster: str) -> None:
    first = uids(kube)
    patch_spec(kube, NAMESPACE, NAME, resources={"requests": {"cpu": "50m"}})
    worst_ready = 3
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        current = pods(kube)
        worst_ready = min(worst_ready, sum(ready(p) for p in current.values() if not p["metadata"].get("deletionTimestamp")))
        done = all(uid != first.get(name) for name, uid in uids(kube).items()) and len(current) == 3
        if done and all(ready(p) for p in current.values()):
            break
        time.sleep(0.5)
    wait_settled(kube, NAMESPACE, NAME, replicas=3)
    assert worst_ready >= 2, f"{worst_ready} members ready at worst: the rollout took more than one at a time"
    for pod in pods(kube).values():
        assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "50m"
    acked = assert_no_acknowledged_write_lost(kube, NAMESPACE, NAME)
    print(f"resources rollout: at worst {worst_ready} of 3 members ready, {acked} acknowledged writes, 0 lost")
