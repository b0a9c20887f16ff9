"""The node images e2e/images/build.sh and e2e/kind/up.sh make: one for each of NODE_ETCD_VERSIONS."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def pinned(*names: str) -> list[str]:
    """The values as the scripts see them: hack/versions.env sourced by bash."""
    script = '. hack/versions.env; printf "%s\\n" ' + " ".join(f'"${name}"' for name in names)
    return subprocess.run(
        ["bash", "-euc", script], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.splitlines()


def test_every_node_image_version_is_one_build_etcd_makes_by_default():
    node_versions, etcd, etcd_v2 = pinned("NODE_ETCD_VERSIONS", "ETCD_VERSION", "ETCD_V2_VERSION")
    versions = node_versions.split()
    # The operator's default version has an image; and no other than hack/build-etcd.sh builds.
    assert etcd in versions
    assert set(versions) <= {etcd, etcd_v2}
    assert len(set(versions)) == len(versions)
    assert all(re.fullmatch(r"v\d+\.\d+\.\d+", v) for v in versions)
    # Oldest first, the order of an upgrade.
    assert versions == sorted(versions, key=lambda v: tuple(int(x) for x in v[1:].split(".")))
