"""The EtcdBackup pass (reconcile.backup) and its Job, from observations written as the API server returns them."""

import json

import pytest

from etcd_node.contract import AgentError
from etcd_node.snapshots import BackupRecord
from etcd_operator.models.backup import MAX_BACKUP_NAME, BackupPhase, EtcdBackupSpec, EtcdBackupStatus
from etcd_operator.reconcile.backup import BackupObserved, plan_backup

S3 = {"s3": {"endpoint": "https://store.example:9000", "bucket": "backups", "prefix": "etcd/", "credentialsSecret": "s3-creds",
             "caSecret": "store-ca", "forcePathStyle": True}}  # fmt: skip
NOW = "2026-12-02T10:00:00Z"


def cluster(available=True, hibernate=False, members=None):
    return {
        "metadata": {"name": "main", "namespace": "db"},
        "spec": {"replicas": 3, "hibernate": hibernate},
        "status": {
            "conditions": [{"type": "Available", "status": "True" if available else "False", "reason": "x"}],
            "members": members if members is not None else [
                {"name": f"main-{i}", "id": str(i), "clientURLs": [f"https://main-{i}.main.db.svc.cluster.local:2379"],
                 "isLearner": i == 2} for i in range(3)
            ],
        },
    }  # fmt: skip


def seen(destination=None, status=None, cluster_body=None, job=None, pods=(), name="nightly"):
    return BackupObserved(
        name=name, namespace="db", uid="uid-1",
        spec=EtcdBackupSpec.model_validate({"clusterRef": {"name": "main"}, "destination": destination or S3}),
        status=EtcdBackupStatus.model_validate(status or {}), cluster=cluster_body, job=job, pods=list(pods),
        node_repository="etcd-node",
    )  # fmt: skip


def job(condition=None):
    conditions = [{"type": condition, "status": "True"}] if condition else []
    return {"metadata": {"name": "nightly-backup"}, "status": {"conditions": conditions}}


def pod(message, created="2026-12-02T10:00:05Z"):
    return {"metadata": {"creationTimestamp": created},
            "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": message}}}]}}  # fmt: skip


def conditions(status):
    return {c.type: (c.status.value, c.reason) for c in status.conditions}


def test_a_backup_waits_for_its_cluster_to_exist_and_to_be_available():
    planned = plan_backup(seen(), NOW)
    assert planned.create_job is None and planned.status.phase is BackupPhase.PENDING
    assert conditions(planned.status) == {"Complete": ("False", "ClusterNotFound")}
    for body in (cluster(available=False), cluster(hibernate=True), {**cluster(), "status": {}}):
        planned = plan_backup(seen(cluster_body=body), NOW)
        assert planned.create_job is None and planned.status.phase is BackupPhase.PENDING
        assert conditions(planned.status)["Complete"] == ("False", "ClusterNotAvailable")


def test_without_an_operator_client_certificate_the_backup_fails_with_the_fix():
    body = cluster()
    body["spec"]["tls"] = {"client": {"mode": "secret", "secretName": "member-certs"}}
    planned = plan_backup(seen(cluster_body=body), NOW)
    assert planned.status.phase is BackupPhase.FAILED and planned.final
    assert conditions(planned.status)["Failed"] == ("True", "NoClientCertificate")
    assert "operatorClientSecretName" in planned.status.conditions[0].message


def test_the_job_snapshots_a_voting_member_with_the_operators_certificate_into_s3():
    planned = plan_backup(seen(cluster_body=cluster()), NOW)
    assert planned.status.phase is BackupPhase.RUNNING and planned.status.job_name == "nightly-backup"
    assert planned.status.start_time == NOW
    j = planned.create_job
    assert j["metadata"]["name"] == "nightly-backup" and j["metadata"]["ownerReferences"][0]["kind"] == "EtcdBackup"
    pod_spec = j["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["image"] == "etcd-node:3.6.16" and container["args"][0] == "backup"
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"][1:] if "=" in a)
    # The learner (main-2) is not a source: only voting members' own URLs.
    assert args["endpoints"] == "https://main-0.main.db.svc.cluster.local:2379,https://main-1.main.db.svc.cluster.local:2379"
    assert args["s3-key"] == "etcd/db/main/nightly.db" and args["s3-bucket"] == "backups"
    assert args["s3-endpoint"] == "https://store.example:9000" and "--s3-force-path-style" in container["args"]
    assert args["cert"].endswith("/tls.crt") and args["s3-ca-file"].endswith("/ca.crt")
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod_spec["volumes"] if "secret" in v}
    assert secrets == {"client-tls": "main-client-tls", "store-ca": "store-ca"}
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
    # Restricted Pod Security Standard, no token, nothing injected from Services.
    assert pod_spec["automountServiceAccountToken"] is False and pod_spec["enableServiceLinks"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True and pod_spec["restartPolicy"] == "Never"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    assert container["terminationMessagePath"] == "/dev/termination-log"


def test_a_volume_destination_mounts_the_claim_and_writes_under_its_path():
    planned = plan_backup(seen({"volume": {"claimName": "backups", "path": "etcd"}}, cluster_body=cluster()), NOW)
    pod_spec = planned.create_job["spec"]["template"]["spec"]
    assert {"name": "destination", "persistentVolumeClaim": {"claimName": "backups"}} in pod_spec["volumes"]
    assert "--path=/backup/etcd/db/main/nightly.db" in pod_spec["containers"][0]["args"]
    assert not any(e["name"].startswith("AWS_ACCESS") for e in pod_spec["containers"][0]["env"])


def test_members_from_the_spec_when_status_lists_none_yet():
    planned = plan_backup(seen(cluster_body=cluster(members=[])), NOW)
    args = planned.create_job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--endpoints={','.join(f'https://main-{i}.main.db.svc.cluster.local:2379' for i in range(3))}" in args


def test_a_running_job_keeps_the_backup_running_and_the_pass_is_idempotent():
    first = plan_backup(seen(cluster_body=cluster()), NOW)
    status = first.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    later = plan_backup(seen(status=status, cluster_body=cluster(), job=job()), "2026-12-02T10:00:30Z")
    assert later.create_job is None and later.status == first.status  # same phase, same times: no status write


def test_a_completed_job_records_what_the_agent_stored():
    record = BackupRecord("s3://backups/etcd/db/main/nightly.db", 1234, 4096, "f" * 64, "3.6.0",
                          "https://main-1.main.db.svc.cluster.local:2379", "3.6.16", "t0", "2026-12-02T10:00:09Z")  # fmt: skip
    status = {"phase": "Running", "jobName": "nightly-backup", "startTime": NOW}
    planned = plan_backup(seen(status=status, cluster_body=cluster(), job=job("Complete"), pods=[pod(record.to_json())]),
                          "2026-12-02T10:00:12Z")  # fmt: skip
    s = planned.status
    assert s.phase is BackupPhase.COMPLETED and planned.final and planned.create_job is None
    assert (s.location, s.revision, s.size_bytes, s.sha256, s.etcd_version) == (record.location, 1234, 4096, "f" * 64, "3.6.0")
    assert s.start_time == NOW and s.completion_time == "2026-12-02T10:00:09Z"
    assert conditions(s) == {"Complete": ("True", "SnapshotStored")}
    # Final: nothing changes any more, whatever is observed.
    done = s.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert plan_backup(seen(status=done, cluster_body=None, job=None), "later").status == s


def test_a_failed_job_reports_the_agents_error_code():
    failures = [pod(AgentError("StoreFailed", "cannot upload to s3://backups/x: AccessDenied").render(), "2026-12-02T10:01:00Z"),
                pod(AgentError("NoHealthySourceMember", "older attempt").render(), "2026-12-02T10:00:00Z")]  # fmt: skip
    planned = plan_backup(seen(status={"phase": "Running"}, cluster_body=cluster(), job=job("Failed"), pods=failures), NOW)
    assert planned.status.phase is BackupPhase.FAILED
    assert conditions(planned.status) == {"Failed": ("True", "StoreFailed")}  # the newest attempt's reason
    assert "AccessDenied" in planned.status.conditions[0].message


def test_a_job_that_succeeded_without_a_record_is_not_reported_completed():
    planned = plan_backup(seen(status={"phase": "Running"}, cluster_body=cluster(), job=job("Complete"), pods=[pod("garbage")]), NOW)
    assert planned.status.phase is BackupPhase.FAILED and conditions(planned.status)["Failed"][1] == "NoBackupRecord"


@pytest.mark.parametrize("length", [MAX_BACKUP_NAME])
def test_the_longest_backup_name_gives_a_job_name_that_fits_a_label(length):
    planned = plan_backup(seen(cluster_body=cluster(), name="b" * length), NOW)
    assert len(planned.create_job["metadata"]["name"]) == 63
    assert json.dumps(planned.create_job)  # a plain JSON object, ready to apply
