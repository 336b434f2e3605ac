"""A resource body as a typed model, or the lines that say what is wrong with it."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vulcan_operator.solver.problem import error_lines, field_path

M = TypeVar("M", bound=BaseModel)


def parse(body: dict[str, Any], model: type[M]) -> M | list[str]:
    """`body` (as the API server holds it) as `model`, or one line per problem of its spec.

    Only what the user wrote is checked: the envelope, name and namespace, and the spec; the
    status and the server's metadata are the operator's and the server's. Strict, as
    `vulcan-operator validate` and the admission webhook are (`checks.parse`): a quoted number
    is refused, never coerced, so the three agree on every document."""
    doc = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    doc["metadata"] = {
        k: v for k, v in (body.get("metadata") or {}).items() if k in ("name", "namespace")
    }
    try:
        return model.model_validate(doc, strict=True)
    except ValidationError as exc:
        return describe(exc, model)


def describe(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """`error_lines`, with the allowed field names added to each unknown-field error."""
    lines = []
    for err in exc.errors(include_url=False):
        if "[key]" in err["loc"]:
            # A dict key that is not allowed: pydantic's loc ends '<key>', '[key]'.
            loc = tuple(p for p in err["loc"] if p != "[key]")
            err = {**err, "loc": loc[:-1], "msg": f"key '{loc[-1]}' not allowed: {err['msg']}"}
        if err["type"] == "extra_forbidden":
            allowed = allowed_fields(model, tuple(err["loc"])[:-1])
            lines.append(f"{field_path(err['loc'])}: unknown field; allowed: {', '.join(allowed)}")
        else:
            lines.extend(error_lines([err]))
    return lines


def allowed_fields(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the object at `loc` in `model` ([] when there is none)."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> dict[str, Any]:
        while isinstance(node, dict):
            if "$ref" in node:
                node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1])
            elif "anyOf" in node:  # Optional[X]: the X
                node = next((n for n in node["anyOf"] if n.get("type") != "null"), None)
            else:
                return node
        return {}

    node = resolve(schema)
    for part in loc:
        if isinstance(part, int):
            node = resolve(node.get("items"))
        else:
            node = resolve(node.get("properties", {}).get(part) or node.get("additionalProperties"))
    return sorted(node.get("properties", {}))
