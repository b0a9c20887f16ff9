"""The chart's optional modes against a real kube-apiserver: the members' NetworkPolicies, the
namespaced mode's RBAC, and two peering replicas of which one works.

The operator runs as in tests/kube/test_operator.py: a subprocess holding nothing but a token of the
chart's ServiceAccount, so any verb the chart forgot shows as a 403 in its log.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.netlab import wait_until
from tests.kube.test_operator import (
    Operator,
    apply_example,
    assert_never_forbidden,
    chart_service_account_kubeconfig,
    get,
    wait_for,
)
from tests.support.binaries import ROOT, bin_dir

pytestmark = pytest.mark.kube

CHART = ROOT / "charts" / "etcd-operator"


def helm_template(*values: str, namespace: str, release: str = "etcd-operator") -> list[dict[str, Any]]:
    helm = bin_dir() / "helm"
    if not helm.exists():
        pytest.skip(f"helm not built at {helm}: run `bash hack/build-helm.sh` (or set ETCD_BIN)")
    done = subprocess.run([str(helm), "template", release, str(CHART), "--namespace", namespace, *values],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture
def namespaces(kubectl, crd_installed) -> Iterator[list[str]]:
    """Two fresh namespaces, deleted (without waiting) afterwards."""
    names = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        kubectl("create", "namespace", name)
    yield names
    for name in names:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kopf_crds(kubectl, crd_installed) -> None:
    """kopf's peering CRDs from the chart's crds/, Established."""
    kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf-peering.yaml"))
    for crd in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        wait_until(lambda c=crd: kubectl("get", "crd", c, "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                                         check=False).stdout.strip() == "True", 60, message=f"{crd} not Established")  # fmt: skip


def deployment_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_network_policies_are_accepted_by_the_api_server(kubectl, namespaces):
    first, second = namespaces
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}  # fmt: skip
    docs = helm_template("--set", "networkPolicy.enabled=true", "--set", f"networkPolicy.namespaces={{{first},{second}}}",
                         "--set-json", f"networkPolicy.metrics=[{json.dumps(prometheus)}]", namespace="etcd-operator-np")  # fmt: skip
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == sorted([first, second])
    # Server-side apply: the API server validates every selector, port and peer, and refuses unknown fields.
    kubectl("apply", "--server-side", "--field-manager=helm", "-f", "-", input=yaml.safe_dump_all(policies))
    for policy in policies:
        stored = get(kubectl, policy["metadata"]["namespace"], "networkpolicy", policy["metadata"]["name"])
        assert stored["spec"] == policy["spec"]


@pytest.mark.parametrize("peering", [False, True], ids=["standalone", "peering"])
def test_namespaced_operator_needs_no_cluster_wide_permission(
    kubectl, kubeconfig, kopf_crds, namespaces, tmp_path, peering
):
    watched, other = namespaces
    values = ("--set", "rbac.scope=namespaced", "--set", f"watchNamespaces={{{watched}}}",
              *(("--set", "peering.enabled=true") if peering else ()))  # fmt: skip
    release = "namespaced-peering" if peering else "namespaced"
    env = deployment_env(helm_template(*values, namespace="etcd-operator-namespaced", release=release))
    sa = chart_service_account_kubeconfig(kubectl, kubeconfig, tmp_path, *values,
                                          namespace="etcd-operator-namespaced", release=release)  # fmt: skip
    # The token may do nothing outside the watched namespace.
    for args in (("get", "crd"), ("get", "namespaces"), ("get", "etcdclusters", "-n", other)):
        denied = subprocess.run(
            [str(bin_dir() / "kubectl"), "--kubeconfig", str(sa), *args], capture_output=True, text=True
        )
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), (args, denied.stderr)

    peering_env = {"ETCD_OPERATOR_PEERING": env["ETCD_OPERATOR_PEERING"], "POD_ID": "replica"} if peering else {}
    op = Operator(sa, tmp_path, args=("--namespace", watched), env=peering_env, name=release)
    op.start()
    try:
        if peering:  # kopf peers through the chart's KopfPeering in the watched namespace
            wait_until(lambda: "replica" in (get(kubectl, watched, "kopfpeering", env["ETCD_OPERATOR_PEERING"]) or {})
                       .get("status", {}), 60, message="no keep-alive in the KopfPeering")  # fmt: skip
        ignored = apply_example(kubectl, other, "etcdcluster.yaml")
        name = apply_example(kubectl, watched, "etcdcluster.yaml")
        wait_for(kubectl, watched, "statefulset", name)
        wait_until(lambda: (get(kubectl, watched, "etcdcluster", name) or {}).get("status", {}).get("conditions"),
                   60, interval=0.5, message="no status in the watched namespace")  # fmt: skip
        # The cluster outside was there first and is left alone.
        assert get(kubectl, other, "statefulset", ignored) is None
        assert "status" not in get(kubectl, other, "etcdcluster", ignored)
    finally:
        op.stop()
    assert_never_forbidden(op)
    # kopf was told not to look cluster-wide, so it never tried (it warns when refused).
    assert "Not enough permissions" not in op.log(), op.log()[-2000:]


def peering_status(kubectl, name: str) -> dict[str, Any]:
    got = kubectl("get", "clusterkopfpeering", name, "-o", "json", check=False)
    return (json.loads(got.stdout).get("status") or {}) if got.returncode == 0 else {}


def reconciled(op: Operator, namespace: str) -> bool:
    return any('"reconciling"' in line and f'"namespace": "{namespace}"' in line for line in op.log().splitlines())


def test_two_peering_replicas_one_active(kubectl, kubeconfig, kopf_crds, namespaces, tmp_path):
    first, second = namespaces
    values = ("--set", "peering.enabled=true", "--set", "replicas=2")
    peering = deployment_env(helm_template(*values, namespace="etcd-operator-peering", release="peering"))[
        "ETCD_OPERATOR_PEERING"
    ]
    sa = chart_service_account_kubeconfig(kubectl, kubeconfig, tmp_path, *values,
                                          namespace="etcd-operator-peering", release="peering")  # fmt: skip
    kubectl("get", "clusterkopfpeering", peering)  # the chart made the object kopf writes into

    replicas = [Operator(sa, tmp_path, env={"ETCD_OPERATOR_PEERING": peering, "POD_ID": f"replica-{x}"}, name=f"replica-{x}")
                for x in ("a", "b")]  # fmt: skip
    a, b = replicas
    try:
        a.start()
        wait_until(lambda: "replica-a" in peering_status(kubectl, peering), 60, message="replica-a never kept alive")
        b.start()
        status = wait_until(lambda: {"replica-a", "replica-b"} <= set(s := peering_status(kubectl, peering)) and s,
                            60, message="replica-b never kept alive")  # fmt: skip
        assert status["replica-a"]["priority"] > status["replica-b"]["priority"]

        # The older replica does the work; the newer one waits.
        name = apply_example(kubectl, first, "etcdcluster.yaml")
        wait_for(kubectl, first, "statefulset", name)
        wait_until(lambda: reconciled(a, first), 60, message="replica-a never reconciled the cluster")
        assert not any('"reconciling"' in line for line in b.log().splitlines()), b.log()[-2000:]
        assert "Resuming operations" not in b.log()  # kopf starts a mandatory peer paused
        # Paused is alive: the chart's liveness probe leaves the waiting replica running.
        with urllib.request.urlopen(b.liveness, timeout=10) as response:
            assert response.status == 200

        # When it goes, the other takes over.
        a.stop()
        wait_until(lambda: "replica-a" not in peering_status(kubectl, peering), 90, message="replica-a still listed")
        wait_until(lambda: "Resuming operations" in b.log(), 90, message="replica-b never resumed")
        name = apply_example(kubectl, second, "etcdcluster.yaml")
        wait_for(kubectl, second, "statefulset", name)
        wait_until(lambda: reconciled(b, second), 60, message="replica-b never reconciled the new cluster")
    finally:
        for op in replicas:
            op.stop()
    for op in replicas:
        assert_never_forbidden(op)


def _cluster(name: str, version: str, replicas: int = 3) -> str:
    return json.dumps({"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdCluster", "metadata": {"name": name},
                       "spec": {"version": version, "replicas": replicas}})  # fmt: skip


def test_a_version_without_a_node_image_is_refused_at_admission(kubectl, namespaces):
    """The chart's ValidatingAdmissionPolicy, bound here to one namespace only (it is cluster-wide in an install,
    and other tests create clusters of versions the chart does not list)."""
    ns = namespaces[0]
    docs = helm_template(namespace="etcd-operator")
    policy = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    binding["metadata"]["name"] = policy["metadata"]["name"] = f"{policy['metadata']['name']}-{ns}"
    binding["spec"]["policyName"] = policy["metadata"]["name"]
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
    # A cluster of a version the chart does not list, created before the policy: it must stay editable.
    kubectl("apply", "-n", ns, "-f", "-", input=_cluster("older", "3.6.10"))
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all([policy, binding]))
    try:
        def refused() -> str:
            got = kubectl("apply", "-n", ns, "--dry-run=server", "-f", "-", input=_cluster("typo", "3.6.99"), check=False)
            return got.stderr if got.returncode != 0 else ""

        wait_until(lambda: bool(refused()), 60, message="the version policy never took effect")
        assert "spec.version 3.6.99 has no node image in this installation, which has 3.5.35, 3.6.16 (chart value " \
               "nodeImage.versions): set spec.version to one of them" in refused()
        kubectl("apply", "-n", ns, "-f", "-", input=_cluster("listed", "3.6.16"))
        bad = kubectl("patch", "-n", ns, "etcdcluster", "listed", "--type=merge", "-p",
                      '{"spec": {"version": "3.6.17"}}', check=False)  # fmt: skip
        assert bad.returncode != 0 and "spec.version 3.6.17 has no node image" in bad.stderr
        kubectl("patch", "-n", ns, "etcdcluster", "older", "--type=merge", "-p", '{"spec": {"replicas": 5}}')
        moved = kubectl("patch", "-n", ns, "etcdcluster", "older", "--type=merge", "-p",
                        '{"spec": {"version": "3.6.16"}}', check=False)  # fmt: skip
        assert moved.returncode == 0, moved.stderr  # from an unlisted version to a listed one
    finally:
        kubectl("delete", "validatingadmissionpolicybinding", binding["metadata"]["name"], check=False)
        kubectl("delete", "validatingadmissionpolicy", policy["metadata"]["name"], check=False)
