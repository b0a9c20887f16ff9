"""A real kube-apiserver for the `kube` tests (hack/apiserver-up.sh).

The control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)
is started once and left running across test sessions, since start-up is the
cost; `make cluster-down` stops it, or set KUBE_TEARDOWN=1 to stop it when the
session ends. Without the pinned Kubernetes builds the tests skip with the
command that makes them, or fail under CI (KUBE_REQUIRED=1).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.binaries import ROOT, bin_dir, versions

UP_TIMEOUT = 240  # seconds; a cold start takes well under a minute


def _require_binaries() -> Path:
    pinned = versions()
    kube = bin_dir() / f"kube-{pinned['KUBE_VERSION']}"
    etcd = bin_dir() / f"etcd-{pinned['ETCD_VERSION']}"
    needed = {
        kube / "kube-apiserver": "bash hack/build-kube.sh",
        kube / "kube-controller-manager": "bash hack/build-kube.sh",
        kube / "kubectl": "bash hack/build-kube.sh",
        etcd / "etcd": "bash hack/build-etcd.sh",
    }
    missing = [f"{path} (run `{cmd}`)" for path, cmd in needed.items() if not os.access(path, os.X_OK)]
    if missing:
        reason = "Kubernetes control plane binaries not built: " + ", ".join(missing)
        if os.environ.get("KUBE_REQUIRED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return kube


@pytest.fixture(scope="session")
def kube_bin() -> Path:
    """Directory with the pinned kube-apiserver, kubectl, ..."""
    return _require_binaries()


@pytest.fixture(scope="session")
def kube_version() -> str:
    return versions()["KUBE_VERSION"]


@pytest.fixture(scope="session")
def kubeconfig(kube_bin: Path) -> Iterator[Path]:
    """Admin kubeconfig of a running control plane (started if need be)."""
    try:
        up = subprocess.run(
            ["bash", str(ROOT / "hack" / "apiserver-up.sh")],
            cwd=ROOT, capture_output=True, text=True, timeout=UP_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"hack/apiserver-up.sh did not finish within {UP_TIMEOUT}s:\n{e.stderr or ''}", pytrace=False)
    lines = up.stdout.strip().splitlines()
    if up.returncode != 0 or not lines or not lines[-1].startswith("KUBECONFIG="):
        pytest.fail(
            f"hack/apiserver-up.sh failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}", pytrace=False
        )
    path = Path(lines[-1].removeprefix("KUBECONFIG="))
    assert path.is_file(), path
    yield path
    if os.environ.get("KUBE_TEARDOWN") == "1":
        subprocess.run(["bash", str(ROOT / "hack" / "cluster-down.sh")], cwd=ROOT, check=False)


@pytest.fixture(scope="session")
def kubectl(kube_bin: Path, kubeconfig: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """kubectl(*args, check=True, input=None, timeout=60) -> CompletedProcess (text)."""

    def run(*args: str, check: bool = True, input: str | None = None, timeout: float = 60):
        proc = subprocess.run(
            [str(kube_bin / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True, text=True, input=input, timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}", pytrace=False)
        return proc

    return run


@pytest.fixture(scope="session")
def crd_installed(kubectl) -> None:
    """The generated CRDs (EtcdCluster, EtcdBackup), installed and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    # `kubectl wait` fails at once ("accessor error") on a CRD so new that it has no conditions yet.
    deadline = time.monotonic() + 60
    for plural in ("etcdclusters", "etcdbackups"):
        while True:
            got = kubectl("get", f"crd/{plural}.etcd.operator.dev", "-o",
                          "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False)  # fmt: skip
            if got.stdout.strip() == "True":
                break
            if time.monotonic() > deadline:
                pytest.fail(f"CRD {plural} not Established after 60s: {got.stdout} {got.stderr}", pytrace=False)
            time.sleep(0.5)


@pytest.fixture
def namespace(kubectl, crd_installed) -> Iterator[str]:
    """A fresh namespace per test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)
