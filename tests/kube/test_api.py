"""The EtcdCluster API on a real kube-apiserver: the generated CRD installs, examples pass, bad input is refused."""

import json
from pathlib import Path

import pytest
import yaml

from etcd_operator.models import kube_openapi, kube_schemas
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
    assert stored["tls"] == {"peer": {"mode": "selfSigned"}, "client": {"mode": "selfSigned"}, "memberKeys": "secret",
                             "certificates": {"validity": "8760h", "renewBefore": "720h"}}
    assert stored["storage"]["whenDeleted"] == "Retain" and stored["storage"]["whenScaled"] == "Retain"
    assert stored["hibernate"] is False


RESTORE_S3 = {"bucket": "backups", "key": "etcd/x.db", "credentialsSecret": "c"}
RESTORE_VOLUME = {"claimName": "backups", "path": "etcd/db/main/nightly.db"}

INVALID = [
    ({"maintenance": {"defrag": {"minFragmentationRatio": 2}}}, "spec.maintenance.defrag.minFragmentationRatio"),
    ({"maintenance": {"defrag": {"minSizeBytes": -1}}}, "spec.maintenance.defrag.minSizeBytes"),
    ({"bootstrap": {"restore": {"backupRef": {"name": "b"}, "s3": RESTORE_S3}}},
     "bootstrap.restore needs exactly one of backupRef, s3 or volume"),
    ({"bootstrap": {"restore": {"s3": RESTORE_S3, "volume": RESTORE_VOLUME}}},
     "bootstrap.restore needs exactly one of backupRef, s3 or volume"),
    ({"bootstrap": {"restore": {}}}, "bootstrap.restore needs exactly one of backupRef, s3 or volume"),
    ({"bootstrap": {"restore": {"volume": {**RESTORE_VOLUME, "path": "../other/x.db"}}}},
     "spec.bootstrap.restore.volume.path in body should match"),
    ({"bootstrap": {"restore": {"volume": {**RESTORE_VOLUME, "path": "/abs.db"}}}},
     "spec.bootstrap.restore.volume.path in body should match"),
    ({"bootstrap": {"restore": {"volume": {"path": "x.db"}}}}, "spec.bootstrap.restore.volume.claimName: Required value"),
    ({"bootstrap": {"restore": {"backupRef": {"name": "b"}, "markCompacted": True}}},
     "markCompacted needs bumpRevision > 0"),
    ({"bootstrap": {"mode": "dnsSRV", "restore": {"backupRef": {"name": "b"}}}}, "bootstrap.restore needs mode static"),
    ({"bootstrap": {"restore": {"s3": {**RESTORE_S3, "key": "/abs.db"}}}}, "spec.bootstrap.restore.s3.key in body should match"),
    # spec.restore (in place): a backup and a request ID that names the restore; never while hibernated.
    ({"restore": {"requestID": "r1"}}, "spec.restore.backupRef: Required value"),
    ({"restore": {"backupRef": {"name": "nightly"}}}, "spec.restore.requestID: Required value"),
    ({"restore": {"backupRef": {"name": "nightly"}, "requestID": ""}}, "restore.requestID  must be a DNS label"),
    ({"restore": {"backupRef": {"name": "nightly"}, "requestID": "Restore_1"}},
     "restore.requestID Restore_1 must be a DNS label (lowercase letters, digits and -, at most 63), e.g. restore-"),
    ({"restore": {"backupRef": {"name": "nightly"}, "requestID": "r" * 64}}, "may not be more than 63"),
    ({"restore": {"backupRef": {"name": ""}, "requestID": "r1"}}, "spec.restore.backupRef.name in body should be at least 1"),
    ({"restore": {"backupRef": {"name": "nightly"}, "requestID": "r1", "bumpRevision": 0}},
     "restore.markCompacted needs bumpRevision > 0 (etcdutl marks the revisions it skipped); to restore without either"),
    ({"hibernate": True, "restore": {"backupRef": {"name": "nightly"}, "requestID": "r1"}},
     "hibernate and restore cannot be set together: a restore starts every member"),
    # spec.recovery (quorum lost): a member pod name and a request ID; never while hibernated.
    ({"recovery": {"requestID": "r1"}}, "spec.recovery.fromMember: Required value"),
    ({"recovery": {"fromMember": "main-0"}}, "spec.recovery.requestID: Required value"),
    ({"recovery": {"fromMember": "main", "requestID": "r1"}},
     "recovery.fromMember main must be a member pod name, <cluster>-<ordinal> (e.g. main-0)"),
    ({"recovery": {"fromMember": "Main-0", "requestID": "r1"}}, "recovery.fromMember Main-0 must be a member pod name"),
    ({"recovery": {"fromMember": "main-0", "requestID": "Recover_1"}},
     "recovery.requestID Recover_1 must be a DNS label (lowercase letters, digits and -, at most 63)"),
    ({"hibernate": True, "recovery": {"fromMember": "main-0", "requestID": "r1"}},
     "hibernate and recovery cannot be set together: a recovery starts the surviving member"),
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
    # Pod certificates: a selfSigned side to sign for, and lifetimes kube-apiserver lets a signer issue.
    ({"tls": {"memberKeys": "podCertificate", "peer": {"mode": "none"}, "client": {"mode": "none"}}},
     "tls.memberKeys podCertificate needs a selfSigned side"),
    ({"tls": {"memberKeys": "podCertificate"}}, "tls.certificates.validity must be between 1h and 2184h"),
    ({"tls": {"memberKeys": "podCertificate", "certificates": {"validity": "2h", "renewBefore": "115m"}}},
     "renewBefore at least 10m and at least 10m shorter than validity"),
    ({"tls": {"memberKeys": "yes"}}, 'Unsupported value: "yes"'),
    # The node image is the operator's: there is no field to override it.
    ({"image": "registry.example/anything:latest"}, 'unknown field "spec.image"'),
    # Storage: a real quantity, big enough for etcd's write-ahead log; a StorageClass name.
    ({"storage": {"size": "1K"}}, "storage.size 1K is not a Kubernetes quantity"),
    ({"storage": {"size": "ten gigs"}}, "storage.size ten gigs is not a Kubernetes quantity"),
    ({"storage": {"size": "1"}}, "storage.size 1 is too small: etcd preallocates 64 MiB write-ahead log segments"),
    ({"storage": {"size": "1k"}}, "storage.size 1k is too small"),
    ({"storage": {"storageClassName": "Fast_SSD"}}, "storage.storageClassName must be a StorageClass name"),
    # Resources: container resource names, quantities, limits not below requests.
    ({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
     "resources: the limit of memory is below its request"),
    ({"resources": {"requests": {"cpu": "lots"}}}, "resources.requests: cpu=lots is not a non-negative Kubernetes quantity"),
    ({"resources": {"limits": {"memory": "-1Gi"}}}, "resources.limits: memory=-1Gi is not a non-negative"),
    ({"resources": {"requests": {"gpu": "1"}}}, "resources.requests: gpu is not a container resource name"),
    # Pod metadata and scheduling: Kubernetes' own formats and types.
    ({"pod": {"labels": {"bad key": "x"}}}, "pod.labels keys must be Kubernetes label keys"),
    ({"pod": {"labels": {"team": "not a value!"}}}, "pod.labels values must be Kubernetes label values"),
    ({"pod": {"labels": {"team": "x" * 64}}}, "may not be more than 63"),
    ({"pod": {"nodeSelector": {"-disk": "ssd"}}}, "pod.nodeSelector keys must be Kubernetes label keys"),
    ({"pod": {"annotations": {"a b": "x"}}}, "pod.annotations keys must be Kubernetes label keys"),
    ({"pod": {"annotations": {f"k{i}": "v" for i in range(65)}}}, "must have at most 64 items"),
    ({"pod": {"priorityClassName": "High_Priority"}}, "pod.priorityClassName must be a PriorityClass name"),
    ({"pod": {"affinity": {"nodeAfinity": {}}}}, 'unknown field "spec.pod.affinity.nodeAfinity"'),
    ({"pod": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{}]}}}},
     "topologyKey: Required value"),
    ({"pod": {"tolerations": [{"key": "k", "operator": "Maybe"}]}}, 'Unsupported value: "Maybe"'),
    ({"pod": {"tolerations": [{"key": "k", "effect": "NoRun"}]}}, 'Unsupported value: "NoRun"'),
    # etcd.extraArgs: an allowlist; each refused group says why.
    *[({"etcd": {"extraArgs": {flag: "x"}}}, "may not set flags the operator owns")
      for flag in ("config-file", "listen-client-http-urls", "listen-metrics-urls", "enable-grpc-gateway",
                   "peer-skip-client-san-verification", "discovery-endpoints", "discovery-srv")],
    *[({"etcd": {"extraArgs": {flag: "true"}}}, f"may not set flags that risk losing data: --{flag}=true")
      for flag in ("unsafe-no-fsync", "force-new-cluster", "strict-reconfig-check")],
    *[({"etcd": {"extraArgs": {flag: "x"}}}, f"may not set the flags of the etcd-node agent: --{flag}=x")
      for flag in ("etcd-bin", "dry-run", "join-endpoints", "join-anything")],
    *[({"etcd": {"extraArgs": {flag: "1"}}}, f"duplicates a typed field: --{flag}=1")
      for flag in ("heartbeat-interval", "election-timeout", "quota-backend-bytes", "auto-compaction-mode",
                   "auto-compaction-retention", "snapshot-count")],
    ({"etcd": {"extraArgs": {"made-up-flag": "1"}}}, "--made-up-flag=1 is not among the etcd flags etcd-operator allows"),
    ({"etcd": {"extraArgs": {"max-request-bytes": "lots"}}}, "--max-request-bytes=lots: values must be whole numbers"),
    ({"etcd": {"extraArgs": {"bcrypt-cost": "99"}}}, "--bcrypt-cost=99: values must be whole numbers in the range"),
    ({"etcd": {"extraArgs": {"pre-vote": "yes"}}}, "--pre-vote=yes: values must be true or false"),
    ({"etcd": {"extraArgs": {"grpc-keepalive-timeout": "5 seconds"}}}, "values must be Go durations"),
    ({"etcd": {"extraArgs": {"log-level": "verbose"}}}, "--log-level=verbose: values must be one of the values"),
    ({"etcd": {"extraArgs": {"cipher-suites": "aes, rc4"}}}, "--cipher-suites=aes, rc4: values must be in the format"),
    ({"version": "3.5.35", "etcd": {"extraArgs": {"log-format": "json"}}},
     "--log-format needs etcd 3.6 or later (spec.version is 3.5.35)"),
    ({"etcd": {"extraArgs": {"compaction-batch-limit": "10", "experimental-compaction-batch-limit": "10"}}},
     "sets a flag under both its experimental- name and its etcd 3.6 name"),
    # Certificate lifetimes: durations CEL parses, bounded, renewal leaving the leaf some life.
    ({"tls": {"certificates": {"validity": "1d"}}}, "spec.tls.certificates.validity in body should match"),
    ({"tls": {"certificates": {"validity": "90s", "renewBefore": "1m"}}},
     "tls.certificates.validity must be between 2m and 87600h"),
    ({"tls": {"certificates": {"validity": "100000h"}}}, "tls.certificates.validity must be between 2m and 87600h"),
    ({"tls": {"certificates": {"validity": "10m", "renewBefore": "30s"}}},
     "tls.certificates.renewBefore must be at least 1m"),
    ({"tls": {"certificates": {"validity": "10m", "renewBefore": "9m30s"}}},
     "tls.certificates.renewBefore must be at least 1m shorter than validity"),
    ({"tls": {"certificates": {"validity": "720h"}}}, "tls.certificates.renewBefore must be at least 1m shorter"),
    # Users' client certificates: selfSigned client TLS only, one entry a name, names usable in a Secret's.
    ({"tls": {"client": {"mode": "secret", "secretName": "s"}, "clients": [{"name": "alice"}]}},
     "tls.clients needs tls.client.mode selfSigned"),
    ({"tls": {"clients": [{"name": "alice"}, {"name": "alice"}]}}, "Duplicate value"),
    ({"tls": {"clients": [{"name": "Alice_1"}]}}, "spec.tls.clients[0].name in body should match"),
    # tls.clients[].access: not for the users the operator needs with full access; each prefix once.
    ({"tls": {"clients": [{"name": "root", "access": [{"prefix": "/a/", "permission": "read"}]}]}},
     "tls.clients: root is an etcd user the operator needs with full access (root role) once etcd auth is on"),
    ({"tls": {"clients": [{"name": "etcd-operator", "access": [{"prefix": "/a/", "permission": "read"}]}]}},
     "tls.clients: etcd-operator is an etcd user the operator needs"),
    ({"tls": {"clients": [{"name": "a", "access": [{"prefix": "/a/", "permission": "all"}]}]}},
     'spec.tls.clients[0].access[0].permission: Unsupported value: "all"'),
    ({"tls": {"clients": [{"name": "a", "access": [{"prefix": "/a/", "permission": "read"},
                                                   {"prefix": "/a/", "permission": "write"}]}]}},
     "spec.tls.clients[0].access[1]: Duplicate value"),
    ({"tls": {"clients": [{"name": "a", "access": []}]}}, "spec.tls.clients[0].access: Invalid value"),
    ({"tls": {"clients": [{"name": "a", "access": [{"permission": "read"}]}]}},
     "spec.tls.clients[0].access[0].prefix: Required value"),
    # discoveryURL: http(s) only, never a link-local or metadata address.
    ({"bootstrap": {"mode": "discovery", "discoveryURL": "ftp://disco.example/x"}}, "must be an http:// or https:// URL"),
    *[({"bootstrap": {"mode": "discovery", "discoveryURL": url}}, "may not point at a link-local or cloud metadata")
      for url in ("http://169.254.169.254/latest/meta-data", "http://[fe80::1]:2379/x",
                  "http://metadata.google.internal/computeMetadata/v1", "http://METADATA.Google.Internal/x",
                  "http://disco.example@169.254.169.254/x", "http://[::ffff:a9fe:a9fe]/x")],
    *[({"bootstrap": {"mode": "discovery", "discoveryURL": url}}, "must name its host as a DNS name")
      for url in ("http://2852039166/x", "http://0251.0376.0251.0376/x", "http://[::ffff:169.254.169.254]/x")],
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_specs_are_rejected_with_the_field_and_fix(kubectl, namespace, spec, message):
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest(spec), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


VALID = [
    {"tls": {"memberKeys": "podCertificate", "certificates": {"validity": "2184h", "renewBefore": "720h"}}},
    {"restore": {"backupRef": {"name": "nightly"}, "requestID": "restore-20260101"}},
    {"recovery": {"fromMember": "main-0", "requestID": "recover-20260101"}},
    {"bootstrap": {"restore": {"volume": RESTORE_VOLUME, "bumpRevision": 10, "markCompacted": True}}},
    {"bootstrap": {"restore": {"s3": RESTORE_S3}}},
    {"restore": {"backupRef": {"name": "nightly"}, "requestID": "0", "bumpRevision": 0, "markCompacted": False}},
    {"restore": {"backupRef": {"name": "nightly"}, "requestID": "r2", "bumpRevision": 5000}},
    {"storage": {"size": "512Mi", "storageClassName": "fast.ssd-1"}},
    {"storage": {"size": "10G"}},
    {"tls": {"certificates": {"validity": "5m", "renewBefore": "2m"}}},
    {"tls": {"certificates": {"validity": "2m", "renewBefore": "1m"}}},
    {"tls": {"clients": [{"name": "alice"}, {"name": "ci-runner-7"}]}},
    {"tls": {"clients": [{"name": "alice", "access": [{"prefix": "/app/", "permission": "readwrite"},
                                                      {"prefix": "/shared/", "permission": "read"}]},
                         {"name": "root"}, {"name": "etcd-operator"}]}},
    {"tls": {"certificates": {"validity": "2160h", "renewBefore": "1h30m"}}},
    {"storage": {"size": "1.5Gi"}},
    {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                   "limits": {"memory": "1024Mi", "ephemeral-storage": "1Gi", "example.com/widget": "1"}}},
    {"pod": {"labels": {"team": "a", "example.com/tier": "db-1", "empty": ""},
             "annotations": {"example.com/note": "any text, even with spaces: fine"},
             "nodeSelector": {"kubernetes.io/os": "linux"}, "priorityClassName": "system-cluster-critical",
             "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                 {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}},
             "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "etcd", "effect": "NoSchedule"},
                             {"operator": "Exists", "tolerationSeconds": 30, "effect": "NoExecute"}]}},
    {"etcd": {"extraArgs": {"max-request-bytes": "10485760", "pre-vote": "true", "grpc-keepalive-timeout": "20s",
                            "log-level": "warn", "experimental-compaction-batch-limit": "1000",
                            "cipher-suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256"}}},
    {"version": "3.5.35", "etcd": {"extraArgs": {"experimental-initial-corrupt-check": "true", "metrics": "extensive"}}},
    {"version": "3.6.16", "etcd": {"extraArgs": {"log-format": "json", "feature-gates": "InitialCorruptCheck=true",
                                                 "compaction-batch-limit": "1000", "backend-batch-interval": "1h30m"}}},
    *[{"bootstrap": {"mode": "discovery", "discoveryURL": url}}
      for url in ("https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de", "http://10.0.0.5:2379/v2/keys/x",
                  "http://[2001:db8::1]:8087/t", "http://disco:8087/t", "https://user:pw@disco.example/t")],
]


@pytest.mark.parametrize("spec", VALID, ids=[json.dumps(s)[:50] for s in VALID])
def test_valid_specs_are_accepted(kubectl, namespace, spec):
    """The rules refuse bad input only: what etcd and Kubernetes take, the API takes too."""
    result = kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=manifest(spec), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 53, "metadata.name may have at most 52 characters: the member pods carry the label controller-revision-hash"),
        ("a.b", "metadata.name must be a DNS label that starts with a letter"),
        ("1main", "metadata.name must be a DNS label that starts with a letter"),
        ("a" * 52, None),
        ("etcd-a1", None),
    ],
)
def test_names_the_derived_objects_can_carry(kubectl, namespace, name, message):
    result = kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-", input=manifest({}, name), check=False)
    if message is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and message in result.stderr, result.stderr


def test_pod_types_match_what_the_apiserver_serves(kubectl):
    """kube_schemas.py is Kubernetes' own Affinity and Toleration, converted; regenerate it when this fails."""
    doc = json.loads(kubectl("get", "--raw", "/openapi/v3/api/v1").stdout)
    assert kube_openapi.schemas_from(doc) == {"AFFINITY": kube_schemas.AFFINITY, "TOLERATION": kube_schemas.TOLERATION}, (
        "operator/etcd_operator/models/kube_schemas.py differs from the apiserver's: see kube_openapi.py to regenerate"
    )


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"storage": {"size": "2Gi"}}, "storage.size cannot change after creation (1Gi -> 2Gi): the StatefulSet"),
        ({"bootstrap": {"mode": "dnsSRV"}}, "bootstrap.mode cannot change after creation"),
        ({"bootstrap": {"restore": {"backupRef": {"name": "late"}}}}, "bootstrap.restore cannot change after creation"),
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


@pytest.mark.parametrize("spec", [{}, {"tls": {"peer": {"mode": "auto"}, "client": {"mode": "none"}},
                                       "storage": {"emptyDir": True}}], ids=["selfSigned", "auto-emptyDir"])  # fmt: skip
def test_member_pods_pass_the_restricted_pod_security_standard(kubectl, namespace, spec):
    """The API server's own PodSecurity admission, enforcing `restricted`, takes the member pod as built."""
    from etcd_operator.models.cluster import EtcdClusterSpec
    from etcd_operator.reconcile.desired import ClusterIdentity, desired_objects
    from etcd_operator.resources.statefulset import MemberTemplateInputs

    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    identity = ClusterIdentity.of("main", namespace, "6f1c2d3e-0000-4000-8000-000000000000")
    objects = desired_objects(identity, EtcdClusterSpec.model_validate(spec), MemberTemplateInputs(3, 3, "t", "etcd-node:3.6.16"), 3, 3)
    template = next(o for o in objects if o["kind"] == "StatefulSet")["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "main-0", **template["metadata"]}, "spec": template["spec"]}
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "data"] + [{"name": "data", "emptyDir": {}}]
    result = kubectl("create", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
    # The same namespace refuses what restricted forbids, so the check above means something.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = kubectl("create", "-n", namespace, "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted' in refused.stderr, refused.stderr
