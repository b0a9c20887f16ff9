"""The EtcdCluster API: pydantic models are the single source of truth, the CRD is generated from them.

Field-level rules live in the types (ranges, enums, patterns); rules that span
fields or forbid changes after creation are CEL expressions attached with
`x-kubernetes-validations`, so the API server rejects bad input before the
operator ever sees it, with a message that names the field and the fix.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonDict, JsonValue

from . import etcd_args, kube_schemas

DEFAULT_VERSION = "3.6.16"

def _cel(rule: str, message: str, field_path: str | None = None, *, expression: bool = False) -> JsonDict:
    """One x-kubernetes-validations rule; `expression` makes the message a CEL messageExpression."""
    out: JsonDict = {"rule": rule, "messageExpression" if expression else "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


def _validations(*rules: JsonDict) -> JsonDict:
    return {"x-kubernetes-validations": list(rules)}


# Kubernetes' own name formats (k8s.io/apimachinery/pkg/util/validation), as CEL raw-string regexes.
DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"{DNS_LABEL}(\.{DNS_LABEL})*"
QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
LABEL_KEY = rf"^({DNS_SUBDOMAIN}/)?{QUALIFIED_NAME}$"
LABEL_VALUE = rf"^({QUALIFIED_NAME})?$"

# A Go-style duration of hours, minutes and seconds, which CEL's duration() also parses.
DURATION = r"^([0-9]{1,6}(h|m|s))+$"


def parse_duration(text: str) -> timedelta:
    """A Go-style duration of hours, minutes and seconds (168h, 90m, 1h30m)."""
    units = {"h": 3600, "m": 60, "s": 1}
    return timedelta(seconds=sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)([hms])", text)))


def _label_key_ok(key: str) -> str:
    """A label or annotation key: [prefix/]name, prefix a DNS subdomain of at most 253, name at most 63."""
    return (
        f"{key}.matches(r'{LABEL_KEY}') && "
        f"(!{key}.contains('/') || {key}.split('/')[0].size() <= 253) && "
        f"{key}.split('/')[{key}.contains('/') ? 1 : 0].size() <= 63"
    )


def _label_map_rules(field: str, values_are_labels: bool) -> list[JsonValue]:
    keys = _label_key_ok("k")
    rules: list[JsonValue] = [
        _cel(
            f"self.all(k, {keys})",
            f"'{field} keys must be Kubernetes label keys ([prefix/]name: the prefix a DNS subdomain of at most 253 "
            f"characters, the name at most 63 alphanumerics, -, _ or ., starting and ending alphanumeric); fix ' "
            f"+ self.filter(k, !({keys}))[0]",
            expression=True,
        )
    ]
    if values_are_labels:
        value = "self[k]"
        ok = f"{value}.size() <= 63 && {value}.matches(r'{LABEL_VALUE}')"
        rules.append(
            _cel(
                f"self.all(k, {ok})",
                f"'{field} values must be Kubernetes label values (at most 63 alphanumerics, -, _ or ., starting "
                f"and ending alphanumeric, or empty); fix ' + self.filter(k, !({ok}))[0] + '=' + "
                f"self[self.filter(k, !({ok}))[0]]",
                expression=True,
            )
        )
    return rules


# The StatefulSet controller labels every pod `controller-revision-hash: <statefulset>-<hash>`, and the
# hash is up to 10 characters; a label value has at most 63. The StatefulSet is named after the cluster
# (resources/naming.py), so a longer name makes every pod creation fail. Every other derived name
# (`<name>-client` Service, `<name>-<ordinal>` pods, `<name>-peer-tls` ...) fits below that.
REVISION_HASH_LENGTH = 10
MAX_NAME_LENGTH = 63 - 1 - REVISION_HASH_LENGTH


def _version_rules() -> list[JsonValue]:
    """etcd's upgrade path (reconcile.versions) as transition rules on the spec.version string."""
    from ..reconcile.versions import cel_rules

    return [{"rule": rule, "messageExpression": message} for rule, message in cel_rules()]


# CEL rules on the whole EtcdCluster object (they may read self.metadata.name).
CLUSTER_ROOT_VALIDATIONS: list[JsonDict] = [
    _cel(
        f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        f"metadata.name may have at most {MAX_NAME_LENGTH} characters: the member pods carry the label "
        "controller-revision-hash=<name>-<10-character hash>, and label values have at most 63; choose a shorter "
        "name",
    ),
    _cel(
        "self.metadata.name.matches(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must be a DNS label that starts with a letter (lowercase letters, digits and -, no dots): "
        "it names the <name>-client Service and the members DNS names; choose e.g. main or etcd-a",
    ),
]


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
    name: Annotated[str, Field(min_length=1, max_length=63, description="The name of an EtcdCluster in the same namespace.")]


# The parts of a URL, by regex: the URL library's hostname has no length bound, which makes the API
# server's cost estimate refuse any rule on it.
_URL_PREFIX = r"(?i)^https?://([^/?#@\[\]]*@)?"
_URL_SUFFIX = r"(:[0-9]{1,5})?([/?#].*)?$"
_URL_SHAPE = (
    _URL_PREFIX
    + r"(([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z]([-a-z0-9]*[a-z0-9])?|[0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9a-f:]+\])"
    + _URL_SUFFIX
)
# Link-local IPv4 (169.254.0.0/16, the metadata address), link-local IPv6 (fe80::/10), IPv4-mapped IPv6,
# and the metadata server's names.
_URL_FORBIDDEN = (
    _URL_PREFIX
    + r"(metadata|metadata\.google\.internal|169\.254\.[0-9]{1,3}\.[0-9]{1,3}|\[fe[89ab][0-9a-f]:[0-9a-f:]*\]|"
    r"\[[0:]*:ffff:[0-9a-f:]*\])"
    + _URL_SUFFIX
)


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
                _cel(
                    "!has(self.restore) || self.mode == 'static'",
                    "bootstrap.restore needs mode static: every initial member restores the snapshot with the "
                    "initial cluster it is given",
                ),
            ]
        }
    )

    mode: BootstrapMode = Field(
        BootstrapMode.STATIC,
        description="static (default): --initial-cluster lists the first members' peer URLs; dnsSRV: "
        "--discovery-srv points at the headless Service's SRV records; discovery: --discovery (v2 URL) or "
        "--discovery-endpoints (another EtcdCluster). Immutable: it only matters for the first start.",
    )
    srv_name: Annotated[str | None, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)] = Field(
        None,
        description="With dnsSRV only: etcd's --discovery-srv-name, the suffix of the SRV records "
        "(_etcd-server-ssl-<srvName>._tcp...). Default: none.",
    )
    discovery_url: Annotated[
        str | None,
        Field(
            pattern=r"^https?://.+",
            max_length=512,
            json_schema_extra=_validations(
                _cel(
                    "isURL(self) && url(self).getScheme() in ['http', 'https']",
                    "bootstrap.discoveryURL must be an http:// or https:// URL, e.g. https://discovery.etcd.io/<token>",
                ),
                _cel(
                    f"self.matches(r'{_URL_SHAPE}')",
                    "bootstrap.discoveryURL must name its host as a DNS name, an IPv4 address or a bracketed IPv6 "
                    "address, e.g. https://discovery.example.com/<token>",
                ),
                _cel(
                    f"!self.matches(r'{_URL_FORBIDDEN}')",
                    "bootstrap.discoveryURL may not point at a link-local or cloud metadata address (169.254.0.0/16, "
                    "fe80::/10, metadata.google.internal) and its host must be a DNS name or an IP address; use the "
                    "discovery service's own address",
                ),
            ),
        ),
    ] = Field(
        None,
        alias="discoveryURL",
        description="With discovery only (exactly one of discoveryURL and discoveryClusterRef): etcd's --discovery, "
        "a v2 discovery URL (http or https) that has a _config/size key.",
    )
    discovery_cluster_ref: ClusterRef | None = Field(
        None,
        description="With discovery only (exactly one of discoveryURL and discoveryClusterRef): another "
        "EtcdCluster in the same namespace used as the v3 discovery service (--discovery-endpoints, "
        "--discovery-token; etcd 3.6+). With its client TLS selfSigned, members present a client certificate of "
        "this cluster's own from its client CA (Secret <name>-discovery-tls, deleted once this cluster has been "
        "Available); it may be deleted after that.",
    )
    restore: BootstrapRestore | None = Field(
        None,
        description="Start from a backup: each initial member restores the snapshot (checked: sha256, etcd's "
        "version path) into its empty data dir before etcd starts, with a new cluster token. Only for the "
        "first start (immutable); members added later join as usual.",
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

    mode: TLSMode = Field(
        TLSMode.SELF_SIGNED,
        description="selfSigned (default): the operator issues a CA and a certificate per member; auto: etcd's "
        "--auto-tls/--peer-auto-tls (encrypted, not verified); secret: certificates from secretName; none: plain "
        "HTTP. Immutable: create a new cluster and migrate.",
    )
    secret_name: Annotated[str | None, Field(min_length=1, max_length=253)] = Field(
        None,
        description="With mode secret only, and required there: a Secret with tls.crt, tls.key and ca.crt "
        "(e.g. from cert-manager), mounted for --cert-file/--key-file/--trusted-ca-file (peer-* for peer).",
    )


class MemberKeys(StrEnum):
    SECRET = "secret"
    POD_CERTIFICATE = "podCertificate"


# A PodCertificateRequest's certificate lives between one hour and 91 days (kube-apiserver's bounds), and
# the kubelet's refresh must begin at least 10 minutes after it starts and 10 minutes before it ends.
POD_CERTIFICATE_MIN_VALIDITY, POD_CERTIFICATE_MAX_VALIDITY = "1h", "2184h"
POD_CERTIFICATE_REFRESH_MARGIN = "10m"


# Bounds of spec.tls.certificates. Two minutes is short enough for tests that watch renewals happen. A
# renewed Secret reaches the members' files at the kubelet's next sync of the pod: up to 90 s later with
# the kubelet's default syncFrequency (1m, plus jitter), seconds with a short one. renewBefore may be as
# short as 1m for clusters whose kubelets sync faster than that; the field says to keep it above 2m
# otherwise. A leaf must live a while between renewals, or every pass would issue a new one.
MIN_VALIDITY, MAX_VALIDITY = "2m", "87600h"
MIN_RENEW_BEFORE, MIN_RENEWAL_GAP = "1m", "1m"


class CertificateLifetime(ApiModel):
    """How long operator-issued leaf certificates live (selfSigned sides; CAs live ten years)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"duration(self.validity) >= duration('{MIN_VALIDITY}') && "
                    f"duration(self.validity) <= duration('{MAX_VALIDITY}')",
                    f"tls.certificates.validity must be between {MIN_VALIDITY} and {MAX_VALIDITY} (ten years, the "
                    "CA's own lifetime), e.g. 8760h",
                    ".validity",
                ),
                _cel(
                    f"duration(self.renewBefore) >= duration('{MIN_RENEW_BEFORE}')",
                    f"tls.certificates.renewBefore must be at least {MIN_RENEW_BEFORE}: members need the new files "
                    "(the kubelet delivers a renewed Secret at its next sync of the pod, up to 90 s later by "
                    "default) before the old certificate ends",
                    ".renewBefore",
                ),
                _cel(
                    f"duration(self.validity) - duration(self.renewBefore) >= duration('{MIN_RENEWAL_GAP}')",
                    f"tls.certificates.renewBefore must be at least {MIN_RENEWAL_GAP} shorter than validity, or "
                    "every certificate would be renewed as soon as it is issued; e.g. validity 8760h, renewBefore 720h",
                    ".renewBefore",
                ),
            ]
        }
    )

    validity: Annotated[str, Field(pattern=DURATION, max_length=32)] = Field(
        "8760h", description="How long each member and client certificate is valid, as a duration of h, m and s "
        f"(default 8760h, one year; {MIN_VALIDITY} to {MAX_VALIDITY}). A leaf never outlives its CA. Shortening it "
        "reissues certificates that would live longer."
    )  # fmt: skip
    renew_before: Annotated[str, Field(pattern=DURATION, max_length=32)] = Field(
        "720h", description="Replace a certificate this long before it ends (default 720h, 30 days; at least "
        f"{MIN_RENEW_BEFORE}, and at least {MIN_RENEWAL_GAP} shorter than validity). Members keep running: etcd reads "
        "its certificate files on every new connection, and the kubelet updates them in place at its next sync of "
        "the pod, which takes up to 90 s with its default syncFrequency of 1m: below 2m, only on kubelets that "
        "sync faster."
    )  # fmt: skip

    @model_validator(mode="after")
    def _in_bounds(self) -> CertificateLifetime:
        validity, renew = parse_duration(self.validity), parse_duration(self.renew_before)
        if not parse_duration(MIN_VALIDITY) <= validity <= parse_duration(MAX_VALIDITY):
            raise ValueError(f"validity {self.validity} is not between {MIN_VALIDITY} and {MAX_VALIDITY}")
        if renew < parse_duration(MIN_RENEW_BEFORE) or validity - renew < parse_duration(MIN_RENEWAL_GAP):
            raise ValueError(f"renewBefore {self.renew_before} must be at least {MIN_RENEW_BEFORE} and at least "
                             f"{MIN_RENEWAL_GAP} shorter than validity {self.validity}")  # fmt: skip
        return self


class KeyPermission(StrEnum):
    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"


# etcd users the operator itself needs once auth is on: etcd refuses `auth enable` without `root`, and the
# operator's own client certificate (CommonName etcd-operator) must keep the root role. A user limited by
# tls.clients[].access cannot take either name.
RESERVED_USERS = ("root", "etcd-operator")


class KeyAccess(ApiModel):
    """One key prefix a user may use (an etcd role permission over [prefix, prefix+1))."""

    prefix: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Keys starting with this string, e.g. /app/ (etcdctl role grant-permission --prefix)."
    )
    permission: KeyPermission = Field(
        description="read (get, watch), write (put, delete) or readwrite under the prefix."
    )


class ClientCertificate(ApiModel):
    """A person or program that gets its own client certificate (CommonName = name) from the client CA."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.access) || !(self.name in " + str(list(RESERVED_USERS)) + ")",
                    "'tls.clients: ' + self.name + ' is an etcd user the operator needs with full access (root "
                    "role) once etcd auth is on; give the limited user another name, or remove its access'",
                    ".access",
                    expression=True,
                ),
            ]
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = Field(
        description="The user: the certificate's CommonName and the Secret <cluster>-user-<name> (tls.crt, tls.key, "
        "ca.crt). Removing the entry revokes the certificate (etcd's --client-crl-file, read on every connection) "
        "and then deletes the Secret."
    )  # fmt: skip
    access: Annotated[list[KeyAccess] | None, Field(min_length=1, max_length=32)] = Field(
        None,
        description="Limit this user to these key prefixes. While any user has access, the operator turns on "
        "etcd auth: each user becomes an etcd user named after its certificate's CommonName (gRPC clients such "
        "as etcdctl; the JSON gateway ignores certificates), with a role user-<name> holding exactly these "
        "permissions; users without access get the root role, so they keep full access. When no user has "
        "access, auth is turned off again and the operator's users and roles are deleted.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["prefix"]},
    )

    @model_validator(mode="after")
    def _not_reserved(self) -> ClientCertificate:
        if self.access is not None and self.name in RESERVED_USERS:
            raise ValueError(f"tls.clients: {self.name} is an etcd user the operator needs with full access "
                             "(root role) once etcd auth is on; give the limited user another name, or remove "
                             "its access")  # fmt: skip
        prefixes = [a.prefix for a in self.access or []]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError(f"tls.clients[{self.name}].access lists a prefix twice; give each prefix once")
        return self


class TLS(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.operatorClientSecretName) || self.client.mode == 'secret'",
                    "tls.operatorClientSecretName is only used with tls.client.mode secret (with selfSigned the "
                    "operator issues its own client certificate)",
                ),
                _cel(
                    "self.memberKeys != 'podCertificate' || self.peer.mode == 'selfSigned' || "
                    "self.client.mode == 'selfSigned'",
                    "tls.memberKeys podCertificate needs a selfSigned side: the operator signs the members' "
                    "certificates from the CA it issues (with mode secret, the Secret's owner issues them)",
                    ".memberKeys",
                ),
                _cel(
                    "self.memberKeys != 'podCertificate' || "
                    f"(duration(self.certificates.validity) >= duration('{POD_CERTIFICATE_MIN_VALIDITY}') && "
                    f"duration(self.certificates.validity) <= duration('{POD_CERTIFICATE_MAX_VALIDITY}') && "
                    f"duration(self.certificates.renewBefore) >= duration('{POD_CERTIFICATE_REFRESH_MARGIN}') && "
                    "duration(self.certificates.validity) - duration(self.certificates.renewBefore) >= "
                    f"duration('{POD_CERTIFICATE_REFRESH_MARGIN}'))",
                    f"with tls.memberKeys podCertificate, tls.certificates.validity must be between "
                    f"{POD_CERTIFICATE_MIN_VALIDITY} and {POD_CERTIFICATE_MAX_VALIDITY} (Kubernetes' bounds for pod "
                    f"certificates) and renewBefore at least {POD_CERTIFICATE_REFRESH_MARGIN} and at least "
                    f"{POD_CERTIFICATE_REFRESH_MARGIN} shorter than validity, e.g. validity 2184h, renewBefore 720h",
                    ".certificates",
                ),
                _cel(
                    "!has(self.clients) || size(self.clients) == 0 || self.client.mode == 'selfSigned'",
                    "tls.clients needs tls.client.mode selfSigned: the operator issues them from its client CA "
                    "(with mode secret, issue users' certificates from your own CA)",
                    ".clients",
                ),
            ]
        }
    )

    peer: TLSSide = Field(
        default_factory=TLSSide,
        description="Member-to-member (peer) traffic, etcd's --peer-* TLS flags. Default: selfSigned.",
        json_schema_extra=server_default(TLSSide),
    )
    client: TLSSide = Field(
        default_factory=TLSSide,
        description="Client traffic, the operator's own included; etcd's client TLS flags. Default: selfSigned.",
        json_schema_extra=server_default(TLSSide),
    )
    operator_client_secret_name: Annotated[str | None, Field(min_length=1, max_length=253)] = Field(
        None,
        description="With client mode secret: a Secret (tls.crt, tls.key, ca.crt, e.g. from cert-manager) with a "
        "client certificate the operator presents to etcd, issued by a CA the members trust. Without it the "
        "operator cannot read health or change membership of such a cluster. A renewed Secret is picked up "
        "without a restart.",
    )
    clients: Annotated[list[ClientCertificate] | None, Field(max_length=100)] = Field(
        None,
        description="Users with their own client certificate, so that each can be revoked alone, without touching "
        "the operator's (<cluster>-client-tls). Certificates follow tls.certificates and CA rollovers.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    member_keys: MemberKeys = Field(
        MemberKeys.SECRET,
        description="Where each member's private keys come from (selfSigned sides). secret (default): one Secret "
        "per side holds every member's key pair and every member mounts it whole, so each member can read the "
        "others' keys. podCertificate: each member's kubelet creates the member's own keys, which never leave its "
        "node, and the operator signs them through PodCertificateRequests (certificates.k8s.io/v1beta1: "
        "Kubernetes 1.35+ with the PodCertificateRequest feature gate and that API enabled, and the chart's "
        "podCertificates.enabled); the kubelet renews them renewBefore their end, validity 1h to 2184h. Changing "
        "it restarts the members one at a time.",
    )
    certificates: CertificateLifetime = Field(
        default_factory=CertificateLifetime,
        description="Lifetime and renewal of the certificates the operator issues (selfSigned sides); with mode "
        "secret the Secret's owner (e.g. cert-manager) decides. Default: one year, renewed 30 days before the end.",
        json_schema_extra=server_default(CertificateLifetime),
    )

    @model_validator(mode="after")
    def _pod_certificates(self) -> TLS:
        """The CEL rules on memberKeys, for specs that reach the operator without the API server's checks."""
        if self.member_keys is not MemberKeys.POD_CERTIFICATE:
            return self
        if TLSMode.SELF_SIGNED not in (self.peer.mode, self.client.mode):
            raise ValueError("tls.memberKeys podCertificate needs a selfSigned side")
        validity = parse_duration(self.certificates.validity)
        renew, margin = parse_duration(self.certificates.renew_before), parse_duration(POD_CERTIFICATE_REFRESH_MARGIN)
        if not parse_duration(POD_CERTIFICATE_MIN_VALIDITY) <= validity <= parse_duration(POD_CERTIFICATE_MAX_VALIDITY):
            raise ValueError(f"with tls.memberKeys podCertificate, tls.certificates.validity must be between "
                             f"{POD_CERTIFICATE_MIN_VALIDITY} and {POD_CERTIFICATE_MAX_VALIDITY}")  # fmt: skip
        if renew < margin or validity - renew < margin:
            raise ValueError(f"with tls.memberKeys podCertificate, tls.certificates.renewBefore must be at least "
                             f"{POD_CERTIFICATE_REFRESH_MARGIN} and {POD_CERTIFICATE_REFRESH_MARGIN} shorter than "
                             "validity")  # fmt: skip
        return self


class RetentionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


# etcd preallocates its write-ahead log in 64 MiB segments and keeps a few, beside the database and snapshots.
MIN_STORAGE = "256Mi"


class Storage(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!self.emptyDir || !has(self.storageClassName)",
                    "storage.storageClassName has no effect with emptyDir: true; remove one of them",
                ),
                _cel(
                    "self.emptyDir || oldSelf.emptyDir || self.size == oldSelf.size",
                    "'storage.size cannot change after creation (' + oldSelf.size + ' -> ' + self.size + '): the "
                    "StatefulSet volumeClaimTemplates are immutable, so every later update would fail; set it "
                    "back to ' + oldSelf.size + ' (to grow the volumes, expand each claim data-<name>-<ordinal> "
                    "through a StorageClass with allowVolumeExpansion)'",
                    ".size",
                    expression=True,
                ),
            ]
        }
    )

    size: Annotated[
        str,
        Field(
            max_length=32,
            json_schema_extra=_validations(
                _cel(
                    "isQuantity(self)",
                    "'storage.size ' + self + ' is not a Kubernetes quantity: write e.g. 1Gi, 512Mi or 10G (binary "
                    "suffixes Ki Mi Gi Ti, decimal k M G T; note the lowercase k)'",
                    expression=True,
                ),
                _cel(
                    f"!isQuantity(self) || quantity(self).compareTo(quantity('{MIN_STORAGE}')) >= 0",
                    f"'storage.size ' + self + ' is too small: etcd preallocates 64 MiB write-ahead log segments; use "
                    f"at least {MIN_STORAGE}'",
                    expression=True,
                ),
            ),
        ),
    ] = Field(
        "1Gi",
        description=f"Size of each member's PersistentVolumeClaim, a Kubernetes quantity of at least {MIN_STORAGE}. "
        "Default: 1Gi. Immutable (claim templates cannot change); expand the claims through the StorageClass.",
    )
    storage_class_name: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=253,
            json_schema_extra=_validations(
                _cel(
                    f"self.matches(r'^{DNS_SUBDOMAIN}$')",
                    "storage.storageClassName must be a StorageClass name: a DNS subdomain (lowercase letters, "
                    "digits, - and ., starting and ending alphanumeric); see kubectl get storageclass",
                )
            ),
        ),
    ] = Field(
        None,
        description="StorageClass of the claims. Default: the cluster's default class. Immutable.",
    )
    empty_dir: bool = Field(
        False,
        description="true keeps data in an emptyDir, lost with the pod: for tests only. Default: false. Immutable.",
    )
    when_deleted: RetentionPolicy = Field(
        RetentionPolicy.RETAIN,
        description="Retain (default) or Delete: what happens to the claims when the EtcdCluster is deleted.",
    )
    when_scaled: RetentionPolicy = Field(
        RetentionPolicy.RETAIN,
        description="Retain (default) or Delete: what happens to a member's claim when scale-in removes the "
        "member (Delete: its data is of no use once it has left the cluster; Retain keeps it as a last copy). "
        "Hibernation always retains.",
    )


# A container's resource names: the standard ones, hugepages-<size>, or an extended <domain>/<name>.
_RESOURCE_NAME_OK = (
    "k in ['cpu', 'memory', 'ephemeral-storage'] || k.matches(r'^hugepages-[0-9]+(Ki|Mi|Gi)$') || "
    f"(k.contains('/') && {_label_key_ok('k')} && !k.startsWith('kubernetes.io/'))"
)
_QUANTITY_OK = "isQuantity(self[k]) && quantity(self[k]).compareTo(quantity('0')) >= 0"


def _resource_map(which: str, description: str) -> Any:
    return Field(
        None,
        description=description,
        json_schema_extra=_validations(
            _cel(
                f"self.all(k, {_RESOURCE_NAME_OK})",
                f"'resources.{which}: ' + self.filter(k, !({_RESOURCE_NAME_OK}))[0] + ' is not a container "
                "resource name; use cpu, memory, ephemeral-storage, hugepages-<size> or an extended <domain>/<name>'",
                expression=True,
            ),
            _cel(
                f"self.all(k, {_QUANTITY_OK})",
                f"'resources.{which}: ' + self.filter(k, !({_QUANTITY_OK}))[0] + '=' + "
                f"self[self.filter(k, !({_QUANTITY_OK}))[0]] + "
                "' is not a non-negative Kubernetes quantity; write e.g. cpu: 500m, memory: 1Gi'",
                expression=True,
            ),
        ),
    )


_LIMIT_OK = (
    "!(k in self.limits) || !isQuantity(self.requests[k]) || !isQuantity(self.limits[k]) || "
    "quantity(self.limits[k]).compareTo(quantity(self.requests[k])) >= 0"
)


class ResourceRequirements(ApiModel):
    """The etcd container's resources, as in a pod (changing them restarts members one at a time)."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            _cel(
                f"!has(self.requests) || !has(self.limits) || self.requests.all(k, {_LIMIT_OK})",
                "'resources: the limit of ' + self.requests.filter(k, !(" + _LIMIT_OK + "))[0] + ' is below its "
                "request; raise resources.limits or lower resources.requests'",
                expression=True,
            )
        )
    )

    requests: Annotated[dict[str, Annotated[str, Field(max_length=64)]] | None, Field(max_length=16)] = (
        _resource_map("requests", "What each member is guaranteed, e.g. cpu: 500m, memory: 1Gi. Default: none.")
    )
    limits: Annotated[dict[str, Annotated[str, Field(max_length=64)]] | None, Field(max_length=16)] = _resource_map(
        "limits", "The most each member may use, e.g. memory: 2Gi; not below the request. Default: none."
    )


def _label_map(field: str, description: str, values_are_labels: bool = True) -> Any:
    return Field(
        None,
        description=description,
        json_schema_extra={"x-kubernetes-validations": _label_map_rules(field, values_are_labels)},
    )


class PodOverrides(ApiModel):
    """Where and how the member pods run; changes restart members one at a time."""

    annotations: Annotated[dict[str, Annotated[str, Field(max_length=4096)]] | None, Field(max_length=64)] = (
        _label_map(
            "pod.annotations",
            "Extra annotations on every member pod: keys as label keys, values up to 4096 characters, at most 64.",
            values_are_labels=False,
        )
    )
    labels: Annotated[dict[str, Annotated[str, Field(max_length=63)]] | None, Field(max_length=64)] = _label_map(
        "pod.labels",
        "Extra labels on every member pod (the operator's app.kubernetes.io/* labels win), at most 64.",
    )
    node_selector: Annotated[dict[str, Annotated[str, Field(max_length=63)]] | None, Field(max_length=64)] = (
        _label_map("pod.nodeSelector", "The pods' nodeSelector: node labels every member's node must have.")
    )
    priority_class_name: Annotated[
        str | None,
        Field(
            max_length=253,
            json_schema_extra=_validations(
                _cel(
                    f"self.matches(r'^{DNS_SUBDOMAIN}$')",
                    "pod.priorityClassName must be a PriorityClass name (a DNS subdomain); see kubectl get "
                    "priorityclass",
                )
            ),
        ),
    ] = Field(None, description="The pods' PriorityClass. Default: none.")
    # Kubernetes' own types (kube_openapi.py), so a typo is refused here and not on every StatefulSet write.
    affinity: Annotated[
        dict[str, Any] | None, Field(json_schema_extra={"properties": kube_schemas.AFFINITY["properties"]})
    ] = Field(
        None,
        description="The pods' affinity (a core/v1 Affinity), replacing the default: prefer one member per node by "
        "kubernetes.io/hostname.",
    )
    tolerations: Annotated[
        list[dict[str, Any]] | None, Field(max_length=64, json_schema_extra={"items": kube_schemas.TOLERATION})
    ] = Field(None, description="The pods' tolerations (core/v1 Tolerations). Default: none.")


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
                *etcd_args.extra_args_rules(),
            ]
        }
    )

    quota_backend_bytes: Annotated[int | None, Field(ge=0, le=100 * 2**30)] = Field(
        None,
        description="--quota-backend-bytes: the database size at which etcd raises a NOSPACE alarm and refuses "
        "writes, in bytes (at most 100 GiB). Default: etcd's, 2 GiB.",
    )
    auto_compaction_mode: CompactionMode | None = Field(
        None,
        description="--auto-compaction-mode: periodic (retention is a duration) or revision (a number of "
        "revisions). Default: etcd's, periodic.",
    )
    auto_compaction_retention: Annotated[str | None, Field(pattern=r"^[0-9]+(h|m|s)?$")] = Field(
        None,
        description="--auto-compaction-retention: how much history to keep, e.g. 1h (periodic) or 1000 "
        "(revision). Default: etcd's, 0 (no automatic compaction).",
    )
    snapshot_count: Annotated[int | None, Field(ge=1)] = Field(
        None,
        description="--snapshot-count: committed transactions between snapshots to disk. Default: etcd's, 10000 "
        "(100000 on 3.5).",
    )
    heartbeat_interval: Annotated[int | None, Field(ge=10, le=5000)] = Field(
        None,
        description="--heartbeat-interval in milliseconds, 10-5000. Default: etcd's, 100. electionTimeout must "
        "be at least 5 times it.",
    )
    election_timeout: Annotated[int | None, Field(ge=50, le=50000)] = Field(
        None, description="--election-timeout in milliseconds, 50-50000. Default: etcd's, 1000."
    )
    extra_args: Annotated[
        dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=63)], Annotated[str, Field(max_length=256)]]
        | None,
        Field(max_length=64),
    ] = Field(
        None,
        description="More etcd flags, without leading dashes, each value a string (e.g. max-request-bytes: "
        "'10485760'). Only flags known to be safe to tune are accepted, each value checked by type; flags the "
        "operator owns (names, URLs, listeners, bootstrap, TLS), flags that risk data loss, etcd-node's own flags and "
        "the typed fields above are refused. Allowed: " + etcd_args.describe_allowlist() + ".",
    )


# An object name (DNS subdomain), anchored: used by the backup destinations.
_NAME = rf"^{DNS_SUBDOMAIN}$"


class S3Store(ApiModel):
    """An S3-compatible store (AWS S3, or any store that speaks its API) and how to reach it."""

    endpoint: Annotated[str | None, Field(pattern=r"^https?://[^/?#]+(/.*)?$", max_length=512)] = Field(
        None, description="The store's URL, e.g. https://s3.example.com:9000 (default: AWS S3 of the region)."
    )
    bucket: Annotated[str, Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")] = Field(
        description="Bucket name; the bucket must exist (the operator never creates buckets)."
    )
    credentials_secret: Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME)] = Field(
        description="Secret in the same namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )
    region: Annotated[str, Field(min_length=1, max_length=64)] = Field("us-east-1", description="The bucket's region.")
    ca_secret: Annotated[str | None, Field(min_length=1, max_length=253, pattern=_NAME)] = Field(
        None, description="Secret with ca.crt: the CA that signed the endpoint's certificate, when it is private."
    )
    force_path_style: bool = Field(
        False, description="Address the bucket as <endpoint>/<bucket> rather than <bucket>.<endpoint>; most "
        "self-hosted stores need this."
    )  # fmt: skip


class S3Destination(S3Store):
    """Where backups go in an S3-compatible bucket."""

    prefix: Annotated[str, Field(max_length=512, pattern=r"^([^/].*)?$")] = Field(
        "", description="Key prefix; snapshots go to <prefix>/<namespace>/<cluster>/<backup>.db."
    )


class S3Snapshot(S3Store):
    """One snapshot in an S3-compatible bucket, written by etcd-node backup (it carries its sha256 record)."""

    key: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^/].*$")] = Field(
        description="The snapshot's key, e.g. etcd/prod/main/nightly.db (an EtcdBackup's status.location "
        "without s3://<bucket>/)."
    )


class VolumeDestination(ApiModel):
    """A PersistentVolumeClaim in the backup's namespace, mounted by the backup Job."""

    claim_name: Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME)] = Field(
        description="The claim; it must be mountable by the Job (ReadWriteOnce claims only on the node that has it)."
    )
    path: Annotated[str, Field(max_length=512, pattern=r"^([^/.][^/]*(/[^/.][^/]*)*)?$")] = Field(
        "", description="Directory inside the claim (relative, no '..'); snapshots go to "
        "<path>/<namespace>/<cluster>/<backup>.db with a record <backup>.db.json beside each."
    )  # fmt: skip


class BackupDestination(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("has(self.s3) != has(self.volume)", "destination needs exactly one of s3 or volume"),
            ]
        }
    )

    s3: S3Destination | None = Field(None, description="Store the snapshot in an S3-compatible bucket.")
    volume: VolumeDestination | None = Field(None, description="Store the snapshot on a PersistentVolumeClaim.")


# A ReadWriteOnce claim is attached to one node at a time: every pod that mounts it must run there.
_RWO_NOTE = (
    "A ReadWriteOnce claim can be mounted by several pods only on one node: members scheduled elsewhere stay in "
    "ContainerCreating (the pod's events say Multi-Attach error) or Pending (a volume node affinity conflict, "
    "reported in Progressing); use a ReadOnlyMany or ReadWriteMany claim, or keep the members on the claim's node "
    "(pod.nodeSelector) while they restore."
)


class BackupRef(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=63)] = Field(
        description="A Completed EtcdBackup in the same namespace, with an s3 or a volume destination. From a "
        "volume, the members mount the backup's claim read-only while they restore, and the operator restarts them "
        "one at a time afterwards to release it. " + _RWO_NOTE
    )


class VolumeSnapshot(ApiModel):
    """One snapshot file on a PersistentVolumeClaim, written by etcd-node backup (its record <file>.json beside it)."""

    claim_name: Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME)] = Field(
        description="The claim, in the cluster's namespace. Each initial member mounts it read-only while it "
        "restores; once the cluster has started from it the members are restarted one at a time without it. "
        + _RWO_NOTE
    )
    path: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^/.][^/]*(/[^/.][^/]*)*$")] = Field(
        description="The snapshot file inside the claim (relative, no '..'), e.g. etcd/prod/main/nightly.db (an "
        "EtcdBackup's status.location without the leading /backup/); its record nightly.db.json must be beside it."
    )


class BootstrapRestore(ApiModel):
    """Start the new cluster from a backup instead of empty: etcd's recovery procedure, done by the members."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("(has(self.backupRef) ? 1 : 0) + (has(self.s3) ? 1 : 0) + (has(self.volume) ? 1 : 0) == 1",
                     "bootstrap.restore needs exactly one of backupRef, s3 or volume"),
                _cel("!self.markCompacted || self.bumpRevision > 0",
                     "bootstrap.restore.markCompacted needs bumpRevision > 0 (etcdutl marks the revisions it skipped)"),  # fmt: skip
            ]
        }
    )

    backup_ref: BackupRef | None = Field(None, description="Restore the snapshot an EtcdBackup took.")
    s3: S3Snapshot | None = Field(None, description="Restore a snapshot from an S3-compatible bucket by its key.")
    volume: VolumeSnapshot | None = Field(None, description="Restore a snapshot file from a PersistentVolumeClaim.")
    bump_revision: Annotated[int, Field(ge=0, le=10**12)] = Field(
        0, description="etcdutl --bump-revision: raise every revision by this much (default 0), so clients that "
        "watched another cluster never see a revision twice."
    )  # fmt: skip
    mark_compacted: bool = Field(
        False, description="etcdutl --mark-compacted (needs bumpRevision): watches from older revisions fail with "
        "'compacted' instead of missing events."
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_source(self) -> BootstrapRestore:
        if sum(x is not None for x in (self.backup_ref, self.s3, self.volume)) != 1:
            raise ValueError("bootstrap.restore needs exactly one of backupRef, s3 or volume")
        return self


def _request_id(field: str, example: str) -> Any:
    """A requestID's schema: a DNS label naming one carrying-out of a request (a new value asks again)."""
    return Field(
        max_length=63,
        json_schema_extra=_validations(
            _cel(f"self.matches(r'^{DNS_LABEL}$')",
                 f"'{field}.requestID ' + self + ' must be a DNS label (lowercase letters, digits and -, at "
                 f"most 63), e.g. {example}; a new value starts a new {field}'", expression=True),
        ),
    )  # fmt: skip


def _dns_label(value: str) -> str:
    if not re.fullmatch(DNS_LABEL, value) or len(value) > 63:
        raise ValueError(f"requestID {value!r} is not a DNS label")
    return value


# etcd's advice for clusters whose clients watch (Kubernetes among them): raise every revision well past any
# a client may have seen, and mark the skipped ones compacted so old watches fail instead of missing events.
IN_PLACE_BUMP_REVISION = 1_000_000_000


class InPlaceRestore(ApiModel):
    """Restore the running cluster from a backup under its own name: every member is stopped and restarted from it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("!self.markCompacted || self.bumpRevision > 0",
                     "restore.markCompacted needs bumpRevision > 0 (etcdutl marks the revisions it skipped); to "
                     "restore without either, set bumpRevision: 0 and markCompacted: false", ".markCompacted"),
            ]
        }
    )  # fmt: skip

    backup_ref: BackupRef = Field(description="The Completed EtcdBackup (s3 or volume destination) to restore. "
                                  "From a volume, the members mount its claim read-only from their restart for the "
                                  "restore until the restore is recorded, then restart one at a time without it.")
    request_id: Annotated[str, _request_id("restore", "restore-20260101"), AfterValidator(_dns_label)] = Field(
        alias="requestID",
        description="Names this restore: a new value restores again, the same value is carried out once "
        "(status.restore.requestID says when it is done). A DNS label, e.g. restore-20260101.",
    )
    bump_revision: Annotated[int, Field(ge=0, le=10**12)] = Field(
        IN_PLACE_BUMP_REVISION, description="etcdutl --bump-revision (default 1000000000, etcd's advice for "
        "watchers such as Kubernetes): every revision after the restore is larger than any before it. 0 turns it "
        "off (with markCompacted: false)."
    )  # fmt: skip
    mark_compacted: bool = Field(
        True, description="etcdutl --mark-compacted (default true; needs bumpRevision): watches from revisions "
        "before the restore fail with 'compacted' and start over instead of missing events."
    )  # fmt: skip

    @model_validator(mode="after")
    def _compacted_needs_bump(self) -> InPlaceRestore:
        if self.mark_compacted and not self.bump_revision:
            raise ValueError("markCompacted needs bumpRevision > 0")
        return self


def _cron_field(value: str, names: str = "") -> str:
    """One cron field as a regex: `*` or a value or a range, each with an optional step, comma-separated."""
    item = rf"(\*|({value}{names})(-({value}{names}))?)(/[0-9]{{1,2}})?"
    return rf"{item}(,{item})*"


_MONTHS = "|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "|sun|mon|tue|wed|thu|fri|sat"
# The five fields of a Kubernetes CronJob's schedule (minute hour day-of-month month day-of-week), or
# a macro. The API server checks the shape at admission; the operator checks the rest with croniter.
CRON = (
    r"(?i)^\s*(@(yearly|annually|monthly|weekly|daily|hourly)|"
    + r"\s+".join([
        _cron_field("[0-5]?[0-9]"),
        _cron_field("[01]?[0-9]|2[0-3]"),
        _cron_field("0?[1-9]|[12][0-9]|3[01]"),
        _cron_field("0?[1-9]|1[0-2]", _MONTHS),
        _cron_field("[0-7]", _DAYS),
    ])
    + r")\s*$"
)


class QuorumRecovery(ApiModel):
    """Bring a cluster that lost quorum back from one surviving member (etcd's --force-new-cluster procedure)."""

    from_member: Annotated[
        str,
        Field(
            max_length=63,
            json_schema_extra=_validations(
                _cel(f"self.matches(r'^{DNS_LABEL}-[0-9]+$')",
                     "'recovery.fromMember ' + self + ' must be a member pod name, <cluster>-<ordinal> (e.g. "
                     "main-0); the QuorumLost condition names the members that still answer'", expression=True),
            ),
        ),
    ] = Field(
        alias="fromMember",
        description="The surviving member to recover from, by pod name (e.g. main-0): the Available=False/"
        "QuorumLost condition lists the members that answer and which holds the highest raft index. It keeps "
        "every write it had applied; writes it had not applied are lost.",
    )
    request_id: Annotated[str, _request_id("recovery", "recover-20260101"), AfterValidator(_dns_label)] = Field(
        alias="requestID",
        description="Names this recovery: a new value recovers again (only while quorum is lost), the same value "
        "is carried out once (status.recovery.requestID says when it is done). A DNS label.",
    )

    @field_validator("from_member")
    @classmethod
    def _pod(cls, value: str) -> str:
        if not re.fullmatch(rf"{DNS_LABEL}-[0-9]+", value) or len(value) > 63:
            raise ValueError(f"fromMember {value!r} is not a member pod name (<cluster>-<ordinal>)")
        return value


class BackupRetention(ApiModel):
    keep: Annotated[int, Field(ge=1, le=1000)] = Field(
        7, description="Completed scheduled backups to keep, newest first; older ones are deleted."
    )
    max_age: Annotated[str | None, Field(pattern=DURATION, max_length=32)] = Field(
        None, description="Also delete Completed scheduled backups older than this (e.g. 168h; units h, m, s). "
        "The newest Completed backup is always kept, however old."
    )  # fmt: skip


class BackupSchedule(ApiModel):
    """Scheduled EtcdBackups of this cluster, created like a CronJob creates Jobs and pruned by retention."""

    schedule: Annotated[
        str,
        Field(
            max_length=128,
            json_schema_extra=_validations(
                _cel(f"self.matches(r'{CRON}')",
                     "schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week), "
                     "e.g. \"*/5 * * * *\" or \"0 3 * * *\", or a macro such as @daily"),
            ),
        ),
    ] = Field(description="When to take a backup, in cron syntax (UTC), e.g. \"0 3 * * *\" for 03:00 every day.")
    destination: BackupDestination = Field(description="Where each scheduled snapshot is stored.")
    retention: BackupRetention = Field(
        default_factory=BackupRetention, description="Which scheduled backups to keep.",
        json_schema_extra=server_default(BackupRetention),
    )  # fmt: skip
    suspend: bool = Field(
        False, description="true stops creating backups (retention still applies); false resumes with the latest "
        "missed run only."
    )  # fmt: skip

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        if not re.match(CRON, value) or not croniter.is_valid(value):
            raise ValueError(f"not a 5-field cron expression: {value!r}")
        return value


class DefragPolicy(ApiModel):
    """When a member's database file is worth defragmenting (it blocks that member while it runs)."""

    min_fragmentation_ratio: Annotated[float, Field(ge=0.05, le=1.0)] = Field(
        0.5, description="Defragment a member once this share of its database file is free pages (default 0.5)."
    )
    min_size_bytes: Annotated[int, Field(ge=0)] = Field(
        100 * 2**20, description="... and its file is at least this large, in bytes (default 100 MiB)."
    )


class Maintenance(ApiModel):
    nospace_recovery: bool = Field(
        True,
        description="When etcd raises its NOSPACE alarm (a member's file reached quotaBackendBytes and writes are "
        "refused): compact to the current revision, defragment each member (followers first, the leader last) and "
        "disarm, one step per pass; refused with the numbers when the live data itself fills the quota. "
        "Degraded=True/DatabaseFull until disarmed.",
    )
    defrag: DefragPolicy | None = Field(
        None,
        description="Routine defragmentation: only while every member is healthy and no membership change, "
        "rollout or backup is under way; one member per pass, followers first, the leader last. Off when unset.",
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
                    "!has(oldSelf.bootstrap) || !has(self.bootstrap) || "
                    "(has(self.bootstrap.restore) == has(oldSelf.bootstrap.restore) && "
                    "(!has(self.bootstrap.restore) || self.bootstrap.restore == oldSelf.bootstrap.restore))",
                    "bootstrap.restore cannot change after creation: it only matters for the first start; to restore "
                    "again, create a new cluster",
                    ".bootstrap.restore",
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
                *etcd_args.version_rules(),
                _cel(
                    "!self.hibernate || !has(self.restore)",
                    "hibernate and restore cannot be set together: a restore starts every member; remove "
                    "spec.restore (once status.restore.requestID shows it done) before hibernating, or wake the "
                    "cluster first",
                    ".restore",
                ),
                _cel(
                    "!self.hibernate || !has(self.recovery)",
                    "hibernate and recovery cannot be set together: a recovery starts the surviving member; remove "
                    "spec.recovery (once status.recovery.requestID shows it done) before hibernating",
                    ".recovery",
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
    bootstrap: Bootstrap = Field(default_factory=Bootstrap, json_schema_extra=server_default(Bootstrap))
    tls: TLS = Field(
        default_factory=TLS,
        description="TLS for peer and client traffic. Default: selfSigned for both. The modes are immutable.",
        json_schema_extra=server_default(TLS),
    )
    storage: Storage = Field(
        default_factory=Storage,
        description="Each member's data volume (etcd's --data-dir): a claim per member, or an emptyDir for tests.",
        json_schema_extra=server_default(Storage),
    )
    resources: ResourceRequirements | None = Field(
        None, description="CPU and memory of the etcd container. Default: none (the namespace's defaults)."
    )
    pod: PodOverrides | None = Field(None, description="Scheduling and metadata of the member pods.")
    etcd: EtcdOptions | None = None
    cluster_token: Annotated[str | None, Field(min_length=1, max_length=128)] = Field(
        None,
        description="--initial-cluster-token. Default: <namespace>-<name>-<UID prefix>, unique per cluster. Used "
        "only at bootstrap.",
    )
    backup: BackupSchedule | None = Field(
        None, description="Scheduled backups: EtcdBackups created on a cron schedule, pruned by retention."
    )
    maintenance: Maintenance = Field(
        default_factory=Maintenance,
        description="Database upkeep: NOSPACE recovery (on by default) and routine defragmentation (off unless set).",
        json_schema_extra=server_default(Maintenance),
    )
    restore: InPlaceRestore | None = Field(
        None,
        description="Restore this running cluster from a backup under the same name (disaster recovery): every "
        "member is stopped, restores the snapshot with a new cluster token and starts as a member of a new "
        "cluster (new member and cluster IDs; same names, Services and Secrets). Carried out once per requestID.",
    )
    recovery: QuorumRecovery | None = Field(
        None,
        description="Recover a cluster that lost quorum from one surviving member, keeping its data: every member "
        "is stopped, the survivor restarts once with --force-new-cluster as a one-member cluster (same cluster "
        "ID and data), and the others are added back one at a time as new members. Refused while quorum holds. "
        "Carried out once per requestID; to recover from a backup instead, use spec.restore.",
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A Kubernetes condition; each change of status or reason is also an Event."""

    type: str = Field(description="Available, Progressing or Degraded.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase reason, e.g. QuorumHealthy, MemberAdding, BootstrapError.")
    message: str = Field("", description="What happened and, for a problem, what to do.")
    last_transition_time: str | None = Field(None, description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="The metadata.generation this condition is about.")


class MemberStatus(ApiModel):
    """One etcd member, from etcd's member list and the member's own status."""

    name: str = Field(description="The member's name, its pod's name (<cluster>-<ordinal>).")
    id: str = Field(description="etcd's member ID, in hex.")
    peer_urls: list[str] = Field(default_factory=list, alias="peerURLs", description="The member's peer URLs.")
    client_urls: list[str] = Field(default_factory=list, alias="clientURLs", description="The member's client URLs.")
    is_learner: bool = Field(False, description="true while the member is a learner (not yet voting).")
    healthy: bool = Field(False, description="true when the member answered its status request without error.")
    version: str | None = Field(None, description="The etcd version this member runs.")


class MaintenanceRecord(ApiModel):
    compacted_revision: int | None = Field(None, description="The revision the operator last compacted to.")
    last_step: str | None = Field(None, description="The last maintenance step taken, e.g. Defragment main-1.")
    last_step_time: str | None = Field(None, description="When it was taken.")


class BackupScheduleStatus(ApiModel):
    last_schedule_time: str | None = Field(None, description="The scheduled time of the last backup created.")
    last_successful_backup: str | None = Field(None, description="The newest Completed scheduled EtcdBackup.")
    last_successful_time: str | None = Field(None, description="When that backup completed.")
    next_schedule_time: str | None = Field(None, description="The next scheduled time (none while suspended).")


class CertificateStatus(ApiModel):
    secret: str = Field(description="The Secret holding the certificate(s).")
    kind: str = Field(description="ca: the Secret's CA, the one that signs; next-ca and previous-ca: the other "
                      "CA trusted during a rollover; leaf: the earliest-ending certificate in the Secret.")  # fmt: skip
    not_after: str = Field(description="When it ends (RFC 3339); leaves are renewed tls.certificates.renewBefore "
                           "earlier.")  # fmt: skip
    generation: int | None = Field(None, description="A CA's generation: 1 for the first, +1 per rollover.")


class AccessStatus(ApiModel):
    enabled: bool = Field(description="etcd auth is on (some user of tls.clients has access).")
    auth_revision: int | None = Field(
        None, description="etcd's auth revision at which its users and roles last matched tls.clients; while it "
        "and the spec stay the same, a pass checks only the revision. Absent while changes are being made."
    )  # fmt: skip
    spec_hash: str | None = Field(
        None, description="A digest of the tls.clients access that revision matched, and etcd's cluster ID (a "
        "snapshot restored in place brings its own users and roles)."
    )  # fmt: skip


class RestoreRecord(ApiModel):
    request_id: str = Field(alias="requestID", description="The spec.restore.requestID carried out.")
    source: str = Field(description="What was restored, e.g. EtcdBackup nightly (s3://..., revision 4242).")
    revision: int | None = Field(None, description="The snapshot's revision (before bumpRevision).")
    cluster_id: str | None = Field(None, alias="clusterID", description="The new cluster's ID, in hex.")
    completion_time: str = Field(description="When every member was a healthy voter of the restored cluster.")


class RecoveryRecord(ApiModel):
    request_id: str = Field(alias="requestID", description="The spec.recovery.requestID carried out.")
    member: str = Field(description="The member the cluster was recovered from.")
    raft_index: int | None = Field(None, alias="raftIndex", description="Its raft index when it was chosen.")
    completion_time: str = Field(description="When it answered as the healthy one-member cluster the others rejoin.")


class EtcdClusterStatus(ApiModel):
    model_config = ConfigDict(extra="ignore")  # tolerate fields written by newer operator versions

    phase: str | None = Field(
        None, description="Bootstrapping, Running, Degraded, Unavailable, Failed, Hibernated, Restoring or Recovering, from the "
        "conditions."
    )
    observed_generation: int | None = Field(
        None, description="The metadata.generation the operator last acted on; written last."
    )
    ready_replicas: int | None = Field(None, description="Member pods that are Ready.")
    initial_members: int | None = Field(None, description="Members the cluster was bootstrapped with.")
    members: list[MemberStatus] | None = Field(
        None, description="etcd's member list (the last one observed while hibernated)."
    )
    leader: str | None = Field(None, description="The name of the member that leads the Raft group.")
    cluster_id: str | None = Field(None, alias="clusterID", description="etcd's cluster ID, in hex.")
    version: str | None = Field(
        None, description="etcd's cluster version: it moves only when every member runs the new one."
    )
    conditions: list[Condition] | None = Field(
        None, description="Available, Progressing and Degraded; AccessApplied while the operator manages etcd auth "
        "(tls.clients[].access)."
    )  # fmt: skip
    backup: BackupScheduleStatus | None = Field(None, description="Scheduled backups (spec.backup).")
    maintenance: MaintenanceRecord | None = Field(None, description="Database upkeep the operator did.")
    certificates: list[CertificateStatus] | None = Field(
        None, description="The certificates the operator issued (selfSigned TLS) and when each ends."
    )
    restored_from: str | None = Field(
        None, description="With bootstrap.restore: the snapshot the cluster started from, once every initial "
        "member has started from it."
    )  # fmt: skip
    restore: RestoreRecord | None = Field(
        None, description="The last in-place restore (spec.restore) carried out, once every member is a healthy "
        "voter of the restored cluster."
    )  # fmt: skip
    recovery: RecoveryRecord | None = Field(
        None, description="The last quorum recovery (spec.recovery) carried out, once the surviving member "
        "answered as a one-member cluster."
    )  # fmt: skip
    access: AccessStatus | None = Field(
        None, description="etcd auth as the operator manages it for tls.clients[].access; absent when it manages "
        "none (never turned on, or turned off and its users and roles deleted)."
    )  # fmt: skip


class EtcdCluster(ApiModel):
    """Used to validate a whole object in the operator; the CRD schema covers spec and status."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "etcd.operator.dev/v1alpha1"
    kind: str = "EtcdCluster"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: EtcdClusterSpec = Field(default_factory=EtcdClusterSpec)
    status: EtcdClusterStatus | None = None


Bootstrap.model_rebuild()  # its restore field names a type defined further down
