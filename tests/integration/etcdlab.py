"""The clustering guide's topology with real etcd: infra0..2 at 10.0.1.10-12, example.com in DNS.

Members are started with `python -m etcd_node` inside their own network
namespace, so every scenario runs the agent exactly as a person would on three
machines; assertions go through a real etcdctl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.netlab import Host, NetLab, Proc, wait_until

GUIDE_IPS = {f"infra{i}": f"10.0.1.1{i}" for i in range(4)}
TOKEN = "etcd-cluster-1"


@dataclass(frozen=True)
class ClientTLS:
    """How etcdctl reaches the cluster: CA + client cert, or skip verification (auto TLS)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    insecure_skip_verify: bool = False

    def flags(self) -> list[str]:
        out = [f"--cacert={self.ca}"] if self.ca else []
        if self.cert:
            out += [f"--cert={self.cert}", f"--key={self.key}"]
        if self.insecure_skip_verify:
            out.append("--insecure-skip-tls-verify")
        return out


@dataclass
class EtcdLab:
    net: NetLab
    etcd_dir: Path
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def etcd(self) -> str:
        return str(self.etcd_dir / "etcd")

    def add_guide_hosts(self, count: int = 3, srv: str | None = "http", srv_name: str = "") -> dict[str, Host]:
        """infra0..count-1 with A records; SRV records for server and client ports when `srv` is set."""
        for i in range(count):
            name = f"infra{i}"
            self.hosts[name] = self.net.add_host(name, GUIDE_IPS[name], hostname=f"{name}.{self.net.domain}")
            if srv:
                self.add_srv_records(name, tls=srv == "https", srv_name=srv_name)
        self.net.start_dns()
        return self.hosts

    def add_srv_records(self, name: str, tls: bool, srv_name: str = "") -> None:
        suffix = ("-ssl" if tls else "") + (f"-{srv_name}" if srv_name else "")
        target = f"{name}.{self.net.domain}"
        self.net.add_srv(f"_etcd-server{suffix}._tcp.{self.net.domain}", target, 2380)
        self.net.add_srv(f"_etcd-client{suffix}._tcp.{self.net.domain}", target, 2379)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.etcd_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "ETCD_NODE_ETCD_BIN": self.etcd,
            "PYTHONUNBUFFERED": "1",
        }
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return env | extra

    def data_dir(self, name: str) -> Path:
        return self.net.tmpdir / "data" / name

    def node_argv(self, flags: list[str]) -> list[str]:
        return [sys.executable, "-m", "etcd_node", *flags]

    def start(self, host: Host, flags: list[str], env: dict[str, str] | None = None, log: str = "") -> Proc:
        """Start a member through the agent (which execs etcd in place)."""
        return host.spawn(self.node_argv(flags), env=env or self.env(), log_name=log or f"{host.name}-etcd-node")

    def run_node(self, host: Host, flags: list[str], env: dict[str, str] | None = None, timeout: float = 30):
        """Run the agent to completion: for --dry-run and for checks that must stop it before etcd."""
        return host.run(self.node_argv(flags), env=env or self.env(), timeout=timeout)

    def etcdctl(self, host: Host, endpoints: str, *args: str, tls: ClientTLS | None = None, timeout: float = 30):
        argv = [
            str(self.etcd_dir / "etcdctl"),
            f"--endpoints={endpoints}",
            "--dial-timeout=2s",
            "--command-timeout=5s",
            *(tls.flags() if tls else []),
            *args,
        ]
        return host.run(argv, env=self.env(), timeout=timeout)

    def members(self, host: Host, endpoints: str, tls: ClientTLS | None = None) -> list[dict]:
        result = self.etcdctl(host, endpoints, "member", "list", "-w", "json", tls=tls)
        if result.returncode != 0:
            raise AssertionError(f"member list failed: {result.stderr}")
        return json.loads(result.stdout).get("members", [])

    def wait_healthy(self, host: Host, endpoints: str, tls: ClientTLS | None = None, timeout: float = 60) -> None:
        def healthy() -> bool:
            return self.etcdctl(host, endpoints, "endpoint", "health", tls=tls).returncode == 0

        wait_until(healthy, timeout, interval=0.3, message=f"cluster at {endpoints} not healthy")

    def assert_put_get(self, host: Host, endpoints: str, tls: ClientTLS | None = None, members: int = 3) -> None:
        """The scenario's end: a write and a read through etcdctl, and `members` started voting members."""
        key, value = f"/scenario/{host.name}", f"written-through-{endpoints}"
        put = self.etcdctl(host, endpoints, "put", key, value, tls=tls)
        assert put.returncode == 0 and put.stdout.strip() == "OK", put.stderr
        got = self.etcdctl(host, endpoints, "get", key, "--print-value-only", tls=tls)
        assert got.returncode == 0 and got.stdout.strip() == value, got.stderr
        listed = self.members(host, endpoints, tls)
        assert len(listed) == members, listed
        assert all(m.get("name") and not m.get("isLearner") for m in listed), listed


def guide_static_flags(i: int, scheme: str = "http", data_dir: Path | None = None, token: str = TOKEN) -> list[str]:
    """The guide's static command for infraN, plus a data dir under the lab."""
    ip = GUIDE_IPS[f"infra{i}"]
    cluster = ",".join(f"infra{j}={scheme}://{GUIDE_IPS[f'infra{j}']}:2380" for j in range(3))
    flags = [
        "--name", f"infra{i}",
        "--initial-advertise-peer-urls", f"{scheme}://{ip}:2380",
        "--listen-peer-urls", f"{scheme}://{ip}:2380",
        "--listen-client-urls", f"{scheme}://{ip}:2379,{scheme}://127.0.0.1:2379",
        "--advertise-client-urls", f"{scheme}://{ip}:2379",
        "--initial-cluster-token", token,
        "--initial-cluster", cluster,
        "--initial-cluster-state", "new",
    ]  # fmt: skip
    if data_dir is not None:
        flags += ["--data-dir", str(data_dir)]
    return flags


def endpoints(scheme: str = "http", count: int = 3) -> str:
    return ",".join(f"{scheme}://{GUIDE_IPS[f'infra{i}']}:2379" for i in range(count))


def exited(proc: Proc, timeout: float = 30) -> int:
    """Exit code of a process expected to stop by itself (a failed check)."""
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{proc} still running; log:\n{proc.log()[-3000:]}") from exc


def add_walk_hosts(lab: EtcdLab, members: int = 5) -> tuple[dict[str, dict[str, str]], Host, Path]:
    """Hosts for a membership walk: main-N.example.com at 10.0.1.20+N, a controller host, a work dir.

    Returns the driver's host map (ordinal -> namespace and address), the
    controller host the driver runs on, and the work directory it keeps state in.
    """
    hosts = {}
    for ordinal in range(members):
        host = lab.net.add_host(f"m{ordinal}", f"10.0.1.{20 + ordinal}", hostname=f"main-{ordinal}.example.com")
        hosts[str(ordinal)] = {"ns": host.ns, "ip": host.ip}
    ctl = lab.net.add_host("ctl", "10.0.1.30")
    lab.net.start_dns()
    workdir = lab.net.tmpdir / "walk"
    workdir.mkdir()
    return hosts, ctl, workdir


def run_walk(ctl: Host, config: dict, workdir: Path, env: dict[str, str], timeout: float = 300):
    """Run tests/integration/membership_driver.py inside the controller host with `config`."""
    (workdir / "config.json").write_text(json.dumps(config))
    argv = [sys.executable, "-m", "tests.integration.membership_driver", str(workdir / "config.json")]
    return ctl.run(argv, env=env, timeout=timeout)
