"""The EtcdCluster API: pydantic models are the single source of truth, the CRD is generated from them.

Field-level rules live in the types (ranges, enums, patterns); rules that span
fields or forbid changes after creation are CEL expressions attached with
`x-kubernetes-validations`, so the API server rejects bad input before the
operator ever sees it, with a message that names the field and the fix.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict, JsonValue

DEFAULT_VERSION = "3.6.16"

# Flags the operator sets itself; extraArgs may not override them.
OWNED_FLAGS = (
    "name",
    "data-dir",
    "wal-dir",
    "listen-peer-urls",
    "listen-client-urls",
    "initial-advertise-peer-urls",
    "advertise-client-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "discovery",
    "discovery-srv",
    "discovery-srv-name",
    "discovery-endpoints",
    "discovery-token",
    "cert-file",
    "key-file",
    "trusted-ca-file",
    "client-cert-auth",
    "auto-tls",
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
    "peer-client-cert-auth",
    "peer-auto-tls",
    "force-new-cluster",
    "proxy",
)


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _version_rules() -> list[JsonValue]:
    """etcd's upgrade path (reconcile.versions) as transition rules on the spec.version string."""
    from ..reconcile.versions import cel_rules

    return [{"rule": rule, "messageExpression": message} for rule, message in cel_rules()]


# CEL rules on the whole EtcdCluster object (they may read self.metadata.name).
CLUSTER_ROOT_VALIDATIONS: list[JsonDict] = []


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def server_default(model: type[BaseModel]) -> dict[str, Any]:
    """A nested object's full default, for the CRD: the API server checks CEL rules against it as is."""
    return {"default": model().model_dump(by_alias=True, exclude_none=True, mode="json")}


class BootstrapMode(StrEnum):
    STATIC = "static"
    DNS_SRV = "dnsSRV"
    DISCOVERY = "discovery"


class ClusterRef(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=63, description="An EtcdCluster in the same namespace.")]


class Bootstrap(ApiModel):
    """How the initial members find each other; later growth always goes through the runtime API."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.mode == 'dnsSRV' || !has(self.srvName)",
                    "bootstrap.srvName is only used with mode dnsSRV: remove it or set mode: dnsSRV",
                ),
                _cel(
                    "self.mode != 'discovery' || (has(self.discoveryURL) != has(self.discoveryClusterRef))",
                    "bootstrap mode discovery needs exactly one of discoveryURL or discoveryClusterRef",
                ),
                _cel(
                    "self.mode == 'discovery' || (!has(self.discoveryURL) && !has(self.discoveryClusterRef))",
                    "bootstrap.discoveryURL and discoveryClusterRef are only used with mode discovery",
                ),
            ]
        }
    )

    mode: BootstrapMode = Field(BootstrapMode.STATIC, description="static (default), dnsSRV or discovery.")
    srv_name: Annotated[str | None, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)] = Field(
        None, description="With dnsSRV: the --discovery-srv-name suffix of the SRV records."
    )
    discovery_url: Annotated[str | None, Field(pattern=r"^https?://.+")] = Field(
        None, alias="discoveryURL", description="With discovery: a v2 discovery URL that has a _config/size."
    )
    discovery_cluster_ref: ClusterRef | None = Field(
        None, description="With discovery: another EtcdCluster used as the v3 discovery service."
    )


class TLSMode(StrEnum):
    SELF_SIGNED = "selfSigned"
    AUTO = "auto"
    SECRET = "secret"
    NONE = "none"


class TLSSide(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.mode == 'secret' ? has(self.secretName) : !has(self.secretName)",
                    "secretName is required with mode secret and only allowed with it",
                ),
            ]
        }
    )

    mode: TLSMode = Field(TLSMode.SELF_SIGNED, description="selfSigned (default), auto, secret or none.")
    secret_name: Annotated[str | None, Field(min_length=1, max_length=253)] = Field(
        None, description="With secret: a Secret with tls.crt, tls.key and ca.crt (e.g. from cert-manager)."
    )


class TLS(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.operatorClientSecretName) || self.client.mode == 'secret'",
                    "tls.operatorClientSecretName is only used with tls.client.mode secret (with selfSigned the "
                    "operator issues its own client certificate)",
                ),
            ]
        }
    )

    peer: TLSSide = Field(
        default_factory=TLSSide, description="Member-to-member traffic.", json_schema_extra=server_default(TLSSide)
    )
    client: TLSSide = Field(
        default_factory=TLSSide,
        description="Client traffic (and the operator's own).",
        json_schema_extra=server_default(TLSSide),
    )
    operator_client_secret_name: Annotated[str | None, Field(min_length=1, max_length=253)] = Field(
        None,
        description="With client mode secret: a Secret (tls.crt, tls.key, ca.crt, e.g. from cert-manager) with a "
        "client certificate the operator presents to etcd, issued by a CA the members trust. Without it the "
        "operator cannot read health or change membership of such a cluster. A renewed Secret is picked up "
        "without a restart.",
    )


class RetentionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class Storage(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!self.emptyDir || !has(self.storageClassName)",
                    "storage.storageClassName has no effect with emptyDir: true; remove one of them",
                ),
            ]
        }
    )

    size: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")] = Field(
        "1Gi", description="Size of each member's PersistentVolumeClaim."
    )
    storage_class_name: Annotated[str | None, Field(min_length=1)] = Field(
        None, description="StorageClass of the claims (default: the cluster's default class)."
    )
    empty_dir: bool = Field(False, description="Keep data in an emptyDir (lost with the pod): for tests only.")
    when_deleted: RetentionPolicy = Field(
        RetentionPolicy.RETAIN, description="What happens to the claims when the EtcdCluster is deleted."
    )
    when_scaled: RetentionPolicy = Field(
        RetentionPolicy.RETAIN,
        description="What happens to a member's claim when scale-in removes the member (Delete: its data "
        "is of no use once it has left the cluster; Retain keeps it as a last copy). Hibernation always retains.",
    )


class ResourceRequirements(ApiModel):
    requests: dict[str, Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?[a-zA-Z]*$")]] | None = None
    limits: dict[str, Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?[a-zA-Z]*$")]] | None = None


class PodOverrides(ApiModel):
    annotations: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    node_selector: dict[str, str] | None = None
    priority_class_name: str | None = None
    affinity: Annotated[dict[str, Any] | None, Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})] = None
    tolerations: Annotated[
        list[dict[str, Any]] | None,
        Field(json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}),
    ] = None


class CompactionMode(StrEnum):
    PERIODIC = "periodic"
    REVISION = "revision"


class EtcdOptions(ApiModel):
    """The few etcd settings most clusters tune, typed; anything else goes in extraArgs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.heartbeatInterval) || !has(self.electionTimeout) || "
                    "self.electionTimeout >= 5 * self.heartbeatInterval",
                    "etcd.electionTimeout must be at least 5 times etcd.heartbeatInterval",
                ),
                _cel(
                    "!has(self.extraArgs) || self.extraArgs.all(k, k.matches('^[a-z0-9][a-z0-9-]*$'))",
                    "etcd.extraArgs keys are etcd flag names without leading dashes, e.g. max-request-bytes",
                ),
                _cel(
                    "!has(self.extraArgs) || self.extraArgs.all(k, !(k in " + str(list(OWNED_FLAGS)) + "))",
                    "etcd.extraArgs may not set flags the operator owns (names, URLs, bootstrap, TLS); use the "
                    "typed fields instead",
                ),
            ]
        }
    )

    quota_backend_bytes: Annotated[int | None, Field(ge=0, le=100 * 2**30)] = None
    auto_compaction_mode: CompactionMode | None = None
    auto_compaction_retention: Annotated[str | None, Field(pattern=r"^[0-9]+(h|m|s)?$")] = None
    snapshot_count: Annotated[int | None, Field(ge=1)] = None
    heartbeat_interval: Annotated[int | None, Field(ge=10, le=5000, description="Milliseconds.")] = None
    election_timeout: Annotated[int | None, Field(ge=50, le=50000, description="Milliseconds.")] = None
    extra_args: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")], str] | None, Field(max_length=64)] = Field(
        None, description="More etcd flags, without leading dashes (e.g. max-request-bytes: '10485760')."
    )


class EtcdClusterSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(oldSelf.bootstrap) || !has(self.bootstrap) || self.bootstrap.mode == oldSelf.bootstrap.mode",
                    "bootstrap.mode cannot change after creation: it only matters for the first start",
                    ".bootstrap.mode",
                ),
                _cel(
                    "!has(oldSelf.tls) || !has(self.tls) || (self.tls.peer.mode == oldSelf.tls.peer.mode && "
                    "self.tls.client.mode == oldSelf.tls.client.mode)",
                    "tls modes cannot change after creation: create a new cluster and migrate",
                    ".tls",
                ),
                _cel(
                    "!has(oldSelf.storage) || !has(self.storage) || "
                    "(has(self.storage.storageClassName) == has(oldSelf.storage.storageClassName) && "
                    "(!has(self.storage.storageClassName) || "
                    "self.storage.storageClassName == oldSelf.storage.storageClassName) && "
                    "self.storage.emptyDir == oldSelf.storage.emptyDir)",
                    "storage.storageClassName and storage.emptyDir cannot change after creation",
                    ".storage",
                ),
                _cel(
                    "!self.hibernate || !has(self.storage) || !self.storage.emptyDir",
                    "hibernate needs persistent storage: with storage.emptyDir every member's data would be lost; "
                    "delete the cluster instead",
                    ".hibernate",
                ),
            ]
        }
    )

    replicas: Annotated[int, Field(ge=1, le=9)] = Field(
        3,
        description="Number of members, 1-9; odd numbers tolerate the same failures as the next even one. "
        "To stop every member while keeping its data, set hibernate instead of 0.",
    )
    hibernate: bool = Field(
        False,
        description="true stops every member and keeps its volume and its place in the membership; false "
        "starts them again as the same members. Membership changes wait while hibernated.",
    )
    version: Annotated[
        str,
        Field(
            pattern=r"^3\.[5-9]\.[0-9]{1,3}$",
            max_length=10,
            json_schema_extra={"x-kubernetes-validations": _version_rules()},
        ),
    ] = Field(
        DEFAULT_VERSION,
        description="etcd version (3.5.x or later). Changes follow etcd's upgrade path, one minor version at a "
        "time and no downgrade, and are rolled out by the operator one member at a time, the leader last.",
    )
    image: str | None = Field(None, description="Node image override (default: the operator's node image).")
    bootstrap: Bootstrap = Field(default_factory=Bootstrap, json_schema_extra=server_default(Bootstrap))
    tls: TLS = Field(default_factory=TLS, json_schema_extra=server_default(TLS))
    storage: Storage = Field(default_factory=Storage, json_schema_extra=server_default(Storage))
    resources: ResourceRequirements | None = None
    pod: PodOverrides | None = None
    etcd: EtcdOptions | None = None
    cluster_token: Annotated[str | None, Field(min_length=1, max_length=128)] = Field(
        None, description="--initial-cluster-token (default: unique per cluster, from its UID)."
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class MemberStatus(ApiModel):
    name: str
    id: str
    peer_urls: list[str] = Field(default_factory=list, alias="peerURLs")
    client_urls: list[str] = Field(default_factory=list, alias="clientURLs")
    is_learner: bool = False
    healthy: bool = False
    version: str | None = Field(None, description="The etcd version this member runs.")


class EtcdClusterStatus(ApiModel):
    model_config = ConfigDict(extra="ignore")  # tolerate fields written by newer operator versions

    phase: str | None = None
    observed_generation: int | None = None
    ready_replicas: int | None = None
    initial_members: int | None = Field(None, description="Members the cluster was bootstrapped with.")
    members: list[MemberStatus] | None = None
    leader: str | None = None
    cluster_id: str | None = Field(None, alias="clusterID")
    version: str | None = None
    conditions: list[Condition] | None = None


class EtcdCluster(ApiModel):
    """Used to validate a whole object in the operator; the CRD schema covers spec and status."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "etcd.operator.dev/v1alpha1"
    kind: str = "EtcdCluster"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: EtcdClusterSpec = Field(default_factory=EtcdClusterSpec)
    status: EtcdClusterStatus | None = None
