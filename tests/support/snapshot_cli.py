"""Driving `etcd-node backup` / `restore` as the backup Job and a restoring member do, for the etcd tier."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.binaries import etcd_dir
from tests.support.loopback import LoopbackCluster


def agent(cmd: str, args: list[str], workdir: Path, version_key: str = "ETCD_VERSION", env: dict | None = None):
    """Run `etcd-node <cmd>` with that etcd release's etcdctl/etcdutl on PATH; returns (process, termination log)."""
    log = workdir / f"{cmd}-termination.log"
    log.unlink(missing_ok=True)
    environ = {**os.environ, **(env or {}), "ETCD_NODE_TERMINATION_LOG": str(log),
               "PATH": f"{etcd_dir(version_key)}:{os.environ['PATH']}"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "etcd_node", cmd, *args], capture_output=True, text=True,
                          env=environ, timeout=300, check=False)  # fmt: skip
    return done, (log.read_text() if log.exists() else "")


def backup_args(cluster: LoopbackCluster, scratch: Path) -> list[str]:
    return [f"--endpoints={','.join(cluster.endpoints)}", *cluster.pki.etcdctl_flags(), f"--scratch-dir={scratch}"]


def restore_args(target: LoopbackCluster, i: int, **extra: str) -> list[str]:
    args = [f"--data-dir={target.data_dir(i)}", f"--name={target.name(i)}",
            f"--initial-cluster={target.initial_cluster}", f"--initial-advertise-peer-urls={target.peer_url(i)}",
            f"--initial-cluster-token={target.token}"]  # fmt: skip
    return args + [f"--{k.replace('_', '-')}={v}" if v != "" else f"--{k.replace('_', '-')}" for k, v in extra.items()]


def all_keys(cluster: LoopbackCluster, prefix: str = "/") -> dict[str, str]:
    out = cluster.etcdctl("get", prefix, "--prefix", "-w", "json").stdout
    kvs = json.loads(out).get("kvs") or []
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode() for kv in kvs}


def damaged_snapshot(source: LoopbackCluster, workdir: Path) -> Path:
    """A backup of `source` on a volume with one byte flipped: what every restore path must refuse."""
    snapshot = workdir / "vol" / "bad.db"
    assert agent("backup", [*backup_args(source, workdir / "scratch"), f"--path={snapshot}"], workdir)[0].returncode == 0
    body = bytearray(snapshot.read_bytes())
    body[100] ^= 0xFF
    snapshot.write_bytes(bytes(body))
    return snapshot
