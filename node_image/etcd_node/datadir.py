"""Whether a data dir already holds a member: then etcd ignores every bootstrap flag."""

from __future__ import annotations

from collections.abc import Mapping
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
