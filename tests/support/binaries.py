"""Where the pinned etcd builds are: one setting, ETCD_BIN (a directory).

`ETCD_BIN` holds `etcd-<version>/{etcd,etcdctl,etcdutl}` for every version in
hack/versions.env, as hack/build-etcd.sh lays them out. Tests that need a build
skip with the command that makes it, or fail under CI (ETCD_REQUIRED=1) so a
broken build step cannot hide as skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def versions() -> dict[str, str]:
    pinned: dict[str, str] = {}
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        name, eq, value = line.partition("=")
        if eq and not name.startswith("#"):
            pinned[name.strip()] = value.strip()
    return pinned


def bin_dir() -> Path:
    return Path(os.environ.get("ETCD_BIN") or Path.home() / ".cache" / "etcd-operator" / "bin")


def etcd_dir(version_key: str = "ETCD_VERSION") -> Path:
    """Directory with etcd, etcdctl and etcdutl of a pinned version, or skip/fail."""
    version = versions()[version_key]
    directory = bin_dir() / f"etcd-{version}"
    if not (directory / "etcd").exists() or not (directory / "etcdctl").exists():
        reason = f"etcd {version} not built in {directory}: run `bash hack/build-etcd.sh` (or set ETCD_BIN)"
        if os.environ.get("ETCD_REQUIRED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return directory
