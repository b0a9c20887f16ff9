"""The operator's etcd client and status path against real etcd members on loopback (TLS, client cert auth)."""

import asyncio

import pytest

from etcd_operator.adapters.etcd import EtcdClient, EtcdError, client_ssl_context
from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.reconcile.observed import Observed, StatefulSetView
from etcd_operator.reconcile.status import compute_status
from tests.integration.netlab import wait_until
from tests.support.binaries import etcd_dir
from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.reconfig import settled

pytestmark = pytest.mark.etcd


@pytest.fixture
def tls_cluster(tmp_path):
    """Three members on 127.0.0.1, https with client and peer certificate auth."""
    pki = LoopbackPKI.make(tmp_path / "pki")
    cluster = LoopbackCluster(tmp_path, pki, token="adapter-test")
    for i in range(cluster.size):
        cluster.start(i)
    ssl_context = client_ssl_context(pki.ca.read_bytes(), str(pki.client_cert), str(pki.client_key))
    client = EtcdClient(cluster.endpoints, ssl_context)
    wait_until(lambda: all(asyncio.run(client.healthy(e)) for e in cluster.endpoints), 60, interval=0.2,
               message="loopback cluster never healthy")  # fmt: skip
    yield client, [cluster.procs[i] for i in range(cluster.size)]
    cluster.close()


def test_status_from_real_members(tls_cluster):
    client, _ = tls_cluster
    view = asyncio.run(client.view())
    assert len(view.members) == 3 and all(m.healthy for m in view.members)
    assert view.leader_id in {m.id for m in view.members}
    status = compute_status(
        EtcdClusterSpec(replicas=3),
        Observed(1, StatefulSetView(3, 3, True), etcd=view),
        None,
        "2026-11-24T00:00:00Z",
    )
    assert status.phase == "Running" and status.leader in {"m0", "m1", "m2"}
    server = etcd_dir().name.removeprefix("etcd-v")
    assert {m.version for m in status.members} == {server}  # what each member runs
    assert status.version == ".".join(server.split(".")[:2]) + ".0" and status.cluster_id  # the cluster version
    assert {m.name for m in status.members} == {"m0", "m1", "m2"}


def test_a_stopped_member_is_reported_unhealthy_and_quorum_still_holds(tls_cluster):
    client, procs = tls_cluster
    procs[2].terminate()
    procs[2].wait(20)
    view = asyncio.run(client.view())
    assert sorted(m.healthy for m in view.members) == [False, True, True]
    status = compute_status(EtcdClusterSpec(replicas=3), Observed(1, StatefulSetView(3, 2, True), etcd=view), None, "t")
    conditions = {c.type: (c.status.value, c.reason) for c in status.conditions}
    assert conditions["Available"] == ("True", "QuorumHealthy")
    assert conditions["Degraded"] == ("True", "MemberUnhealthy") and status.phase == "Degraded"


def test_membership_calls_and_their_refusals(tls_cluster):
    client, _ = tls_cluster

    async def scenario():
        added = await settled(client.member_add, ["https://127.0.0.1:1"], True)
        assert added.is_learner and added.id
        with pytest.raises(EtcdError, match="can only promote a learner member which is in sync with leader"):
            await client.member_promote(added.id)
        await settled(client.member_remove, added.id)
        assert added.id not in {m.id for m in await client.member_list()}
        # Asked again (a member applied it and dropped the connection before answering): done, not refused.
        await client.member_remove(added.id)
        voter = (await client.member_list())[0]
        await client.member_promote(voter.id)  # already a voting member: nothing to do
        with pytest.raises(EtcdError, match="member not found"):
            await client.member_promote(added.id)  # but promoting a member that is not there is refused
        await client.put("/adapter/key", "value")
        leader = (await client.status(client.endpoints[0])).leader_id
        target = next(m.id for m in await client.member_list() if m.id != leader)
        await client.move_leader(target)
        assert (await client.status(client.endpoints[0])).leader_id == target

    asyncio.run(scenario())


def test_client_certificate_is_required(tls_cluster):
    client, _ = tls_cluster
    anonymous = EtcdClient(client.endpoints[:1], None)
    with pytest.raises(EtcdError):
        asyncio.run(anonymous.member_list())
