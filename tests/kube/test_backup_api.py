"""The EtcdBackup API on a real kube-apiserver: the generated CRD installs, bad input is refused at admission."""

import json

import pytest

pytestmark = pytest.mark.kube

S3 = {"s3": {"bucket": "backups", "credentialsSecret": "s3-creds"}}


def manifest(spec: dict, name: str = "b") -> str:
    return json.dumps({"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdBackup",
                       "metadata": {"name": name}, "spec": spec})  # fmt: skip


def test_a_backup_is_stored_with_its_defaults_and_printed(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"clusterRef": {"name": "main"}, "destination": S3}))
    stored = json.loads(kubectl("get", "-n", namespace, "etcdbackup", "b", "-o", "json").stdout)["spec"]
    assert stored["destination"]["s3"] == {"bucket": "backups", "credentialsSecret": "s3-creds", "prefix": "",
                                           "region": "us-east-1", "forcePathStyle": False}  # fmt: skip
    table = kubectl("get", "-n", namespace, "etcdb").stdout.split("\n")[0].split()
    assert table == ["NAME", "CLUSTER", "PHASE", "REVISION", "SIZE", "AGE"]


INVALID = [
    ({"clusterRef": {"name": "main"}, "destination": {}}, "destination needs exactly one of s3 or volume"),
    ({"clusterRef": {"name": "main"}, "destination": {**S3, "volume": {"claimName": "v"}}}, "exactly one of s3 or volume"),
    ({"destination": S3}, "spec.clusterRef: Required value"),
    ({"clusterRef": {"name": "main"}, "destination": {"s3": {"bucket": "Bad_Bucket", "credentialsSecret": "c"}}},
     "spec.destination.s3.bucket in body should match"),
    ({"clusterRef": {"name": "main"}, "destination": {"s3": {**S3["s3"], "endpoint": "ftp://x"}}},
     "spec.destination.s3.endpoint in body should match"),
    ({"clusterRef": {"name": "main"}, "destination": {"volume": {"claimName": "v", "path": "../escape"}}},
     "spec.destination.volume.path in body should match"),
    ({"clusterRef": {"name": "main"}, "destination": {"s3": {"bucket": "backups"}}},
     "spec.destination.s3.credentialsSecret: Required value"),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_backups_are_refused_with_the_field(kubectl, namespace, spec, message):
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(spec), check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_a_name_too_long_for_its_job_is_refused(kubectl, namespace):
    spec = {"clusterRef": {"name": "main"}, "destination": S3}
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(spec, "b" * 57), check=False)
    assert result.returncode != 0 and "may have at most 56 characters" in result.stderr, result.stderr
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(spec, "b" * 56))


def test_a_backups_spec_cannot_change(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"clusterRef": {"name": "main"}, "destination": S3}))
    result = kubectl("patch", "-n", namespace, "etcdbackup", "b", "--type=merge", "-p",
                     '{"spec":{"clusterRef":{"name":"other"}}}', check=False)  # fmt: skip
    assert result.returncode != 0 and "spec cannot change: create a new EtcdBackup" in result.stderr, result.stderr
