"""The StatefulSet that runs the members: the node image plus the few variables etcd-node needs.

etcd-node derives each member's name, URLs and initial cluster from the pod's
identity (downward API) and the headless Service, so the pod template is the
same for every member and never lists peers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from etcd_node.contract import RECOVERY_FILE, RESTORE_FILE, RESTORE_VOLUME_DIR

from .. import GROUP
from ..models.cluster import BootstrapMode, EtcdClusterSpec, RetentionPolicy, TLSMode, TLSSide, parse_duration
from ..pki import podcerts
from .meta import Owner, labels, metadata, selector
from .naming import CLIENT_PORT, METRICS_PORT, PEER_PORT, ClusterNames

DATA_MOUNT = "/var/lib/etcd"
PEER_TLS_MOUNT = "/etc/etcd/peer-tls"
SERVER_TLS_MOUNT = "/etc/etcd/server-tls"
DISCOVERY_TLS_MOUNT = "/etc/etcd/discovery-tls"
RESTORE_MOUNT = RESTORE_FILE.rsplit("/", 1)[0]  # where etcd-node looks for a restore request
RECOVERY_MOUNT = RECOVERY_FILE.rsplit("/", 1)[0]  # ... and for a quorum recovery request
NODE_UID = 65532  # the etcd user of node_image/Dockerfile


# Pod template annotation: which CAs the members were started to trust. etcd reads its trusted CAs only at
# start, so a change of them (a CA rollover) is a change of the template, rolled out one member at a time.
TRUSTED_CA = f"{GROUP}/trusted-ca"
# The client CA's revocation list in the server-tls Secret (pki.crl.FILE), read by etcd on every connection.
CLIENT_CRL_FILE = "client.crl"


@dataclass(frozen=True)
class MemberTemplateInputs:
    """Everything the pod template depends on besides the spec."""

    replicas: int | None  # None once the membership path owns spec.replicas: the object leaves it out
    initial_members: int
    cluster_token: str
    node_image: str
    discovery_url: str = ""  # bootstrap mode discovery with a v2 URL
    discovery_endpoints: str = ""  # ... or the client URLs of another EtcdCluster (v3 discovery)
    discovery_tls_secret: str = ""  # this cluster's own certificate for it (reconcile.discovery), when one is needed
    trusted_ca: str = ""  # TRUSTED_CA: a digest of the CAs members trust, set once a CA has been rolled over
    client_crl: bool = False  # the server-tls Secret holds the client CA's revocation list (spec.tls.clients)
    restore_mount: bool = False  # mount the restore request (spec.restore): from its first start on, kept after
    recovery_mount: bool = False  # mount the recovery request (spec.recovery): from its stop on, kept after
    restore_claim: str = ""  # a restore from this claim is pending: mounted read-only until it is done
    # spec.tls.memberKeys podCertificate, and this operator signs pod certificates: selfSigned sides get each
    # member's own key and certificate from its kubelet (pki.podcerts), the CAs from the side's Secret
    pod_certificates: bool = False


def _uses_files(side: TLSSide) -> bool:
    return side.mode in (TLSMode.SELF_SIGNED, TLSMode.SECRET)


def _tls_env(side: TLSSide, prefix: str, mount: str, pod_certificates: bool) -> list[dict[str, Any]]:
    """etcd's TLS variables for one side; selfSigned Secrets hold a pair per pod, pod certificates one."""
    var = f"ETCD_{prefix}"
    if side.mode is TLSMode.AUTO:
        return [{"name": f"{var}AUTO_TLS", "value": "true"}]
    if not _uses_files(side):
        return []
    if side.mode is TLSMode.SELF_SIGNED and pod_certificates:
        cert, key = podcerts.CERT_FILE, podcerts.KEY_FILE
    else:
        stem = "$(ETCD_NODE_POD_NAME)" if side.mode is TLSMode.SELF_SIGNED else "tls"
        cert, key = f"{stem}.crt", f"{stem}.key"
    return [
        {"name": f"{var}CERT_FILE", "value": f"{mount}/{cert}"},
        {"name": f"{var}KEY_FILE", "value": f"{mount}/{key}"},
        {"name": f"{var}TRUSTED_CA_FILE", "value": f"{mount}/ca.crt"},
        {"name": f"{var}CLIENT_CERT_AUTH", "value": "true"},
    ]


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def _etcd_option_env(spec: EtcdClusterSpec) -> list[dict[str, Any]]:
    options = spec.etcd
    if options is None:
        return []
    pairs = {
        "ETCD_QUOTA_BACKEND_BYTES": options.quota_backend_bytes,
        "ETCD_AUTO_COMPACTION_MODE": options.auto_compaction_mode.value if options.auto_compaction_mode else None,
        "ETCD_AUTO_COMPACTION_RETENTION": options.auto_compaction_retention,
        "ETCD_SNAPSHOT_COUNT": options.snapshot_count,
        "ETCD_HEARTBEAT_INTERVAL": options.heartbeat_interval,
        "ETCD_ELECTION_TIMEOUT": options.election_timeout,
    }
    return [{"name": k, "value": str(v)} for k, v in pairs.items() if v is not None]


def _readiness_path(version: str) -> str:
    """/readyz arrived with etcd 3.6 on the metrics listener; 3.5 has /health."""
    minor = int(version.split(".")[1])
    return "/readyz" if minor >= 6 else "/health"


def build_env(names: ClusterNames, spec: EtcdClusterSpec, inputs: MemberTemplateInputs) -> list[dict[str, Any]]:
    peer_tls, client_tls = spec.tls.peer.mode is not TLSMode.NONE, spec.tls.client.mode is not TLSMode.NONE
    bootstrap = {
        BootstrapMode.STATIC: "static",
        BootstrapMode.DNS_SRV: "dns-srv",
        BootstrapMode.DISCOVERY: "discovery",
    }[spec.bootstrap.mode]
    env: list[dict[str, Any]] = [
        {"name": "ETCD_NODE_POD_NAME", **_field("metadata.name")},
        {"name": "ETCD_NODE_POD_NAMESPACE", **_field("metadata.namespace")},
        {"name": "ETCD_NODE_SERVICE", "value": names.peer_service},
        {"name": "ETCD_NODE_CLUSTER_DOMAIN", "value": names.cluster_domain},
        {"name": "ETCD_NODE_BOOTSTRAP", "value": bootstrap},
        {"name": "ETCD_NODE_INITIAL_MEMBERS", "value": str(inputs.initial_members)},
        {"name": "ETCD_NODE_PEER_SCHEME", "value": "https" if peer_tls else "http"},
        {"name": "ETCD_NODE_CLIENT_SCHEME", "value": "https" if client_tls else "http"},
        {"name": "ETCD_NODE_JOIN_ENDPOINTS", "value": names.client_url(client_tls)},
        {"name": "ETCD_NODE_TERMINATION_LOG", "value": "/dev/termination-log"},
        {"name": "ETCD_DATA_DIR", "value": f"{DATA_MOUNT}/data"},
        {"name": "ETCD_INITIAL_CLUSTER_TOKEN", "value": inputs.cluster_token},
        {"name": "ETCD_LISTEN_METRICS_URLS", "value": f"http://0.0.0.0:{METRICS_PORT}"},
    ]
    if spec.bootstrap.mode is BootstrapMode.DNS_SRV and spec.bootstrap.srv_name:
        env.append({"name": "ETCD_NODE_SRV_NAME", "value": spec.bootstrap.srv_name})
    if spec.bootstrap.mode is BootstrapMode.DISCOVERY and inputs.discovery_url:
        env.append({"name": "ETCD_DISCOVERY", "value": inputs.discovery_url})
    if spec.bootstrap.mode is BootstrapMode.DISCOVERY and inputs.discovery_endpoints:
        env.append({"name": "ETCD_DISCOVERY_ENDPOINTS", "value": inputs.discovery_endpoints})
        env.append({"name": "ETCD_DISCOVERY_TOKEN", "value": inputs.cluster_token})
        if inputs.discovery_endpoints.startswith("https://"):
            env.append({"name": "ETCD_DISCOVERY_INSECURE_TRANSPORT", "value": "false"})
        if inputs.discovery_tls_secret:
            env += [
                {"name": "ETCD_DISCOVERY_CERT", "value": f"{DISCOVERY_TLS_MOUNT}/tls.crt"},
                {"name": "ETCD_DISCOVERY_KEY", "value": f"{DISCOVERY_TLS_MOUNT}/tls.key"},
                {"name": "ETCD_DISCOVERY_CACERT", "value": f"{DISCOVERY_TLS_MOUNT}/ca.crt"},
            ]
    if spec.bootstrap.restore is not None or inputs.restore_mount:
        # Optional: the operator removes the request once the cluster has started from it.
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": names.restore_secret, "key": key, "optional": True}}}
                for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]  # fmt: skip
    env += _tls_env(spec.tls.peer, "PEER_", PEER_TLS_MOUNT, inputs.pod_certificates)
    env += _tls_env(spec.tls.client, "", SERVER_TLS_MOUNT, inputs.pod_certificates)
    if inputs.client_crl:
        env.append({"name": "ETCD_CLIENT_CRL_FILE", "value": f"{SERVER_TLS_MOUNT}/{CLIENT_CRL_FILE}"})
    env += _etcd_option_env(spec)
    return env


def _tls_volumes(
    names: ClusterNames, spec: EtcdClusterSpec, inputs: MemberTemplateInputs
) -> tuple[list[dict], list[dict]]:
    volumes, mounts = [], []
    for side, volume, mount, generated, signer in (
        (spec.tls.peer, "peer-tls", PEER_TLS_MOUNT, names.peer_tls_secret, podcerts.SIGNERS["peer"]),
        (spec.tls.client, "server-tls", SERVER_TLS_MOUNT, names.server_tls_secret, podcerts.SIGNERS["server"]),
    ):
        if not _uses_files(side):
            continue
        mounts.append({"name": volume, "mountPath": mount, "readOnly": True})
        if side.mode is TLSMode.SELF_SIGNED and inputs.pod_certificates:
            # The trusted CAs (and the client CA's revocation list) from the Secret, which holds no member
            # key; the member's own key and certificate from its kubelet, which renews them in place.
            items = [{"key": "ca.crt", "path": "ca.crt"}]
            if volume == "server-tls" and inputs.client_crl:
                items.append({"key": CLIENT_CRL_FILE, "path": CLIENT_CRL_FILE})
            lifetime = int(parse_duration(spec.tls.certificates.validity).total_seconds())
            volumes.append({"name": volume, "projected": {"defaultMode": 0o440, "sources": [
                {"secret": {"name": generated, "items": items}},
                {"podCertificate": {"signerName": signer, "keyType": podcerts.KEY_TYPE,
                                    "maxExpirationSeconds": lifetime, "keyPath": podcerts.KEY_FILE,
                                    "certificateChainPath": podcerts.CERT_FILE}},
            ]}})  # fmt: skip
            continue
        secret = generated if side.mode is TLSMode.SELF_SIGNED else side.secret_name
        volumes.append({"name": volume, "secret": {"secretName": secret, "defaultMode": 0o440}})
    return volumes, mounts


def _default_affinity(cluster: str) -> dict[str, Any]:
    """Prefer one member per node; a hard rule would leave small clusters unschedulable."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": selector(cluster)},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def build_statefulset(
    names: ClusterNames, spec: EtcdClusterSpec, owner: Owner, inputs: MemberTemplateInputs
) -> dict[str, Any]:
    pod = spec.pod
    volumes, tls_mounts = _tls_volumes(names, spec, inputs)
    if inputs.discovery_tls_secret:
        # Optional: the Secret goes once the cluster has bootstrapped; members restarting from their data,
        # or joining from the member list, never read it, and the template does not change when it goes.
        volumes.append({"name": "discovery-tls", "secret": {"secretName": inputs.discovery_tls_secret, "optional": True,
                                                            "defaultMode": 0o440}})  # fmt: skip
        tls_mounts.append({"name": "discovery-tls", "mountPath": DISCOVERY_TLS_MOUNT, "readOnly": True})
    if spec.bootstrap.restore is not None or inputs.restore_mount:
        volumes.append({"name": "restore", "secret": {"secretName": names.restore_secret, "optional": True,
                                                      "defaultMode": 0o440}})  # fmt: skip
        tls_mounts.append({"name": "restore", "mountPath": RESTORE_MOUNT, "readOnly": True})
    if inputs.recovery_mount:
        # Optional: the request goes once the survivor runs alone; the mount stays, so the template does not change.
        volumes.append({"name": "recovery", "secret": {"secretName": names.recovery_secret, "optional": True,
                                                       "defaultMode": 0o440}})  # fmt: skip
        tls_mounts.append({"name": "recovery", "mountPath": RECOVERY_MOUNT, "readOnly": True})
    if inputs.restore_claim:
        volumes.append({"name": "restore-volume",
                        "persistentVolumeClaim": {"claimName": inputs.restore_claim, "readOnly": True}})  # fmt: skip
        tls_mounts.append({"name": "restore-volume", "mountPath": RESTORE_VOLUME_DIR, "readOnly": True})
    extra_args = [f"--{k}={v}" for k, v in sorted((spec.etcd.extra_args or {}).items())] if spec.etcd else []
    container: dict[str, Any] = {
        "name": "etcd",
        "image": inputs.node_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["etcd-node"],
        "args": extra_args,
        "env": build_env(names, spec, inputs),
        "ports": [
            {"name": "client", "containerPort": CLIENT_PORT, "protocol": "TCP"},
            {"name": "peer", "containerPort": PEER_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # Readiness only: a liveness probe would kill a member that is slow to catch up.
        "readinessProbe": {
            "httpGet": {"path": _readiness_path(spec.version), "port": METRICS_PORT, "scheme": "HTTP"},
            # The rollout waits for each restarted member to be Ready: keep that wait short.
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 5,
        },
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}, *tls_mounts],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # The restricted Pod Security Standard (with the pod's runAsNonRoot and seccompProfile), and a
        # read-only image: etcd and etcd-node write only to the data volume and the termination log.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(exclude_none=True)
    template_meta: dict[str, Any] = {
        "labels": labels(owner.name, "member", pod.labels if pod else None),
    }
    annotations = {**(pod.annotations if pod and pod.annotations else {}),
                   **({TRUSTED_CA: inputs.trusted_ca} if inputs.trusted_ca else {})}  # fmt: skip
    if annotations:
        template_meta["annotations"] = annotations
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        # etcd-node needs nothing from the Kubernetes API: its identity comes from the downward API.
        "automountServiceAccountToken": False,
        # Service links inject <SERVICE>_PORT variables; a Service named e.g. etcd-socket-reuse would set
        # ETCD_SOCKET_REUSE_PORT, which etcd-node reads as --socket-reuse-port.
        "enableServiceLinks": False,
        "affinity": (pod.affinity if pod and pod.affinity else _default_affinity(owner.name)),
        "terminationGracePeriodSeconds": 60,
        # The node image's etcd user. fsGroup makes the certificate Secrets
        # (mode 0440) and the data volume readable by it, whoever owns them.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NODE_UID,
            "runAsGroup": NODE_UID,
            "fsGroup": NODE_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if pod:
        for key, value in (
            ("nodeSelector", pod.node_selector),
            ("tolerations", pod.tolerations),
            ("priorityClassName", pod.priority_class_name),
        ):
            if value:
                pod_spec[key] = value
    sts_spec: dict[str, Any] = {
        "serviceName": names.peer_service,
        # Initial members must start together; later growth is one learner at a time via the runtime API.
        "podManagementPolicy": "Parallel",
        # The operator restarts members for a new template itself, one at a time, the leader last
        # (reconcile.rollout); the StatefulSet controller knows nothing of etcd's health or leader.
        "updateStrategy": {"type": "OnDelete"},
        "selector": {"matchLabels": selector(owner.name)},
        "template": {"metadata": template_meta, "spec": pod_spec},
        "persistentVolumeClaimRetentionPolicy": {
            "whenDeleted": spec.storage.when_deleted.value,
            # Hibernation scales to zero: with Delete that would drop every member's data.
            "whenScaled": RetentionPolicy.RETAIN.value if spec.hibernate else spec.storage.when_scaled.value,
        },
    }
    if inputs.replicas is not None:
        sts_spec["replicas"] = inputs.replicas
    if spec.storage.empty_dir:
        pod_spec["volumes"] = [{"name": "data", "emptyDir": {}}, *volumes]
    else:
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.storage.size}},
        }
        if spec.storage.storage_class_name:
            claim_spec["storageClassName"] = spec.storage.storage_class_name
        sts_spec["volumeClaimTemplates"] = [
            {"metadata": {"name": "data", "labels": selector(owner.name)}, "spec": claim_spec}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(names.statefulset, names.namespace, owner, "member"),
        "spec": sts_spec,
    }
