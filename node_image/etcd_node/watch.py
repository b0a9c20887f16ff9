"""Watch etcd's log after the hand-over and say plainly what its loops only hint at.

A member whose cluster ID differs from its peers' does not exit: it logs
"cluster ID mismatch" forever. The agent execs etcd (so signals and the PID
belong to etcd), but first forks a small watcher that reads etcd's stderr
through a pipe, copies every line through unchanged and adds one clear line,
once, for each problem it recognises.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable

from .contract import CLUSTER_ID_MISMATCH, MEMBER_ALREADY_BOOTSTRAPPED
from .findings import Finding, error


def _fields(line: str) -> dict[str, str]:
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def explain(line: str) -> Finding | None:
    """Pure: the clear message for an etcd log line, or None for ordinary lines."""
    lowered = line.lower()
    fields = _fields(line)
    if "cluster id mismatch" in lowered or "conflicting cluster id" in lowered:
        local = fields.get("local-member-cluster-id", "")
        remote = fields.get("remote-peer-cluster-id", "")
        peer = fields.get("remote-peer-id", "") or fields.get("remote-addr", "")
        ids = f" (this member: cluster {local}, peer {peer}: cluster {remote})" if local and remote else ""
        return error(
            CLUSTER_ID_MISMATCH,
            f"cluster ID mismatch: this member and its peers belong to different clusters{ids}. It was "
            "bootstrapped with a different --initial-cluster or --initial-cluster-token than the running "
            "cluster, or its data dir comes from another cluster. etcd keeps retrying and will never join.",
            "stop it, remove it from the cluster if it is listed (etcdctl member remove ID), empty its data "
            "dir, add it with etcdctl member add and start it with --initial-cluster-state existing",
        )
    if "has already been bootstrapped" in lowered:
        return error(
            MEMBER_ALREADY_BOOTSTRAPPED,
            "this member is already part of the cluster but started with an empty data dir and "
            "--initial-cluster-state new",
            "remove it (etcdctl member remove ID), add it again (etcdctl member add) and start it with "
            "--initial-cluster-state existing",
        )
    if "permanently removed from the cluster" in lowered or "member has been permanently removed" in lowered:
        return error(
            "MemberRemoved",
            "this member was removed from the cluster (etcdctl member remove). Its data dir is stale.",
            "empty the data dir, add the member again with etcdctl member add and start it with "
            "--initial-cluster-state existing",
        )
    if "couldn't find local name" in lowered:
        return error(
            "MemberNotListed",
            "this member's --name is not listed in --initial-cluster",
            "add NAME=PEER-URL for it to --initial-cluster on every member, or correct --name",
        )
    return None


def copy_with_explanations(
    read_line: Callable[[], bytes], write: Callable[[bytes], None], on_explain: Callable[[Finding], None]
) -> None:
    """Copy lines until EOF, adding each explanation once; pure apart from the callables."""
    seen: set[str] = set()
    while line := read_line():
        write(line)
        found = explain(line.decode(errors="replace"))
        if found and found.code not in seen:
            seen.add(found.code)
            write(found.render().encode() + b"\n")
            on_explain(found)


def start(termination_log: str = "") -> None:
    """Fork the watcher and route this process's stderr through it; call right before exec.

    The watcher ignores SIGINT/SIGTERM so it outlives etcd's shutdown logging and
    exits on EOF, when etcd (the last writer) is gone.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # watcher
        os.close(write_fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        os.setpgid(0, 0)  # out of the terminal's process group: Ctrl-C goes to etcd only
        source = os.fdopen(read_fd, "rb", buffering=0)
        out = os.fdopen(os.dup(2), "wb", buffering=0)

        def record(found: Finding) -> None:
            if termination_log:
                try:
                    with open(termination_log, "w", encoding="utf-8") as fh:
                        fh.write(found.render() + "\n")
                except OSError:
                    pass

        def write(data: bytes) -> None:
            # Never stop draining the pipe: a dead reader would kill etcd with SIGPIPE.
            with contextlib.suppress(OSError):
                out.write(data)

        try:
            copy_with_explanations(source.readline, write, record)
        finally:
            os._exit(0)
    os.close(read_fd)
    sys.stderr.flush()
    os.dup2(write_fd, 2)
    os.close(write_fd)
