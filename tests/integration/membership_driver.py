"""Drive real etcd members through a list of sizes with the operator's planner and etcd client.

Runs inside a lab network namespace (the test process cannot reach lab
addresses): `python -m tests.integration.membership_driver CONFIG.json`. The
"StatefulSet" here is a set of etcd-node processes started and stopped by
ordinal in their own namespaces; everything else is the operator's own code:
`reconcile.membership.plan` chooses each step, `scaling.execute` carries it
out through `adapters.etcd.EtcdClient`. A writer puts keys throughout; every acknowledged put is read
back at the end. Prints one JSON summary on stdout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from etcd_node import contract
from etcd_operator.adapters.etcd import EtcdClient, EtcdError
from etcd_operator.reconcile import membership as mp
from etcd_operator.scaling import execute


def ORDINAL(url: str) -> int | None:  # noqa: N802 - a constant-like rule, as the operator passes it
    """The operator's own rule (the shared contract), on the lab's host names `main-N.example.com`."""
    return contract.ordinal_in_url(url, "main", "example")


class Fleet:
    """Member processes by ordinal: the StatefulSet of this test."""

    def __init__(self, config: dict[str, Any]):
        self.hosts = config["hosts"]  # ordinal (str) -> {"ns", "ip"}
        self.python, self.etcd, self.workdir = config["python"], config["etcd"], Path(config["workdir"])
        # Persisted like a StatefulSet in the API server: a crashed driver's successor finds it.
        self.state_file = self.workdir / "fleet.json"
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.procs: dict[int, int] = {int(o): pid for o, pid in state.get("pids", {}).items()}
        self.replicas = state.get("replicas", 0)

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"replicas": self.replicas, "pids": self.procs}))

    def peer_url(self, ordinal: int) -> str:
        return f"http://main-{ordinal}.example.com:2380"

    def client_url(self, ordinal: int) -> str:
        return f"http://{self.hosts[str(ordinal)]['ip']}:2379"

    def start(self, ordinal: int, join: list[str]) -> None:
        host = self.hosts[str(ordinal)]
        data = self.workdir / f"main-{ordinal}"
        flags = [
            "--name", f"main-{ordinal}", "--initial-advertise-peer-urls", self.peer_url(ordinal),
            "--listen-peer-urls", f"http://{host['ip']}:2380", "--listen-client-urls", f"http://{host['ip']}:2379",
            "--advertise-client-urls", self.client_url(ordinal), "--data-dir", str(data),
            "--initial-cluster-token", "membership-walk",
        ]  # fmt: skip
        if join:
            flags += ["--initial-cluster-state", "existing", "--join-endpoints", ",".join(join)]
        else:
            flags += ["--initial-cluster", f"main-{ordinal}={self.peer_url(ordinal)}", "--initial-cluster-state", "new"]
        log = (self.workdir / f"main-{ordinal}.log").open("ab")
        argv = ["ip", "netns", "exec", host["ns"], self.python, "-m", "etcd_node", *flags]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ETCD_NODE_ETCD_BIN": self.etcd, "PYTHONUNBUFFERED": "1"}
        self.procs[ordinal] = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True).pid

    def stop(self, ordinal: int) -> None:
        pid = self.procs.pop(ordinal, None)
        if pid is not None:
            _terminate(pid)
        # A removed member's data is useless and dangerous to restart from: drop it, as the claim would be.
        shutil.rmtree(self.workdir / f"main-{ordinal}", ignore_errors=True)

    def restart_crashed(self, join: list[str]) -> None:
        """Like a kubelet: a member process that exited is started again (same data dir)."""
        for ordinal, pid in list(self.procs.items()):
            if not _alive(pid):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                self.start(ordinal, join)
        self._save()

    def lost(self) -> frozenset[int]:
        """Ordinals whose agent refused to start because the member's data is gone (its termination message)."""
        found = set()
        for ordinal in self.procs:
            log = self.workdir / f"main-{ordinal}.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            # Only runs since etcd last started count: everything after the last hand-over.
            if "already been bootstrapped" in text.rsplit('"handing over to etcd"', 1)[-1]:
                found.add(ordinal)
        return frozenset(found)

    def lose_data(self, ordinal: int) -> None:
        """The volume of a member is gone: stop it, wipe its data dir; the restart finds it empty."""
        pid = self.procs.get(ordinal)
        if pid is not None:
            _terminate(pid)
        shutil.rmtree(self.workdir / f"main-{ordinal}", ignore_errors=True)

    def scale(self, replicas: int, join: list[str]) -> None:
        for ordinal in range(self.replicas, replicas):
            self.start(ordinal, join)
        for ordinal in range(replicas, self.replicas):
            self.stop(ordinal)
        self.replicas = replicas
        self._save()

    def shutdown(self) -> None:
        for ordinal in list(self.procs):
            _terminate(self.procs.pop(ordinal))
        self._save()


def _terminate(pid: int, timeout: float = 20) -> None:
    """SIGTERM the member's process group (agent exec'd into etcd), SIGKILL if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # started by a predecessor: not our child, poll for existence
            done = 0 if _alive(pid) else pid
        if done:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


class Writer(threading.Thread):
    """Puts key i=i through whichever member answers; records the puts etcd acknowledged."""

    def __init__(self, endpoints: callable):
        super().__init__(daemon=True)
        self.endpoints, self.acked, self.failed, self.stop_flag = endpoints, {}, 0, threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set() and i < 100_000:
            key, value = f"/walk/{i:06d}", str(i)
            body = json.dumps({"key": _b64(key), "value": _b64(value)}).encode()
            for endpoint in self.endpoints():
                try:
                    req = urllib.request.Request(f"{endpoint}/v3/kv/put", data=body, method="POST")
                    with urllib.request.urlopen(req, timeout=2) as response:
                        if "header" in json.loads(response.read()):
                            self.acked[key] = value
                            break
                except (OSError, ValueError):
                    continue
            else:
                self.failed += 1
            i += 1
            time.sleep(0.02)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def walk(config: dict[str, Any]) -> dict[str, Any]:
    fleet = Fleet(config)
    live = lambda: [fleet.client_url(o) for o in sorted(fleet.procs)]  # noqa: E731
    if fleet.replicas == 0:
        fleet.scale(1, [])
    client = EtcdClient([fleet.client_url(0)], timeout=3)
    deadline = time.monotonic() + 60
    while not await client.healthy(fleet.client_url(0)):
        if time.monotonic() > deadline:
            raise RuntimeError("first member never became healthy")
        await asyncio.sleep(0.2)
    writer = Writer(live)
    writer.start()
    steps: list[dict[str, Any]] = []
    try:
        desired = fleet.replicas
        for entry in config["sizes"]:
            started = time.monotonic()
            if isinstance(entry, str) and entry.startswith("lose:"):
                fleet.lose_data(int(entry.removeprefix("lose:")))
                label = entry
            else:
                desired = label = entry
            while True:
                fleet.restart_crashed(live())
                client = EtcdClient(live(), timeout=3)
                try:
                    view = await client.view()
                    members, leader = list(view.members), view.leader_id
                except EtcdError:
                    await asyncio.sleep(0.5)
                    continue
                lost = fleet.lost()
                step = mp.plan(desired, fleet.replicas, members, leader, fleet.peer_url, ORDINAL, lost)
                # Reached only when nothing is left to do and every member answers (a lost one is back).
                if isinstance(step, mp.Noop) and not lost and all(m.healthy and m.started for m in members):
                    break
                if isinstance(step, mp.Refuse):
                    raise RuntimeError(f"planner refused: {step}")
                record = {"to": label, "step": type(step).__name__, "t": round(time.monotonic() - started, 2)}
                async def scale_to(replicas: int) -> None:
                    fleet.scale(replicas, live())

                try:
                    await execute(step, client, scale_to)
                    record["ok"] = True
                except EtcdError as exc:  # e.g. "unhealthy cluster" right after a change: retry next pass
                    record["ok"] = False
                    record["error"] = exc.message[:200]
                    await asyncio.sleep(1)
                steps.append(record)
                if isinstance(step, (mp.Wait, mp.Noop)):
                    await asyncio.sleep(0.5)
            steps.append({"to": label, "step": "Reached", "t": round(time.monotonic() - started, 2)})
    finally:
        writer.stop_flag.set()
        writer.join(10)
    final = EtcdClient(live(), timeout=5)
    members = list((await final.view()).members)
    missing = 0
    for key, value in writer.acked.items():
        got = await final._any("/v3/kv/range", {"key": _b64(key)})
        kvs = got.get("kvs", [])
        if not kvs or base64.b64decode(kvs[0]["value"]).decode() != value:
            missing += 1
    if config.get("shutdown", True):
        fleet.shutdown()
    return {
        "steps": steps,
        "members": sorted(m.name for m in members),
        "acked": len(writer.acked),
        "unacked": writer.failed,
        "lost": missing,
    }


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(walk(config))))


if __name__ == "__main__":
    main()
