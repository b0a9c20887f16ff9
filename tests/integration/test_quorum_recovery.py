"""Quorum loss on real etcd: told from what the survivor says, and recovered from it through etcd-node.

Three members started through the agent hold data; two lose their data dirs
(stopped, directories deleted), so the third cannot elect a leader. The
operator's own client, asked member by member, must see exactly that: one
member answering with no leader, three voting members in its membership.
Then the survivor is restarted with the recovery request the operator would
mount: it forces a one-member cluster once, keeps every key and the cluster
ID, a member of the old cluster refuses to start while the survivor does not
answer, the others rejoin through the runtime API as learners, and a restart
of the survivor with the request still mounted does not force again.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from etcd_operator.adapters.etcd import EtcdClient, EtcdError, client_ssl_context
from etcd_operator.reconcile.observed import Observed, PodView, StatefulSetView
from etcd_operator.reconcile.recovery import quorum_loss
from tests.integration.netlab import wait_until
from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.reconfig import settled
from tests.support.snapshot_cli import all_keys

pytestmark = pytest.mark.etcd


def client(cluster: LoopbackCluster, endpoints: list[str]) -> EtcdClient:
    pki = cluster.pki
    return EtcdClient(endpoints, client_ssl_context(pki.ca.read_bytes(), str(pki.client_cert), str(pki.client_key)))


def cluster_id(cluster: LoopbackCluster, endpoint: str) -> int:
    return int(cluster.etcdctl_json("member", "list", endpoints=[endpoint])["header"]["cluster_id"])


async def _survey(cluster: LoopbackCluster):
    async with client(cluster, cluster.endpoints[:1]) as etcd:
        with pytest.raises(EtcdError):
            await etcd.view()  # the member list needs quorum
        return await etcd.survey(cluster.endpoints)


async def _add_back(cluster: LoopbackCluster, i: int, members: str) -> None:
    """What the operator's planner does for a missing member: add as learner, start it, promote it."""
    async with client(cluster, cluster.endpoints[:1]) as etcd:
        added = await settled(etcd.member_add, [cluster.peer_url(i)], True, timeout=60)
        cluster.start(i, initial_cluster=f"{members},{cluster.name(i)}={cluster.peer_url(i)}", state="existing")

        async def promoted() -> bool:
            try:
                await etcd.member_promote(added.id)
            except EtcdError:
                return False
            return True

        for _ in range(120):
            if await promoted():
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"learner {cluster.name(i)} was never promoted")


@pytest.mark.parametrize("version_key", ["ETCD_VERSION", "ETCD_V2_VERSION"])
def test_quorum_loss_is_told_and_recovered_from_the_survivor_once(tmp_path, version_key):
    request_file = tmp_path / "recovery" / "recovery.json"  # absent until the recovery: the normal case
    env = {"ETCD_NODE_RECOVERY_FILE": str(request_file)}
    live = LoopbackCluster(tmp_path / "live", LoopbackPKI.make(tmp_path / "pki"), token="live",
                          version_key=version_key, agent_env=env).start_all()  # fmt: skip
    try:
        for i in range(100):
            live.etcdctl("put", f"/data/k{i:03d}", f"v{i}")
        expected = all_keys(live)
        old_cluster = cluster_id(live, live.endpoints[0])
        survivor_id = int(live.etcdctl_json("endpoint", "status", endpoints=live.endpoints[:1])[0]["Status"]
                          ["header"]["member_id"])  # fmt: skip

        for i in (1, 2):  # their volumes are lost
            live.stop(i)
            shutil.rmtree(live.data_dir(i))
        survey = asyncio.run(_survey(live))
        assert set(survey.answers) == {survivor_id} and survey.answers[survivor_id].leader_id == 0
        assert survey.members is not None and len(survey.members) == 3
        pods = (PodView("m0", 0), PodView("m1", 1), PodView("m2", 2))
        loss = quorum_loss(Observed(1, StatefulSetView(3, 0, True), pods, survey=survey, ever_available=True))
        assert loss is not None and [s.name for s in loss.survivors] == ["m0"] and loss.silent == ("m1", "m2")
        assert loss.survivors[0].raft_index > 0

        # The operator stops every member and mounts the request naming the survivor.
        live.close()
        request_file.parent.mkdir()
        request_file.write_text(json.dumps({"requestID": "r1", "member": "m0", "ordinal": 0}))
        live.start(0)
        wait_until(lambda: live.etcdctl("endpoint", "health", endpoints=live.endpoints[:1], check=False).returncode
                   == 0, 60, message="the survivor never answered as a one-member cluster")  # fmt: skip
        members = live.etcdctl_json("member", "list", endpoints=live.endpoints[:1])["members"]
        assert [int(m["ID"]) for m in members] == [survivor_id]
        assert cluster_id(live, live.endpoints[0]) == old_cluster
        assert all_keys(live) == expected  # every write it had applied
        assert json.loads((live.workdir / "m0.recoveries.json").read_text()) == {"applied": ["r1"]}

        # A member of the old cluster started while the request is mounted and the member list cannot be read
        # (here: no join endpoints) never runs: it would restart or bootstrap the old membership.
        live.start(1)
        fenced = live.procs.pop(1)
        assert fenced.wait(60) != 0
        assert "RecoveryPending" in (live.workdir / "m1.log").read_text()
        assert not live.data_dir(1).exists() or not any(live.data_dir(1).iterdir())

        # Recorded; the operator deletes the request, and the others rejoin as new members through the runtime
        # API, one at a time.
        request_file.unlink()
        asyncio.run(_add_back(live, 1, f"m0={live.peer_url(0)}"))
        asyncio.run(_add_back(live, 2, f"m0={live.peer_url(0)},m1={live.peer_url(1)}"))
        live.wait_healthy()
        live.etcdctl("put", "/after/recovery", "kept")

        # The survivor restarts with the request still mounted (the kubelet is late to remove it): a plain
        # restart, the membership stays.
        request_file.write_text(json.dumps({"requestID": "r1", "member": "m0", "ordinal": 0}))
        live.stop(0)
        live.start(0)
        live.wait_healthy()
        members = live.etcdctl_json("member", "list")["members"]
        assert sorted(m["name"] for m in members) == ["m0", "m1", "m2"] and not any(m.get("isLearner") for m in members)
        assert all_keys(live, "/data/") == expected and all_keys(live, "/after/") == {"/after/recovery": "kept"}
        assert "force-new-cluster" in (live.workdir / "m0.log").read_text()
    finally:
        live.close()
