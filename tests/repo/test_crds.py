"""The CRDs in crds/: up to date, accepted by kubernetes-validate, structural as an API server
demands, CEL rules affordable, names and columns as designed, and our examples valid against them.

The helpers at the top (schema walking, OpenAPI → JSON Schema, structural defaulting) are also
used by test_cel_rules.py and test_validate_cli.py.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
from lark import Token, Tree

from tests.support.crds import (
    API_VERSION,
    CRD_FILES,
    CRDS,
    EXAMPLES,
    GROUP,
    KINDS,
    PINNED_KUBERNETES,
    REPO,
    VERSION,
    all_nodes,
    apply_defaults,
    ids,
    our_documents,
    path_of,
    resolve_path,
    root_schema,
    schema_errors,
    to_jsonschema,
    walk,
)
from vulcan_operator import crdgen


# -- (a) staleness ---------------------------------------------------------------------------
def test_crds_are_generated_from_the_models() -> None:
    rendered = crdgen.render_all()
    on_disk = {p.name: p.read_text() for p in CRD_FILES}
    stale = sorted(n for n in rendered if on_disk.get(n) != rendered[n])
    extra = sorted(set(on_disk) - set(rendered))
    assert not stale and not extra, (
        f"crds/ is stale (differs: {stale}; not generated: {extra}): "
        "run `vulcan-operator crds` and commit crds/"
    )
    assert set(rendered) == {f"{p}.{GROUP}.yaml" for p in (k.plural for k in crdgen.KINDS)}


def test_crd_files_use_no_yaml_aliases() -> None:
    # Anchors/aliases are legal YAML but confuse reviewers and some GitOps diff tools.
    for path in CRD_FILES:
        assert not re.search(r"[&*]id\d+", path.read_text()), path.name


# -- (b) kubernetes-validate, strict ---------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_crd_passes_kubernetes_validate_strict(kind: str) -> None:
    kubernetes_validate.validate(CRDS[kind], PINNED_KUBERNETES, strict=True)
    try:
        from tests.support.manifests import (
            validate_manifest,  # the shared helper, pinned to its own version
        )
    except ImportError:  # pragma: no cover - the helper is optional
        return
    validate_manifest(CRDS[kind])


def test_kubernetes_validate_strict_would_catch_a_bad_crd() -> None:
    bad = copy.deepcopy(CRDS["VulcanRestore"])
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["const"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, PINNED_KUBERNETES, strict=True)


# -- (c) structural-schema rules an API server enforces --------------------------------------
INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# Inside allOf/anyOf/oneOf/not only value validations are allowed, no structure.
FORBIDDEN_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")


def structural_violations(schema: dict[str, Any]) -> list[str]:
    """What an API server would refuse in a CRD schema, beyond kubernetes-validate's checks."""
    found = []
    for path, node, _ in walk(schema):
        where = path or "(root)"
        if "type" not in node and not node.get(INT_OR_STRING) and not node.get(PRESERVE):
            found.append(f"{where}: no type")
        if node.get(INT_OR_STRING) and node.get("type"):
            found.append(f"{where}: int-or-string with a type")
        for key in ("$ref", "definitions", "$schema", "id"):
            if key in node:
                found.append(f"{where}: {key} is not allowed")
        for junctor in JUNCTORS:
            branches = node.get(junctor, [])
            for branch in [branches] if isinstance(branches, dict) else branches:
                bad = [k for k in branch if k in FORBIDDEN_IN_JUNCTORS or k.startswith("x-")]
                if bad:
                    found.append(f"{where}: {junctor} sets {bad}")
        extra = node.get("additionalProperties")
        if extra is not None:
            if "properties" in node:
                found.append(f"{where}: additionalProperties together with properties")
            if isinstance(extra, bool):
                found.append(f"{where}: additionalProperties: {extra} (use a schema)")
        if "nullable" in node and (node["nullable"] is not True or "type" not in node):
            found.append(f"{where}: nullable must be true on a typed node")
        if node.get("type") == "null" or node.get("default", ...) is None:
            found.append(f"{where}: null type or null default")
        if node.get("uniqueItems"):
            found.append(f"{where}: uniqueItems: true is forbidden (quadratic)")
        for bound, value in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if value in node and (not isinstance(node[value], bool) or bound not in node):
                found.append(f"{where}: {value} must be a boolean next to {bound}")
        if PRESERVE in node and node[PRESERVE] is not True:
            found.append(f"{where}: {PRESERVE} must be true")
        if "pattern" in node:
            pattern = node["pattern"]
            # Go's RE2 has no lookaround and no backreferences.
            if re.search(r"\(\?[=!<]|\\[1-9]", pattern):
                found.append(f"{where}: pattern is not RE2: {pattern}")
            re.compile(pattern)
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            found.append(f"{where}: array without a single items schema")
    if schema.get("type") != "object":
        found.append("(root): type must be object")
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    assert structural_violations(root_schema(kind)) == []


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        ({"type": None}, "no type"),
        ({"$ref": "#/x"}, "$ref is not allowed"),
        ({"anyOf": [{"type": "string"}]}, "anyOf sets ['type']"),
        ({"additionalProperties": {"type": "string"}}, "together with properties"),
        ({"additionalProperties": False}, "additionalProperties: False"),
        ({"nullable": "yes"}, "nullable must be true"),
        ({"default": None}, "null default"),
        ({"uniqueItems": True}, "uniqueItems"),
        ({"exclusiveMinimum": 0}, "exclusiveMinimum must be a boolean"),
        ({"pattern": "^(?!x)"}, "not RE2"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_structural_checks_catch_mutations(mutation: dict[str, Any], expected: str) -> None:
    schema = copy.deepcopy(root_schema("VulcanBackup"))
    spec = schema["properties"]["spec"]
    for key, value in mutation.items():
        if key == "type" and value is None:
            del spec["type"]
        else:
            spec[key] = value
    assert any(expected in v for v in structural_violations(schema)), mutation


def default_problems(kind: str) -> list[str]:
    problems = []
    for path, node, _ in walk(root_schema(kind)):
        if "default" not in node:
            continue
        if path.startswith("metadata"):
            problems.append(f"{path}: defaults are not allowed in metadata")
        value = apply_defaults(copy.deepcopy(node["default"]), node)
        validator = jsonschema.Draft4Validator(to_jsonschema(node))
        for err in validator.iter_errors(value):
            at = ".".join(str(p) for p in err.absolute_path)
            problems.append(f"{path}: default {node['default']!r} invalid at '{at}': {err.message}")
    return problems


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_are_valid_against_their_own_node(kind: str) -> None:
    assert default_problems(kind) == []


def test_default_check_catches_a_bad_default() -> None:
    spec = root_schema("VulcanEngine")["properties"]["spec"]["properties"]
    saved = copy.deepcopy(spec["database"])
    try:
        spec["database"]["properties"]["poolSize"]["default"] = 4  # below minimum 5
        spec["database"]["default"]["unknownField"] = 1  # pruned by the server: unknown
        problems = "\n".join(default_problems("VulcanEngine"))
        assert "poolSize" in problems
        assert "unknownField" in problems
    finally:
        spec["database"] = saved


def list_problems(kind: str) -> list[str]:
    problems = []
    for path, node, _ in walk(root_schema(kind)):
        list_type = node.get("x-kubernetes-list-type")
        items = node.get("items", {})
        if list_type == "map":
            keys = node.get("x-kubernetes-list-map-keys") or []
            if not keys or items.get("type") != "object":
                problems.append(f"{path}: list-type map needs keys and object items")
            for key in keys:
                prop = items.get("properties", {}).get(key)
                if prop is None or prop.get("type") not in ("string", "integer", "boolean"):
                    problems.append(f"{path}: map key {key} is not a scalar field of the items")
                elif key not in items.get("required", []) and "default" not in prop:
                    problems.append(f"{path}: map key {key} is neither required nor defaulted")
        elif list_type == "set" and items.get("type") in ("object", "array"):
            problems.append(f"{path}: list-type set needs scalar items")
        elif "x-kubernetes-list-map-keys" in node:
            problems.append(f"{path}: list-map-keys without list-type map")
    return problems


@pytest.mark.parametrize("kind", KINDS)
def test_list_map_keys_are_required_scalars(kind: str) -> None:
    assert list_problems(kind) == []


def test_list_map_check_catches_an_optional_key() -> None:
    items = root_schema("SchedulingProblem")["properties"]["spec"]["properties"]["machines"]
    items = items["items"]
    saved = list(items["required"])
    try:
        items["required"].remove("name")
        assert any(
            "neither required nor defaulted" in p for p in list_problems("SchedulingProblem")
        )
    finally:
        items["required"] = saved


def missing_descriptions(kind: str) -> list[str]:
    missing = []
    for path, node, _ in walk(root_schema(kind)):
        is_field = path == "" or not path.endswith(("[]", "{}"))
        if is_field and not str(node.get("description", "")).strip():
            missing.append(path or "(root)")
    return missing


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_has_a_description(kind: str) -> None:
    # They are what `kubectl explain` prints.
    assert missing_descriptions(kind) == []


def test_description_check_would_catch_a_missing_one() -> None:
    node = root_schema("VulcanBackup")["properties"]["spec"]
    saved = node.pop("description")
    try:
        assert missing_descriptions("VulcanBackup") == ["spec"]
    finally:
        node["description"] = saved


COLUMN_TYPES = {"integer": ("integer",), "number": ("number", "integer"), "string": ("string",)}


def column_problems(kind: str) -> list[str]:
    problems = []
    (version,) = CRDS[kind]["spec"]["versions"]
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        node: dict[str, Any] | None = root_schema(kind)
        for part in path.lstrip(".").split("."):
            node = (node or {}).get("properties", {}).get(part)
        if node is None:
            problems.append(f"{column['name']}: {path} is not in the schema")
        elif node.get("type") not in COLUMN_TYPES.get(column["type"], (column["type"],)):
            problems.append(f"{column['name']}: {column['type']} column on a {node.get('type')}")
    return problems


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_into_the_schema(kind: str) -> None:
    assert column_problems(kind) == []


def test_column_check_catches_a_typo() -> None:
    (version,) = CRDS["VulcanRestore"]["spec"]["versions"]
    version["additionalPrinterColumns"].append(
        {"name": "X", "type": "string", "jsonPath": ".status.stepp"}
    )
    try:
        assert column_problems("VulcanRestore") == ["X: .status.stepp is not in the schema"]
    finally:
        version["additionalPrinterColumns"].pop()


# -- (d) CEL cost: collections a rule walks must be bounded ----------------------------------
MACROS = {"all", "exists", "exists_one", "map", "filter"}
CONSTANT_COST = {"size", "has"}  # O(1) in the cost estimator whatever the collection's size
ITERATION_BUDGET = 1_000_000  # product of the bounds of nested walks; the server's own limit
# per rule is an estimated cost of 10^7, and each step costs a few units.


def _is_collection(node: dict[str, Any] | None) -> bool:
    return node is not None and (
        node.get("type") == "array"
        or (node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict))
    )


def collection_uses(rule: str, node: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(path, collection node, how) for every list or map the rule touches.

    how: 'iterate' (all/exists/map/filter), 'in' (membership), 'size'/'has' (constant cost),
    'other' (anything else, e.g. equality: counted as linear).
    """
    tree = celpy.Environment().compile(rule)
    uses: list[tuple[str, dict[str, Any], str]] = []

    def record(path: list[str] | None, scope: dict[str, Any], how: str) -> bool:
        if path is None:
            return False
        target = resolve_path(path, scope)
        if _is_collection(target):
            assert target is not None
            uses.append((".".join(path), target, how))
        return True

    def visit(t: Any, scope: dict[str, Any]) -> None:
        if not isinstance(t, Tree):
            return
        if record(path_of(t), scope, "other"):
            return
        if t.data == "member_dot_arg":
            receiver, method = t.children[0], str(t.children[1])
            args = t.children[2].children if len(t.children) > 2 else []
            path = path_of(receiver)
            if method in MACROS and args:
                if not record(path, scope, "iterate"):
                    visit(receiver, scope)
                target = resolve_path(path, scope) if path else None
                element = None
                if target is not None and target.get("type") == "array":
                    element = target.get("items")
                elif target is not None:
                    element = {"type": "string"}  # a map's keys
                var = (path_of(args[0]) or ["_"])[0]
                for arg in args[1:]:
                    visit(arg, {**scope, var: element})
                return
            if not record(path, scope, "other"):
                visit(receiver, scope)
            for arg in args:
                visit(arg, scope)
            return
        if t.data == "ident_arg" and str(t.children[0]) in CONSTANT_COST:
            for arg in t.children[1].children if len(t.children) > 1 else []:
                if not record(path_of(arg), scope, str(t.children[0])):
                    visit(arg, scope)
            return
        first = t.children[0] if t.children else None
        if t.data == "relation" and isinstance(first, Tree) and first.data == "relation_in":
            visit(first, scope)
            if not record(path_of(t.children[1]), scope, "in"):
                visit(t.children[1], scope)
            return
        for child in t.children:
            if not isinstance(child, Token):
                visit(child, scope)

    visit(tree, {"self": node})
    return uses


def bound_of(node: dict[str, Any]) -> int | None:
    return node.get("maxItems") if node.get("type") == "array" else node.get("maxProperties")


def cost_problems(path: str, node: dict[str, Any], arrays: tuple[dict[str, Any], ...]) -> list[str]:
    problems = []
    # A rule under a list runs once per element: every enclosing list must be bounded.
    factor = 1
    for array in arrays:
        if array.get("maxItems") is None:
            problems.append(f"{path}: rule inside a list without maxItems")
        factor *= array.get("maxItems") or 1
    for rule in node.get("x-kubernetes-validations", []):
        walked = factor
        for used, target, how in collection_uses(rule["rule"], node):
            if how in CONSTANT_COST or (how == "in" and target.get("type") == "object"):
                continue
            bound = bound_of(target)
            if bound is None:
                problems.append(f"{path}: rule {rule['rule']!r} walks {used} ({how}) unbounded")
            else:
                walked *= bound
        if walked > ITERATION_BUDGET:
            problems.append(f"{path}: rule {rule['rule']!r} may take {walked} steps")
    return problems


RULE_NODES = [
    (kind, path, node, arrays)
    for kind, path, node, arrays in all_nodes()
    if node.get("x-kubernetes-validations")
]


@pytest.mark.parametrize(
    ("kind", "path", "node", "arrays"), RULE_NODES, ids=[f"{k}:{p}" for k, p, _, _ in RULE_NODES]
)
def test_cel_rules_only_walk_bounded_collections(
    kind: str, path: str, node: dict[str, Any], arrays: tuple[dict[str, Any], ...]
) -> None:
    assert cost_problems(path, node, arrays) == []


def test_there_are_cel_rules_to_check() -> None:
    assert len(RULE_NODES) >= 6


@pytest.mark.parametrize(
    ("rule", "schema", "expected"),
    [
        # size() and has() cost O(1): no bound needed.
        ("has(self.jobs) && size(self.jobs) > 0", {"jobs": {"type": "array"}}, []),
        ("self.jobs.all(j, j.x > 0)", {"jobs": {"type": "array"}}, ["walks self.jobs"]),
        ("'a' in self.names", {"names": {"type": "array"}}, ["walks self.names (in)"]),
        (
            "self.jobs.all(j, j.tasks.exists(t, t.x > 0))",
            {
                "jobs": {
                    "type": "array",
                    "maxItems": 5,
                    "items": {
                        "type": "object",
                        "properties": {"tasks": {"type": "array", "items": {"type": "object"}}},
                    },
                }
            },
            ["walks j.tasks"],
        ),
        (
            "self.a.all(x, self.b.exists(y, x == y))",
            {
                "a": {"type": "array", "maxItems": 2000, "items": {"type": "string"}},
                "b": {"type": "array", "maxItems": 2000, "items": {"type": "string"}},
            },
            ["may take 4000000 steps"],
        ),
    ],
)
def test_cost_check_itself(rule: str, schema: dict[str, Any], expected: list[str]) -> None:
    node = {"type": "object", "properties": schema, "x-kubernetes-validations": [{"rule": rule}]}
    problems = cost_problems("spec", node, ())
    assert len(problems) == len(expected), problems
    for problem, part in zip(problems, expected, strict=True):
        assert part in problem


def test_rule_under_an_unbounded_list_is_reported() -> None:
    node = {"type": "object", "x-kubernetes-validations": [{"rule": "self.a < self.b"}]}
    assert cost_problems("spec.xs[]", node, ({"type": "array"},)) == [
        "spec.xs[]: rule inside a list without maxItems"
    ]


# -- (e) names -------------------------------------------------------------------------------
PLURALS = {
    "VulcanEngine": ("vulcanengines", "ve"),
    "SchedulingProblem": ("schedulingproblems", "sp"),
    "VulcanBackup": ("vulcanbackups", "vb"),
    "VulcanRestore": ("vulcanrestores", "vr"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_names_scope_and_subresources(kind: str) -> None:
    crd = CRDS[kind]
    plural, short = PLURALS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": [short],
        "categories": ["vulcan"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"phase", "observedGeneration", "conditions"} <= set(status)
    condition = status["conditions"]["items"]
    assert set(condition["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert set(condition["required"]) == {"type", "status", "reason", "lastTransitionTime"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


COLUMNS = {
    "VulcanEngine": ["Version", "Phase", "Ready", "Age"],
    "SchedulingProblem": ["Phase", "Status", "Objective", "Gap", "Age"],
    "VulcanBackup": ["Phase", "Age"],
    "VulcanRestore": ["Phase", "Age"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns(kind: str) -> None:
    (version,) = CRDS[kind]["spec"]["versions"]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    # The designed columns, in this order (more may sit between them), Age last as kubectl does.
    it = iter(names)
    assert all(name in it for name in COLUMNS[kind]), names
    assert names[-1] == "Age"
    assert len(names) == len(set(names))


# -- (f) examples against the CRD schema -----------------------------------------------------
# Examples of other API groups (an Argo CD Application) are not ours to check here.


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_examples_validate_against_their_crd(path: Path) -> None:
    docs = our_documents(path)
    assert docs, f"{path} holds none of our resources"
    for doc in docs:
        assert schema_errors(doc, doc["kind"], defaults=False) == []
        assert schema_errors(doc, doc["kind"], defaults=True) == []
        try:
            from tests.support.manifests import (
                manifest_errors,  # the shared helper: strict metadata too
            )
        except ImportError:  # pragma: no cover
            continue
        assert manifest_errors(doc) == []


def test_every_kind_has_an_example() -> None:
    kinds = {
        d["kind"] for p in sorted((REPO / "examples").glob("*.yaml")) for d in our_documents(p)
    }
    assert kinds == set(KINDS)


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_schema_rejects_unknown_and_mistyped_fields_in_examples(path: Path) -> None:
    for doc in our_documents(path):
        bad = copy.deepcopy(doc)
        bad["spec"]["engineRefs"] = {"name": "x"}
        assert any("engineRefs" in e for e in schema_errors(bad, doc["kind"])), "unknown field"
        bad = copy.deepcopy(doc)
        bad["spec"].setdefault("engineRef", {})["name"] = 7
        bad["spec"].pop("version", None)
        errors = schema_errors(bad, doc["kind"])
        assert errors, "a number where a name belongs, or a missing required field"


def test_defaulting_fills_the_guides_values() -> None:
    engine = {"apiVersion": API_VERSION, "kind": "VulcanEngine", "metadata": {"name": "x"}}
    engine["spec"] = {"version": "1", "backup": {}}
    defaulted = apply_defaults(copy.deepcopy(engine), root_schema("VulcanEngine"))
    assert defaulted["spec"]["replicas"] == 3
    assert defaulted["spec"]["backup"]["schedule"] == "0 2 * * *"
    assert defaulted["spec"]["backup"]["storage"] == {
        "pvc": {"size": "20Gi", "storageClassName": "", "claimName": ""}
    }
    assert defaulted["spec"]["database"]["poolSize"] == 20
