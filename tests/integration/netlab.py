"""Real-network lab for etcd integration tests: network namespaces plus dnsmasq.

Why this exists: etcd's clustering guide (static bootstrap and DNS SRV
discovery) depends on real IP addresses and real DNS answers, which loopback
aliases and mocked resolvers cannot reproduce faithfully. This module rebuilds
that topology with Linux network namespaces and a real DNS server.

Hard rule: the only addresses ever used are loopback or addresses inside
namespaces this module creates. The root (host) namespace gets no address, no
link and no route:

* a dedicated ``<prefix>-lan`` namespace holds the bridge (carrying ``lan_ip``)
  and dnsmasq;
* every host gets ``<prefix>-<name>``; its veth pair is created *directly*
  inside the lab namespaces (``ip -n <lan> link add ... peer name eth0 netns
  <host>``), so no interface ever appears in the root namespace, not even
  briefly;
* ``/etc/netns/<ns>/resolv.conf`` points at dnsmasq, and ``ip netns exec``
  bind-mounts it over ``/etc/resolv.conf`` for every command run in the lab.

Because every lab has its own lan namespace, several labs (pytest-xdist
workers, nested tests) can use the same subnet at the same time.

Ownership of namespaces is recorded in ``/run/netlab/<prefix>.json`` before
they are created, so :func:`cleanup_stale` can remove leftovers of killed runs
without ever touching namespaces this module did not create.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import pytest

__all__ = [
    "CommandFailed",
    "Host",
    "NetLab",
    "NetLabError",
    "Proc",
    "ProcessExitedError",
    "SrvRecord",
    "cleanup_stale",
    "netlab",
    "require_netlab",
    "wait_until",
]

NETNS_RUN_DIR = Path("/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
REGISTRY_DIR = Path("/run/netlab")  # tmpfs: vanishes on reboot, like the namespaces

IFNAMSIZ_MAX = 15  # Linux interface names are at most 15 characters
TERM_GRACE_SECONDS = 3.0  # SIGTERM -> SIGKILL escalation during teardown
DEFAULT_PREFIX_STEM = "elab"  # distinctive, so leftovers are easy to recognise

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_lab_counter = itertools.count()

T = TypeVar("T")


# --------------------------------------------------------------------------- errors


class NetLabError(RuntimeError):
    """Setting up or driving the lab failed (message includes the tool's stderr)."""


class ProcessExitedError(NetLabError):
    """A spawned process exited while a test was still waiting for its output."""


class CommandFailed(subprocess.CalledProcessError):
    """CalledProcessError whose message shows stdout/stderr, so failures explain themselves."""

    def __str__(self) -> str:
        text = super().__str__()
        if self.stdout:
            text += f"\n--- stdout ---\n{self.stdout.rstrip()}"
        if self.stderr:
            text += f"\n--- stderr ---\n{self.stderr.rstrip()}"
        return text


# --------------------------------------------------------------------------- helpers


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.1,
    message: str = "",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Why: tests must wait for real processes without fixed sleeps. Exceptions
    propagate immediately (a typo should not look like a timeout) unless their
    type is listed in ``ignore``; the last ignored one is chained to the
    ``TimeoutError`` raised once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
        except ignore as exc:  # an empty tuple catches nothing
            last_exc = exc
        else:
            if value:
                return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = message or f"condition not met within {timeout:g}s"
            if last_exc is not None:
                text += f" (last error: {last_exc!r})"
            raise TimeoutError(text) from last_exc
        time.sleep(min(interval, remaining))


def _ip_bin() -> str:
    """Absolute path of `ip`, so commands work even when callers pass a minimal env."""
    found = shutil.which("ip")
    if found:
        return found
    for candidate in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        if os.access(candidate, os.X_OK):
            return candidate
    return "ip"


def _dnsmasq_bin() -> str | None:
    """dnsmasq lives in /usr/sbin (Debian: dnsmasq-base), often outside a non-root PATH."""
    found = shutil.which("dnsmasq")
    if found:
        return found
    for candidate in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _run_ip(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one `ip` command; on failure raise NetLabError carrying the command and stderr."""
    cmd = [_ip_bin(), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise NetLabError(f"`{shlex.join(cmd)}` failed (exit {res.returncode}): {res.stderr.strip()}")
    return res


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), or None if the pid does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
    return data[data.rindex(")") + 2 :].split()


def _proc_starttime(pid: int) -> int | None:
    """Kernel start time of a *running* ``pid`` (jiffies since boot), None if dead or a zombie.

    Why: the start time tells a live owner from a reused pid, and a zombie
    (some init processes reap lazily) is as dead as an owner can be.
    """
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 overall


def _ns_exists(ns: str) -> bool:
    return (NETNS_RUN_DIR / ns).exists()


def _ns_pids(ns: str) -> list[int]:
    """Pids whose network namespace is ``ns`` (what `ip netns pids` does, without forking)."""
    try:
        target = os.stat(NETNS_RUN_DIR / ns)
    except OSError:
        return []
    me = os.getpid()
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:  # exited, zombie, or kernel thread
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(pid)
    return pids


def _kill_pid_in_ns(pid: int, ns: str) -> None:
    """SIGKILL ``pid`` only if it still lives in ``ns``; pidfd makes this immune to pid reuse."""
    try:
        target = os.stat(NETNS_RUN_DIR / ns)
    except OSError:
        return
    pidfd: int | None = None
    try:
        if hasattr(os, "pidfd_open"):
            pidfd = os.pidfd_open(pid)
        st = os.stat(f"/proc/{pid}/ns/net")
        if (st.st_dev, st.st_ino) != (target.st_dev, target.st_ino):
            return
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, FileNotFoundError, PermissionError):
        pass
    except OSError:
        pass
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_ns_processes(ns: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL everything still inside ``ns``, polling until it is empty.

    Why: deleting a namespace only removes its name; any process left inside
    would keep the namespace (and its addresses) alive invisibly.
    """
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = _ns_pids(ns)
        if not pids:
            return killed
        for pid in pids:
            _kill_pid_in_ns(pid, ns)
            if pid not in killed:
                killed.append(pid)
        if time.monotonic() >= deadline:
            warnings.warn(f"netlab: processes {pids} survived SIGKILL in namespace {ns}", stacklevel=2)
            return killed
        time.sleep(0.02)


def _delete_ns(ns: str) -> None:
    """Kill what runs in ``ns``, delete it and its /etc/netns dir; tolerate any partial state."""
    _kill_ns_processes(ns)
    if _ns_exists(ns):
        res = _run_ip("netns", "delete", ns, check=False)
        if res.returncode != 0 and _ns_exists(ns):
            warnings.warn(f"netlab: could not delete namespace {ns}: {res.stderr.strip()}", stacklevel=2)
    shutil.rmtree(NETNS_ETC_DIR / ns, ignore_errors=True)


# --------------------------------------------------------------------------- processes


class Proc:
    """A background process running inside a lab namespace, logging to a file."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, argv: Sequence[str], host: str) -> None:
        self.popen = popen
        self.log_path = log_path
        self.argv = list(argv)
        self.host = host

    def __repr__(self) -> str:
        return f"<Proc pid={self.pid} host={self.host} argv={shlex.join(self.argv)!r} rc={self.popen.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit code (negative signal number if killed), or None while running."""
        return self.popen.poll()

    def log(self) -> str:
        """Everything the process wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """Poll the log until ``pattern`` (regex, MULTILINE) matches; return the match.

        Raises TimeoutError with the log tail after ``timeout``, or
        ProcessExitedError as soon as the process has exited without printing
        it (waiting longer could not help).
        """
        rx = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.popen.poll() is not None  # check before reading: no output can be missed
            match = rx.search(self.log())
            if match:
                return match
            if exited:
                raise ProcessExitedError(
                    f"{self!r} exited with {self.popen.returncode} before logging /{pattern}/; "
                    f"log tail ({self.log_path}):\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self!r}: /{pattern}/ not in log within {timeout:g}s; "
                    f"log tail ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    # Group signalling is only safe while the leader is unreaped: until then its pid
    # (which is also the process group id) cannot be reused by an unrelated process.
    def _signal_group(self, sig: int) -> None:
        if self.popen.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def _exited_unreaped(self) -> bool:
        """True once the leader exited; leaves it a zombie so its pgid stays reserved."""
        if self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _reap(self, timeout: float) -> int | None:
        """Kill stragglers left in the group by the exited leader, then reap the leader."""
        self._signal_group(signal.SIGKILL)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Send ``sig`` to the process group, escalate to SIGKILL after ``timeout``.

        Returns the exit code (negative signal number when killed by a signal),
        or None if even SIGKILL could not end it.
        """
        if self.popen.returncode is not None:
            return self.popen.returncode
        self._signal_group(sig)
        try:
            wait_until(self._exited_unreaped, timeout, interval=0.02)
        except TimeoutError:
            self._signal_group(signal.SIGKILL)
        return self._reap(5)


def _terminate_all(procs: Sequence[Proc], grace: float) -> None:
    """SIGTERM every live group at once, give them ``grace`` seconds together, then SIGKILL."""
    live = [p for p in procs if p.popen.returncode is None]
    for p in live:
        p._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = [p for p in live if not p._exited_unreaped()]
        if live:
            time.sleep(0.02)
    for p in procs:
        if p.popen.returncode is None:
            p._signal_group(signal.SIGKILL)
            p._reap(5)


# --------------------------------------------------------------------------- hosts


class Host:
    """One lab machine: a network namespace with ``eth0`` on the lab subnet."""

    def __init__(self, lab: NetLab, name: str, ns: str, ip: str, hostname: str | None) -> None:
        self.lab = lab
        self.name = name
        self.ns = ns
        self.ip = ip
        self.hostname = hostname

    def __repr__(self) -> str:
        return f"<Host {self.name} ns={self.ns} ip={self.ip} hostname={self.hostname}>"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped in `ip netns exec`, which also bind-mounts the lab resolv.conf."""
        return [_ip_bin(), "netns", "exec", self.ns, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        check: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside this namespace and capture its output as text.

        ``env`` replaces the environment, as with subprocess (keep PATH or use
        absolute paths). On timeout the whole process group is killed, not just
        the direct child, before subprocess.TimeoutExpired is raised. With
        ``check`` a non-zero exit raises CommandFailed showing stdout/stderr.
        """
        self.lab._require_active()
        cmd = self.exec_argv(argv)
        with subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            text=True,
            errors="replace",
            start_new_session=True,
        ) as popen:
            try:
                stdout, stderr = popen.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)  # still unreaped, so the pgid is ours
                stdout, stderr = popen.communicate()
                raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr) from None
        res = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
        if check and res.returncode != 0:
            raise CommandFailed(res.returncode, cmd, stdout, stderr)
        return res

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_name: str | None = None,
    ) -> Proc:
        """Start ``argv`` in the background inside this namespace, in its own session.

        stdout and stderr go to ``<lab.tmpdir>/<log_name>.log`` (made unique);
        the process is tracked so teardown kills its whole process group.
        ``env`` replaces the environment, as with subprocess.
        """
        self.lab._require_active()
        log_path = self.lab._new_log_path(log_name or f"{self.name}-{Path(argv[0]).name}")
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                self.exec_argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        proc = Proc(popen, log_path, argv, self.name)
        self.lab._procs.append(proc)
        return proc


@dataclass(frozen=True)
class SrvRecord:
    service: str
    target: str
    port: int
    priority: int = 0
    weight: int = 0


# A dependency-free readiness probe (stdlib only, so it runs under any interpreter):
# one UDP query; exit 0 when dnsmasq answers (and, if an address is expected, answers with it).
_DNS_PROBE = r"""
import os, socket, struct, sys
server, qname, expect = sys.argv[1], sys.argv[2], sys.argv[3]
qid = os.getpid() & 0xFFFF
query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in qname.split(".")) + b"\0"
query += struct.pack("!HH", 1, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.5)
try:
    sock.sendto(query, (server, 53))
    data = sock.recv(4096)
except OSError as exc:
    print("no answer:", exc)
    sys.exit(2)
rid, flags, _qd, ancount = struct.unpack("!HHHH", data[:8])
if rid != qid or not flags & 0x8000:
    print("bad reply header")
    sys.exit(3)
if expect != "-" and (flags & 0xF or not ancount or socket.inet_aton(expect) not in data[len(query):]):
    print("reply lacks", expect, "rcode", flags & 0xF, "answers", ancount)
    sys.exit(4)
"""


# --------------------------------------------------------------------------- the lab


class NetLab:
    """A throw-away network: lan namespace with bridge + dnsmasq, and host namespaces.

    Use as a context manager (or via the ``netlab`` fixture); teardown is
    idempotent and never raises.
    """

    def __init__(
        self,
        prefix: str | None = None,
        subnet: str = "10.0.1.0/24",
        lan_ip: str = "10.0.1.1",
        domain: str = "example.com",
        tmpdir: Path | str | None = None,
        keep_tmpdir: bool = False,
    ) -> None:
        """``prefix`` defaults to ``elab<pid>x<n>`` (unique per lab, pid recoverable).

        ``tmpdir`` holds logs and data dirs; if omitted a temporary directory is
        created and removed at teardown unless ``keep_tmpdir``.
        """
        self.prefix = prefix or f"{DEFAULT_PREFIX_STEM}{os.getpid()}x{next(_lab_counter)}"
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(f"prefix {self.prefix!r} must match {_PREFIX_RE.pattern}")
        self.network = ipaddress.IPv4Network(subnet)
        lan = ipaddress.IPv4Address(lan_ip)
        if lan not in self.network or lan in (self.network.network_address, self.network.broadcast_address):
            raise ValueError(f"lan_ip {lan_ip} is not a usable address of {subnet}")
        self.lan_ip = str(lan)
        self.domain = domain.strip(".").lower()
        self.bridge = "br0"  # lives in the lan namespace, so the name cannot clash
        self.lan = Host(self, "lan", f"{self.prefix}-lan", self.lan_ip, None)
        self.hosts: dict[str, Host] = {}
        self._a: dict[str, list[str]] = {}
        self._srv: list[SrvRecord] = []
        self._procs: list[Proc] = []
        self._dns: Proc | None = None
        self._namespaces: list[str] = []
        self._given_tmpdir = Path(tmpdir) if tmpdir is not None else None
        self._keep_tmpdir = keep_tmpdir
        self._tmpdir: Path | None = None
        self._tmpdir_owned = False
        self._registry_owned = False
        self._entered = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<NetLab {self.prefix} {self.network} hosts={list(self.hosts)}>"

    # ------------------------------------------------------------ lifecycle

    @property
    def tmpdir(self) -> Path:
        """Per-lab directory for logs and data dirs (exists once the lab is entered)."""
        if self._tmpdir is None:
            raise NetLabError("NetLab.tmpdir is available only inside the `with` block")
        return self._tmpdir

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this lab created, lan first."""
        return list(self._namespaces)

    @property
    def procs(self) -> list[Proc]:
        return list(self._procs)

    def __enter__(self) -> NetLab:
        if self._entered:
            raise NetLabError("a NetLab can be entered only once")
        self._entered = True
        try:
            cleanup_stale()
            if self._given_tmpdir is not None:
                self._given_tmpdir.mkdir(parents=True, exist_ok=True)
                self._tmpdir = self._given_tmpdir
            else:
                self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
                self._tmpdir_owned = True
            ns = self.lan.ns
            self._create_ns(ns)
            _run_ip("-n", ns, "link", "set", "lo", "up")
            _run_ip("-n", ns, "link", "add", self.bridge, "type", "bridge")
            _run_ip("-n", ns, "addr", "add", f"{self.lan_ip}/{self.network.prefixlen}", "dev", self.bridge)
            _run_ip("-n", ns, "link", "set", self.bridge, "up")
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

    def teardown(self) -> None:
        """Kill every lab process, stop dnsmasq, delete namespaces and /etc/netns dirs.

        Idempotent and best effort: problems become warnings, never exceptions,
        so a failing test still gets its real error reported.
        """
        self._closed = True
        steps: list[tuple[str, Callable[[], None]]] = [
            ("stop processes", lambda: _terminate_all(self._procs, TERM_GRACE_SECONDS)),
            *[(f"delete {ns}", lambda ns=ns: _delete_ns(ns)) for ns in reversed(self._namespaces)],
        ]
        if self._registry_owned:  # never drop the record of another lab that uses the same prefix
            steps.append(("remove registry", lambda: self._registry_path().unlink(missing_ok=True)))
        if self._tmpdir_owned and not self._keep_tmpdir and self._tmpdir is not None:
            steps.append(("remove tmpdir", lambda: shutil.rmtree(self._tmpdir, ignore_errors=True)))  # type: ignore[arg-type]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # never raise from teardown
                warnings.warn(f"netlab {self.prefix}: teardown step {what!r} failed: {exc!r}", stacklevel=2)
        self._dns = None

    def _require_active(self) -> None:
        if not self._entered or self._closed:
            raise NetLabError(f"{self!r} is not active (use it inside its `with` block)")

    # ------------------------------------------------------------ bookkeeping

    def _registry_path(self) -> Path:
        return REGISTRY_DIR / f"{self.prefix}.json"

    def _write_registry(self) -> None:
        """Record ownership *before* creating a namespace, so a SIGKILL cannot orphan it."""
        REGISTRY_DIR.mkdir(parents=True, exist_ok=True)
        path = self._registry_path()
        record = {
            "pid": os.getpid(),
            "starttime": _proc_starttime(os.getpid()),
            "prefix": self.prefix,
            "namespaces": self._namespaces,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
        self._registry_owned = True

    def _create_ns(self, ns: str) -> None:
        if _ns_exists(ns):
            raise NetLabError(f"namespace {ns} already exists; refusing to adopt it")
        if not self._registry_owned:  # an explicit prefix may collide with another live lab
            with contextlib.suppress(OSError, ValueError):
                other = json.loads(self._registry_path().read_text())
                if _owner_alive(other):
                    raise NetLabError(f"prefix {self.prefix!r} is in use by live process {other.get('pid')}")
        self._namespaces.append(ns)
        self._write_registry()
        try:
            _run_ip("netns", "add", ns)
        except BaseException:
            if not _ns_exists(ns):  # never delete what we did not create
                self._namespaces.remove(ns)
                self._write_registry()
            raise
        # Must exist before the first `ip netns exec`, which bind-mounts it over /etc/resolv.conf.
        etc = NETNS_ETC_DIR / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(
            f"# written by netlab for {ns}\n"
            f"nameserver {self.lan_ip}\n"
            f"search {self.domain}\n"
            "options timeout:1 attempts:2\n"
        )

    def _new_log_path(self, name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        stem = stem[:-4] if stem.endswith(".log") else stem
        path = self.tmpdir / f"{stem}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.tmpdir / f"{stem}.{n}.log"
        return path

    # ------------------------------------------------------------ topology

    def add_host(self, name: str, ip: str, hostname: str | None = None) -> Host:
        """Create namespace ``<prefix>-<name>`` with ``eth0`` = ``ip`` bridged to the lan.

        If ``hostname`` is given an A record ``hostname -> ip`` is registered
        (takes effect at the next :meth:`start_dns`).
        """
        self._require_active()
        if not _NAME_RE.match(name) or name == "lan":
            raise ValueError(f"host name {name!r} must match {_NAME_RE.pattern} and not be 'lan'")
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists")
        addr = ipaddress.IPv4Address(ip)
        if addr not in self.network or addr in (self.network.network_address, self.network.broadcast_address):
            raise ValueError(f"{ip} is not a usable address of {self.network}")
        used = {self.lan_ip, *(h.ip for h in self.hosts.values())}
        if str(addr) in used:
            raise ValueError(f"{ip} is already used in this lab")
        ns = f"{self.prefix}-{name}"
        lan_if = f"v{len(self._namespaces)}-{name}"[:IFNAMSIZ_MAX]  # index first: unique even when truncated
        self._create_ns(ns)
        try:
            # Both veth ends are born inside lab namespaces; the root namespace never sees them.
            _run_ip("-n", self.lan.ns, "link", "add", lan_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run_ip("-n", self.lan.ns, "link", "set", lan_if, "master", self.bridge)
            _run_ip("-n", self.lan.ns, "link", "set", lan_if, "up")
            _run_ip("-n", ns, "link", "set", "lo", "up")
            _run_ip("-n", ns, "addr", "add", f"{addr}/{self.network.prefixlen}", "dev", "eth0")
            _run_ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            with contextlib.suppress(Exception):
                _delete_ns(ns)
            raise
        host = Host(self, name, ns, str(addr), hostname)
        self.hosts[name] = host
        if hostname:
            self.add_a(hostname, str(addr))
        return host

    def host(self, name: str) -> Host:
        return self.hosts[name]

    # ------------------------------------------------------------ DNS

    @staticmethod
    def _dns_name(name: str) -> str:
        name = name.strip().rstrip(".").lower()
        if not name or any(c in name for c in ", /#"):
            raise ValueError(f"invalid DNS name {name!r}")
        return name

    def add_a(self, name: str, ip: str) -> None:
        """Register an exact A record (no wildcard subdomains); effective at next start_dns()."""
        name = self._dns_name(name)
        addr = str(ipaddress.IPv4Address(ip))
        ips = self._a.setdefault(name, [])
        if addr not in ips:
            ips.append(addr)

    def add_srv(self, service: str, target: str, port: int, priority: int = 0, weight: int = 0) -> None:
        """Register an SRV record, e.g. ``_etcd-server._tcp.example.com -> infra0.example.com:2380``."""
        for label, value in (("port", port), ("priority", priority), ("weight", weight)):
            if not 0 <= int(value) <= 65535:
                raise ValueError(f"SRV {label} {value} out of range")
        rec = SrvRecord(self._dns_name(service), self._dns_name(target), int(port), int(priority), int(weight))
        if rec not in self._srv:
            self._srv.append(rec)

    def remove_records(self, name: str) -> None:
        """Drop A records of ``name`` and SRV records whose service or target is ``name``."""
        name = self._dns_name(name)
        self._a.pop(name, None)
        self._srv = [r for r in self._srv if name not in (r.service, r.target)]

    @property
    def a_records(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self._a.items()}

    @property
    def srv_records(self) -> list[SrvRecord]:
        return list(self._srv)

    @property
    def dns_proc(self) -> Proc | None:
        return self._dns

    def dnsmasq_argv(self) -> list[str]:
        """The dnsmasq command line for the current records (exposed for debugging)."""
        dnsmasq = _dnsmasq_bin()
        if dnsmasq is None:
            raise NetLabError("dnsmasq not found (Debian/Ubuntu: apt-get install dnsmasq-base)")
        argv = [
            dnsmasq,
            "--no-daemon",  # stay our child so we can track and kill it; no pid file, no setuid
            "--conf-file=/dev/null",  # ignore a host /etc/dnsmasq.conf
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={self.lan_ip}",  # no loopback listener either
            "--port=53",
            f"--local=/{self.domain}/",  # unknown names in the domain: NXDOMAIN, never forwarded
            "--log-facility=-",  # stderr, i.e. our log file
            "--log-queries",
        ]
        for name, ips in self._a.items():
            argv += [f"--host-record={name},{ip}" for ip in ips]
        argv += [f"--srv-host={r.service},{r.target},{r.port},{r.priority},{r.weight}" for r in self._srv]
        return argv

    def stop_dns(self) -> None:
        if self._dns is not None:
            self._dns.stop(timeout=3)
            self._dns = None

    def start_dns(self, timeout: float = 10.0) -> None:
        """(Re)start dnsmasq in the lan namespace with the current records; wait until it answers.

        Readiness is proven by a real query sent from inside the lan namespace
        to ``lan_ip:53`` (for the first A record, expecting its address).
        """
        self._require_active()
        self.stop_dns()
        self._dns = dns = self.lan.spawn(self.dnsmasq_argv(), log_name="dnsmasq")
        if self._a:
            qname, expect = next((n, ips[0]) for n, ips in self._a.items())
        else:
            qname, expect = f"netlab-probe.{self.domain}", "-"

        def answered() -> bool:
            if dns.returncode is not None:
                raise NetLabError(
                    f"dnsmasq exited with {dns.returncode}; argv: {shlex.join(dns.argv)}\n"
                    f"log ({dns.log_path}):\n{dns.log_tail()}"
                )
            probe = [sys.executable, "-c", _DNS_PROBE, self.lan_ip, qname, expect]
            return self.lan.run(probe, timeout=10).returncode == 0

        try:
            wait_until(answered, timeout, interval=0.05, message=f"dnsmasq did not answer {qname} within {timeout:g}s")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; log ({dns.log_path}):\n{dns.log_tail()}") from None


# --------------------------------------------------------------------------- stale labs


def _owner_alive(record: Mapping[str, object]) -> bool:
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    start = _proc_starttime(pid)
    return start is not None and start == record.get("starttime")


def cleanup_stale(prefix: str = "") -> list[str]:
    """Remove labs left behind by killed runs; return the namespaces deleted.

    Only labs recorded in /run/netlab (written before each namespace is
    created) whose owning process is gone (pid dead, or reused by a process
    with a different start time) are touched, and only names that carry the
    recorded prefix. ``prefix`` restricts cleanup to labs whose prefix starts
    with it. Processes still running in those namespaces (dnsmasq, etcd) are
    killed first. Runs automatically when a NetLab is entered.
    """
    deleted: list[str] = []
    if not REGISTRY_DIR.is_dir():
        return deleted
    for path in sorted(REGISTRY_DIR.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        lab_prefix = record.get("prefix")
        if not isinstance(lab_prefix, str) or not lab_prefix.startswith(prefix) or path.stem != lab_prefix:
            continue
        if _owner_alive(record):
            continue
        namespaces = [ns for ns in record.get("namespaces", []) if isinstance(ns, str)]
        for ns in reversed(namespaces):
            if not ns.startswith(f"{lab_prefix}-"):
                continue
            existed = _ns_exists(ns)
            try:
                _delete_ns(ns)
            except Exception as exc:
                warnings.warn(f"netlab: could not clean stale namespace {ns}: {exc!r}", stacklevel=2)
                continue
            if existed:
                deleted.append(ns)
        if not any(_ns_exists(ns) for ns in namespaces):
            path.unlink(missing_ok=True)
    return deleted


# --------------------------------------------------------------------------- pytest glue


def require_netlab() -> None:
    """Skip (or, with NETLAB_REQUIRED=1, fail) when this machine cannot host a NetLab.

    Why: developer laptops often lack root or dnsmasq; CI sets NETLAB_REQUIRED=1
    so a misconfigured runner cannot silently skip the real-network tier.
    """
    problems: list[str] = []
    if not sys.platform.startswith("linux"):
        problems.append("network namespaces need Linux")
    elif os.geteuid() != 0:
        problems.append("must run as root (creates network namespaces)")
    if shutil.which("ip") is None and _ip_bin() == "ip":
        problems.append("`ip` (iproute2) not found")
    if _dnsmasq_bin() is None:
        problems.append("dnsmasq not found (Debian/Ubuntu: apt-get install dnsmasq-base)")
    if not Path("/etc/resolv.conf").exists():
        problems.append("/etc/resolv.conf missing, so `ip netns exec` cannot bind the lab resolver over it")
    if not problems:
        return
    reason = "netlab unavailable: " + "; ".join(problems)
    if os.environ.get("NETLAB_REQUIRED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def netlab(tmp_path: Path) -> Iterator[NetLab]:
    """An entered NetLab whose tmpdir is pytest's ``tmp_path``; always torn down."""
    require_netlab()
    with NetLab(tmpdir=tmp_path) as lab:
        yield lab
