"""EtcdCluster.spec.backup on a real kube-apiserver: a schedule is stored with its defaults, bad ones are refused."""

import json

import pytest

pytestmark = pytest.mark.kube

S3 = {"s3": {"bucket": "backups", "credentialsSecret": "s3-creds"}}


def manifest(backup: dict, name: str = "main") -> str:
    return json.dumps({"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdCluster",
                       "metadata": {"name": name}, "spec": {"backup": backup}})  # fmt: skip


def test_a_schedule_is_stored_with_its_defaults(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"schedule": "*/5 * * * *", "destination": S3}))
    stored = json.loads(kubectl("get", "-n", namespace, "etcdcluster", "main", "-o", "json").stdout)["spec"]["backup"]
    assert stored["retention"] == {"keep": 7}
    assert stored["suspend"] is False
    assert stored["destination"]["s3"]["region"] == "us-east-1"


@pytest.mark.parametrize("schedule", ["0 3 * * *", "@daily", "30 2 1,15 jan-mar MON-FRI", "*/1 * * * *"])
def test_cron_expressions_are_taken(kubectl, namespace, schedule):
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({"schedule": schedule, "destination": S3}))


INVALID = [
    ({"schedule": "* * * *", "destination": S3}, "spec.backup.schedule: Invalid value"),
    ({"schedule": "* * * * * *", "destination": S3}, "schedule must be a 5-field cron expression"),
    ({"schedule": "61 * * * *", "destination": S3}, "schedule must be a 5-field cron expression"),
    ({"schedule": "every minute", "destination": S3}, "schedule must be a 5-field cron expression"),
    ({"destination": S3}, "spec.backup.schedule: Required value"),
    ({"schedule": "* * * * *"}, "spec.backup.destination: Required value"),
    ({"schedule": "* * * * *", "destination": {}}, "destination needs exactly one of s3 or volume"),
    ({"schedule": "* * * * *", "destination": S3, "retention": {"keep": 0}}, "spec.backup.retention.keep"),
    ({"schedule": "* * * * *", "destination": S3, "retention": {"keep": 1001}}, "spec.backup.retention.keep"),
    ({"schedule": "* * * * *", "destination": S3, "retention": {"maxAge": "7d"}},
     "spec.backup.retention.maxAge in body should match"),
]


@pytest.mark.parametrize(("backup", "message"), INVALID, ids=[f"{i}-{m[:30]}" for i, (_, m) in enumerate(INVALID)])
def test_invalid_schedules_are_refused_with_the_field(kubectl, namespace, backup, message):
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(backup), check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def backup_manifest(spec: dict, name: str = "b") -> str:
    return json.dumps({"apiVersion": "etcd.operator.dev/v1alpha1", "kind": "EtcdBackup",
                       "metadata": {"name": name}, "spec": spec})  # fmt: skip


def test_deletion_policy_defaults_to_retain_and_may_change(kubectl, namespace):
    spec = {"clusterRef": {"name": "main"}, "destination": S3}
    kubectl("apply", "-n", namespace, "-f", "-", input=backup_manifest(spec))
    stored = json.loads(kubectl("get", "-n", namespace, "etcdbackup", "b", "-o", "json").stdout)["spec"]
    assert stored["deletionPolicy"] == "Retain"
    kubectl("patch", "-n", namespace, "etcdbackup", "b", "--type=merge", "-p", '{"spec":{"deletionPolicy":"Delete"}}')
    result = kubectl("patch", "-n", namespace, "etcdbackup", "b", "--type=merge", "-p",
                     '{"spec":{"clusterRef":{"name":"other"}}}', check=False)  # fmt: skip
    assert result.returncode != 0 and "spec cannot change" in result.stderr, result.stderr
    bad = backup_manifest({**spec, "deletionPolicy": "Purge"}, "c")
    result = kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert result.returncode != 0 and "spec.deletionPolicy" in result.stderr, result.stderr
