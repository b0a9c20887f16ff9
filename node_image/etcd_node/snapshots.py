"""`etcd-node backup` and `etcd-node restore`: etcd snapshots to and from a store.

    etcd-node backup  --endpoints URL,... [--cacert F --cert F --key F] DESTINATION [--scratch-dir DIR]
    etcd-node delete-snapshot SOURCE      (a missing snapshot is success: deleting twice is harmless)
    etcd-node restore SOURCE --data-dir DIR --name NAME --initial-cluster NAME=URL,...
                      --initial-advertise-peer-urls URL --initial-cluster-token TOKEN
                      [--bump-revision N --mark-compacted] [--skip-if-initialized]

    DESTINATION / SOURCE: --s3-bucket B --s3-key K [--s3-endpoint URL] [--s3-region R]
                          [--s3-ca-file F] [--s3-force-path-style]      (credentials: AWS_* variables)
                        | --path FILE                                   (a directory, e.g. a mounted claim)

A backup takes the snapshot from one healthy voting member (a follower when
there is one, so the leader keeps its disk for the cluster), checks it with
`etcdutl snapshot status`, and stores it with a record of its sha256, revision
and etcd version; the result is printed as JSON and written to the termination
log for the operator. A restore fetches, checks the sha256 and the version,
and restores with `etcdutl snapshot restore` beside the data dir, which only
appears under its name once the restore is whole: a refused or failed restore
writes nothing into the data dir.

The decisions (which member, whether a snapshot may be restored by this etcd)
are pure functions; the rest is the I/O around them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from .contract import ENV_TERMINATION_LOG, AgentError
from .log import configure
from .objectstore import DirectoryStore, S3Location, S3Store, Store, StoreError

# Codes written to the termination log (`etcd-node: error[Code]: ...`).
NO_SOURCE_MEMBER = "NoHealthySourceMember"
SNAPSHOT_FAILED = "SnapshotFailed"
SNAPSHOT_INVALID = "SnapshotInvalid"
STORE_FAILED = "StoreFailed"
HASH_MISMATCH = "SnapshotHashMismatch"
VERSION_REFUSED = "SnapshotVersionRefused"
DATA_DIR_NOT_EMPTY = "DataDirNotEmpty"
RESTORE_FAILED = "RestoreFailed"
UNEXPECTED = "UnexpectedError"


class SnapshotError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error = AgentError(code, message)


# --- pure decisions -------------------------------------------------------------


@dataclass(frozen=True)
class EndpointStatus:
    """One member as `etcdctl endpoint status -w json` reports it."""

    endpoint: str
    member_id: int
    leader: int
    learner: bool
    applied_index: int
    version: str
    errors: tuple[str, ...] = ()

    @classmethod
    def from_etcdctl(cls, entry: Mapping[str, object]) -> EndpointStatus:
        status = entry.get("Status")
        if not isinstance(status, dict):
            raise ValueError(f"no Status in {entry!r}")
        header = status.get("header") or {}
        return cls(
            endpoint=str(entry.get("Endpoint", "")),
            member_id=int(header.get("member_id", 0)),
            leader=int(status.get("leader", 0)),
            learner=bool(status.get("isLearner", False)),
            applied_index=int(status.get("raftAppliedIndex") or status.get("raftIndex") or 0),
            version=str(status.get("version", "")),
            errors=tuple(str(e) for e in status.get("errors") or ()),
        )


def choose_source(statuses: Sequence[EndpointStatus]) -> EndpointStatus | None:
    """The member to snapshot: a voting member that answered, a follower before the leader, most applied first.

    Learners are never chosen: they may lag and are refused by some RPCs. A member
    reporting errors (e.g. a corruption alarm) is passed over.
    """
    usable = [s for s in statuses if not s.learner and not s.errors and s.member_id]
    followers = [s for s in usable if s.member_id != s.leader]
    pool = followers or usable
    return max(pool, key=lambda s: s.applied_index) if pool else None


def minor(version: str) -> tuple[int, int] | None:
    parts = version.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def restore_refusal(snapshot_version: str, tool_version: str) -> str | None:
    """Why this etcd must not restore a snapshot of that storage version, or None.

    etcd upgrades one minor version at a time and never downgrades; a restore is
    a start from the snapshot's data, so the same path applies: a snapshot from
    a newer minor, or from more than one minor back, is refused.
    """
    snap, tool = minor(snapshot_version), minor(tool_version)
    if tool is None:
        return f"cannot tell the version of etcdutl ({tool_version!r})"
    if snap is None:
        return None  # etcd before 3.5 recorded no storage version; etcdutl itself checks what it can read
    if snap[0] != tool[0] or snap[1] > tool[1]:
        return (
            f"the snapshot was written by etcd {snap[0]}.{snap[1]}, newer than this etcd {tool[0]}.{tool[1]}: "
            f"restore it with etcd {snap[0]}.{snap[1]} or later"
        )
    if tool[1] - snap[1] > 1:
        return (
            f"the snapshot was written by etcd {snap[0]}.{snap[1]}; etcd {tool[0]}.{tool[1]} only starts from data "
            f"of the previous minor version: restore it with etcd {snap[0]}.{snap[1] + 1}"
        )
    return None


@dataclass(frozen=True)
class BackupRecord:
    """What a finished backup reports (printed, and the termination message the operator reads)."""

    location: str
    revision: int
    size_bytes: int
    sha256: str
    etcd_version: str  # the snapshot's storage version (etcdutl snapshot status)
    member: str  # the endpoint the snapshot was taken from
    member_version: str  # the etcd release that member runs
    start_time: str
    completion_time: str

    def to_json(self) -> str:
        return json.dumps({to_camel(k): v for k, v in asdict(self).items()}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BackupRecord:
        raw = json.loads(text)
        return cls(**{k: raw[to_camel(k)] for k in cls.__dataclass_fields__})

    def store_record(self) -> dict[str, str]:
        return {"sha256": self.sha256, "revision": str(self.revision), "etcd-version": self.etcd_version,
                "size": str(self.size_bytes)}  # fmt: skip


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# --- I/O -----------------------------------------------------------------------


def _run(argv: Sequence[str], code: str, doing: str, timeout: float | None = None) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SnapshotError(code, f"{doing}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SnapshotError(code, f"{doing}: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done.stdout


def _tool(name: str, given: str | None) -> str:
    return given or os.environ.get(f"ETCD_NODE_{name.upper()}") or shutil.which(name) or name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_status(etcdutl: str, path: Path) -> dict[str, object]:
    out = _run([etcdutl, "snapshot", "status", str(path), "-w", "json"], SNAPSHOT_INVALID,
               f"etcdutl snapshot status {path.name}", timeout=600)  # fmt: skip
    try:
        status: dict[str, object] = json.loads(out)
    except ValueError as exc:
        raise SnapshotError(SNAPSHOT_INVALID, f"etcdutl snapshot status printed no JSON: {out[:200]!r}") from exc
    return status


def sha256_and_status(etcdutl: str, path: Path) -> tuple[str, dict[str, object] | SnapshotError]:
    """The file's sha256 and etcdutl's status of it, read side by side: each is a full pass over the file.

    The status comes back as the error when etcdutl refuses the file, so a caller can report the
    sha256 first (a damaged download says more than "not a snapshot").
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(sha256_of, path)  # hashlib releases the GIL over large buffers
        status: dict[str, object] | SnapshotError
        try:
            status = snapshot_status(etcdutl, path)
        except SnapshotError as exc:
            status = exc
        return digest.result(), status


def tool_version(etcdutl: str) -> str:
    out = _run([etcdutl, "version"], RESTORE_FAILED, "etcdutl version", timeout=30)
    for line in out.splitlines():
        if line.lower().startswith("etcdutl version:"):
            return line.split(":", 1)[1].strip()
    return out.strip()


def endpoint_statuses(etcdctl: str, endpoints: Sequence[str], tls: Sequence[str]) -> list[EndpointStatus]:
    """Each endpoint asked on its own, all at once: one member down must neither hide nor delay the others."""

    def ask(endpoint: str) -> list[EndpointStatus]:
        try:
            out = _run([etcdctl, f"--endpoints={endpoint}", *tls, "--dial-timeout=3s", "--command-timeout=5s",
                        "endpoint", "status", "-w", "json"], NO_SOURCE_MEMBER, f"status of {endpoint}", timeout=20)  # fmt: skip
            return [EndpointStatus.from_etcdctl(entry) for entry in json.loads(out)]
        except (SnapshotError, ValueError):
            return []

    with ThreadPoolExecutor(max_workers=max(len(endpoints), 1)) as pool:
        return [status for answer in pool.map(ask, endpoints) for status in answer]


def take_backup(args: argparse.Namespace, store: Store, now: datetime) -> BackupRecord:
    started = now.isoformat().replace("+00:00", "Z")
    tls = [f"--{name}={value}" for name in ("cacert", "cert", "key") if (value := getattr(args, name))]
    if args.insecure_skip_tls_verify:
        tls.append("--insecure-skip-tls-verify")  # etcd's auto TLS: a certificate nobody can verify
    etcdctl, etcdutl = _tool("etcdctl", args.etcdctl), _tool("etcdutl", args.etcdutl)
    endpoints = [e for e in args.endpoints.split(",") if e]
    source = choose_source(endpoint_statuses(etcdctl, endpoints, tls))
    if source is None:
        raise SnapshotError(NO_SOURCE_MEMBER, f"no healthy voting member answered among {', '.join(endpoints)}")
    scratch = Path(args.scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "snapshot.db"
    try:
        _run([etcdctl, f"--endpoints={source.endpoint}", *tls, "--dial-timeout=5s", "snapshot", "save", str(path)],
             SNAPSHOT_FAILED, f"snapshot from {source.endpoint}")  # fmt: skip
        digest, status = sha256_and_status(etcdutl, path)
        if isinstance(status, SnapshotError):
            raise status
        record = BackupRecord(
            location=store.location,
            revision=int(str(status.get("revision", 0))),
            size_bytes=path.stat().st_size,
            sha256=digest,
            etcd_version=str(status.get("version", "")),
            member=source.endpoint,
            member_version=source.version,
            start_time=started,
            completion_time="",
        )
        try:
            store.put(path, record.store_record())
        except StoreError as exc:
            raise SnapshotError(STORE_FAILED, str(exc)) from exc
    finally:
        path.unlink(missing_ok=True)
    done = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return BackupRecord(**{**asdict(record), "completion_time": done})


def restore(args: argparse.Namespace, store: Store) -> str:
    """Restore into args.data_dir; returns what was done, for the log."""
    data_dir = Path(args.data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        if args.skip_if_initialized and (data_dir / "member").is_dir():
            return f"{data_dir} already holds a member: not restored again"
        raise SnapshotError(DATA_DIR_NOT_EMPTY, f"{data_dir} is not empty: a restore never writes over existing data; "
                            "restore into a new cluster or an emptied volume")  # fmt: skip
    etcdutl = _tool("etcdutl", args.etcdutl)
    scratch = Path(args.scratch_dir or f"{data_dir}.restore")
    staged = data_dir.with_name(data_dir.name + ".restoring")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(staged, ignore_errors=True)
    scratch.mkdir(parents=True)
    path = scratch / "snapshot.db"
    try:
        try:
            record = store.get(path)
        except StoreError as exc:
            raise SnapshotError(STORE_FAILED, str(exc)) from exc
        expected = record.get("sha256")
        if not expected:
            raise SnapshotError(HASH_MISMATCH, f"{store.location} carries no sha256 record: it was not written by "
                                "etcd-node backup, or its upload never finished")  # fmt: skip
        # The record was made by etcd-node backup after `etcdutl snapshot status` passed on exactly these
        # bytes: when the sha256 matches and the record names the version, that check need not run again
        # (and etcdutl restore verifies etcd's own checksum). Without a version, ask etcdutl.
        recorded_version = record.get("etcd-version", "")
        status: dict[str, object] | SnapshotError
        if recorded_version:
            actual, status = sha256_of(path), {"version": recorded_version, "revision": record.get("revision")}
        else:
            actual, status = sha256_and_status(etcdutl, path)
        if actual != expected:
            raise SnapshotError(HASH_MISMATCH, f"{store.location} has sha256 {actual}, its record says {expected}: "
                                "the snapshot is damaged; restore another backup")  # fmt: skip
        if isinstance(status, SnapshotError):
            raise status
        # etcdutl before 3.6 cannot read a snapshot's storage version; the record made at backup time can.
        written_by = str(status.get("version") or recorded_version)
        refusal = restore_refusal(written_by, tool_version(etcdutl))
        if refusal:
            raise SnapshotError(VERSION_REFUSED, refusal)
        argv = [etcdutl, "snapshot", "restore", str(path), f"--data-dir={staged}", f"--name={args.name}",
                f"--initial-cluster={args.initial_cluster}", f"--initial-cluster-token={args.initial_cluster_token}",
                f"--initial-advertise-peer-urls={args.initial_advertise_peer_urls}"]  # fmt: skip
        if args.bump_revision:
            argv.append(f"--bump-revision={args.bump_revision}")
        if args.mark_compacted:
            argv.append("--mark-compacted")
        _run(argv, RESTORE_FAILED, f"etcdutl snapshot restore {store.location}", timeout=3600)
        if data_dir.exists():
            data_dir.rmdir()  # empty, checked above
        os.replace(staged, data_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)
    return f"restored {store.location} (revision {status.get('revision')}) into {data_dir}"


# --- command line -----------------------------------------------------------------


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("store (an S3 bucket or a file path)")
    group.add_argument("--s3-bucket")
    group.add_argument("--s3-key")
    group.add_argument("--s3-endpoint", help="e.g. https://s3.example.com (default: AWS)")
    group.add_argument("--s3-region", default="us-east-1")
    group.add_argument("--s3-ca-file", help="CA bundle that signed the endpoint's certificate")
    group.add_argument("--s3-force-path-style", action="store_true")
    group.add_argument("--path", help="snapshot file in a directory (its record is FILE.json)")
    parser.add_argument("--etcdctl", help="etcdctl binary (default: ETCD_NODE_ETCDCTL or PATH)")
    parser.add_argument("--etcdutl", help="etcdutl binary (default: ETCD_NODE_ETCDUTL or PATH)")


def store_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Store:
    if args.path and (args.s3_bucket or args.s3_key):
        parser.error("give either --path or --s3-bucket/--s3-key, not both")
    if args.path:
        return DirectoryStore(Path(args.path))
    if not (args.s3_bucket and args.s3_key):
        parser.error("a store is needed: --s3-bucket and --s3-key, or --path")
    where = S3Location(args.s3_bucket, args.s3_key, args.s3_endpoint, args.s3_region, args.s3_ca_file,
                       args.s3_force_path_style)  # fmt: skip
    return S3Store(where)


def backup_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcd-node backup", description="Snapshot an etcd cluster into a store.")
    parser.add_argument("--endpoints", required=True, help="client URLs of the members, comma-separated")
    parser.add_argument("--cacert")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--insecure-skip-tls-verify", action="store_true", help="for members with etcd's auto TLS")
    parser.add_argument("--scratch-dir", default="/tmp/etcd-backup", help="where the snapshot is written first")
    _store_arguments(parser)
    return parser


def restore_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcd-node restore", description="Restore a member's data dir from a store.")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--initial-cluster", required=True)
    parser.add_argument("--initial-advertise-peer-urls", required=True)
    parser.add_argument("--initial-cluster-token", required=True, help="a new token: the restored cluster is new")
    parser.add_argument("--bump-revision", type=int, default=0, help="raise every revision by this much")
    parser.add_argument("--mark-compacted", action="store_true", help="make watches from older revisions fail")
    parser.add_argument("--skip-if-initialized", action="store_true",
                        help="succeed without restoring when the data dir already holds a member (a restarted pod)")  # fmt: skip
    parser.add_argument("--scratch-dir", help="where the snapshot is fetched (default: DATA_DIR.restore)")
    _store_arguments(parser)
    return parser


def delete_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcd-node delete-snapshot",
                                     description="Delete a snapshot and its record from a store.")  # fmt: skip
    _store_arguments(parser)
    return parser


def delete_snapshot(store: Store) -> str:
    """Remove the snapshot; the record goes first, so what a failure leaves never looks complete."""
    try:
        store.delete()
    except StoreError as exc:
        raise SnapshotError(STORE_FAILED, str(exc)) from exc
    return store.location


def _terminate(environ: Mapping[str, str], text: str) -> None:
    path = environ.get(ENV_TERMINATION_LOG)
    if path:
        with contextlib.suppress(OSError):
            Path(path).write_text(text + "\n", encoding="utf-8")


def _failed(log: FilteringBoundLogger, environ: Mapping[str, str], exc: Exception) -> int:
    """Log and write the coded reason; an exception nobody foresaw still gets one (UnexpectedError)."""
    error = exc.error if isinstance(exc, SnapshotError) else AgentError(UNEXPECTED, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, SnapshotError):
        log.error(error.message, code=error.code)
    else:
        log.exception(error.message, code=error.code)
    _terminate(environ, error.render())
    return 1


def main_backup(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = backup_parser()
    args = parser.parse_args(list(argv))
    log = configure()
    store = store_from(args, parser)
    try:
        record = take_backup(args, store, datetime.now(UTC).replace(microsecond=0))
    except Exception as exc:  # noqa: BLE001 - every failure leaves a coded reason for the operator
        return _failed(log, environ, exc)
    log.info("backup stored", location=record.location, revision=record.revision, size=record.size_bytes,
             sha256=record.sha256, member=record.member)  # fmt: skip
    sys.stdout.write(record.to_json() + "\n")
    _terminate(environ, record.to_json())
    return 0


def main_restore(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = restore_parser()
    args = parser.parse_args(list(argv))
    log = configure()
    store = store_from(args, parser)
    try:
        done = restore(args, store)
    except Exception as exc:  # noqa: BLE001 - every failure leaves a coded reason for the operator
        return _failed(log, environ, exc)
    log.info(done)
    return 0


def main_delete(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = delete_parser()
    args = parser.parse_args(list(argv))
    log = configure()
    store = store_from(args, parser)
    try:
        location = delete_snapshot(store)
    except Exception as exc:  # noqa: BLE001 - every failure leaves a coded reason for the operator
        return _failed(log, environ, exc)
    log.info("snapshot deleted", location=location)
    result = json.dumps({"deleted": location})
    sys.stdout.write(result + "\n")
    _terminate(environ, result)
    return 0
