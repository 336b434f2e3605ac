"""The CRDs in crds/, generated from the pydantic models (one source of truth).

pydantic writes JSON Schema; a CustomResourceDefinition wants a structural OpenAPI v3.0 schema.
`structural()` bridges the two: references are inlined, `Optional[X]` becomes X (absent, not
null), `int | str` becomes int-or-string, numeric exclusive bounds take the OpenAPI 3.0 form,
lists of named objects become list-maps keyed by name (so the API server itself refuses
duplicate names), and dictionaries with a fixed set of keys get a CEL rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from vulcan_operator import GROUP, VERSION, kinds
from vulcan_operator.api.backup import VulcanBackup, VulcanRestore
from vulcan_operator.api.engine import VulcanEngine
from vulcan_operator.api.problem import SchedulingProblem

CATEGORY = "vulcan"


@dataclass(frozen=True)
class Kind:
    """A kind of ours (its row in `kinds`) and the model its schema is generated from."""

    model: type[BaseModel]
    table: kinds.Kind

    @property
    def kind(self) -> str:
        return self.table.kind

    @property
    def plural(self) -> str:
        return self.table.plural

    @property
    def short(self) -> str:
        return self.table.short

    @property
    def columns(self) -> tuple[kinds.Column, ...]:
        return self.table.columns

    @property
    def crd_name(self) -> str:
        return self.table.crd_name


KINDS = (
    Kind(VulcanEngine, kinds.ENGINE),
    Kind(SchedulingProblem, kinds.PROBLEM),
    Kind(VulcanBackup, kinds.BACKUP),
    Kind(VulcanRestore, kinds.RESTORE),
)


class _Schema(GenerateJsonSchema):
    """JSON Schema that also shows the defaults made by default factories."""

    def default_schema(self, schema: Any) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {k: v for k, v in schema.items() if k != "default_factory"}
            schema["default"] = factory()
        return super().default_schema(schema)


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """One pydantic JSON Schema node as a structural OpenAPI v3.0 schema node."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return structural({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        types = sorted(b.get("type", "") for b in branches)
        if types == ["integer", "string"]:
            node = {**rest, "x-kubernetes-int-or-string": True}
        elif len(branches) == 1:
            # The branch describes the type; the field's own description wins.
            node = {**branches[0], **rest}
            return structural(node, defs)
        else:
            raise ValueError(f"cannot express anyOf {node['anyOf']} structurally")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            # false: the API server refuses unknown fields itself; true: preserve them.
            if value:
                out["x-kubernetes-preserve-unknown-fields"] = True
            continue
        if key == "default":
            if value is not None:
                out["default"] = _strip_none(value)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        elif key == "propertyNames":
            allowed = ", ".join(f"'{k}'" for k in value["enum"])
            # A bound keeps the API server's CEL cost estimate of the rule small.
            out.setdefault("maxProperties", len(value["enum"]))
            rules = out.setdefault("x-kubernetes-validations", [])
            rules.append(
                {"rule": f"self.all(k, k in [{allowed}])", "message": f"keys must be {allowed}"}
            )
        elif key == "properties":
            out[key] = {name: structural(v, defs) for name, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = structural(value, defs)
        elif key == "x-kubernetes-validations":
            out.setdefault(key, []).extend(value)
        else:
            out[key] = value
    items = out.get("items")
    if (
        out.get("type") == "array"
        and isinstance(items, dict)
        and "name" in items.get("required", [])
        and "x-kubernetes-list-type" not in out
    ):
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = ["name"]
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The openAPIV3Schema of a kind: spec and status from the model, the envelope fixed."""
    raw = model.model_json_schema(schema_generator=_Schema)
    defs = raw.get("$defs", {})
    props = raw["properties"]
    # Rules of the whole object (transition rules reading the status, e.g. the engine's).
    rules = raw.get("x-kubernetes-validations")
    return {
        "type": "object",
        "description": model.__doc__ or "",
        **({"x-kubernetes-validations": rules} if rules else {}),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object", "description": "Standard object metadata."},
            "spec": structural(props["spec"], defs),
            "status": structural(props["status"], defs),
        },
    }


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {"app.kubernetes.io/part-of": "vulcan-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": [kind.short],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema(kind.model)},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes a node shared by two schema places twice, not as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_all() -> dict[str, str]:
    """File name → YAML text of every CRD."""
    return {
        f"{kind.crd_name}.yaml": "# Generated by `vulcan-operator crds`; do not edit.\n"
        + yaml.dump(crd(kind), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
        for kind in KINDS
    }


def write(output_dir: Path) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = output_dir / name
        path.write_text(text)
        written.append(path)
    return written
