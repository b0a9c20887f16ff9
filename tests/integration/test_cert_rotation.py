"""Leaf certificates replaced under load on a real 3-member TLS cluster: no failed request, no restart.

etcd reads --cert-file/--key-file and the peer pair again for every new TLS
connection, so renewing a leaf needs only new files. The files here are laid
out exactly as the kubelet writes a Secret volume: each name a symlink into
`..data`, itself a symlink to a timestamped directory, swapped in one rename,
so a reader never sees a new certificate beside an old key. This is the fact
the operator's renewal (new Secret data, members left running) rests on.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.loopback import LoopbackCluster, LoopbackPKI
from tests.support.pki import Issued, make_ca, make_cert

pytestmark = pytest.mark.etcd


class SecretVolume:
    """A directory updated the way the kubelet updates a mounted Secret: one atomic symlink swap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.generation = 0

    def write(self, files: dict[str, bytes]) -> None:
        self.generation += 1
        version = self.root / f"..{datetime.now(UTC):%Y_%m_%d_%H_%M_%S}.{self.generation}"
        version.mkdir()
        for name, data in files.items():
            (version / name).write_bytes(data)
            (version / name).chmod(0o600)
        tmp = self.root / "..data_tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")

    def path(self, name: str) -> Path:
        return self.root / name


def pem(issued: Issued) -> dict[str, bytes]:
    key = issued.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())  # fmt: skip
    return {"tls.crt": issued.cert.public_bytes(serialization.Encoding.PEM), "tls.key": key}


def served_serial(port: int, pki: LoopbackPKI) -> int:
    """The serial of the certificate a member presents on a new connection (client or peer port)."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_leaf_certificates_replaced_under_a_writer_are_served_without_restart(tmp_path):
    now = datetime.now(UTC)
    ca = make_ca(now)
    ca_file, _ = ca.write(tmp_path / "pki", "ca")
    client_cert, client_key = make_cert(ca, "etcd-operator", [], now).write(tmp_path / "pki", "client")
    volume = SecretVolume(tmp_path / "member-tls")
    first = make_cert(ca, "member", ["127.0.0.1", "localhost"], now)
    volume.write(pem(first))
    pki = LoopbackPKI(ca_file, volume.path("tls.crt"), volume.path("tls.key"), client_cert, client_key)
    cluster = LoopbackCluster(tmp_path / "cluster", pki, token="rotation").start_all()
    pids = {i: p.pid for i, p in cluster.procs.items()}
    failures: list[str] = []
    acked = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal acked
        n = 0
        while not stop.is_set():
            # A new etcdctl per write: every request is a new TLS connection, the case that picks up new files.
            done = cluster.etcdctl("put", f"/rotation/{n:05d}", str(n), check=False, timeout=20)
            if done.returncode == 0:
                acked += 1
            else:
                failures.append(done.stderr.strip()[-200:])
            n += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert {served_serial(p, pki) for p in cluster.client_ports} == {first.cert.serial_number}
        renewals = 0
        for _ in range(3):
            time.sleep(2)
            renewed = make_cert(ca, "member", ["127.0.0.1", "localhost"], datetime.now(UTC))
            volume.write(pem(renewed))
            renewals += 1
            serial = renewed.cert.serial_number
            assert {served_serial(p, pki) for p in cluster.client_ports} == {serial}
            assert {served_serial(p, pki) for p in cluster.peer_ports} == {serial}  # peers too, for new connections
        time.sleep(2)
    finally:
        stop.set()
        thread.join(30)
    try:
        assert not failures, f"{len(failures)} requests failed during the renewals, e.g. {failures[:3]}"
        assert acked > 20
        assert {i: p.pid for i, p in cluster.procs.items()} == pids and all(p.poll() is None for p in cluster.procs.values())
        members = cluster.etcdctl_json("endpoint", "status")
        assert len(members) == 3 and len({m["Status"]["leader"] for m in members}) == 1
        print(f"renewals: {renewals}; writes acknowledged: {acked}; failed: 0; restarts: 0")
    finally:
        cluster.close()
