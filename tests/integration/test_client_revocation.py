"""A user's client certificate revoked on a running member through the operator's own revocation list.

The operator writes the client CA's list (pki.crl) into the Secret the members
mount and points --client-crl-file at it; etcd reads the file on every new client
connection. What the operator's revocation rests on, checked on real etcd of
both supported minors (3.6 parses the list as DER only, 3.5 takes DER or PEM):
the revoked user is refused on the next connection, other users and the operator
are not, and the member keeps running.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from etcd_operator.pki import bundles, crl
from tests.integration.test_cert_rotation import SecretVolume, pem
from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.pki import Issued, make_ca, make_cert

pytestmark = pytest.mark.etcd

CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)


def put(cluster: LoopbackCluster, user: Path, key: str) -> subprocess.CompletedProcess[str]:
    argv = [str(cluster.bin_dir / "etcdctl"), f"--endpoints={cluster.endpoints[0]}", f"--cacert={cluster.pki.ca}",
            f"--cert={user / 'tls.crt'}", f"--key={user / 'tls.key'}", "--command-timeout=5s", "put", key, "v"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize("version_key", ["ETCD_VERSION", "ETCD_V2_VERSION"])
def test_a_revoked_user_is_refused_on_the_next_connection_others_and_the_member_are_not(tmp_path, version_key):
    now = datetime.now(UTC)
    ca = make_ca(now)
    ca_file, _ = ca.write(tmp_path / "pki", "ca")
    member_cert, member_key = make_cert(ca, "member", ["127.0.0.1", "localhost"], now).write(tmp_path / "pki", "member")
    operator_cert, operator_key = make_cert(ca, "etcd-operator", [], now, usages=CLIENT).write(tmp_path / "pki", "op")
    users: dict[str, Issued] = {u: make_cert(ca, u, [], now, usages=CLIENT) for u in ("alice", "bob")}
    dirs = {}
    for user, issued in users.items():
        dirs[user] = tmp_path / user
        SecretVolume(dirs[user]).write(pem(issued))
    authority = bundles.Authority(ca.cert, ca.key)  # type: ignore[arg-type]
    volume = SecretVolume(tmp_path / "server-tls")
    volume.write({crl.FILE: crl.build(authority, {}, now)})
    pki = LoopbackPKI(ca_file, member_cert, member_key, operator_cert, operator_key)
    cluster = LoopbackCluster(tmp_path / "cluster", pki, size=1, token=f"crl-{version_key.lower()}",
                              version_key=version_key,
                              extra_flags=(f"--client-crl-file={volume.path(crl.FILE)}",)).start_all()  # fmt: skip
    try:
        pid = cluster.procs[0].pid
        for user in users:
            assert put(cluster, dirs[user], f"/{user}/before").returncode == 0, user
        bob = users["bob"].cert.serial_number
        volume.write({crl.FILE: crl.build(authority, {bob: datetime.now(UTC)}, datetime.now(UTC))})
        refused = put(cluster, dirs["bob"], "/bob/after")
        assert refused.returncode != 0
        assert put(cluster, dirs["alice"], "/alice/after").returncode == 0
        assert cluster.etcdctl("put", "/operator/after", "v", check=False).returncode == 0
        time.sleep(1)
        assert cluster.procs[0].poll() is None and cluster.procs[0].pid == pid  # no restart
        log = (cluster.workdir / "m0.log").read_text()
        assert "revoked" in log, log[-2000:]
        stored = cluster.etcdctl("get", "/", "--prefix", "--keys-only").stdout.split()
        assert sorted(stored) == ["/alice/after", "/alice/before", "/bob/before", "/operator/after"]
        print(f"{version_key}: bob refused ({refused.stderr.strip()[-120:]}), alice and the operator served, 0 restarts")
    finally:
        cluster.close()
