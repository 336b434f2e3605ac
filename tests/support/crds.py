"""Our CRDs as the API server sees them, for tests: schema walking, OpenAPI to JSON Schema,
structural defaulting, and the CEL rules evaluated with cel-python as the server evaluates them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from lark import Tree

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
GROUP = "vulcan-engine.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KINDS = ("VulcanEngine", "SchedulingProblem", "VulcanBackup", "VulcanRestore")
PINNED_KUBERNETES = "1.30.0"  # the oldest version we support; the shared helper pins its own

CRD_FILES = sorted(CRD_DIR.glob("*.yaml"))


# -- helpers ---------------------------------------------------------------------------------
def load_crds() -> dict[str, dict[str, Any]]:
    """Kind → CRD, from the files in crds/."""
    out = {}
    for path in CRD_FILES:
        crd = yaml.safe_load(path.read_text())
        out[crd["spec"]["names"]["kind"]] = crd
    return out


CRDS = load_crds()


def root_schema(kind: str) -> dict[str, Any]:
    (version,) = CRDS[kind]["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def walk(
    node: dict[str, Any], path: str = "", arrays: tuple[dict[str, Any], ...] = ()
) -> Iterator[tuple[str, dict[str, Any], tuple[dict[str, Any], ...]]]:
    """(path, node, enclosing array nodes) for every schema node, depth first.

    Paths read like field paths: 'spec.jobs[].tasks[].name', 'spec.resources.requests{}'.
    """
    yield path, node, arrays
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name, arrays)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]", (*arrays, node))
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}", arrays)


def all_nodes() -> Iterator[tuple[str, str, dict[str, Any], tuple[dict[str, Any], ...]]]:
    for kind in CRDS:
        for path, node, arrays in walk(root_schema(kind)):
            yield kind, path, node, arrays


def to_jsonschema(node: Any, *, root: bool = False) -> Any:
    """An OpenAPI v3.0 structural schema node as a draft-4 JSON Schema that, like an API server
    with strict field validation, rejects unknown fields (draft 4 shares OpenAPI 3.0's boolean
    exclusiveMinimum/exclusiveMaximum, so those need no rewriting)."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        out.pop("nullable")
        out["type"] = [out["type"], "null"]
    if "properties" in node:
        out["properties"] = {k: to_jsonschema(v) for k, v in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out[key] = to_jsonschema(node[key])
    if (
        node.get("type") == "object"
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    if root:  # metadata is the API server's (ObjectMeta); the envelope fields are fixed
        out["properties"]["metadata"] = {"type": "object"}
    return out


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: a missing field with a default gets a
    copy of it, and defaulting goes on inside every value, defaulted ones included."""
    if isinstance(value, dict):
        props = node.get("properties")
        if props is not None:
            for name, sub in props.items():
                if name not in value and "default" in sub:
                    value[name] = copy.deepcopy(sub["default"])
                if name in value:
                    apply_defaults(value[name], sub)
        elif isinstance(node.get("additionalProperties"), dict):
            for item in value.values():
                apply_defaults(item, node["additionalProperties"])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            apply_defaults(item, node["items"])
    return value


def schema_errors(obj: dict[str, Any], kind: str, *, defaults: bool = True) -> list[str]:
    """Schema problems of one of our resources (CEL rules not included), defaults applied first."""
    schema = root_schema(kind)
    if defaults:
        obj = apply_defaults(copy.deepcopy(obj), schema)
    validator = jsonschema.Draft4Validator(to_jsonschema(schema, root=True))
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
    return errors + list_map_errors(obj, schema)


def list_map_errors(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Duplicate keys in x-kubernetes-list-type map/set lists (the API server refuses them)."""
    errors = []
    if isinstance(value, list):
        kind = node.get("x-kubernetes-list-type")
        keys = node.get("x-kubernetes-list-map-keys", [])
        seen = set()
        for item in value:
            ident = repr([item.get(k) for k in keys]) if kind == "map" else repr(item)
            if kind in ("map", "set") and ident in seen:
                errors.append(f"{path}: duplicate entry {ident} in a list-type {kind}")
            seen.add(ident)
        for i, item in enumerate(value):
            errors += list_map_errors(item, node.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                errors += list_map_errors(value[name], sub, f"{path}.{name}".lstrip("."))
    return errors


def our_documents(path: Path) -> list[dict[str, Any]]:
    return [
        d
        for d in yaml.safe_load_all(path.read_text())
        if isinstance(d, dict) and d.get("apiVersion") == API_VERSION and d.get("kind") in KINDS
    ]


def example_files() -> list[Path]:
    return sorted((REPO / "examples").glob("*.yaml")) + sorted(
        (REPO / "tests" / "data" / "valid").glob("*.yaml")
    )


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


EXAMPLES = [p for p in example_files() if p.parent.name != "examples" or our_documents(p)]


ENV = celpy.Environment()

RULES = [
    (kind, path, rule["rule"], rule.get("message", ""))
    for kind, path, node, _ in all_nodes()
    for rule in node.get("x-kubernetes-validations", [])
]
RULE_IDS = [f"{kind}:{path}:{rule}" for kind, path, rule, _ in RULES]


def node_at(kind: str, path: str) -> dict[str, Any]:
    """The schema node at `path` (`a.b[].c`: `[]` steps into a list's items)."""
    node = root_schema(kind)
    for part in path.split(".") if path else []:
        name, items = (part[:-2], True) if part.endswith("[]") else (part, False)
        node = node["properties"][name]
        if items:
            node = node["items"]
    return node


#: A value that is not there (no old object: a create; no old value at a node of an update).
ABSENT = object()


def is_transition(rule: str) -> bool:
    """A transition rule reads `oldSelf`: the API server runs it only on an update, and only
    where the node has an old value too."""
    return "oldSelf" in rule


def evaluate(rule: str, value: Any, old: Any = ABSENT) -> bool:
    program = ENV.program(ENV.compile(rule))
    scope = {"self": celpy.json_to_cel(value)}
    if old is not ABSENT:
        scope["oldSelf"] = celpy.json_to_cel(old)
    result = program.evaluate(scope)
    if isinstance(result, Exception):  # celpy returns CELEvalError values
        raise result
    return bool(result)


def rule_failures(value: Any, node: dict[str, Any], path: str = "", old: Any = ABSENT) -> list[str]:
    """Every rule in the schema subtree that `value` breaks, as the API server evaluates them
    (a rule runs only where its node has a value; a transition rule only where `old`, the
    value before an update, has one too)."""
    failures = []
    for rule in node.get("x-kubernetes-validations", []):
        if is_transition(rule["rule"]) and old is ABSENT:
            continue
        if not evaluate(rule["rule"], value, old):
            failures.append(f"{path or '(root)'}: {rule.get('message', rule['rule'])}")

    def at(key: Any) -> Any:
        # Objects only: no transition rule of ours lies inside a list (the server correlates
        # list-map items by key; test_cel_rules checks there is nothing to correlate).
        return old.get(key, ABSENT) if isinstance(old, dict) and isinstance(key, str) else ABSENT

    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                where = f"{path}.{name}".lstrip(".")
                failures += rule_failures(value[name], sub, where, at(name))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                failures += rule_failures(item, extra, f"{path}.{key}", at(key))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            failures += rule_failures(item, node["items"], f"{path}[{i}]", at(i))
    return failures


def cel_errors(doc: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """CEL rule failures of one of our resources, after defaulting (as the server does); with
    `old`, of an update from `old` to `doc` (transition rules included)."""
    schema = root_schema(doc["kind"])
    before = ABSENT if old is None else apply_defaults(copy.deepcopy(old), schema)
    return rule_failures(apply_defaults(copy.deepcopy(doc), schema), schema, "", before)


# -- CEL expressions that are only a field path (for the cost checks) --
WRAPPERS = {
    "expr",
    "conditionalor",
    "conditionaland",
    "relation",
    "addition",
    "multiplication",
    "unary",
    "member",
    "primary",
    "paren_expr",
}


def path_of(tree: Any) -> list[str] | None:
    """['self', 'jobs'] for an expression that is only a field path, else None."""
    while isinstance(tree, Tree) and tree.data in WRAPPERS and len(tree.children) == 1:
        tree = tree.children[0]
    if isinstance(tree, Tree) and tree.data == "member_dot":
        base = path_of(tree.children[0])
        return None if base is None else [*base, str(tree.children[1])]
    if isinstance(tree, Tree) and tree.data == "ident":
        return [str(tree.children[0])]
    return None


def resolve_path(path: list[str], scope: dict[str, Any]) -> dict[str, Any] | None:
    node = scope.get(path[0])
    for part in path[1:]:
        if node is None:
            return None
        props = node.get("properties", {})
        node = props.get(part, node.get("additionalProperties") if not props else None)
    return node


# -- the Prometheus Operator's CRDs (the operator makes ServiceMonitors and PrometheusRules) --
MONITORING_KINDS = (("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule"))


def monitoring_crd(plural: str, kind: str) -> dict[str, Any]:
    """A Prometheus Operator CRD, its schema left open (the operator only needs the kind)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
