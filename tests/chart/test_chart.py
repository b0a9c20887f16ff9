"""The Helm chart (charts/etcd-operator), rendered by the pinned helm binary.

helm is found at $ETCD_BIN/helm (hack/build-helm.sh puts it there). Without it
the tests skip with the command that builds it, or fail under CI
(HELM_REQUIRED=1) so a broken build step cannot hide as skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.binaries import ROOT, bin_dir

CHART = ROOT / "charts" / "etcd-operator"
NAMESPACE = "etcd-system"


@pytest.fixture(scope="module")
def helm() -> Path:
    path = bin_dir() / "helm"
    if not os.access(path, os.X_OK):
        reason = f"helm not built at {path}: run `bash hack/build-helm.sh` (or set ETCD_BIN)"
        if os.environ.get("HELM_REQUIRED") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Point helm away from the user's repositories and cache: the chart needs neither.
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent-helm-cache", "HELM_CONFIG_HOME": "/nonexistent-helm-config"}
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60, env=env)


def template(helm: Path, *args: str) -> list[dict[str, Any]]:
    done = run_helm(helm, "template", "etcd-operator", str(CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def chart_meta() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def rule_set(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


NAMESPACED_RULES = {
    *{("etcd.operator.dev", "etcdclusters", v) for v in ("get", "list", "watch", "patch", "update")},
    *{("etcd.operator.dev", "etcdclusters/status", v) for v in ("get", "patch", "update")},
    *{("", "events", v) for v in ("create", "patch")},
    *{("events.k8s.io", "events", v) for v in ("create", "patch")},
    *{
        ("", r, v)
        for r in ("services", "secrets")
        for v in ("get", "list", "watch", "create", "patch", "update", "delete")
    },
    *{("", "pods", v) for v in ("get", "list", "watch", "delete")},
    *{("", "persistentvolumeclaims", v) for v in ("get", "list", "watch", "delete")},
    *{("apps", "statefulsets", v) for v in ("get", "list", "watch", "create", "patch", "update", "delete")},
    *{("policy", "poddisruptionbudgets", v) for v in ("get", "list", "watch", "create", "patch", "update", "delete")},
}
# Not in the operator's own calls but required by the apiserver when
# OwnerReferencesPermissionEnforcement is on: its objects set blockOwnerDeletion.
OWNER_FINALIZERS = {("etcd.operator.dev", "etcdclusters/finalizers", "update")}
KOPF_CLUSTER_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def test_lint_strict(helm: Path) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_lint_strict_namespaced(helm: Path) -> None:
    done = run_helm(
        helm, "lint", "--strict", str(CHART), "--set", "rbac.scope=namespaced", "--set", "watchNamespaces={a,b}"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_kinds(helm: Path) -> None:
    docs = template(helm)
    assert sorted(d["kind"] for d in docs) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"]
    )
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "Deployment"):
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_include_crds_is_the_generated_crd(helm: Path) -> None:
    docs = template(helm, "--include-crds")
    crd = only(docs, "CustomResourceDefinition")
    assert crd == yaml.safe_load((CHART / "crds" / "etcdclusters.yaml").read_text())
    assert len(docs) == 5


def test_deployment(helm: Path) -> None:
    docs = template(helm)
    deployment = only(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == only(docs, "ServiceAccount")["metadata"]["name"]
    # The selector picks the pod template.
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    c = container(docs)
    assert c["image"] == f"etcd-operator:{chart_meta()['appVersion']}"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["etcd-operator"]
    assert c["args"] == ["--log-format", "json"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"ETCD_OPERATOR_NODE_IMAGE": "etcd-node", "ETCD_OPERATOR_CLUSTER_DOMAIN": "cluster.local"}
    probe = c["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": 8080}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}

    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    # A writable /tmp on the read-only root filesystem.
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp


def test_default_rbac_is_least_privilege(helm: Path) -> None:
    docs = template(helm)
    role = only(docs, "ClusterRole")
    assert rule_set(role) == NAMESPACED_RULES | OWNER_FINALIZERS | KOPF_CLUSTER_RULES
    binding = only(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = only(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]


@pytest.mark.parametrize(
    "args",
    [(), ("--set", "rbac.scope=namespaced", "--set", "watchNamespaces={a,b}")],
    ids=["cluster", "namespaced"],
)
def test_no_wildcards(helm: Path, args: tuple[str, ...]) -> None:
    docs = template(helm, *args)
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert all("*" not in item for item in rule[key]), (role["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule


def test_namespaced(helm: Path) -> None:
    docs = template(helm, "--set", "rbac.scope=namespaced", "--set", "watchNamespaces={a,b}")
    sa = only(docs, "ServiceAccount")["metadata"]["name"]
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]

    roles = {r["metadata"]["namespace"]: r for r in of_kind(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(docs, "RoleBinding")}
    assert sorted(roles) == ["a", "b"] and sorted(bindings) == ["a", "b"]
    for ns in ("a", "b"):
        assert rule_set(roles[ns]) == NAMESPACED_RULES | OWNER_FINALIZERS
        assert bindings[ns]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[ns]["metadata"]["name"],
        }
        assert bindings[ns]["subjects"] == subject

    # kopf's cluster-wide needs, and nothing else cluster-wide.
    cluster_role = only(docs, "ClusterRole")
    assert rule_set(cluster_role) == KOPF_CLUSTER_RULES
    cluster_binding = only(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert cluster_binding["subjects"] == subject

    args = container(docs)["args"]
    assert args == ["--log-format", "json", "--namespace", "a", "--namespace", "b"]


def test_watch_namespaces_with_cluster_rbac(helm: Path) -> None:
    docs = template(helm, "--set", "watchNamespaces={a}")
    assert container(docs)["args"][-2:] == ["--namespace", "a"]
    assert not of_kind(docs, "Role")
    assert rule_set(only(docs, "ClusterRole")) >= NAMESPACED_RULES


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("rbac.scope=namespaced", "rbac.scope=namespaced needs the namespaces to watch: set watchNamespaces"),
        ("rbac.scope=everywhere", 'rbac.scope must be "cluster" or "namespaced"'),
        ("logFormat=xml", 'logFormat must be "json" or "console"'),
    ],
)
def test_bad_values_fail_with_a_clear_message(helm: Path, setting: str, message: str) -> None:
    done = run_helm(helm, "template", "etcd-operator", str(CHART), "--set", setting)
    assert done.returncode != 0
    assert message in done.stderr


def test_overrides(helm: Path) -> None:
    docs = template(
        helm,
        "--set", "image.tag=x",
        "--set", "image.repository=registry.example/etcd-operator",
        "--set", "image.pullPolicy=Always",
        "--set", "logFormat=console",
        "--set", "nodeImage.repository=registry.example/etcd-node",
        "--set", "clusterDomain=corp.local",
        "--set", "nodeSelector.disk=ssd",
        "--set", "podLabels.team=db",
        "--set", "podAnnotations.note=hi",
    )  # fmt: skip
    c = container(docs)
    assert c["image"] == "registry.example/etcd-operator:x"
    assert c["imagePullPolicy"] == "Always"
    assert c["args"] == ["--log-format", "console"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["ETCD_OPERATOR_NODE_IMAGE"] == "registry.example/etcd-node"
    assert env["ETCD_OPERATOR_CLUSTER_DOMAIN"] == "corp.local"
    pod = only(docs, "Deployment")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert pod["metadata"]["labels"]["team"] == "db"
    assert pod["metadata"]["annotations"] == {"note": "hi"}


def test_kube_version_constraint(helm: Path) -> None:
    ok = run_helm(helm, "template", "etcd-operator", str(CHART), "--kube-version", "1.30.0")
    assert ok.returncode == 0, ok.stderr
    old = run_helm(helm, "template", "etcd-operator", str(CHART), "--kube-version", "1.29.9")
    assert old.returncode != 0
    assert "kubeVersion" in old.stderr or "incompatible" in old.stderr
