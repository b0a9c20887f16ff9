"""Tests for the NetLab real-network harness (namespaces + dnsmasq).

These run real processes in real network namespaces, so they belong to the
``etcd`` tier and need root, iproute2 and dnsmasq (see require_netlab).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.netlab import (
    NETNS_ETC_DIR,
    REGISTRY_DIR,
    Host,
    NetLab,
    NetLabError,
    ProcessExitedError,
    cleanup_stale,
    require_netlab,
    wait_until,
)
from tests.integration.netlab import netlab as _netlab_fixture  # noqa: F401  (registers fixture "netlab")

pytestmark = pytest.mark.etcd

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBNET = ipaddress.IPv4Network("10.0.1.0/24")
PY = sys.executable  # the interpreter running pytest: has dnspython, same inside every namespace


def clustering_guide(lab: NetLab, *, with_dns: bool = True) -> dict[str, Host]:
    """etcd clustering guide topology: infra0..2 at 10.0.1.10-12 plus SRV records."""
    hosts = {}
    for i in range(3):
        hosts[f"infra{i}"] = lab.add_host(f"infra{i}", f"10.0.1.1{i}", f"infra{i}.example.com")
        lab.add_srv("_etcd-server._tcp.example.com", f"infra{i}.example.com", 2380)
    if with_dns:
        lab.start_dns()
    return hosts


def root_ns_snapshot() -> dict[str, set[str]]:
    """Links, IPv4 addresses and IPv4 routes of the root namespace (where pytest runs)."""

    def ip(*args: str) -> list[str]:
        return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout.splitlines()

    return {
        "links": {line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link", "show")},
        "addrs": {" ".join(line.split()[1:4]) for line in ip("-o", "-4", "addr", "show")},
        "routes": set(ip("-4", "route", "show", "table", "all")),
    }


def ns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def pid_gone(pid: int) -> bool:
    """Dead or a zombie waiting for its reaper (orphans are reaped by pid 1, not by us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")


TCP_ECHO_SERVER = textwrap.dedent(
    """
    import socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], int(sys.argv[2])))
    srv.listen()
    print("listening", flush=True)
    while True:
        conn, peer = srv.accept()
        data = conn.recv(100)
        conn.sendall(b"pong:" + data + b" from " + peer[0].encode())
        conn.close()
    """
)

TCP_CLIENT = textwrap.dedent(
    """
    import socket, sys
    try:
        conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    except OSError as exc:
        print(type(exc).__name__)
        sys.exit(1)
    conn.sendall(b"ping")
    print(conn.recv(100).decode())
    """
)


# --------------------------------------------------------------------------- DNS


def test_dns_a_and_srv_records_resolve_inside_namespace(netlab: NetLab) -> None:
    pytest.importorskip("dns.resolver")
    hosts = clustering_guide(netlab)

    resolv = hosts["infra1"].run(["cat", "/etc/resolv.conf"], check=True).stdout
    assert "nameserver 10.0.1.1" in resolv.splitlines()

    # Resolver() reads the namespace's /etc/resolv.conf: proves the bind mount *and* dnsmasq.
    script = textwrap.dedent(
        """
        import json, socket
        import dns.resolver
        r = dns.resolver.Resolver()
        out = {"nameservers": [str(n) for n in r.nameservers]}
        out["a"] = sorted(x.address for x in r.resolve("infra0.example.com", "A"))
        out["srv"] = sorted(
            [str(x.target).rstrip("."), x.port]
            for x in r.resolve("_etcd-server._tcp.example.com", "SRV")
        )
        out["short"] = sorted(x.address for x in r.resolve("infra2", "A", search=True))
        def nx(name):
            try:
                r.resolve(name, "A")
            except dns.resolver.NXDOMAIN:
                return True
            return False
        out["nx_unknown"] = nx("infra9.example.com")
        out["nx_subdomain"] = nx("foo.infra0.example.com")
        out["gai"] = sorted({ai[4][0] for ai in socket.getaddrinfo("infra2.example.com", 2380, socket.AF_INET)})
        print(json.dumps(out))
        """
    )
    res = hosts["infra1"].run([PY, "-c", script], check=True, timeout=30)
    out = json.loads(res.stdout)
    assert out["nameservers"] == ["10.0.1.1"]
    assert out["a"] == ["10.0.1.10"]
    assert out["srv"] == [[f"infra{i}.example.com", 2380] for i in range(3)]
    assert out["short"] == ["10.0.1.12"], "search domain from resolv.conf not applied"
    assert out["nx_unknown"] is True
    assert out["nx_subdomain"] is True, "A records must be exact, not wildcard (--address) matches"
    assert out["gai"] == ["10.0.1.12"], "glibc resolver (getaddrinfo) must use the lab DNS too"
    # dnsmasq really served it, to a lab address.
    assert "query[SRV] _etcd-server._tcp.example.com from 10.0.1.11" in netlab.dns_proc.log()  # type: ignore[union-attr]


def test_start_dns_again_applies_added_and_removed_records(netlab: NetLab) -> None:
    hosts = clustering_guide(netlab)
    infra0 = hosts["infra0"]

    def lookup(name: str) -> str:
        return infra0.run(["getent", "ahostsv4", name]).stdout

    assert "10.0.1.50" not in lookup("extra.example.com")
    first_dns = netlab.dns_proc
    netlab.add_a("extra.example.com", "10.0.1.50")
    assert "10.0.1.50" not in lookup("extra.example.com"), "records must not change until start_dns()"

    netlab.start_dns()
    assert first_dns is not None and first_dns.returncode is not None, "old dnsmasq must be stopped"
    assert "10.0.1.50" in lookup("extra.example.com")

    netlab.remove_records("extra.example.com")
    netlab.remove_records("infra2.example.com")
    netlab.start_dns()
    assert lookup("extra.example.com") == ""
    assert lookup("infra2.example.com") == ""
    assert "10.0.1.10" in lookup("infra0.example.com")
    assert [r.target for r in netlab.srv_records] == ["infra0.example.com", "infra1.example.com"]


# --------------------------------------------------------------------------- connectivity


def test_tcp_between_hosts_and_root_namespace_untouched(tmp_path: Path) -> None:
    require_netlab()
    before = root_ns_snapshot()
    with NetLab(tmpdir=tmp_path) as lab:
        hosts = clustering_guide(lab, with_dns=False)
        server = hosts["infra0"].spawn([PY, "-c", TCP_ECHO_SERVER, "10.0.1.10", "2380"], log_name="echo")
        server.wait_for_log(r"^listening$", timeout=10)

        res = hosts["infra2"].run([PY, "-c", TCP_CLIENT, "10.0.1.10", "2380"], timeout=20)
        assert res.returncode == 0, res
        assert res.stdout.strip() == "pong:ping from 10.0.1.12"

        # Nothing listens on infra1: a real RST, not a timeout, so the bridge path is live.
        res = hosts["infra2"].run([PY, "-c", TCP_CLIENT, "10.0.1.11", "2380"], timeout=20)
        assert res.stdout.strip() == "ConnectionRefusedError"

        # A host namespace sees only its own lo + eth0 with its own address.
        links = hosts["infra0"].run(["ip", "-o", "link", "show"], check=True).stdout
        assert [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()] == ["lo", "eth0"]
        addrs = hosts["infra0"].run(["ip", "-o", "-4", "addr", "show"], check=True).stdout
        assert sorted(line.split()[3] for line in addrs.splitlines()) == ["10.0.1.10/24", "127.0.0.1/8"]

        during = root_ns_snapshot()
        for addr in during["addrs"]:
            iface = ipaddress.IPv4Interface(addr.split()[2])
            assert iface.ip not in SUBNET, f"root namespace got lab address {addr}"
        assert not [r for r in during["routes"] if "10.0.1." in r], during["routes"]
        assert during == before, "lab changed the root namespace's links/addresses/routes"
    assert root_ns_snapshot() == before


def test_two_labs_with_the_same_subnet_are_isolated(tmp_path: Path) -> None:
    require_netlab()
    with NetLab(tmpdir=tmp_path / "a") as lab_a, NetLab(tmpdir=tmp_path / "b") as lab_b:
        a0 = lab_a.add_host("infra0", "10.0.1.10", "infra0.example.com")
        b0 = lab_b.add_host("infra0", "10.0.1.10", "infra0.example.com")
        b1 = lab_b.add_host("infra1", "10.0.1.11")
        lab_a.add_a("who.example.com", "10.0.1.77")
        lab_b.add_a("who.example.com", "10.0.1.88")
        lab_a.start_dns()
        lab_b.start_dns()
        assert a0.ns != b0.ns

        assert a0.run(["getent", "ahostsv4", "who.example.com"]).stdout.split()[0] == "10.0.1.77"
        assert b1.run(["getent", "ahostsv4", "who.example.com"]).stdout.split()[0] == "10.0.1.88"

        server = a0.spawn([PY, "-c", TCP_ECHO_SERVER, "10.0.1.10", "2380"])
        server.wait_for_log(r"^listening$", timeout=10)
        res = b1.run([PY, "-c", TCP_CLIENT, "10.0.1.10", "2380"], timeout=20)
        assert res.stdout.strip() == "ConnectionRefusedError", "lab B reached lab A's 10.0.1.10"


def test_colliding_prefix_is_refused_without_harming_the_owner(tmp_path: Path) -> None:
    require_netlab()
    prefix = f"elabdup{os.getpid()}"
    with NetLab(prefix=prefix, tmpdir=tmp_path / "a") as first:
        first.add_host("infra0", "10.0.1.10")
        with pytest.raises(NetLabError, match="in use|already exists"), NetLab(prefix=prefix, tmpdir=tmp_path / "b"):
            pass
        assert set(first.namespaces) <= ns_names()
        assert (REGISTRY_DIR / f"{prefix}.json").is_file()
        assert first.host("infra0").run(["ip", "-o", "-4", "addr", "show", "eth0"], check=True).returncode == 0
    assert not set(first.namespaces) & ns_names()


# --------------------------------------------------------------------------- processes


def test_proc_helpers_wait_for_log_and_stop(netlab: NetLab) -> None:
    host = netlab.add_host("infra0", "10.0.1.10")
    proc = host.spawn([PY, "-u", "-c", "import time; print('ready 42'); time.sleep(600)"])
    assert proc.wait_for_log(r"ready (\d+)", timeout=10).group(1) == "42"
    with pytest.raises(TimeoutError, match=r"(?s)never-printed.*ready 42"):
        proc.wait_for_log("never-printed", timeout=0.3)
    assert proc.returncode is None
    assert proc.stop() == -signal.SIGTERM
    assert pid_gone(proc.pid)

    quitter = host.spawn(["sh", "-c", "echo bye; exit 3"])
    with pytest.raises(ProcessExitedError, match="bye"):
        quitter.wait_for_log("never-printed", timeout=30)
    assert quitter.returncode == 3

    res = host.run(["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert (res.returncode, res.stdout, res.stderr) == (5, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError, match="err"):
        host.run(["sh", "-c", "echo err >&2; exit 5"], check=True)
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        host.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - t0 < 10


def test_wait_until() -> None:
    calls = iter([0, 0, "done"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0.01) == "done"
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="never true"):
        wait_until(lambda: False, timeout=0.2, interval=0.05, message="never true")
    assert 0.2 <= time.monotonic() - t0 < 2
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, timeout=5)
    with pytest.raises(TimeoutError, match="ZeroDivisionError"):
        wait_until(lambda: 1 / 0, timeout=0.1, interval=0.02, ignore=(ZeroDivisionError,))


# --------------------------------------------------------------------------- teardown


def test_teardown_removes_namespaces_and_kills_processes(tmp_path: Path) -> None:
    require_netlab()
    # Ignores SIGTERM (forces the SIGKILL escalation) and leaves a child in a *different*
    # session, which only the per-namespace sweep can find.
    stubborn = textwrap.dedent(
        """
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "600"], start_new_session=True)
        print("child", child.pid, flush=True)
        time.sleep(600)
        """
    )
    with NetLab(tmpdir=tmp_path) as lab:
        hosts = clustering_guide(lab)
        sleeper = hosts["infra0"].spawn(["sleep", "600"])
        hard = hosts["infra1"].spawn([PY, "-c", stubborn])
        child_pid = int(hard.wait_for_log(r"child (\d+)", timeout=10).group(1))
        dns_pid = lab.dns_proc.pid  # type: ignore[union-attr]
        namespaces = lab.namespaces
        assert len(namespaces) == 4 and set(namespaces) <= ns_names()
        assert all((NETNS_ETC_DIR / ns / "resolv.conf").is_file() for ns in namespaces)
        assert (REGISTRY_DIR / f"{lab.prefix}.json").is_file()
        pids = [sleeper.pid, hard.pid, child_pid, dns_pid]
        assert not any(pid_gone(p) for p in pids)

    assert not set(namespaces) & ns_names()
    assert not any((NETNS_ETC_DIR / ns).exists() for ns in namespaces)
    assert not (REGISTRY_DIR / f"{lab.prefix}.json").exists()
    assert sleeper.returncode == -signal.SIGTERM
    assert hard.returncode == -signal.SIGKILL
    wait_until(lambda: all(pid_gone(p) for p in pids), timeout=5, message=f"survivors among {pids}")
    lab.teardown()  # idempotent
    with pytest.raises(Exception, match="not active"):
        hosts["infra0"].run(["true"])


STALE_LAB_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from tests.integration.netlab import NetLab
    lab = NetLab(tmpdir=sys.argv[1]).__enter__()
    host = lab.add_host("infra0", "10.0.1.10", "infra0.example.com")
    lab.start_dns()
    proc = host.spawn(["sleep", "600"])
    state = {"namespaces": lab.namespaces, "pids": [proc.pid, lab.dns_proc.pid], "prefix": lab.prefix}
    with open(sys.argv[2], "w") as fh:
        json.dump(state, fh)
    time.sleep(600)
    """
)


def test_cleanup_stale_removes_only_dead_runs_labs(tmp_path: Path) -> None:
    require_netlab()
    state_file = tmp_path / "state.json"
    # Looks like ours (dead pid), but has no registry entry: must survive.
    foreign = f"elab999999999x{os.getpid()}-foreign"
    owner: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "netns", "add", foreign], check=True)
        owner = subprocess.Popen(
            [PY, "-c", STALE_LAB_SCRIPT, str(tmp_path / "lab"), str(state_file)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        with NetLab(tmpdir=tmp_path / "live") as live:
            live.add_host("infra0", "10.0.1.10")
            wait_until(lambda: state_file.exists() and state_file.stat().st_size, 30, message="stale lab not up")
            state = json.loads(state_file.read_text())
            owner.kill()
            owner.wait(10)

            # SIGKILL left everything behind: namespaces, dnsmasq, the sleeper.
            assert set(state["namespaces"]) <= ns_names()
            assert not any(pid_gone(p) for p in state["pids"])
            assert cleanup_stale("no-such-prefix") == []
            assert set(state["namespaces"]) <= ns_names()

            deleted = cleanup_stale(state["prefix"])

            # Equal when run alone; a concurrent run's own cleanup_stale() may have won the race.
            assert set(deleted) <= set(state["namespaces"])
            assert not set(state["namespaces"]) & ns_names()
            assert not (REGISTRY_DIR / f"{state['prefix']}.json").exists()
            assert not any((NETNS_ETC_DIR / ns).exists() for ns in state["namespaces"])
            wait_until(lambda: all(pid_gone(p) for p in state["pids"]), 5, message="stale processes survive")
            # A live lab and an unregistered look-alike are left alone, even by a full sweep.
            cleanup_stale()
            assert set(live.namespaces) <= ns_names()
            assert foreign in ns_names()
    finally:
        if owner is not None and owner.poll() is None:
            owner.kill()
            owner.wait()
        subprocess.run(["ip", "netns", "delete", foreign], check=False, capture_output=True)
        cleanup_stale()  # in case an assertion above failed before cleanup
