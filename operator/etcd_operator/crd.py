"""Generate the CRDs (EtcdCluster and the resources beside it) from the pydantic models: `python -m etcd_operator.crd --write`.

Kubernetes wants a *structural* OpenAPI schema: no $ref, no anyOf-with-null, no
titles, no `additionalProperties: false`. This module turns pydantic's JSON
Schema into that shape, so the models stay the single source of truth and a
test fails when the checked-in YAML drifts from them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import GROUP, KIND, PLURAL, VERSION
from .models.backup import BACKUP_KIND, BACKUP_PLURAL, EtcdBackupSpec, EtcdBackupStatus
from .models.backup import ROOT_VALIDATIONS as BACKUP_ROOT_VALIDATIONS
from .models.cluster import CLUSTER_ROOT_VALIDATIONS, EtcdClusterSpec, EtcdClusterStatus

ROOT = Path(__file__).resolve().parents[2]


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


@dataclass(frozen=True)
class Resource:
    """One custom resource the operator serves: its names, models and printer columns."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    columns: tuple[dict[str, Any], ...]
    # CEL rules on the whole object (they may read metadata.name), e.g. name lengths.
    root_validations: tuple[dict[str, Any], ...] = ()
    # An empty spec is a valid one (every field has a default); otherwise spec is required.
    spec_defaults: bool = True

    @property
    def outputs(self) -> tuple[Path, ...]:
        return (ROOT / "crds" / f"{self.plural}.yaml", ROOT / "charts" / "etcd-operator" / "crds" / f"{self.plural}.yaml")


CLUSTER = Resource(
    kind=KIND,
    plural=PLURAL,
    short_names=("etcd", "etcdc"),
    description="An etcd cluster run by etcd-operator.",
    spec_model=EtcdClusterSpec,
    status_model=EtcdClusterStatus,
    columns=(
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Leader", "type": "string", "jsonPath": ".status.leader"},
        {"name": "Available", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Available")].status'},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
    root_validations=tuple(CLUSTER_ROOT_VALIDATIONS),
)
BACKUP = Resource(
    kind=BACKUP_KIND,
    plural=BACKUP_PLURAL,
    short_names=("etcdbackup", "etcdb"),
    description="One snapshot of an EtcdCluster, taken once by a Job into an S3 bucket or a volume.",
    spec_model=EtcdBackupSpec,
    status_model=EtcdBackupStatus,
    columns=(
        {"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Revision", "type": "integer", "jsonPath": ".status.revision"},
        {"name": "Size", "type": "integer", "jsonPath": ".status.sizeBytes"},
        {"name": "Location", "type": "string", "jsonPath": ".status.location", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
    root_validations=tuple(BACKUP_ROOT_VALIDATIONS),
    spec_defaults=False,
)
RESOURCES: tuple[Resource, ...] = (CLUSTER, BACKUP)
OUTPUTS = CLUSTER.outputs


def definition(resource: Resource) -> dict[str, Any]:
    spec = structural(resource.spec_model.model_json_schema(by_alias=True))
    status = structural(resource.status_model.model_json_schema(by_alias=True))
    spec.setdefault("description", "Desired state, written by the user.")
    status["description"] = "Observed state, written by the operator."
    root: dict[str, Any] = {
        "type": "object",
        "description": resource.description,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {**spec, "default": {}} if resource.spec_defaults else spec,
            "status": status,
        },
    }
    if not resource.spec_defaults:
        root["required"] = ["spec"]
    if resource.root_validations:
        root["x-kubernetes-validations"] = list(resource.root_validations)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": list(resource.short_names),
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(resource.columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd() -> dict[str, Any]:
    """The EtcdCluster CRD."""
    return definition(CLUSTER)


def render(resource: Resource = CLUSTER) -> str:
    header = "# Generated from operator/etcd_operator/models by `make crds`; do not edit.\n"
    return header + yaml.safe_dump(definition(resource), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write crds/ and the chart's copy")
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write("---\n".join(render(resource) for resource in RESOURCES))
        return 0
    for resource in RESOURCES:
        text = render(resource)
        for path in resource.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
