from pathlib import Path

import pytest
import yaml

from etcd_node import etcd_flags
from etcd_node.flags import AGENT_FLAGS
from etcd_operator import crd
from etcd_operator.models import etcd_args
from etcd_operator.models.cluster import CLUSTER_ROOT_VALIDATIONS, MAX_NAME_LENGTH, REVISION_HASH_LENGTH
from etcd_operator.resources.naming import ClusterNames

ROOT = Path(__file__).resolve().parents[3]


def test_checked_in_crds_match_the_models():
    for resource in crd.RESOURCES:
        expected = crd.render(resource)
        for path in resource.outputs:
            assert path.read_text() == expected, f"{path.relative_to(ROOT)} drifted from the models: run `make crds`"


def walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource):
    schema = crd.definition(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        for forbidden in ("$ref", "$defs", "anyOf", "title", "propertyNames", "patternProperties"):
            assert forbidden not in node or path.endswith(".properties"), f"{forbidden} at {path}"
        assert node.get("additionalProperties") is not False, path
        if "properties" in node and not path.endswith(".properties"):
            assert node.get("type") == "object", path


def test_defaults_and_rules_are_where_intended():
    spec = crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["replicas"] == {**props["replicas"], "default": 3, "minimum": 1, "maximum": 9}
    # Nested objects carry their full default: the API server checks CEL rules against defaults as written.
    assert props["bootstrap"]["default"] == {"mode": "static"}
    assert props["bootstrap"]["properties"]["mode"]["default"] == "static"
    assert props["tls"]["default"] == {"peer": {"mode": "selfSigned"}, "client": {"mode": "selfSigned"}, "memberKeys": "secret",
                                       "certificates": {"validity": "8760h", "renewBefore": "720h"}}
    assert props["tls"]["properties"]["peer"]["properties"]["mode"]["enum"] == ["selfSigned", "auto", "secret", "none"]
    messages = [rule.get("message") or rule["messageExpression"] for rule in spec["x-kubernetes-validations"]]
    assert any("bootstrap.mode cannot change" in m for m in messages)
    # Pod fields passed through to the StatefulSet are Kubernetes' own types, not preserve-unknown-fields.
    pod = props["pod"]["properties"]
    assert set(pod["affinity"]["properties"]) == {"nodeAffinity", "podAffinity", "podAntiAffinity"}
    assert pod["tolerations"]["items"]["properties"]["effect"]["enum"] == ["NoExecute", "NoSchedule", "PreferNoSchedule"]
    assert not [path for path, node in walk(spec) if "x-kubernetes-preserve-unknown-fields" in node]
    assert "image" not in props  # the node image is the operator's to choose


def test_rendered_yaml_round_trips():
    assert yaml.safe_load(crd.render()) == crd.crd()


def test_the_longest_name_admission_allows_fits_every_derived_object():
    """MAX_NAME_LENGTH is the tightest of the 63-character limits on what the operator and Kubernetes derive."""
    limits = []
    for length in (MAX_NAME_LENGTH, MAX_NAME_LENGTH + 1):
        names = ClusterNames("a" * length, "n" * 63)
        limits.append(
            all(len(label) <= 63 for label in (
                names.client_service,  # a Service name is a DNS label
                names.peer_service,
                names.pod(8),  # a pod's hostname, and its statefulset.kubernetes.io/pod-name label
                f"{names.statefulset}-{'h' * REVISION_HASH_LENGTH}",  # the controller-revision-hash label
            ))
            and all(len(n) <= 253 for n in (names.peer_tls_secret, names.server_tls_secret, names.client_tls_secret,
                                            names.peer_ca_secret, names.client_ca_secret, names.pod_fqdn(8)))
        )  # fmt: skip
    assert limits == [True, False]
    assert any(str(MAX_NAME_LENGTH) in rule["rule"] for rule in CLUSTER_ROOT_VALIDATIONS)


def test_the_extra_args_allowlist_matches_the_agents_view_of_etcds_flags():
    """Every tunable flag is one etcd has; its value is a bool exactly when the agent parses it as one."""
    for name, tunable in etcd_args.TUNABLE.items():
        assert name in etcd_flags.KNOWN_FLAGS, name
        assert (tunable.kind == "bool") == (name in etcd_flags.BOOL_FLAGS), name
    refused = set(etcd_args.OWNED_FLAGS) | set(etcd_args.DATA_LOSS_FLAGS) | set(etcd_args.TYPED_FIELDS)
    refused |= set(etcd_args.AGENT_ONLY_FLAGS)
    assert not refused & set(etcd_args.TUNABLE)
    assert refused >= AGENT_FLAGS
    assert not [n for n in etcd_args.TUNABLE if n.startswith(etcd_args.OWNED_PREFIXES + etcd_args.AGENT_PREFIXES)]
    # What the operator itself sets never comes from extraArgs.
    for flag in ("listen-metrics-urls", "initial-cluster-token", "data-dir", "config-file", "enable-grpc-gateway"):
        assert flag in etcd_args.OWNED_FLAGS
