"""What the API server does with a custom resource's `openAPIV3Schema` on every write.

1. Pruning: fields the schema does not declare are dropped silently (unless
   `x-kubernetes-preserve-unknown-fields`), so is `null` in a non-nullable field. An operator
   writing an undeclared status field loses it on a real cluster, and here too.
2. Defaulting: `default:` values fill absent fields.
3. Validation: types, enums, bounds, patterns, required fields (via `jsonschema`, draft 4, which
   OpenAPI v3.0 schemas follow). CEL rules (`x-kubernetes-validations`) and `format` are NOT
   checked.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema  # type: ignore[import-untyped]

Schema = dict[str, Any]
ROOT_KEEP = {"apiVersion", "kind", "metadata"}


class CrdSchema:
    def __init__(self, openapi: Schema) -> None:
        self.openapi = openapi
        self.validator = jsonschema.Draft4Validator(_to_jsonschema(openapi))

    def admit(self, obj: dict[str, Any]) -> list[str]:
        """Prune and default `obj` in place; the validation errors (empty when valid)."""
        _walk(obj, self.openapi, root=True)
        return [
            f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in self.validator.iter_errors(obj)
        ]


def _walk(value: Any, schema: Schema, root: bool = False) -> None:
    if isinstance(value, dict):
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            if sub is None:
                if not (keep_unknown or ((root or embedded) and key in ROOT_KEEP)):
                    del value[key]
            elif value[key] is None and not sub.get("nullable"):
                del value[key]
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = props.get(key) if key in props else extra if isinstance(extra, dict) else None
            if sub is not None and not (root and key == "metadata"):
                _walk(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _walk(item, schema["items"])


def _to_jsonschema(schema: Any) -> Any:
    """OpenAPI v3.0 flavour -> JSON Schema draft 4: `nullable`, int-or-string, no extensions."""
    if isinstance(schema, list):
        return [_to_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        k: _to_jsonschema(v)
        for k, v in schema.items()
        if not k.startswith("x-kubernetes-") and k not in {"nullable", "format"}
    }
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
    if "properties" in result:  # property names are not schema keywords: keep them all
        result["properties"] = {k: _to_jsonschema(v) for k, v in schema["properties"].items()}
    return result
