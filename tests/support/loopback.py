"""Real etcd members on 127.0.0.1: https with client and peer certificate auth, one process per member.

For tests that need a real cluster but no network namespaces or DNS: the
operator's etcd client, snapshots and restores. Each cluster gets free ports,
its own data dirs and token; `restart_from` starts members on data dirs made
elsewhere (a restore), with the same names and peer URLs they were made for.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.netlab import wait_until
from tests.support.binaries import etcd_dir
from tests.support.pki import make_ca, make_cert


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass(frozen=True)
class LoopbackPKI:
    """One CA; a member certificate for 127.0.0.1 and a client certificate (CN etcd-operator)."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path) -> LoopbackPKI:
        now = datetime.now(UTC)
        ca = make_ca(now)
        ca_file, _ = ca.write(directory, "ca")
        cert, key = make_cert(ca, "member", ["127.0.0.1", "localhost"], now).write(directory, "member")
        client_cert, client_key = make_cert(ca, "etcd-operator", [], now).write(directory, "client")
        return cls(ca_file, cert, key, client_cert, client_key)

    def etcdctl_flags(self) -> list[str]:
        return [f"--cacert={self.ca}", f"--cert={self.client_cert}", f"--key={self.client_key}"]


@dataclass
class LoopbackCluster:
    workdir: Path
    pki: LoopbackPKI
    size: int = 3
    token: str = "loopback"
    version_key: str = "ETCD_VERSION"
    # Start each member through etcd-node (python -m etcd_node) rather than etcd itself, with this environment.
    agent_env: dict[str, str] | None = None
    extra_flags: tuple[str, ...] = ()  # more etcd flags, e.g. a larger --quota-backend-bytes
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = free_ports(2 * self.size)
        self.client_ports, self.peer_ports = ports[: self.size], ports[self.size :]

    @property
    def bin_dir(self) -> Path:
        return etcd_dir(self.version_key)

    def name(self, i: int) -> str:
        return f"m{i}"

    def data_dir(self, i: int) -> Path:
        return self.workdir / self.name(i)

    def peer_url(self, i: int) -> str:
        return f"https://127.0.0.1:{self.peer_ports[i]}"

    @property
    def endpoints(self) -> list[str]:
        return [f"https://127.0.0.1:{p}" for p in self.client_ports]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{self.name(i)}={self.peer_url(i)}" for i in range(self.size))

    def start(self, i: int, initial_cluster: str = "", state: str = "new") -> None:
        """Start member i; `initial_cluster` and `state` for one that joins a running cluster (state existing)."""
        pki = self.pki
        argv = [
            str(self.bin_dir / "etcd"), "--name", self.name(i), "--data-dir", str(self.data_dir(i)),
            "--listen-client-urls", self.endpoints[i], "--advertise-client-urls", self.endpoints[i],
            "--listen-peer-urls", self.peer_url(i), "--initial-advertise-peer-urls", self.peer_url(i),
            "--initial-cluster", initial_cluster or self.initial_cluster, "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            f"--cert-file={pki.cert}", f"--key-file={pki.key}", f"--trusted-ca-file={pki.ca}", "--client-cert-auth",
            f"--peer-cert-file={pki.cert}", f"--peer-key-file={pki.key}", f"--peer-trusted-ca-file={pki.ca}",
            "--peer-client-cert-auth", *self.extra_flags,
        ]  # fmt: skip
        env = None
        if self.agent_env is not None:
            argv = [sys.executable, "-m", "etcd_node", f"--etcd-bin={argv[0]}", *argv[1:]]
            env = {**os.environ, "PATH": f"{self.bin_dir}:{os.environ['PATH']}", **self.agent_env}
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"{self.name(i)}.log").open("ab")
        self.procs[i] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def start_all(self) -> LoopbackCluster:
        for i in range(self.size):
            self.start(i)
        self.wait_healthy()
        return self

    def stop(self, i: int) -> None:
        proc = self.procs.pop(i, None)
        if proc is not None:
            proc.terminate()
            proc.wait(20)

    def close(self) -> None:
        for i in list(self.procs):
            self.stop(i)

    def etcdctl(self, *args: str, endpoints: list[str] | None = None, check: bool = True, timeout: float = 60):
        argv = [str(self.bin_dir / "etcdctl"), f"--endpoints={','.join(endpoints or self.endpoints)}",
                *self.pki.etcdctl_flags(), *args]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)

    def etcdctl_json(self, *args: str, endpoints: list[str] | None = None) -> dict:
        return json.loads(self.etcdctl(*args, "-w", "json", endpoints=endpoints).stdout)

    def wait_healthy(self, timeout: float = 60) -> None:
        running = [self.endpoints[i] for i in sorted(self.procs)]

        def healthy() -> bool:
            return self.etcdctl("endpoint", "health", endpoints=running, check=False, timeout=20).returncode == 0

        wait_until(healthy, timeout, interval=0.3, message=f"loopback cluster {self.token} never healthy")

    def wait_storage_version(self, timeout: float = 60) -> None:
        """etcd 3.6 records its storage version in the database a few seconds after start (a snapshot taken
        before carries none); wait until every member reports its own. etcd 3.5 has none to wait for."""
        if not self.bin_dir.name.startswith("etcd-v3.6"):
            return

        # Before it is recorded, etcd reports the version it detects from the schema ("3.5.0"), not nothing.
        wanted = ".".join(self.bin_dir.name.removeprefix("etcd-v").split(".")[:2]) + "."

        def recorded() -> bool:
            statuses: list[dict] = self.etcdctl_json("endpoint", "status")  # type: ignore[assignment]
            return all(str(s["Status"].get("storageVersion", "")).startswith(wanted) for s in statuses)

        wait_until(recorded, timeout, interval=0.5, message=f"loopback cluster {self.token}: no storage version")

    def revision(self) -> int:
        return int(self.etcdctl_json("endpoint", "status", endpoints=self.endpoints[:1])[0]["Status"]["header"]["revision"])
