"""Strict validation of rendered Kubernetes manifests, for tests.

    from tests.support.manifests import validate_manifest, validate_manifests

    validate_manifest(deployment)            # raises AssertionError naming Kind/name and the error
    validate_manifests(rendered_objects)     # every object; one AssertionError listing all failures

Built-in kinds are checked with kubernetes-validate in strict mode (unknown fields, wrong types,
missing required fields, removed API versions) against :data:`KUBERNETES_VERSION`.

Custom resources (kubernetes-validate raises ``SchemaNotFoundError`` for them) are checked with
``jsonschema`` against, in this order:

1. the ``openAPIV3Schema`` of a served version of a CRD in the repository's ``crds/*.yaml``
   (our own ``vulcan-engine.com`` kinds; read lazily and re-read when the files change);
2. a bundled schema ``tests/data/schemas/<group>_<version>_<kind lowercased>.json`` (the
   ``monitoring.coreos.com`` ServiceMonitor and PrometheusRule subsets we use).

A CR schema is read the way an API server with strict field validation reads a structural
schema: an object schema rejects fields it does not list unless it says
``x-kubernetes-preserve-unknown-fields: true`` or has ``additionalProperties``;
``x-kubernetes-int-or-string`` accepts an integer or a string; ``nullable`` accepts null;
``x-kubernetes-list-type`` ``set``/``map`` rejects duplicates; a field with a ``default`` is not
required (the server fills it in); ``metadata`` is checked against the strict ``ObjectMeta`` of
the pinned Kubernetes version. ``x-kubernetes-validations`` (CEL rules) are NOT evaluated here.

Every object must also carry ``metadata.name`` (or ``generateName``), as applying it needs one.
Not caught (kubernetes-validate limits): bad enum values in built-in kinds, cross-field rules
such as a PodDisruptionBudget with both ``minAvailable`` and ``maxUnavailable``.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import VersionNotSupportedError
from referencing import Registry, Resource

# kubernetes-validate re-reads its JSON schemas (5 MB of definitions) on every call; they are
# static files, so read each once per test session (about 10x faster over many manifests).
if not hasattr(kubernetes_validate.utils.schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = functools.cache(
        kubernetes_validate.utils.schema_contents
    )

# The Kubernetes version every manifest is validated against (kubernetes-validate bundles
# schemas for 1.25 to 1.37; `kubernetes_validate.utils.all_versions()` lists them).
KUBERNETES_VERSION = "1.31.0"

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent
CRD_DIR = REPO_ROOT / "crds"
SCHEMA_DIR = TESTS_DIR / "data" / "schemas"

_K8S_DEFS_URI = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_MAX_ERRORS_PER_OBJECT = 10

Manifest = Mapping[str, Any]


# -- public API ------------------------------------------------------------------------------
def validate_manifest(obj: Manifest, *, crd_dir: Path | None = None) -> None:
    """Raise ``AssertionError`` naming the object and the error(s) if ``obj`` is invalid."""
    errors = manifest_errors(obj, crd_dir=crd_dir)
    if errors:
        raise AssertionError("\n".join(errors))


def validate_manifests(
    objs: Iterable[Manifest], *, crd_dir: Path | None = None, allow_empty: bool = False
) -> None:
    """Validate every object; one ``AssertionError`` lists every invalid one.

    An empty input fails too (a renderer that produced nothing is a bug) unless ``allow_empty``.
    """
    errors: list[str] = []
    count = 0
    for obj in objs:
        count += 1
        errors.extend(manifest_errors(obj, crd_dir=crd_dir))
    if count == 0 and not allow_empty:
        raise AssertionError("validate_manifests: no manifests to validate")
    if errors:
        raise AssertionError(
            f"{len(errors)} manifest error(s) in {count} object(s):\n" + "\n".join(errors)
        )


def manifest_errors(obj: Manifest, *, crd_dir: Path | None = None) -> list[str]:
    """The problems found in one object, each line prefixed with ``Kind/name (apiVersion)``."""
    try:
        doc = _as_plain_json(obj)
    except (TypeError, ValueError) as exc:
        return [f"{describe(obj)}: not JSON-serializable, so not a manifest: {exc}"]
    label = describe(doc)
    header = _header_errors(doc)
    if header:
        return [f"{label}: {msg}" for msg in header]

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [
            f"{label}: {_where(exc.path)}: {_short(exc.message)} "
            f"(Kubernetes {KUBERNETES_VERSION}, strict)"
        ]
    except kubernetes_validate.SchemaNotFoundError:
        return _custom_resource_errors(doc, label, crd_dir or CRD_DIR)
    except (VersionNotSupportedError, kubernetes_validate.InvalidSchemaError) as exc:
        return [f"{label}: kubernetes-validate cannot check it: {exc.message}"]
    return []


def describe(obj: Any) -> str:
    """``Kind/name (apiVersion)`` of an object, as far as it has them."""
    if not isinstance(obj, Mapping):
        return f"<not a mapping: {type(obj).__name__}>"
    meta = obj.get("metadata")
    name = None
    if isinstance(meta, Mapping):
        name = meta.get("name") or meta.get("generateName")
    return f"{obj.get('kind', '<no kind>')}/{name or '<no name>'} ({obj.get('apiVersion')})"


def custom_resource_schema(
    api_version: str, kind: str, *, crd_dir: Path | None = None
) -> tuple[dict[str, Any], str] | None:
    """The prepared (strict, draft-4) schema for a custom kind and where it came from, or None."""
    found = _find_custom(api_version, kind, crd_dir or CRD_DIR)
    return None if found is None else (found.schema, found.source)


class _CustomSchema(NamedTuple):
    schema: dict[str, Any]
    source: str
    validator: Any


def _find_custom(api_version: str, kind: str, crd_dir: Path) -> _CustomSchema | None:
    group, _, version = api_version.rpartition("/")
    found = _crd_schemas(crd_dir, _dir_fingerprint(crd_dir)).get((group, version, kind))
    if found is not None:
        return found
    return _bundled_schema(group, version, kind)


# -- header checks ---------------------------------------------------------------------------
def _as_plain_json(obj: Manifest) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a mapping, got {type(obj).__name__}")
    return json.loads(json.dumps(obj, allow_nan=False))  # type: ignore[no-any-return]


def _header_errors(doc: dict[str, Any]) -> list[str]:
    errors = []
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            errors.append(f"{key}: missing or not a non-empty string")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        errors.append("metadata: missing or not an object")
    elif not (meta.get("name") or meta.get("generateName")):
        errors.append("metadata.name: missing (and no generateName)")
    return errors


def _short(message: str, limit: int = 400) -> str:
    return message if len(message) <= limit else message[: limit - 5] + " ..."


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


# -- custom resources ------------------------------------------------------------------------
def _custom_resource_errors(doc: dict[str, Any], label: str, crd_dir: Path) -> list[str]:
    found = _find_custom(doc["apiVersion"], doc["kind"], crd_dir)
    if found is None:
        group = doc["apiVersion"].rpartition("/")[0] or "core"
        return [
            f"{label}: no schema for kind {doc['kind']!r} in apiVersion {doc['apiVersion']!r}: "
            f"kubernetes-validate has none for Kubernetes {KUBERNETES_VERSION} (a typo, a "
            f"removed API version, or a custom resource), no served CRD version in "
            f"{crd_dir} defines it, and there is no bundled "
            f"{SCHEMA_DIR / _bundled_name(group, doc['apiVersion'], doc['kind'])}"
        ]
    errors = sorted(
        found.validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]
    )
    messages = [
        f"{label}: {_where(e.absolute_path)}: {_short(e.message)} (schema: {found.source})"
        for e in errors
    ]
    meta_errors = sorted(
        _object_meta_validator().iter_errors(doc["metadata"]),
        key=lambda e: [str(p) for p in e.path],
    )
    messages += [
        f"{label}: {_where(['metadata', *e.absolute_path])}: {_short(e.message)} "
        f"(ObjectMeta, Kubernetes {KUBERNETES_VERSION}, strict)"
        for e in meta_errors
    ]
    if len(messages) > _MAX_ERRORS_PER_OBJECT:
        extra = len(messages) - _MAX_ERRORS_PER_OBJECT
        messages = [*messages[:_MAX_ERRORS_PER_OBJECT], f"{label}: ... and {extra} more"]
    return messages


def _dir_fingerprint(crd_dir: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted(crd_dir.glob("*.yaml")) + sorted(crd_dir.glob("*.yml"))
    out = []
    for path in files:
        stat = path.stat()
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _crd_schemas(
    crd_dir: Path, fingerprint: tuple[tuple[str, int, int], ...]
) -> dict[tuple[str, str, str], _CustomSchema]:
    """(group, version, kind) -> prepared schema for every served CRD version in crd_dir."""
    found: dict[tuple[str, str, str], _CustomSchema] = {}
    for file_name, _, _ in fingerprint:
        path = Path(file_name)
        with path.open() as handle:
            docs = [d for d in yaml.safe_load_all(handle) if d]
        for doc in docs:
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc.get("spec", {})
            group, kind = spec.get("group", ""), spec.get("names", {}).get("kind", "")
            for version in spec.get("versions", []):
                raw = (version.get("schema") or {}).get("openAPIV3Schema")
                if not version.get("served", True) or raw is None:
                    continue
                found[(group, version["name"], kind)] = _custom(
                    raw, f"{group}/{version['name']}", kind, f"CRD {_show(path)}"
                )
    return found


def _bundled_name(group: str, api_version: str, kind: str) -> str:
    return f"{group}_{api_version.rpartition('/')[2]}_{kind.lower()}.json"


@functools.lru_cache(maxsize=32)
def _bundled_schema(group: str, version: str, kind: str) -> _CustomSchema | None:
    path = SCHEMA_DIR / _bundled_name(group, f"{group}/{version}", kind)
    if not group or not path.is_file():
        return None
    return _custom(json.loads(path.read_text()), f"{group}/{version}", kind, _show(path))


def _show(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _custom(raw: dict[str, Any], api_version: str, kind: str, source: str) -> _CustomSchema:
    schema = _prepare_cr_schema(raw, api_version, kind)
    return _CustomSchema(schema, source, _CRValidatorClass(schema))


def _prepare_cr_schema(raw: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """Turn a structural CR schema into a draft-4 JSON schema with API-server strictness."""
    schema = _structural(copy.deepcopy(raw))
    schema.pop("$schema", None)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    props["kind"] = {"type": "string", "enum": [kind]}
    props["metadata"] = {"type": "object"}  # checked against the strict ObjectMeta separately
    schema["type"] = "object"
    schema["additionalProperties"] = False
    required = set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"}
    schema["required"] = sorted(required)
    jsonschema.Draft4Validator.check_schema(schema)
    return schema


def _structural(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string") and "type" not in node and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    props = node.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            props[key] = _structural(sub)
        defaulted = {
            key for key, sub in props.items() if isinstance(sub, dict) and "default" in sub
        }
        if "required" in node:
            node["required"] = [r for r in node["required"] if r not in defaulted]
            if not node["required"]:
                del node["required"]
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _structural(node[key])
    is_object = node.get("type") == "object" or (
        isinstance(node.get("type"), list) and "object" in node["type"]
    )
    if (
        is_object
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        if node.get("x-kubernetes-embedded-resource"):
            extra = node.setdefault("properties", {})
            extra.setdefault("apiVersion", {"type": "string"})
            extra.setdefault("kind", {"type": "string"})
            extra.setdefault("metadata", {"type": "object"})
        node["additionalProperties"] = False
    return node


def _list_type(
    validator: Any, list_type: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "array") or list_type not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", []) if list_type == "map" else []
    seen: set[str] = set()
    for item in instance:
        if list_type == "map" and isinstance(item, dict):
            ident = json.dumps([item.get(k) for k in keys])
        else:
            ident = json.dumps(item, sort_keys=True)
        if ident in seen:
            what = f"key {dict(zip(keys, json.loads(ident), strict=True))}" if keys else ident
            yield jsonschema.ValidationError(
                f"duplicate entry with {what} in a list-type {list_type}"
            )
        seen.add(ident)


_CRValidatorClass = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"x-kubernetes-list-type": _list_type}
)


@functools.lru_cache(maxsize=1)
def _object_meta_validator() -> jsonschema.Draft202012Validator:
    """Strict ObjectMeta of the pinned version, from kubernetes-validate's bundled schemas."""
    ref = resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/_definitions.json"
    )
    definitions = json.loads(ref.read_text())
    registry: Registry = Registry().with_resource(
        _K8S_DEFS_URI, Resource.from_contents(definitions)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"{_K8S_DEFS_URI}#/$defs/{_OBJECT_META}"}, registry=registry
    )


# --- a tiny kustomize -------------------------------------------------------------------------
def kustomize(root: Path) -> list[dict[str, Any]]:
    """The objects of the kustomization in `root` (resources: files and directories only)."""
    root = root.resolve()
    spec = yaml.safe_load((root / "kustomization.yaml").read_text())
    unsupported = set(spec) - {"apiVersion", "kind", "resources"}
    assert not unsupported, f"{root}: keep kustomizations to plain resources, not {unsupported}"
    assert spec.get("kind", "Kustomization") == "Kustomization"
    objs: list[dict[str, Any]] = []
    for entry in spec["resources"]:
        path = (root / entry).resolve()
        if path.is_dir():
            objs += kustomize(path)
            continue
        # kustomize's default load restrictor: a file must be inside the kustomization root.
        assert path.is_relative_to(root), f"{root}: {entry} is outside the kustomization root"
        assert path.is_file(), f"{root}: {entry} does not exist"
        objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objs
