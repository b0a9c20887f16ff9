"""Golden files for the builders: `UPDATE_GOLDEN=1 pytest tests/unit/operator` rewrites them after a deliberate change."""

import os
from pathlib import Path

import pytest
import yaml

from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.reconcile.desired import ClusterIdentity, default_token, desired_objects
from etcd_operator.resources.pdb import build_pdb
from etcd_operator.resources.statefulset import MemberTemplateInputs

GOLDEN = Path(__file__).parent / "golden"
IDENTITY = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")

CASES = {
    "static-selfsigned": {},
    "dnssrv-auto-tls": {
        "bootstrap": {"mode": "dnsSRV", "srvName": "main"},
        "tls": {"peer": {"mode": "auto"}, "client": {"mode": "none"}},
        "storage": {"emptyDir": True},
    },
    "secret-tls-tuned": {
        "replicas": 5,
        "version": "3.5.35",
        "tls": {"peer": {"mode": "secret", "secretName": "peer-certs"}, "client": {"mode": "secret", "secretName": "c"}},
        "storage": {"size": "8Gi", "storageClassName": "fast", "whenDeleted": "Delete"},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "pod": {"nodeSelector": {"disk": "ssd"}, "priorityClassName": "high", "labels": {"team": "a"}},
        "etcd": {"quotaBackendBytes": 8589934592, "heartbeatInterval": 100, "electionTimeout": 1000,
                 "extraArgs": {"max-request-bytes": "10485760"}},
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case):
    spec = EtcdClusterSpec.model_validate(CASES[case])
    inputs = MemberTemplateInputs(
        replicas=spec.replicas, initial_members=spec.replicas, cluster_token=default_token(IDENTITY),
        node_image=f"etcd-node:{spec.version}",
    )
    rendered = yaml.safe_dump_all(desired_objects(IDENTITY, spec, inputs, spec.replicas, spec.replicas), sort_keys=True)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path.name} differs: review and rerun with UPDATE_GOLDEN=1"


def env_of(objects):
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    return {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_selfsigned_members_pick_their_own_certificate_and_use_https():
    spec = EtcdClusterSpec()
    inputs = MemberTemplateInputs(3, 3, "tok", "etcd-node:3.6.16")
    env = env_of(desired_objects(IDENTITY, spec, inputs, 3, 3))
    assert env["ETCD_PEER_CERT_FILE"] == "/etc/etcd/peer-tls/$(ETCD_NODE_POD_NAME).crt"
    assert env["ETCD_NODE_PEER_SCHEME"] == "https" and env["ETCD_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_NODE_JOIN_ENDPOINTS"] == "https://main-client.db.svc.cluster.local:2379"


def test_srv_port_names_follow_tls():
    objects = desired_objects(IDENTITY, EtcdClusterSpec(), MemberTemplateInputs(3, 3, "t", "i"), 3, 3)
    peer = objects[0]
    assert peer["spec"]["clusterIP"] == "None" and peer["spec"]["publishNotReadyAddresses"] is True
    assert [p["name"] for p in peer["spec"]["ports"]] == ["etcd-server-ssl", "etcd-client-ssl"]
    plain = EtcdClusterSpec.model_validate({"tls": {"peer": {"mode": "none"}, "client": {"mode": "none"}}})
    ports = desired_objects(IDENTITY, plain, MemberTemplateInputs(3, 3, "t", "i"), 3, 3)[0]["spec"]["ports"]
    assert [p["name"] for p in ports] == ["etcd-server", "etcd-client"]


@pytest.mark.parametrize(
    ("members", "voting", "min_available"),
    [
        (1, 1, 0), (2, 2, 2), (3, 3, 2), (4, 4, 3), (5, 5, 3), (7, 7, 4),  # no learners: the voters' quorum
        (2, 1, 0),  # one voter and a learner being added: nothing to protect yet
        (4, 3, 3),  # three voters and a learner: an eviction may take one pod, never two voters
        (6, 5, 4),
    ],
)  # fmt: skip
def test_pdb_keeps_quorum_of_the_voting_members(members, voting, min_available):
    assert build_pdb(IDENTITY.names, members, voting, IDENTITY.owner)["spec"]["minAvailable"] == min_available


def test_every_object_is_owned_and_labelled():
    for obj in desired_objects(IDENTITY, EtcdClusterSpec(), MemberTemplateInputs(3, 3, "t", "i"), 3, 3):
        meta = obj["metadata"]
        assert meta["ownerReferences"][0]["uid"] == IDENTITY.owner.uid
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "etcd-operator"


def test_discovery_through_another_cluster_mounts_the_clusters_own_credential_optionally():
    spec = EtcdClusterSpec.model_validate({"bootstrap": {"mode": "discovery", "discoveryClusterRef": {"name": "seed"}}})
    inputs = MemberTemplateInputs(3, 3, "tok", "i", discovery_endpoints="https://seed-client.db.svc.cluster.local:2379",
                                  discovery_tls_secret="main-discovery-tls")  # fmt: skip
    objects = desired_objects(IDENTITY, spec, inputs, 3, 3)
    env = env_of(objects)
    assert env["ETCD_DISCOVERY_ENDPOINTS"] == "https://seed-client.db.svc.cluster.local:2379"
    assert env["ETCD_DISCOVERY_TOKEN"] == "tok" and env["ETCD_DISCOVERY_INSECURE_TRANSPORT"] == "false"
    assert env["ETCD_DISCOVERY_CERT"] == "/etc/etcd/discovery-tls/tls.crt"
    pod = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    # Optional: the Secret goes once the cluster has bootstrapped, and pods must still start without it.
    assert {"name": "discovery-tls", "secret": {"secretName": "main-discovery-tls", "optional": True,
                                                "defaultMode": 0o440}} in pod["volumes"]  # fmt: skip


def claim_policy(spec: dict) -> dict:
    objects = desired_objects(IDENTITY, EtcdClusterSpec.model_validate(spec), MemberTemplateInputs(3, 3, "t", "i"), 3, 3)
    return next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["persistentVolumeClaimRetentionPolicy"]


def test_claims_follow_the_scale_in_policy_but_hibernation_always_keeps_them():
    assert claim_policy({}) == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert claim_policy({"storage": {"whenScaled": "Delete"}})["whenScaled"] == "Delete"
    # Hibernation scales to zero: Delete would drop every member's data.
    assert claim_policy({"hibernate": True, "storage": {"whenScaled": "Delete"}})["whenScaled"] == "Retain"


@pytest.mark.parametrize("case", sorted(CASES))
def test_member_pods_are_locked_down(case):
    """The restricted Pod Security Standard, a read-only image, no API token, no Service-link variables."""
    spec = EtcdClusterSpec.model_validate(CASES[case])
    objects = desired_objects(IDENTITY, spec, MemberTemplateInputs(3, 3, "t", "etcd-node:3.6.16"), 3, 3)
    pod = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    # A Service named etcd-socket-reuse would otherwise inject ETCD_SOCKET_REUSE_PORT, read by etcd-node as a flag.
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert not [v for v in pod["volumes"] if "hostPath" in v]
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context == {**context, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in context


def test_a_restore_claim_is_mounted_read_only_and_only_while_asked_for():
    from etcd_node.contract import RESTORE_VOLUME_DIR

    spec = EtcdClusterSpec.model_validate({"bootstrap": {"restore": {"volume": {"claimName": "backups", "path": "a.db"}}}})

    def pod(claim: str) -> dict:
        inputs = MemberTemplateInputs(3, 3, "tok", "etcd-node:3.6.16", restore_claim=claim)
        sts = next(o for o in desired_objects(IDENTITY, spec, inputs, 3, 3) if o["kind"] == "StatefulSet")
        return sts["spec"]["template"]["spec"]

    mounting = pod("backups")
    assert {"name": "restore-volume", "persistentVolumeClaim": {"claimName": "backups", "readOnly": True}} in mounting["volumes"]
    assert {"name": "restore-volume", "mountPath": RESTORE_VOLUME_DIR, "readOnly": True} in mounting["containers"][0]["volumeMounts"]
    released = pod("")
    assert "restore-volume" not in {v["name"] for v in released["volumes"]}
    assert "restore-volume" not in {m["name"] for m in released["containers"][0]["volumeMounts"]}
    # The claim is the only difference: the request Secret's mount stays, so nothing else moves.
    def without_claim(p: dict) -> dict:
        container = p["containers"][0]
        mounts = [m for m in container["volumeMounts"] if m["name"] != "restore-volume"]
        return {**p, "volumes": [v for v in p["volumes"] if v["name"] != "restore-volume"],
                "containers": [{**container, "volumeMounts": mounts}]}  # fmt: skip

    assert without_claim(mounting) == released
