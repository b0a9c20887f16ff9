"""Generate the EtcdCluster CRD from the pydantic models: `python -m etcd_operator.crd --write`.

Kubernetes wants a *structural* OpenAPI schema: no $ref, no anyOf-with-null, no
titles, no `additionalProperties: false`. This module turns pydantic's JSON
Schema into that shape, so the models stay the single source of truth and a
test fails when the checked-in YAML drifts from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from . import GROUP, KIND, PLURAL, VERSION
from .models.cluster import EtcdClusterSpec, EtcdClusterStatus

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = (ROOT / "crds" / f"{PLURAL}.yaml", ROOT / "charts" / "etcd-operator" / "crds" / f"{PLURAL}.yaml")


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model schema with every $ref inlined and JSON-Schema-only keys dropped."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = walk(defs[node["$ref"].split("/")[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**target, **extra})
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o != {"type": "null"}]
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if len(options) == 1:
                return walk({**options[0], **rest})
        if "patternProperties" in node:
            # Kubernetes has no patternProperties: keep the value schema; key rules go in CEL.
            (value_schema,) = node["patternProperties"].values()
            node = {k: v for k, v in node.items() if k != "patternProperties"} | {"additionalProperties": value_schema}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs", "propertyNames"):
                continue
            if key == "additionalProperties" and isinstance(value, bool):
                continue  # false is implied by a structural schema; true is preserve-unknown-fields
            if key == "default" and value is None:
                continue
            if key == "properties":
                out[key] = {name: walk(prop) for name, prop in value.items()}
            else:
                out[key] = walk(value)
        return out

    return walk(schema)


def crd() -> dict[str, Any]:
    spec = structural(EtcdClusterSpec.model_json_schema(by_alias=True))
    status = structural(EtcdClusterStatus.model_json_schema(by_alias=True))
    spec.setdefault("description", "Desired state of an etcd cluster.")
    status["description"] = "Observed state, written by the operator."
    columns = [
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Leader", "type": "string", "jsonPath": ".status.leader"},
        {"name": "Available", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Available")].status'},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["etcd", "etcdc"],
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "An etcd cluster run by etcd-operator.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {**spec, "default": {}},
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated from operator/etcd_operator/models by `make crds`; do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write crds/ and the chart's copy")
    args = parser.parse_args(argv)
    text = render()
    if not args.write:
        sys.stdout.write(text)
        return 0
    for path in OUTPUTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
