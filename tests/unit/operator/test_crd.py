from pathlib import Path

import pytest
import yaml

from etcd_operator import crd

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
    assert props["tls"]["default"] == {"peer": {"mode": "selfSigned"}, "client": {"mode": "selfSigned"}}
    assert props["tls"]["properties"]["peer"]["properties"]["mode"]["enum"] == ["selfSigned", "auto", "secret", "none"]
    messages = [rule["message"] for rule in spec["x-kubernetes-validations"]]
    assert any("bootstrap.mode cannot change" in m for m in messages)
    assert props["pod"]["properties"]["affinity"]["x-kubernetes-preserve-unknown-fields"] is True


def test_rendered_yaml_round_trips():
    assert yaml.safe_load(crd.render()) == crd.crd()
