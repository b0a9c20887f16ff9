"""In-place restore of a running cluster: each member replaces its data dir with the snapshot, once per request.

etcd's disaster-recovery procedure for a cluster that keeps its name: stop
every member, restore the same snapshot into each with that member's own name
and peer URL, the full initial cluster and a *new* token, and start them
together as a new cluster (new member IDs, new cluster ID; same names and
URLs, so clients and Services do not change). The operator stops the members
and mounts the request (contract.RESTORE_FILE) with a `requestID`; here each
member decides, before anything else, whether this start is the one that
restores.

The request stays mounted until every member is a healthy voter of the new
cluster, so a member may start several times with it (a crash, an eviction):
only the first start of a request restores. Which requests a member has
applied is recorded in a marker file on the data volume beside the data dir
(never inside it, where etcd owns every file, and never in etcd, which is the
thing being replaced). The decision table, `decide`:

| request token = the pod's token | requestID in the marker | what happens                         |
|---------------------------------|-------------------------|--------------------------------------|
| no                              | -                       | nothing: the pod is not this restore's |
| yes                             | yes                     | nothing: already restored, etcd restarts from it |
| yes                             | no (or no marker)       | old data dir moved aside, snapshot restored, marker written |

Data is never deleted: the old data dir becomes `<data-dir>.pre-restore-<requestID>`
(a second name with a counter if a crash left the first taken). The marker
is written only after the restore is in place and before etcd starts, so a
crash at any point either repeats the restore (over a data dir etcd never ran
on, which is moved aside too) or finds it done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .bootstrap_restore import RestoreRequest
from .findings import Finding, error
from .objectstore import write_atomically


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Restore:
    aside: Path | None  # where the current data dir goes first (None: there is none)


def data_dir(options: Mapping[str, str]) -> Path:
    return Path(options.get("data-dir") or f"{options.get('name', 'default')}.etcd")


def marker_path(options: Mapping[str, str]) -> Path:
    """Beside the data dir, on the same volume: `<data-dir>.restores.json`."""
    directory = data_dir(options)
    return directory.with_name(f"{directory.name}.restores.json")


def aside_path(options: Mapping[str, str], request_id: str, taken: Callable[[Path], bool]) -> Path:
    """`<data-dir>.pre-restore-<requestID>`, or the first free `….<n>` when an earlier attempt took it."""
    directory = data_dir(options)
    base = directory.with_name(f"{directory.name}.pre-restore-{request_id}")
    candidate, n = base, 0
    while taken(candidate):
        n += 1
        candidate = base.with_name(f"{base.name}.{n}")
    return candidate


def decide(request: RestoreRequest, options: Mapping[str, str], applied: frozenset[str], has_data: bool,
           taken: Callable[[Path], bool]) -> Skip | Restore:  # fmt: skip
    """Whether this start restores (pure but for `taken`, which names the aside paths already used)."""
    if options.get("initial-cluster-token") != request.token:
        return Skip(f"the request's token {request.token} is not this member's "
                    f"({options.get('initial-cluster-token') or 'none'}): not this pod's restore")  # fmt: skip
    if request.request_id in applied:
        return Skip(f"restore {request.request_id} was applied already: etcd restarts from the restored data")
    return Restore(aside_path(options, request.request_id, taken) if has_data else None)


def read_applied(path: Path) -> frozenset[str]:
    """The requestIDs this member has restored; an unreadable marker counts as none (the restore repeats)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return frozenset()
    applied = raw.get("applied") if isinstance(raw, dict) else None
    return frozenset(str(i) for i in applied) if isinstance(applied, list) else frozenset()


def write_applied(path: Path, applied: frozenset[str]) -> None:
    """Atomically, and synced: once etcd has started on the restored data, the marker must say so."""
    body = json.dumps({"applied": sorted(applied)}).encode()
    write_atomically(path, lambda fh: fh.write(body))


def move_aside(options: Mapping[str, str], aside: Path) -> None:
    """Rename the data dir (and a separate WAL dir) to the aside path; never delete anything."""
    data_dir(options).rename(aside)
    if options.get("wal-dir") and Path(options["wal-dir"]).exists():
        wal = Path(options["wal-dir"])
        wal.rename(wal.with_name(f"{wal.name}.{aside.name.rsplit('.pre-restore-', 1)[1]}"))


def has_data(options: Mapping[str, str]) -> bool:
    directory = data_dir(options)
    return directory.exists() and any(directory.iterdir())


def apply(request: RestoreRequest, options: Mapping[str, str], dry_run: bool = False) -> tuple[str, list[Finding]]:
    """Decide and carry out this member's part of an in-place restore; returns what it did and any error."""
    from . import bootstrap_restore

    marker = marker_path(options)
    applied = read_applied(marker)
    decision = decide(request, options, applied, has_data(options), lambda p: p.exists())
    if isinstance(decision, Skip):
        return decision.reason, []
    if dry_run:
        return f"would restore {request.request_id} (old data dir to {decision.aside})", []
    try:
        if decision.aside is not None:
            move_aside(options, decision.aside)
    except OSError as exc:
        return "", [error("RestoreDataNotSetAside", f"cannot move the data dir aside before restore "
                          f"{request.request_id}: {exc}",
                          "make the data volume writable by the etcd user (etcd-node renames, never deletes)")]  # fmt: skip
    findings = list(bootstrap_restore.restore(request, options))
    if findings:
        return "", findings
    try:
        write_applied(marker, applied | {request.request_id})
    except OSError as exc:
        return "", [error("RestoreMarkerNotWritten", f"restored, but cannot record restore {request.request_id} "
                          f"in {marker}: {exc}", "make the data volume writable by the etcd user; the member "
                          "restores again when it restarts, moving this copy aside")]  # fmt: skip
    kept = f"; the previous data dir is kept at {decision.aside}" if decision.aside else ""
    return f"restored {request.request_id} in place{kept}", []
