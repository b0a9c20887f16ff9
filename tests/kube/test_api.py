"""The EtcdCluster API on a real kube-apiserver: the generated CRD installs, examples pass, bad input is refused."""

import json
from pathlib import Path

import pytest
import yaml

from tests.support.binaries import ROOT

pytestmark = pytest.mark.kube

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def manifest(spec: dict, name: str = "c") -> str:
    return json.dumps({"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdCluster",
                       "metadata": {"name": name}, "spec": spec})  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_accepted(kubectl, namespace, path):
    result = kubectl("apply", "-n", namespace, "--dry-run=server", "-f", str(path))
    assert "created (server dry run)" in result.stdout


def test_defaults_are_applied_by_the_server(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({}))
    stored = json.loads(kubectl("get", "-n", namespace, "etcdcluster", "c", "-o", "json").stdout)["spec"]
    assert stored["replicas"] == 3 and stored["version"] == "3.6.16"
    assert stored["bootstrap"] == {"mode": "static"}
    assert stored["tls"] == {"peer": {"mode": "selfSigned"}, "client": {"mode": "selfSigned"}}
    assert stored["storage"]["whenDeleted"] == "Retain" and stored["storage"]["whenScaled"] == "Retain"
    assert stored["hibernate"] is False


INVALID = [
    ({"replicas": 0}, "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
    ({"replicas": 10}, "should be less than or equal to 9"),
    ({"version": "2.3.8"}, "spec.version in body should match"),
    ({"bootstrap": {"mode": "gossip"}}, 'Unsupported value: "gossip"'),
    ({"bootstrap": {"mode": "static", "srvName": "x"}}, "bootstrap.srvName is only used with mode dnsSRV"),
    ({"bootstrap": {"mode": "discovery"}}, "needs exactly one of discoveryURL or discoveryClusterRef"),
    ({"tls": {"peer": {"mode": "secret"}}}, "secretName is required with mode secret"),
    ({"tls": {"client": {"mode": "none", "secretName": "x"}}}, "secretName is required with mode secret and only"),
    ({"storage": {"emptyDir": True, "storageClassName": "fast"}}, "storageClassName has no effect with emptyDir"),
    ({"hibernate": True, "storage": {"emptyDir": True}}, "hibernate needs persistent storage"),
    ({"storage": {"whenScaled": "Keep"}}, 'Unsupported value: "Keep"'),
    ({"etcd": {"heartbeatInterval": 500, "electionTimeout": 1000}}, "at least 5 times etcd.heartbeatInterval"),
    ({"etcd": {"extraArgs": {"initial-cluster": "x=y"}}}, "may not set flags the operator owns"),
    ({"tls": {"operatorClientSecretName": "x"}}, "tls.operatorClientSecretName is only used with tls.client.mode secret"),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_specs_are_rejected_with_the_field_and_fix(kubectl, namespace, spec, message):
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(spec), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"bootstrap": {"mode": "dnsSRV"}}, "bootstrap.mode cannot change after creation"),
        ({"tls": {"peer": {"mode": "auto"}}}, "tls modes cannot change after creation"),
        ({"storage": {"storageClassName": "other"}}, "storageClassName and storage.emptyDir cannot change"),
    ],
)
def test_immutable_fields(kubectl, namespace, patch, message):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"replicas": 3}))
    result = kubectl("patch", "-n", namespace, "etcdcluster", "c", "--type=merge", "-p",
                     json.dumps({"spec": patch}), check=False)  # fmt: skip
    assert result.returncode != 0 and message in result.stderr, result.stderr
    scaled = kubectl("patch", "-n", namespace, "etcdcluster", "c", "--type=merge", "-p", '{"spec":{"replicas":5}}')
    assert "patched" in scaled.stdout


def test_printer_columns_and_short_name(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"replicas": 3}, "cols"))
    header = kubectl("get", "-n", namespace, "etcd").stdout.splitlines()[0].split()
    assert header == ["NAME", "REPLICAS", "READY", "VERSION", "LEADER", "AVAILABLE", "PHASE", "AGE"]
    assert yaml.safe_load(Path(ROOT / "crds" / "etcdclusters.yaml").read_text())["spec"]["names"]["shortNames"]


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("3.6.16", "3.6.10", "spec.version 3.6.16 -> 3.6.10: downgrades are not supported; set it back to 3.6.16"),
        ("3.6.16", "3.5.35", "spec.version 3.6.16 -> 3.5.35: downgrades are not supported"),
        ("3.5.35", "3.7.1", "etcd upgrades one minor version at a time; go to the newest patch of the next minor"),
        ("3.5.20", "3.6.16", "etcd moves from 3.5 to 3.6 only from 3.5.32 or later; upgrade to 3.5.32 first"),
        ("3.6.5", "3.7.0", "etcd moves from 3.6 to 3.7 only from 3.6.11 or later"),
        ("3.5.35", "3.6.16", None),
        ("3.6.16", "3.6.17", None),
    ],
)
def test_version_changes_follow_etcds_upgrade_path(kubectl, namespace, before, after, message):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"version": before}, "v"))
    result = kubectl("patch", "-n", namespace, "etcdcluster", "v", "--type=merge", "-p",
                     json.dumps({"spec": {"version": after}}), check=False)  # fmt: skip
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert "spec.version" in result.stderr
