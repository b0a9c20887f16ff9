"""Watch etcd's log after the hand-over and say plainly what its loops only hint at.

A member whose cluster ID differs from its peers' does not exit, whatever the
clustering guide says ("will report a cluster ID mismatch and will exit"): etcd
3.6 logs "cluster ID mismatch" forever. The agent execs etcd (so signals and the
PID belong to etcd), but first forks a small watcher that reads etcd's stderr
through a pipe, copies every line through unchanged and adds one clear line,
once, for each problem it recognises.

A mismatch has two sides. The member whose requests its peers reject ("request
sent was ignored ... due to cluster ID mismatch") is the one configured for
another cluster; the members receiving them ("request cluster ID mismatch") are
fine and only hear about it. When the rejected member started with an empty
data dir and has never served (never had a quorum of its own), it has never
been part of the cluster it meets and cannot become part of it: after a grace
period the watcher ends etcd, as the guide promises, and leaves the guide's
words and the fix in the termination log. A member that restarted from its own
data, or that serves, is only explained: stopping it could cost a cluster a
voting member.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .contract import CLUSTER_ID_MISMATCH, MEMBER_ALREADY_BOOTSTRAPPED
from .findings import Finding, Severity, error, warning

_GUIDE_IDS = re.compile(r"\(([0-9a-f]+) != ([0-9a-f]+)\)")
# etcd logs this once it has published itself through a quorum and serves clients.
_READY = "ready to serve client requests"
# How long etcd has to exit after the stop signal before the watcher insists.
_INSIST_AFTER = 5.0


def _fields(line: str) -> dict[str, str]:
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def cluster_ids(line: str) -> tuple[str, str] | None:
    """(this member's cluster ID, the peer's) from a mismatch line: etcd's JSON fields or the guide's `(a != b)`."""
    fields = _fields(line)
    local, remote = fields.get("local-member-cluster-id", ""), fields.get("remote-peer-cluster-id", "")
    if local and remote:
        return local, remote
    match = _GUIDE_IDS.search(line)
    return (match[1], match[2]) if match else None


def rejected_by_peers(line: str) -> bool:
    """This member's own requests were refused for their cluster ID: it is the one in the wrong cluster."""
    lowered = line.lower()
    return ("request sent was ignored" in lowered and "cluster id mismatch" in lowered) or (
        "conflicting cluster id" in lowered
    )


def mismatch_stop(line: str, grace: float) -> Finding:
    """Pure: what the termination log says when the watcher ends a member that was never part of the cluster."""
    ids = cluster_ids(line)
    conflict = f" ({ids[0]} != {ids[1]})" if ids else ""
    return error(
        CLUSTER_ID_MISMATCH,
        f"conflicting cluster ID to the target cluster{conflict}. Exiting. This member started with an empty "
        "data dir and bootstrapped a cluster of its own (its --initial-cluster or --initial-cluster-token differs "
        f"from the running cluster's); etcd keeps retrying, so etcd-node stopped it after {grace:g} s.",
        "empty its data dir; to join the running cluster, add it there (etcdctl member add NAME "
        "--peer-urls=URL --learner) and start it with --initial-cluster-state existing; to bootstrap a new "
        "cluster, give every member the same --initial-cluster and --initial-cluster-token",
    )


def explain(line: str) -> Finding | None:
    """Pure: the clear message for an etcd log line, or None for ordinary lines."""
    lowered = line.lower()
    fields = _fields(line)
    if "request cluster id mismatch" in lowered:  # the receiving side: someone else is misconfigured
        local, remote = cluster_ids(line) or ("?", "?")
        sender = fields.get("remote-peer-server-name", "") or "?"
        return warning(
            "PeerFromAnotherCluster",
            f"member {sender} of another cluster ({remote}) sends raft messages to this member "
            f"(cluster {local}); they are refused, and this member is unaffected",
            f"look at member {sender}'s own log: it names its problem (ClusterIDMismatch)",
        )
    if "cluster id mismatch" in lowered or "conflicting cluster id" in lowered:
        found = cluster_ids(line)
        peer = fields.get("remote-peer-id", "") or fields.get("remote-addr", "")
        ids = f" (this member: cluster {found[0]}, peer {peer or '?'}: cluster {found[1]})" if found else ""
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


@dataclass
class MismatchGuard:
    """Pure: whether a member that started without data must be ended for a cluster ID mismatch.

    Fed every log line with the time it was read. The first rejection by its
    peers, while it has never served, starts the grace period (`observe`
    returns the deadline); at the deadline `verdict` says what to write, or
    None when etcd has started serving meanwhile (the mismatch was a stranger's
    or passing, and this member has a quorum).
    """

    grace: float
    serving: bool = False
    since: float | None = None
    line: str = ""

    def observe(self, line: str, now: float) -> float | None:
        if _READY in line:
            self.serving = True
        elif self.since is None and not self.serving and rejected_by_peers(line):
            self.since, self.line = now, line
            return now + self.grace
        return None

    def verdict(self) -> Finding | None:
        if self.serving or self.since is None:
            return None
        return mismatch_stop(self.line, self.grace)


def copy_with_explanations(
    read_line: Callable[[], bytes],
    write: Callable[[bytes], None],
    on_explain: Callable[[Finding], None],
) -> None:
    """Copy lines until EOF, adding each explanation once; pure apart from the callables."""
    seen: set[str] = set()
    while raw := read_line():
        write(raw)
        found = explain(raw.decode(errors="replace"))
        if found and found.code not in seen:
            seen.add(found.code)
            write(found.render().encode() + b"\n")
            on_explain(found)


def start(termination_log: str = "", stop_on_mismatch_after: float | None = None) -> None:
    """Fork the watcher and route this process's stderr through it; call right before exec.

    The watcher ignores SIGINT/SIGTERM/SIGHUP so it outlives etcd's shutdown
    logging and exits on EOF, when etcd (the last writer) is gone; its timer
    goes with it. `stop_on_mismatch_after`: the grace period of `MismatchGuard`
    for a member that started without data of its own; None only explains.
    """
    etcd_pid = os.getpid()  # exec keeps the PID: this is etcd's
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # watcher
        os.close(write_fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        os.setpgid(0, 0)  # out of the terminal's process group: Ctrl-C goes to etcd only
        source = os.fdopen(read_fd, "rb", buffering=0)
        out = os.fdopen(os.dup(2), "wb", buffering=0)
        lock = threading.Lock()
        guard = MismatchGuard(stop_on_mismatch_after) if stop_on_mismatch_after is not None else None

        def record(found: Finding) -> None:
            if termination_log and found.severity is Severity.ERROR:
                try:
                    with open(termination_log, "w", encoding="utf-8") as fh:
                        fh.write(found.render() + "\n")
                except OSError:
                    pass

        def write(data: bytes) -> None:
            # Never stop draining the pipe: a dead reader would kill etcd with SIGPIPE.
            with lock, contextlib.suppress(OSError):
                out.write(data)

        def at_deadline() -> None:
            with lock:
                verdict = guard.verdict() if guard else None
            if verdict is not None:
                write(verdict.render().encode() + b"\n")
                record(verdict)
                end_etcd(etcd_pid)

        def read_line() -> bytes:
            raw = source.readline()
            if guard is not None and raw:
                with lock:
                    deadline = guard.observe(raw.decode(errors="replace"), time.monotonic())
                if deadline is not None:
                    timer = threading.Timer(deadline - time.monotonic(), at_deadline)
                    timer.daemon = True
                    timer.start()
            return raw

        try:
            copy_with_explanations(read_line, write, record)
        finally:
            os._exit(0)
    os.close(read_fd)
    sys.stderr.flush()
    os.dup2(write_fd, 2)
    os.close(write_fd)


def end_etcd(pid: int) -> None:
    """End etcd with a non-zero exit: SIGHUP, then SIGTERM if it is still there.

    etcd handles SIGTERM by shutting down cleanly and, as a pod's PID 1, exiting
    0, which would read as a normal stop. It does not handle SIGHUP, so Go's
    runtime ends it at once with a failure (killed by SIGHUP; exit 2 as PID 1).
    A member that never joined its cluster loses nothing by not shutting down
    cleanly. SIGTERM follows only if SIGHUP was ignored (an inherited SIG_IGN,
    as under nohup).
    """
    for sig in (signal.SIGHUP, signal.SIGTERM):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        time.sleep(_INSIST_AFTER)
