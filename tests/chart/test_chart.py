"""The Helm chart (charts/etcd-operator), rendered by the pinned helm binary.

helm is found at $ETCD_BIN/helm (hack/build-helm.sh puts it there). Without it
the tests skip with the command that builds it, or fail under CI
(HELM_REQUIRED=1) so a broken build step cannot hide as skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from etcd_operator.pki import podcerts
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


# The chart's RBAC, row by row, and the code that needs each verb. Every Kubernetes call of the
# operator goes through adapters/kube.py (apply is a server-side apply patch: create and patch) or
# kopf, which lists, watches, merge/JSON-patches and POSTs Events, and never PUTs: `update` is
# only for the finalizers subresource. A verb granted but not listed here fails
# test_rbac_grants_exactly_what_the_code_uses; one the code needs but the chart lacks shows as a
# 403 in the kube tier (tests/kube/test_operator.py runs the operator with the chart's token).
NAMESPACED_GRANTS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("etcd.operator.dev", "etcdclusters"): (
        {"get", "list", "watch", "patch"},
        "kopf watches them (handlers/cluster.py) and patches its finalizer and annotations; "
        "controller._other_cluster gets a discovery cluster, handlers/backup.py a backup's cluster",
    ),
    ("etcd.operator.dev", "etcdclusters/status"): ({"patch"}, "handlers/cluster.py run_pass: Kube.patch_status"),
    ("etcd.operator.dev", "etcdbackups"): (
        {"get", "list", "watch", "create", "patch", "delete"},
        "kopf's timer and delete handler (handlers/backup.py) watch and patch them; controller.observe "
        "lists a schedule's, _restore_sources gets a backupRef, _apply_schedule applies new ones and "
        "deletes those past retention",
    ),
    ("etcd.operator.dev", "etcdbackups/status"): ({"patch"}, "handlers/backup.py backup_pass: Kube.patch_status"),
    ("etcd.operator.dev", "etcdclusters/finalizers"): (
        {"update"},
        "owned objects set blockOwnerDeletion, which OwnerReferencesPermissionEnforcement allows only "
        "to those who may update the owner's finalizers",
    ),
    ("etcd.operator.dev", "etcdbackups/finalizers"): ({"update"}, "the same, for the backup Jobs"),
    ("batch", "jobs"): ({"get", "create", "patch"}, "handlers/backup.py gets the snapshot and delete Jobs; apply"),
    ("", "events"): ({"create"}, "kopf.event and kopf's own warnings POST core/v1 Events; nothing patches one"),
    ("", "services"): ({"list", "create", "patch"}, "controller.observe lists the cluster's; apply"),
    ("", "secrets"): (
        {"get", "list", "create", "patch", "delete"},
        "controller.observe lists generated TLS Secrets and gets provided, restore and discovery ones; "
        "apply; the spent restore request is deleted",
    ),
    ("", "pods"): (
        {"list", "delete"},
        "controller.observe and the backup pass list them; a rollout deletes one member at a time (OnDelete)",
    ),
    ("apps", "statefulsets"): ({"get", "create", "patch"}, "controller.observe gets it; apply and scale steps"),
    ("policy", "poddisruptionbudgets"): ({"get", "create", "patch"}, "controller.observe gets it; apply"),
}
# kopf's own needs cluster-wide when it watches every namespace. With --namespace the operator turns
# kopf's CRD and namespace observation off (handlers/settings.py), so the chart grants nothing cluster-wide.
CLUSTER_GRANTS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        {"list", "watch"},
        "kopf's resource observer finds EtcdClusters and EtcdBackups among the CRDs, also ones added later",
    ),
}
# kopf peering (peering.enabled): kopf's peering watcher lists and watches the object, its keep-alive
# merge-patches the object's status (the CRD has no status subresource, crds/kopf-peering.yaml).
CLUSTER_PEERING_GRANTS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("kopf.dev", "clusterkopfpeerings"): ({"list", "watch", "patch"}, "kopf peering, watching every namespace"),
}
NAMESPACED_PEERING_GRANTS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("kopf.dev", "kopfpeerings"): ({"list", "watch", "patch"}, "kopf peering with --namespace, in each namespace"),
}


# podCertificates.enabled: the signer of members' pod certificates (handlers/podcerts.py), beside the rows above.
POD_CERTIFICATE_GRANTS: dict[tuple[str, str], tuple[set[str], str]] = {
    ("certificates.k8s.io", "podcertificaterequests"): ({"list", "watch"}, "kopf's event handler watches them"),
    ("certificates.k8s.io", "podcertificaterequests/status"): ({"patch"}, "the signer writes its answer"),
    ("", "pods"): ({"get"}, "the signer reads the pod that asked: its uid, labels and controller"),
}
# ... and `sign`, granted per signer name in a ClusterRole of its own (signers are cluster-scoped).
SIGNER_ROLE_SUFFIX = "-pod-certificate-signer"


def merged(*tables: dict[tuple[str, str], tuple[set[str], str]]) -> dict[tuple[str, str], tuple[set[str], str]]:
    """Several grant tables as one: the verbs of a resource listed in more than one are joined."""
    out: dict[tuple[str, str], tuple[set[str], str]] = {}
    for table in tables:
        for key, (verbs, why) in table.items():
            known = out.get(key, (set(), ""))
            out[key] = (known[0] | verbs, "; ".join(w for w in (known[1], why) if w))
    return out


def triples(grants: dict[tuple[str, str], tuple[set[str], str]]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for (group, resource), (verbs, _) in grants.items() for verb in verbs}


NAMESPACED_RULES = triples(NAMESPACED_GRANTS)
KOPF_CLUSTER_RULES = triples(CLUSTER_GRANTS)

Grants = dict[tuple[str, str], tuple[set[str], str]]


def beyond(a: dict[tuple[str, str], set[str]], b: dict[tuple[str, str], set[str]]) -> dict[tuple[str, str], list[str]]:
    """The verbs of `a` that `b` lacks, per (apiGroup, resource)."""
    return {key: sorted(verbs - b.get(key, set())) for key, verbs in a.items() if verbs - b.get(key, set())}


NAMESPACED = ("--set", "rbac.scope=namespaced", "--set", "watchNamespaces={a,b}")
PEERING = ("--set", "peering.enabled=true", "--set", "replicas=2")
POD_CERTIFICATES = ("--set", "podCertificates.enabled=true")
# Each way to install the chart: its values, and what each ClusterRole and each Role must grant.
RBAC_SCOPES: dict[str, tuple[tuple[str, ...], Grants | None, Grants | None]] = {
    "cluster": ((), {**NAMESPACED_GRANTS, **CLUSTER_GRANTS}, None),
    "cluster-some-namespaces": (("--set", "watchNamespaces={a}"), NAMESPACED_GRANTS, None),
    "namespaced": (NAMESPACED, None, NAMESPACED_GRANTS),
    "cluster-peering": (PEERING, {**NAMESPACED_GRANTS, **CLUSTER_GRANTS, **CLUSTER_PEERING_GRANTS}, None),
    "cluster-some-namespaces-peering": (
        ("--set", "watchNamespaces={a}", *PEERING), {**NAMESPACED_GRANTS, **NAMESPACED_PEERING_GRANTS}, None,
    ),
    "namespaced-peering": ((*NAMESPACED, *PEERING), None, {**NAMESPACED_GRANTS, **NAMESPACED_PEERING_GRANTS}),
    "cluster-pod-certificates": (POD_CERTIFICATES, merged(NAMESPACED_GRANTS, CLUSTER_GRANTS, POD_CERTIFICATE_GRANTS),
                                 None),  # fmt: skip
    "namespaced-pod-certificates": ((*NAMESPACED, *POD_CERTIFICATES), None,
                                    merged(NAMESPACED_GRANTS, POD_CERTIFICATE_GRANTS)),  # fmt: skip
}


def test_lint_strict(helm: Path) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("scope", sorted(RBAC_SCOPES))
def test_lint_strict_each_scope(helm: Path, scope: str) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), *RBAC_SCOPES[scope][0])
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_kinds(helm: Path) -> None:
    docs = template(helm)
    assert sorted(d["kind"] for d in docs) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service",
         "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    )  # fmt: skip
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_include_crds_are_the_generated_crds(helm: Path) -> None:
    docs = template(helm, "--include-crds")
    crds = {d["spec"]["names"]["plural"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert sorted(crds) == ["clusterkopfpeerings", "etcdbackups", "etcdclusters", "kopfpeerings"]
    for plural in ("etcdbackups", "etcdclusters"):
        assert crds[plural] == yaml.safe_load((CHART / "crds" / f"{plural}.yaml").read_text())
    assert len(docs) == 11


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
    assert env == {
        "ETCD_OPERATOR_NODE_IMAGE": "etcd-node",
        "ETCD_OPERATOR_CLUSTER_DOMAIN": "cluster.local",
        "ETCD_OPERATOR_METRICS": "0.0.0.0:8081",
    }
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
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
    assert rule_set(role) == NAMESPACED_RULES | KOPF_CLUSTER_RULES
    # kopf watches every namespace: it lists none (namespaces are not granted).
    assert not {r for r in rule_set(role) if r[1] == "namespaces"}
    binding = only(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = only(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]


@pytest.mark.parametrize("scope", sorted(RBAC_SCOPES))
def test_rbac_grants_exactly_what_the_code_uses(helm: Path, scope: str) -> None:
    """Each Role and ClusterRole grants the table's rows and nothing more: no extra verb, no wildcard."""
    values, cluster_grants, namespace_grants = RBAC_SCOPES[scope]
    docs = [d for d in template(helm, *values) if not d["metadata"]["name"].endswith(SIGNER_ROLE_SUFFIX)]
    roles = of_kind(docs, "ClusterRole") + of_kind(docs, "Role")
    assert len(of_kind(docs, "ClusterRole")) == (1 if cluster_grants else 0)
    assert len(of_kind(docs, "Role")) == (2 if namespace_grants else 0)
    for role in roles:
        where = (role["kind"], role["metadata"]["name"])
        # An aggregated ClusterRole would take in whatever other roles' labels match.
        assert "aggregationRule" not in role, where
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert rule[key] and all("*" not in item for item in rule[key]), (where, rule)
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule, (where, rule)
        expected = namespace_grants if role["kind"] == "Role" else cluster_grants
        assert expected is not None
        granted: dict[tuple[str, str], set[str]] = {}
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
        wanted = {key: verbs for key, (verbs, _) in expected.items()}
        extra, missing = beyond(granted, wanted), beyond(wanted, granted)
        assert not extra, f"{where} grants verbs no code uses (or the table lacks their reason): {extra}"
        assert not missing, f"{where} lacks verbs the operator needs: {missing}"


@pytest.mark.parametrize("values", [(), NAMESPACED], ids=["cluster", "namespaced"])
def test_the_pod_certificate_signer_may_sign_for_its_two_signers_only(helm: Path, values: tuple[str, ...]) -> None:
    assert not [d for d in template(helm, *values) if d["metadata"]["name"].endswith(SIGNER_ROLE_SUFFIX)]
    docs = template(helm, *values, *POD_CERTIFICATES)
    role, binding = (next(d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(SIGNER_ROLE_SUFFIX))
                     for kind in ("ClusterRole", "ClusterRoleBinding"))  # fmt: skip
    assert role["rules"] == [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "verbs": ["sign"],
                              "resourceNames": sorted(podcerts.SIGNERS.values())}]  # fmt: skip
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == only(docs, "ServiceAccount")["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["ETCD_OPERATOR_POD_CERTIFICATES"] == "true"


def test_namespaced(helm: Path) -> None:
    docs = template(helm, "--set", "rbac.scope=namespaced", "--set", "watchNamespaces={a,b}")
    sa = only(docs, "ServiceAccount")["metadata"]["name"]
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]

    roles = {r["metadata"]["namespace"]: r for r in of_kind(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(docs, "RoleBinding")}
    assert sorted(roles) == ["a", "b"] and sorted(bindings) == ["a", "b"]
    for ns in ("a", "b"):
        assert rule_set(roles[ns]) == NAMESPACED_RULES
        assert bindings[ns]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[ns]["metadata"]["name"],
        }
        assert bindings[ns]["subjects"] == subject

    # Nothing cluster-wide: the operator turns kopf's CRD and namespace observation off with --namespace.
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")

    args = container(docs)["args"]
    assert args == ["--log-format", "json", "--namespace", "a", "--namespace", "b"]


def test_watch_namespaces_with_cluster_rbac(helm: Path) -> None:
    docs = template(helm, "--set", "watchNamespaces={a}")
    assert container(docs)["args"][-2:] == ["--namespace", "a"]
    assert not of_kind(docs, "Role")
    assert rule_set(only(docs, "ClusterRole")) == NAMESPACED_RULES


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("rbac.scope=namespaced", "rbac.scope=namespaced needs the namespaces to watch: set watchNamespaces"),
        ("rbac.scope=everywhere", 'rbac.scope must be "cluster" or "namespaced"'),
        ("logFormat=xml", 'logFormat must be "json" or "console"'),
        ("replicas=2", "replicas=2 needs peering.enabled=true"),
        ("replicas=0", "replicas must be at least 1"),
        ("networkPolicy.enabled=true", "networkPolicy.enabled needs the namespaces of the EtcdClusters"),
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


# Several replicas: kopf peering.


def test_one_replica_runs_standalone(helm: Path) -> None:
    docs = template(helm)
    assert not [d for d in docs if d["apiVersion"].startswith("kopf.dev/")]
    assert "ETCD_OPERATOR_PEERING" not in {e["name"] for e in container(docs)["env"]}


def test_peering_cluster_wide(helm: Path) -> None:
    docs = template(helm, *PEERING)
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    # The oldest replica stays active: a new pod waits, so a rolling update neither gaps nor overlaps.
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    peering = only(docs, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1" and "namespace" not in peering["metadata"]
    env = {e["name"]: e for e in container(docs)["env"]}
    assert env["ETCD_OPERATOR_PEERING"]["value"] == peering["metadata"]["name"] == "etcd-operator"
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert not of_kind(docs, "KopfPeering")
    # The object's kind and group are the CRD's in crds/, and kopf's own.
    crds = {d["spec"]["names"]["kind"]: d for d in template(helm, "--include-crds") if d["kind"] == "CustomResourceDefinition"}
    crd = crds["ClusterKopfPeering"]
    assert (crd["spec"]["group"], crd["spec"]["scope"]) == ("kopf.dev", "Cluster")
    assert (crds["KopfPeering"]["spec"]["group"], crds["KopfPeering"]["spec"]["scope"]) == ("kopf.dev", "Namespaced")
    for kind in ("ClusterKopfPeering", "KopfPeering"):
        (version,) = crds[kind]["spec"]["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        # kopf merge-patches its keep-alives into .status of the object itself: no status subresource.
        assert "subresources" not in version
        assert version["schema"]["openAPIV3Schema"]["properties"]["status"]["x-kubernetes-preserve-unknown-fields"]


def test_peering_with_watched_namespaces(helm: Path) -> None:
    docs = template(helm, *NAMESPACED, *PEERING, "--set", "peering.name=etcd-ha")
    peerings = {p["metadata"]["namespace"]: p for p in of_kind(docs, "KopfPeering")}
    assert sorted(peerings) == ["a", "b"]
    assert {p["metadata"]["name"] for p in peerings.values()} == {"etcd-ha"}
    assert not of_kind(docs, "ClusterKopfPeering")
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["ETCD_OPERATOR_PEERING"] == "etcd-ha"
    assert container(docs)["args"][-4:] == ["--namespace", "a", "--namespace", "b"]


def test_peering_settings_match_the_operator(helm: Path) -> None:
    """The chart's peering env makes the operator peer by that name, mandatory, with kopf's namespaced or cluster kind."""
    import kopf

    from etcd_operator.handlers.settings import configure

    env = {e["name"]: e.get("value") for e in container(template(helm, *PEERING))["env"]}
    settings = kopf.OperatorSettings()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ETCD_OPERATOR_PEERING", env["ETCD_OPERATOR_PEERING"])
        configure(settings=settings, memo=kopf.Memo(namespaces=()))
    assert settings.peering.name == "etcd-operator" and settings.peering.mandatory and not settings.peering.standalone


# NetworkPolicy for the members.

NETPOL = ("--set", "networkPolicy.enabled=true")


def member_pod_template() -> dict[str, Any]:
    """The member pods' template as the operator builds it."""
    from etcd_operator.models.cluster import EtcdClusterSpec
    from etcd_operator.reconcile.desired import ClusterIdentity, desired_objects
    from etcd_operator.resources.statefulset import MemberTemplateInputs

    identity = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")
    inputs = MemberTemplateInputs(replicas=3, initial_members=3, cluster_token="t", node_image="etcd-node:3.6.16")
    spec = EtcdClusterSpec.model_validate({"replicas": 3, "pod": {"labels": {"team": "db"}}})
    objects = desired_objects(identity, spec, inputs, 3, 3)
    return next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]


def backup_pod_labels() -> dict[str, str]:
    from etcd_operator.models.cluster import BackupDestination
    from etcd_operator.resources.backup_job import BackupJobInputs, backup_job

    destination = BackupDestination.model_validate({"volume": {"claimName": "backups"}})
    inputs = BackupJobInputs(namespace="db", cluster="main", backup="b1", backup_uid="u", destination=destination,
                             endpoints=("https://main-client.db.svc:2379",), image="etcd-node:3.6.16",
                             client_secret="main-client-tls")  # fmt: skip
    return backup_job(inputs)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector
    return selector["matchLabels"].items() <= labels.items()


def test_network_policy_is_off_by_default(helm: Path) -> None:
    assert not of_kind(template(helm), "NetworkPolicy")
    assert not of_kind(template(helm, *NAMESPACED), "NetworkPolicy")


def test_network_policy_admits_exactly_what_the_members_need(helm: Path) -> None:
    from etcd_node.contract import CLIENT_PORT, METRICS_PORT, PEER_PORT

    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}  # fmt: skip
    docs = template(helm, *NETPOL, *NAMESPACED, "--set-json", f"networkPolicy.metrics=[{json_dumps(prometheus)}]")
    policies = {p["metadata"]["namespace"]: p for p in of_kind(docs, "NetworkPolicy")}
    assert sorted(policies) == ["a", "b"]
    pod = member_pod_template()
    member_labels = pod["metadata"]["labels"]
    # Every port a member listens on is one the policy speaks for.
    (etcd,) = pod["spec"]["containers"]
    assert {p["containerPort"] for p in etcd["ports"]} == {CLIENT_PORT, PEER_PORT, METRICS_PORT}
    operator_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    backup_labels = backup_pod_labels()
    for ns, policy in policies.items():
        spec = policy["spec"]
        assert selects(spec["podSelector"], member_labels), ns
        assert not selects(spec["podSelector"], backup_labels) and not selects(spec["podSelector"], operator_labels)
        assert spec["policyTypes"] == ["Ingress"]  # egress (S3 stores, discovery URLs, DNS) is left alone
        by_port: dict[int, list[dict[str, Any]]] = {}
        for rule in spec["ingress"]:
            (port,) = rule["ports"]
            assert port["protocol"] == "TCP"
            by_port.setdefault(port["port"], []).extend(rule["from"])
        assert sorted(by_port) == [CLIENT_PORT, PEER_PORT, METRICS_PORT]
        # Peers: members only.
        assert len(by_port[PEER_PORT]) == 1 and selects(by_port[PEER_PORT][0]["podSelector"], member_labels)
        # Client port: the operator's pods in the release namespace, members, backup Jobs, and the clients value.
        client = by_port[CLIENT_PORT]
        operator_peer = next(p for p in client if "namespaceSelector" in p and "podSelector" in p)
        assert operator_peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
        assert selects(operator_peer["podSelector"], operator_labels)
        same_namespace = [p["podSelector"] for p in client if set(p) == {"podSelector"}]
        assert any(selects(s, member_labels) for s in same_namespace)
        assert any(selects(s, backup_labels) for s in same_namespace)
        assert {"namespaceSelector": {}} in client  # the default clients value: every pod
        # The metrics port: the monitoring path and nothing else.
        assert by_port[METRICS_PORT] == [prometheus]


def test_network_policy_values(helm: Path) -> None:
    docs = template(helm, *NETPOL, "--set", "networkPolicy.namespaces={c}", "--set-json",
                    'networkPolicy.clients=[{"podSelector": {"matchLabels": {"role": "etcd-client"}}}]')  # fmt: skip
    policy = only(docs, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == "c"
    client_rules = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 2379]
    assert client_rules[-1]["from"] == [{"podSelector": {"matchLabels": {"role": "etcd-client"}}}]
    # No metrics source given: no one reaches the metrics port (the kubelet's probe comes from the node).
    assert {r["ports"][0]["port"] for r in policy["spec"]["ingress"]} == {2379, 2380}
    # No clients: only the operator, the members and the backup Jobs reach the client port.
    docs = template(helm, *NETPOL, "--set", "watchNamespaces={d}", "--set-json", "networkPolicy.clients=[]")
    policy = only(docs, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == "d"
    assert [len(r["from"]) for r in policy["spec"]["ingress"]] == [1, 3]


def test_lint_strict_with_everything_on(helm: Path) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), *NAMESPACED, *PEERING, *NETPOL, *ALL_MONITORING)
    assert done.returncode == 0, done.stdout + done.stderr


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value)


# Metrics and monitoring objects.

MONITORING = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
ALL_MONITORING = (
    "--set", "metrics.serviceMonitor.enabled=true",
    "--set", "metrics.podMonitor.enabled=true",
    "--set", "metrics.prometheusRule.enabled=true",
)  # fmt: skip
ETCD_ALERTS = {
    "etcdMembersDown", "etcdInsufficientMembers", "etcdNoLeader", "etcdHighNumberOfLeaderChanges",
    "etcdDatabaseQuotaLowSpace", "etcdExcessiveDatabaseGrowth", "etcdDatabaseHighFragmentationRatio",
}  # fmt: skip
OPERATOR_ALERTS = {"EtcdCertificateExpiresSoon", "EtcdMembershipStepRefused", "EtcdOperatorReconcileErrors",
                   "EtcdDatabaseFull", "EtcdBackupTooOld"}
# What the member alerts read, each in etcd's /metrics (checked against the real etcd below).
ETCD_METRICS = {
    "up", "etcd_server_has_leader", "etcd_server_leader_changes_seen_total", "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes", "etcd_server_quota_backend_bytes",
    "etcd_network_peer_sent_failures_total",
}  # fmt: skip


def metrics_service(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return only(docs, "Service")


def test_monitoring_objects_are_off_by_default(helm: Path) -> None:
    docs = template(helm)
    assert not [d for d in docs if d["kind"] in MONITORING]
    service = metrics_service(docs)
    deployment = only(docs, "Deployment")
    # The Service picks the operator pod and its `metrics` port.
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}]


def test_metrics_off(helm: Path) -> None:
    docs = template(helm, "--set", "metrics.enabled=false")
    assert not of_kind(docs, "Service")
    c = container(docs)
    assert {e["name"]: e["value"] for e in c["env"]}["ETCD_OPERATOR_METRICS"] == ""
    assert [p["name"] for p in c["ports"]] == ["healthz"]
    done = run_helm(helm, "template", "etcd-operator", str(CHART), "--set", "metrics.enabled=false",
                    "--set", "metrics.serviceMonitor.enabled=true")  # fmt: skip
    assert done.returncode != 0 and "metrics.serviceMonitor.enabled needs metrics.enabled=true" in done.stderr


def test_metrics_port(helm: Path) -> None:
    docs = template(helm, "--set", "metrics.port=9100", "--set", "metrics.serviceMonitor.enabled=true")
    c = container(docs)
    assert {e["name"]: e["value"] for e in c["env"]}["ETCD_OPERATOR_METRICS"] == "0.0.0.0:9100"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in c["ports"]
    assert metrics_service(docs)["spec"]["ports"][0]["port"] == 9100


def test_service_monitor(helm: Path) -> None:
    docs = template(helm, *ALL_MONITORING, "--set", "metrics.serviceMonitor.labels.release=prom",
                    "--set", "metrics.serviceMonitor.interval=30s")  # fmt: skip
    monitor = only(docs, "ServiceMonitor")
    service = metrics_service(docs)
    assert monitor["metadata"]["namespace"] == NAMESPACE and monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # Selects the metrics Service (and only it: the component label), by its port name.
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s", "honorLabels": True}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def member_pod_labels() -> dict[str, str]:
    """The labels the operator puts on member pods, from the operator's own builder."""
    from etcd_operator.resources.meta import labels

    return labels("main", "member")


def test_pod_monitor_selects_member_pods_on_their_metrics_port(helm: Path) -> None:
    from etcd_node.contract import METRICS_PORT
    from etcd_operator.models.cluster import EtcdClusterSpec
    from etcd_operator.reconcile.desired import ClusterIdentity, desired_objects
    from etcd_operator.resources.statefulset import MemberTemplateInputs

    docs = template(helm, *ALL_MONITORING)
    monitor = only(docs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    identity = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")
    inputs = MemberTemplateInputs(replicas=3, initial_members=3, cluster_token="t", node_image="etcd-node:3.6.16")
    objects = desired_objects(identity, EtcdClusterSpec.model_validate({"replicas": 3}), inputs, 3, 3)
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    template_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    # Not the operator's own pod, nor other objects of the cluster.
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "member"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (etcd,) = sts["spec"]["template"]["spec"]["containers"]
    port = next(p for p in etcd["ports"] if p["name"] == endpoint["port"])
    assert port["containerPort"] == METRICS_PORT
    env = {e["name"]: e.get("value") for e in etcd["env"]}
    assert env["ETCD_LISTEN_METRICS_URLS"] == f"{endpoint['scheme']}://0.0.0.0:{METRICS_PORT}"
    relabel = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert relabel["cluster"]["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"]
    assert relabel["job"]["replacement"] == "etcd"


def test_pod_monitor_follows_the_watched_namespaces(helm: Path) -> None:
    docs = template(helm, *ALL_MONITORING, "--set", "watchNamespaces={a,b}", "--set", "metrics.podMonitor.job=etcd-x")
    monitor = only(docs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}
    rules = only(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert all('job="etcd-x"' in r["expr"] for r in rules)


def prometheus_rule(helm: Path, *args: str) -> dict[str, Any]:
    return only(template(helm, *ALL_MONITORING, *args), "PrometheusRule")


def names_in(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers before a selector, a range or a closing parenthesis."""
    import re

    keywords = {"by", "on", "without", "and", "or", "unless", "bool", "ignoring", "group_left", "group_right"}
    functions = {"sum", "max", "min", "count", "rate", "increase", "predict_linear", "time", "avg", "abs"}
    found = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=[{\[)])", expr))
    labels = set(re.findall(r"\b(?:by|on|without|ignoring)\s*\(([a-z_, ]+)\)", expr))
    label_names = {n.strip() for group in labels for n in group.split(",")}
    return found - keywords - functions - label_names


def balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    in_string = False
    for ch in expr:
        if ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not in_string


def test_prometheus_rule_structure(helm: Path) -> None:
    """What Prometheus needs to load each rule; `promtool check rules` would also parse the PromQL."""
    import re

    rule = prometheus_rule(helm, "--set", "metrics.prometheusRule.alertLabels.team=db")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["metadata"]["namespace"] == NAMESPACE
    groups = rule["spec"]["groups"]
    assert [g["name"] for g in groups] == ["etcd", "etcd-operator"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(alerts) == ETCD_ALERTS | OPERATOR_ALERTS
    assert sum(len(g["rules"]) for g in groups) == len(alerts)  # no name twice
    for name, r in alerts.items():
        assert set(r) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"[0-9]+[smh]", r["for"]), name
        assert r["labels"] == {"severity": r["labels"]["severity"], "team": "db"}, name
        assert r["labels"]["severity"] in ("critical", "warning"), name
        assert set(r["annotations"]) == {"summary", "description"}, name
        expr = r["expr"]
        assert isinstance(expr, str) and expr.strip() and balanced(expr), (name, expr)
        assert "{{" not in expr and "<no value>" not in expr, (name, expr)  # no Helm left over
        # Every alert is about one EtcdCluster: it keeps namespace and cluster.
        assert "by (namespace, cluster" in expr, name
        assert "{{ $labels.namespace }}/{{ $labels.cluster }}" in r["annotations"]["description"], name
    for name in ETCD_ALERTS:
        assert names_in(alerts[name]["expr"]) <= ETCD_METRICS, name
        assert 'job="etcd"' in alerts[name]["expr"], name
    assert "> 95" in alerts["etcdDatabaseQuotaLowSpace"]["expr"]
    assert "< 21 * 86400" in alerts["EtcdCertificateExpiresSoon"]["expr"]


def test_operator_alerts_read_series_the_operator_exports(helm: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from etcd_operator import metrics

    recorder = metrics.Recorder()
    sample = metrics.ClusterSample("db", "main", "Running", 3, 3, 0, 3, 1, 2**31, refused="QuorumAtRisk",
                                   certificates=(metrics.IssuedCertificate("main-peer-ca", "ca", 2e9),),
                                   database_full=True, maintained="Compact", last_backup=1.8e9)  # fmt: skip
    recorder.record(sample)
    recorder.observe_pass("db", "main", 0.1, failed=True)
    from prometheus_client import generate_latest

    exported = {s.name for f in text_string_to_metric_families(generate_latest(recorder.registry).decode()) for s in f.samples}
    rule = prometheus_rule(helm)
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            if r["alert"] in OPERATOR_ALERTS:
                read = names_in(r["expr"])
                assert read and read <= exported, (r["alert"], read - exported)


def test_rule_thresholds_are_values(helm: Path) -> None:
    rule = prometheus_rule(helm, "--set", "metrics.prometheusRule.quotaLowSpacePercent=80",
                           "--set", "metrics.prometheusRule.certificateExpiryDays=10")  # fmt: skip
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "> 80" in alerts["etcdDatabaseQuotaLowSpace"]["expr"]
    assert "< 10 * 86400" in alerts["EtcdCertificateExpiresSoon"]["expr"]


def test_lint_strict_with_monitoring(helm: Path) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), *ALL_MONITORING)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.etcd
@pytest.mark.parametrize("version_key", ["ETCD_VERSION", "ETCD_V2_VERSION"])
def test_the_member_alerts_read_metrics_etcd_serves(tmp_path: Path, version_key: str) -> None:
    """A real etcd of each pinned version on loopback: every series the member alerts read is in its /metrics.

    `etcd_network_peer_sent_failures_total` has a series only once a peer send failed, so a lone member
    shows only its HELP line, which the Go client writes only for vectors with a child: it is left out.
    """
    import socket
    import time
    import urllib.request

    from tests.support.binaries import etcd_dir

    etcd = etcd_dir(version_key) / "etcd"

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    client, peer, metrics_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [str(etcd), "--data-dir", str(tmp_path / "data"), "--name", "m0",
         "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"m0=http://127.0.0.1:{peer}", "--listen-metrics-urls", f"http://127.0.0.1:{metrics_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, text = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as response:
                    text = response.read().decode()
                if "etcd_server_has_leader 1" in text:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        served = {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}
        assert ETCD_METRICS - {"up", "etcd_network_peer_sent_failures_total"} <= served
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_version_policy_lists_exactly_the_node_images_this_release_builds(helm: Path) -> None:
    """spec.version is refused at admission unless a node image exists for it: the chart's list is the build's."""
    env = (ROOT / "hack" / "versions.env").read_text()
    pins = dict(re.findall(r"^(ETCD_[A-Z0-9_]*VERSION)=v?(\S+)$", env, re.M))
    built = [pins[name.strip("${}")] for name in re.search(r'^NODE_ETCD_VERSIONS="([^"]*)"', env, re.M)[1].split()]
    policy = only(template(helm), "ValidatingAdmissionPolicy")
    (validation,) = policy["spec"]["validations"]
    assert f"object.spec.version in {json.dumps(built, separators=(',', ':'))}" in validation["expression"]
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["etcdclusters"]
    binding = only(template(helm), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert not of_kind(template(helm, "--set-json", "nodeImage.versions=[]"), "ValidatingAdmissionPolicy")
