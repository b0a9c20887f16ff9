"""Whether a data dir already holds a member: then etcd ignores every bootstrap flag."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path


def wal_dir(options: Mapping[str, str]) -> Path:
    if options.get("wal-dir"):
        return Path(options["wal-dir"])
    data_dir = options.get("data-dir") or f"{options.get('name', 'default')}.etcd"
    return Path(data_dir) / "member" / "wal"


def has_member_data(options: Mapping[str, str]) -> bool:
    """True when a WAL exists, which is etcd's own test for "restart, don't bootstrap"."""
    directory = wal_dir(options)
    try:
        return any(p.suffix == ".wal" for p in directory.iterdir())
    except OSError:
        return False


def aside_path(options: Mapping[str, str], now: datetime) -> Path:
    data_dir = Path(options.get("data-dir") or f"{options.get('name', 'default')}.etcd")
    return data_dir.with_name(f"{data_dir.name}.stale-{now:%Y%m%dT%H%M%SZ}")


def set_aside(options: Mapping[str, str], now: datetime) -> Path:
    """Rename the data dir (and a separate WAL dir) to `<dir>.stale-<time>`; returns the new data dir path."""
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    data_dir = Path(options.get("data-dir") or f"{options.get('name', 'default')}.etcd")
    kept = aside_path(options, now)
    data_dir.rename(kept)
    if options.get("wal-dir") and Path(options["wal-dir"]).exists():
        wal = Path(options["wal-dir"])
        wal.rename(wal.with_name(f"{wal.name}.stale-{stamp}"))
    return kept
