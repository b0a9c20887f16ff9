"""A new cluster that starts from a backup: each initial member restores its data dir just before etcd starts.

etcd's recovery procedure restores the same snapshot into every initial
member with that member's name and peer URL, the same initial cluster and a
new token, then starts them together. In a pod the agent has just worked out
exactly those values (`plan.decide`), so it restores with them when, and only
when, the member is bootstrapping a new cluster from an empty data dir and the
request names this cluster's token: a restart, a member that joins a running
cluster, or a request left over from another cluster never restores.

The request is a small JSON file the operator mounts only while the cluster
bootstraps (contract.RESTORE_FILE):

    {"token": "<initial-cluster-token>", "source": ["--s3-bucket=...", "--s3-key=...", ...],
     "bumpRevision": 0, "markCompacted": false}

`source` holds the store flags of `etcd-node restore` (snapshots.py); the
store's credentials come from the environment as for a backup.

A request with a `requestID` (and its own `initialCluster`) is an in-place
restore of a running cluster: inplace_restore.py handles it, and this module
never applies it, whatever the data dir holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .findings import Finding, error

T = TypeVar("T")


@dataclass(frozen=True)
class RestoreRequest:
    token: str
    source: tuple[str, ...]
    bump_revision: int = 0
    mark_compacted: bool = False
    request_id: str = ""  # set: an in-place restore of a running cluster (inplace_restore.py)
    initial_cluster: str = ""  # in-place only: every member the restored cluster has, name=peerURL,...

    @property
    def in_place(self) -> bool:
        return bool(self.request_id)

    @classmethod
    def parse(cls, text: str) -> RestoreRequest:
        raw = json.loads(text)
        source = raw.get("source")
        if not isinstance(raw.get("token"), str) or not isinstance(source, list) or not source:
            raise ValueError("needs a token (string) and a non-empty source (list of store flags)")
        request_id, initial = str(raw.get("requestID") or ""), str(raw.get("initialCluster") or "")
        if request_id and not initial:
            raise ValueError(f"request {request_id} restores in place but names no initialCluster")
        if request_id and not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,62}", request_id):
            raise ValueError(f"requestID {request_id!r} is not a short name (letters, digits, - _ .)")
        return cls(str(raw["token"]), tuple(str(f) for f in source), int(raw.get("bumpRevision") or 0),
                   bool(raw.get("markCompacted")), request_id, initial)  # fmt: skip


def read_request_file(path: Path, parse: Callable[[str], T], kind: str, fix: str) -> T | Finding | None:
    """A request the operator mounts (`kind`: Restore, Recovery): None when there is none (the normal case);
    a Finding, `<kind>RequestUnreadable` or `<kind>RequestInvalid`, when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return error(f"{kind}RequestUnreadable", f"cannot read the {kind.lower()} request {path}: {exc}",
                     f"check the mounted {kind.lower()} Secret")  # fmt: skip
    try:
        return parse(text)
    except (ValueError, TypeError) as exc:
        return error(f"{kind}RequestInvalid", f"the {kind.lower()} request {path} is invalid: {exc}", fix)


def read_request(path: Path) -> RestoreRequest | Finding | None:
    return read_request_file(path, RestoreRequest.parse, "Restore",
                             "the operator writes this file; recreate the cluster's restore request")  # fmt: skip


def applies(request: RestoreRequest, options: Mapping[str, str], restarting: bool) -> bool:
    """Restore only into a member bootstrapping a new static cluster of the request's token."""
    return (
        not request.in_place
        and not restarting
        and options.get("initial-cluster-state", "new") == "new"
        and bool(options.get("initial-cluster"))
        and options.get("initial-cluster-token") == request.token
    )


def restore_argv(request: RestoreRequest, options: Mapping[str, str]) -> list[str]:
    """`etcd-node restore` arguments for this member, from etcd's final options (in place: the request's members)."""
    argv = [
        f"--data-dir={options['data-dir']}",
        f"--name={options['name']}",
        f"--initial-cluster={request.initial_cluster or options['initial-cluster']}",
        f"--initial-advertise-peer-urls={options['initial-advertise-peer-urls']}",
        f"--initial-cluster-token={options['initial-cluster-token']}",
        *request.source,
    ]
    if request.bump_revision:
        argv.append(f"--bump-revision={request.bump_revision}")
    if request.mark_compacted:
        argv.append("--mark-compacted")
    return argv


def restore(request: RestoreRequest, options: Mapping[str, str]) -> Sequence[Finding]:
    """Run the restore; a failure is an error finding (the member does not start, nothing was written)."""
    from . import snapshots

    args = snapshots.restore_parser().parse_args(restore_argv(request, options))
    try:
        store = snapshots.store_from(args, snapshots.restore_parser())
        snapshots.restore(args, store)
    except snapshots.SnapshotError as exc:
        return [error(exc.error.code, f"restoring the backup failed: {exc.error.message}",
                      "fix the backup source named above; the member retries when its pod restarts")]  # fmt: skip
    return []
