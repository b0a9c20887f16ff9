"""End-to-end tests: the operator installed by its Helm chart, on a real cluster.

Any cluster: set E2E_KUBECONFIG (kind does, see e2e/kind/run.sh). Without it
the local cluster is brought up (e2e/local/up.sh, root only) and left running
for the next session, since start-up is the cost; `make cluster-down` stops it.
Under CI (E2E_REQUIRED=1) a missing prerequisite fails instead of skipping.

The chart is installed once per session with the locally built images; each
test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.support import Kube, create_namespace
from tests.support.binaries import ROOT, bin_dir

UP_TIMEOUT = 1800  # a cold image build is part of the first start
OPERATOR_NAMESPACE = "etcd-operator-system"
RELEASE = "etcd-operator"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _tool(name: str) -> str:
    pinned = bin_dir() / name
    if os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which(name)
    if not found:
        _skip_or_fail(f"{name} not found (run `make setup`, or put it on PATH)")
    return found


@pytest.fixture(scope="session")
def e2e_kubeconfig() -> Path:
    given = os.environ.get("E2E_KUBECONFIG")
    if given:
        return Path(given)
    if os.geteuid() != 0:
        _skip_or_fail("the local e2e cluster needs root (or set E2E_KUBECONFIG to a cluster's kubeconfig)")
    try:
        up = subprocess.run(
            ["bash", str(ROOT / "e2e" / "local" / "up.sh")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=None, text=True, timeout=UP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"e2e/local/up.sh did not finish within {UP_TIMEOUT}s", pytrace=False)
    lines = up.stdout.strip().splitlines()
    if up.returncode != 0 or not lines or not lines[-1].startswith("KUBECONFIG="):
        pytest.fail(f"e2e/local/up.sh failed (exit {up.returncode}); its log is above", pytrace=False)
    return Path(lines[-1].removeprefix("KUBECONFIG="))


@pytest.fixture(scope="session")
def kube(e2e_kubeconfig: Path) -> Kube:
    return Kube(kubectl=_tool("kubectl"), kubeconfig=e2e_kubeconfig)


@pytest.fixture(scope="session")
def operator(kube: Kube) -> str:
    """The chart installed (or upgraded) with the locally built images; its namespace."""
    helm = _tool("helm")
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    # Helm installs a chart's CRDs only on first install, never on upgrade: a cluster left running by
    # an earlier session would keep an old schema (and prune the status fields it lacks).
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "charts" / "etcd-operator" / "crds"))
    cmd = [
        helm, "upgrade", "--install", RELEASE, str(ROOT / "charts" / "etcd-operator"),
        "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "180s",
        "--set", "image.pullPolicy=IfNotPresent", "--set", "logFormat=json",
    ]
    # The signer of members' pod certificates, where the cluster has the API (the local cluster; not kind's).
    resources = kube.run("api-resources", "--api-group=certificates.k8s.io", "-o", "name", check=False).stdout
    cmd += ["--set", f"podCertificates.enabled={'true' if 'podcertificaterequests' in resources else 'false'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    if proc.returncode != 0:
        pytest.fail(f"helm install failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    # A rebuilt image keeps its tag: restart so the operator runs the current one.
    kube.run("-n", OPERATOR_NAMESPACE, "rollout", "restart", f"deploy/{RELEASE}")
    kube.run("-n", OPERATOR_NAMESPACE, "rollout", "status", f"deploy/{RELEASE}", "--timeout=180s", timeout=200)
    return OPERATOR_NAMESPACE


@pytest.fixture
def namespace(kube: Kube, operator: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    create_namespace(kube, name)
    yield name
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(kube.diagnostics(name, operator))
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
