"""Per-user key prefixes (tls.clients[].access) through etcd auth, on real etcd of both supported minors.

The operator's own planner (reconcile.auth) and etcd client (adapters.etcd) turn
auth on and off exactly as a pass does, with certificates from the operator's
own issuer: its gateway certificate has no CommonName (etcd's gateway refuses
one once auth is on) and a password; its etcd-operator certificate is what the
backup Job presents over gRPC. Users present their certificates to etcdctl,
where the CommonName is the etcd user.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from etcd_node import join
from etcd_node.httpjson import TLSClient
from etcd_operator.adapters.etcd import EtcdClient, EtcdError, client_ssl_context
from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.pki import certs
from etcd_operator.reconcile import auth
from tests.integration.netlab import wait_until
from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.pki import make_ca, make_cert
from tests.support.reconfig import settled
from tests.support.snapshot_cli import agent, backup_args

pytestmark = pytest.mark.etcd

PASSWORD = "not-a-real-secret-but-a-test-one"


def operator_cert(ca, directory: Path, common_name: str, now: datetime) -> tuple[Path, Path]:
    """A client certificate as pki.bundles issues them (common_name "" for the gateway certificate)."""
    key = certs.new_key()
    cert = certs.issue(ca.cert, ca.key, key, common_name, [], now, certs.x509.random_serial_number(),
                       usages=certs.CLIENT_ONLY)  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.crt").write_bytes(certs.cert_pem(cert))
    (directory / "tls.key").write_bytes(certs.key_pem(key))
    return directory / "tls.crt", directory / "tls.key"


def spec(clients: list[dict]) -> EtcdClusterSpec:
    return EtcdClusterSpec.model_validate({"tls": {"clients": clients}})


async def converge(client: EtcdClient, desired: auth.DesiredAccess, passes: int = 6) -> list[list[str]]:
    """Passes of the planner and the adapter, as the controller runs them, until etcd matches; the calls of each."""
    made = []
    for _ in range(passes):
        planned = auth.plan_auth(desired, await client.auth_view(desired))
        assert planned.problem is None, planned.problem
        if planned.matched:
            return made
        made.append([auth.describe(c) for c in planned.calls[: auth.MAX_CALLS]])
        for call in planned.calls[: auth.MAX_CALLS]:
            await client.auth_call(call)
    raise AssertionError(f"etcd auth never matched after {made}")


@pytest.mark.parametrize("version_key", ["ETCD_VERSION", "ETCD_V2_VERSION"])
def test_prefix_limited_users_full_users_and_the_operator_with_auth_on_then_off(tmp_path, version_key, monkeypatch):
    now = datetime.now(UTC)
    ca = make_ca(now)
    ca_file, _ = ca.write(tmp_path / "pki", "ca")
    member_cert, member_key = make_cert(ca, "member", ["127.0.0.1", "localhost"], now).write(tmp_path / "pki", "member")
    op_cert, op_key = operator_cert(ca, tmp_path / "client-tls", "etcd-operator", now)
    gw_cert, gw_key = operator_cert(ca, tmp_path / "gateway-client-tls", "", now)
    users = {u: operator_cert(ca, tmp_path / f"user-{u}", u, now) for u in ("alice", "bob", "carol")}
    pki = LoopbackPKI(ca_file, member_cert, member_key, op_cert, op_key)
    cluster = LoopbackCluster(tmp_path / "cluster", pki, size=3, token=f"auth-{version_key.lower()}",
                              version_key=version_key).start_all()  # fmt: skip
    client = EtcdClient(cluster.endpoints, client_ssl_context(ca_file.read_bytes(), str(gw_cert), str(gw_key)),
                        credentials=(auth.OPERATOR_USER, PASSWORD))  # fmt: skip

    def etcdctl(user: str, *args: str) -> subprocess.CompletedProcess[str]:
        cert, key = users[user]
        argv = [str(cluster.bin_dir / "etcdctl"), f"--endpoints={cluster.endpoints[0]}", f"--cacert={ca_file}",
                f"--cert={cert}", f"--key={key}", "--command-timeout=5s", *args]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    try:
        limited = spec([{"name": "alice", "access": [{"prefix": "/app/", "permission": "readwrite"},
                                                     {"prefix": "/shared/", "permission": "read"}]},
                        {"name": "bob"}])  # fmt: skip
        cluster.etcdctl("put", "/shared/config", "v")
        first = asyncio.run(converge(client, auth.desired_access(limited)))
        assert first[-1][-1] == "enable auth" and asyncio.run(client.auth_status())[0]
        assert asyncio.run(converge(client, auth.desired_access(limited))) == []  # idempotent: nothing more to call

        # alice: her prefixes only, with the permission each grants.
        assert etcdctl("alice", "put", "/app/x", "1").returncode == 0
        assert etcdctl("alice", "get", "/app/x", "--print-value-only").stdout.strip() == "1"
        assert etcdctl("alice", "get", "/shared/config", "--print-value-only").stdout.strip() == "v"
        for refused in (etcdctl("alice", "put", "/other", "1"), etcdctl("alice", "put", "/shared/config", "w"),
                        etcdctl("alice", "get", "/", "--prefix")):  # fmt: skip
            assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr
        # bob (no access list): everything, as before auth; carol has a valid certificate but no etcd user.
        assert etcdctl("bob", "put", "/other", "1").returncode == 0
        assert etcdctl("bob", "get", "/", "--prefix", "--keys-only").stdout.split() == ["/app/x", "/other", "/shared/config"]
        assert etcdctl("carol", "put", "/other", "2").returncode != 0

        # The operator: membership, status and alarms through the gateway with its token; a snapshot over gRPC.
        async def operator_calls() -> None:
            view = await client.view()
            assert len(view.members) == 3 and all(m.healthy for m in view.members)
            added = await settled(client.member_add, ["https://127.0.0.1:1"], True)
            with pytest.raises(EtcdError, match="can only promote a learner member which is in sync with leader"):
                await client.member_promote(added.id)  # past the permission check: refused for being behind
            await settled(client.member_remove, added.id)
            assert added.id not in {m.id for m in await client.member_list()}
            await client.put("/operator/key", "v")

        asyncio.run(operator_calls())
        done, termination = agent("backup", [*backup_args(cluster, tmp_path / "scratch"), f"--path={tmp_path / 's.db'}"],
                                  tmp_path, version_key=version_key)  # fmt: skip
        assert done.returncode == 0, (done.stderr, termination)
        # The agent's member list before a member starts: the gateway refuses its certificate, etcdctl serves it.
        monkeypatch.setenv("ETCD_NODE_ETCDCTL", str(cluster.bin_dir / "etcdctl"))  # in the node image: on PATH
        members = join.member_list(cluster.endpoints[:1], TLSClient(str(ca_file), str(member_cert), str(member_key)))
        assert sorted(m.name for m in members) == ["m0", "m1", "m2"]
        # A user's certificate on the gateway: refused by etcd, whatever the user may do over gRPC.
        as_bob = EtcdClient(cluster.endpoints[:1], client_ssl_context(ca_file.read_bytes(), *map(str, users["bob"])))
        with pytest.raises(EtcdError, match="CommonName"):
            asyncio.run(as_bob.member_list())

        # Removing bob from tls.clients deletes his etcd user and role: his certificate is worth nothing now.
        alone = spec([limited.tls.clients[0].model_dump(by_alias=True)])
        assert asyncio.run(converge(client, auth.desired_access(alone))) == [["delete user bob", "delete role user-bob"]]
        assert "permission denied" in etcdctl("bob", "put", "/other", "3").stderr or etcdctl("bob", "get", "/other").returncode

        # No user with access: auth off, and every user and role the operator made deleted.
        off = spec([{"name": "alice"}])
        calls = asyncio.run(converge(client, auth.desired_access(off)))
        assert calls[0][0] == "disable auth"
        assert asyncio.run(client.auth_status())[0] is False
        view = asyncio.run(client.auth_view(auth.desired_access(off)))
        assert view.names == frozenset() and not view.owned_roles and set(view.roles) <= {"root"}
        assert etcdctl("alice", "put", "/other", "4").returncode == 0  # full access again, without auth
        wait_until(lambda: all(asyncio.run(client.healthy(e)) for e in cluster.endpoints), 30, interval=0.5,
                   message="members unhealthy after auth off")  # fmt: skip
        print(f"{version_key}: calls to turn auth on {sum(map(len, first))} in {len(first)} pass(es), "
              f"to turn it off {sum(map(len, calls))}")
    finally:
        asyncio.run(client.close())
        cluster.close()
