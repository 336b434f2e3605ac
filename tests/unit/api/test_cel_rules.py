"""Every CEL rule (x-kubernetes-validations) in crds/: compiles, names only fields the schema has,
means what we think on good and bad values, agrees with the pydantic model, and holds on every
default, example and valid resource. The rules are collected from the CRDs, so a new rule
without cases here fails `test_every_rule_has_good_and_bad_cases`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from lark import Tree
from pydantic import ValidationError

from tests.support.crds import (
    API_VERSION,
    ENV,
    EXAMPLES,
    KINDS,
    RULE_IDS,
    RULES,
    all_nodes,
    apply_defaults,
    cel_errors,
    evaluate,
    ids,
    is_transition,
    node_at,
    our_documents,
    path_of,
    resolve_path,
    root_schema,
    rule_failures,
    schema_errors,
)
from vulcan_operator.cli.validate import MODELS

# -- cases: (id, value placed at the rule's node, does the rule accept it) -------------------
S3 = {"bucket": "vulcan-backups", "credentialsSecretRef": {"name": "s3-creds"}}
KEYS_RULE = "self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])"
STORAGE_CASES = [
    ("pvc", {"pvc": {}}, True),
    ("pvc-claim", {"pvc": {"claimName": "backups"}}, True),
    ("s3", {"s3": S3}, True),
    ("neither", {}, False),
    ("both", {"pvc": {"size": "1Gi"}, "s3": S3}, False),
]
KEYS_CASES = [
    ("empty", {}, True),
    ("cpu", {"cpu": "1"}, True),
    ("all-three", {"cpu": 1, "memory": "2Gi", "ephemeral-storage": "1Gi"}, True),
    ("gpu", {"gpu": "1"}, False),
    ("extended", {"cpu": "1", "nvidia.com/gpu": 1}, False),
]
INLINE = {
    "machines": [{"name": "m1"}],
    "jobs": [{"name": "j1", "tasks": [{"name": "t1", "duration": 1, "machines": ["m1"]}]}],
}
REF = {"problemRef": {"configMapName": "big-problem"}}
ENGINE_REF = {"engineRef": {"name": "prod"}}
LOCATION = "s3://vulcan-backups/database/vulcan/prod/vulcan_20261129_020000.dump"
CHECKSUM = "9f" * 32

CAP_WORKERS = (
    "(has(self.numWorkers) ? self.numWorkers : 4) <= (has(self.maxWorkers) ? self.maxWorkers : 16)"
)
CAP_MEMORY = (
    "(has(self.memoryLimitMB) ? self.memoryLimitMB : 8192) <= "
    "(has(self.maxMemoryMB) ? self.maxMemoryMB : 32768)"
)
CASES: dict[tuple[str, str, str], list[tuple[str, Any, bool]]] = {
    ("VulcanEngine", "spec.autoscaling", "self.minReplicas <= self.maxReplicas"): [
        ("defaults-3-10", {}, True),
        ("equal", {"minReplicas": 5, "maxReplicas": 5}, True),
        ("widest", {"minReplicas": 1, "maxReplicas": 1000}, True),
        ("disabled-equal", {"enabled": False, "minReplicas": 2, "maxReplicas": 2}, True),
        ("min-gt-max", {"minReplicas": 5, "maxReplicas": 3}, False),
        ("min-above-default-max", {"minReplicas": 11}, False),
        ("max-below-default-min", {"maxReplicas": 2}, False),
        ("disabled-min-gt-max", {"enabled": False, "minReplicas": 4, "maxReplicas": 3}, False),
    ],
    ("VulcanEngine", "spec.solver", CAP_WORKERS): [
        ("defaults", {}, True),
        ("at-the-cap", {"numWorkers": 16}, True),
        ("raised-cap", {"numWorkers": 32, "maxWorkers": 32}, True),
        ("no-defaults-applied", {"numWorkers": 9}, True),
        ("above-default-cap", {"numWorkers": 32}, False),
        ("cap-below-default", {"maxWorkers": 2}, False),
    ],
    ("VulcanEngine", "spec.solver", CAP_MEMORY): [
        ("defaults", {}, True),
        ("raised-cap", {"memoryLimitMB": 65536, "maxMemoryMB": 65536}, True),
        ("above-default-cap", {"memoryLimitMB": 65536}, False),
        ("cap-below-default", {"maxMemoryMB": 4096}, False),
    ],
    ("VulcanEngine", "spec.resources.requests", KEYS_RULE): KEYS_CASES,
    ("VulcanEngine", "spec.resources.limits", KEYS_RULE): KEYS_CASES,
    ("VulcanEngine", "spec.backup.storage", "has(self.pvc) != has(self.s3)"): STORAGE_CASES,
    # A VulcanBackup writes where its engine's spec.backup.storage says: any storage is refused.
    ("VulcanBackup", "spec", "!has(self.storage)"): [
        ("engine-ref-only", ENGINE_REF, True),
        ("pvc-900Ti", {**ENGINE_REF, "storage": {"pvc": {"size": "900Ti"}}}, False),
        ("pvc-claim", {**ENGINE_REF, "storage": {"pvc": {"claimName": "prod-backups"}}}, False),
        (
            "s3-http-foreign",
            {
                **ENGINE_REF,
                "storage": {
                    "s3": {
                        "bucket": "attacker",
                        "endpoint": "http://evil.example.com",
                        "credentialsSecretRef": {"name": "s3-creds"},
                    }
                },
            },
            False,
        ),
        ("empty", {**ENGINE_REF, "storage": {}}, False),
    ],
    (
        "SchedulingProblem",
        "spec",
        "has(self.problemRef) ? !(has(self.jobs) && size(self.jobs) > 0)"
        " && !(has(self.machines) && size(self.machines) > 0)"
        " : (has(self.jobs) && size(self.jobs) > 0)",
    ): [
        ("ref-and-machines", {**ENGINE_REF, **REF, "machines": INLINE["machines"]}, False),
        ("inline", {**ENGINE_REF, **INLINE}, True),
        ("ref", {**ENGINE_REF, **REF}, True),
        ("ref-and-empty-jobs", {**ENGINE_REF, **REF, "jobs": []}, True),
        ("both", {**ENGINE_REF, **INLINE, **REF}, False),
        ("neither", ENGINE_REF, False),
        ("machines-only", {**ENGINE_REF, "machines": INLINE["machines"]}, False),
        ("empty-jobs-no-ref", {**ENGINE_REF, "jobs": []}, False),
    ],
    (
        "VulcanRestore",
        "spec",
        "has(self.backupRef) != (has(self.location) && self.location != '')",
    ): [
        ("backup-ref", {**ENGINE_REF, "backupRef": {"name": "b1"}}, True),
        ("location", {**ENGINE_REF, "location": LOCATION, "checksum": CHECKSUM}, True),
        (
            "backup-ref-empty-location",
            {**ENGINE_REF, "backupRef": {"name": "b1"}, "location": ""},
            True,
        ),
        ("both", {**ENGINE_REF, "backupRef": {"name": "b1"}, "location": LOCATION}, False),
        ("neither", ENGINE_REF, False),
        ("empty-location-only", {**ENGINE_REF, "location": ""}, False),
    ],
    (
        "VulcanRestore",
        "spec",
        "!has(self.location) || self.location == '' || (has(self.checksum) && self.checksum != '')",
    ): [
        ("location-and-checksum", {**ENGINE_REF, "location": LOCATION, "checksum": CHECKSUM}, True),
        ("backup-ref", {**ENGINE_REF, "backupRef": {"name": "b1"}}, True),
        (
            "backup-ref-checksum",
            {**ENGINE_REF, "backupRef": {"name": "b1"}, "checksum": CHECKSUM},
            True,
        ),
        ("location-no-checksum", {**ENGINE_REF, "location": LOCATION}, False),
        ("location-empty-checksum", {**ENGINE_REF, "location": LOCATION, "checksum": ""}, False),
    ],
}

BASE_SPECS: dict[str, dict[str, Any]] = {
    "VulcanEngine": {"version": "2.0.0"},
    "SchedulingProblem": {**ENGINE_REF, **INLINE},
    "VulcanBackup": ENGINE_REF,
    "VulcanRestore": {**ENGINE_REF, "backupRef": {"name": "b1"}},
}


def resource(kind: str, path: str, value: Any) -> dict[str, Any]:
    """A valid resource of `kind` with `value` put at `path` (e.g. 'spec.autoscaling')."""
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default"},
        "spec": copy.deepcopy(BASE_SPECS[kind]),
    }
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = copy.deepcopy(value)
    return doc


def value_at(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc[part]
    return doc


CASE_PARAMS = [
    pytest.param(kind, path, rule, value, ok, id=f"{kind}:{path}:{case_id}")
    for (kind, path, rule), cases in CASES.items()
    for case_id, value, ok in cases
]


# -- every rule ------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "path", "rule", "message"), RULES, ids=RULE_IDS)
def test_rule_compiles_and_has_a_message(kind: str, path: str, rule: str, message: str) -> None:
    ENV.compile(rule)
    assert message.strip(), "kubectl shows the message; without one users see the rule"


@pytest.mark.parametrize(("kind", "path", "rule", "message"), RULES, ids=RULE_IDS)
def test_rule_names_only_fields_of_its_node(kind: str, path: str, rule: str, message: str) -> None:
    # The API server type-checks rules against the schema: an unknown field does not compile.
    missing = []

    def visit(tree: Any) -> None:
        if not isinstance(tree, Tree):
            return
        field_path = path_of(tree)
        if field_path is not None and field_path[0] == "self":
            if resolve_path(field_path, {"self": node_at(kind, path)}) is None:
                missing.append(".".join(field_path))
            return
        for child in tree.children:
            visit(child)

    visit(ENV.compile(rule))
    assert missing == []


@pytest.mark.parametrize(("kind", "path", "rule", "message"), RULES, ids=RULE_IDS)
def test_transition_rules_name_only_fields_and_lie_outside_lists(
    kind: str, path: str, rule: str, message: str
) -> None:
    if not is_transition(rule):
        return
    # The server evaluates a transition rule only where old and new values correlate: never
    # inside a list here (rule_failures does not correlate list items either).
    assert "[]" not in path and "{}" not in path
    missing = []

    def visit(tree: Any) -> None:
        if not isinstance(tree, Tree):
            return
        field_path = path_of(tree)
        if field_path is not None and field_path[0] == "oldSelf":
            if resolve_path(field_path, {"oldSelf": node_at(kind, path)}) is None:
                missing.append(".".join(field_path))
            return
        for child in tree.children:
            visit(child)

    visit(ENV.compile(rule))
    assert missing == []


@pytest.mark.parametrize(("kind", "path", "rule", "message"), RULES, ids=RULE_IDS)
def test_every_rule_has_good_and_bad_cases(kind: str, path: str, rule: str, message: str) -> None:
    cases = CASES.get((kind, path, rule), []) or [
        (case_id, new, ok) for case_id, _, new, ok in TRANSITIONS.get((kind, path, rule), [])
    ]
    assert any(ok for _, _, ok in cases), f"add an accepted case for {rule!r} at {kind} {path}"
    assert any(not ok for _, _, ok in cases), f"add a refused case for {rule!r} at {kind} {path}"


def test_no_cases_for_rules_that_do_not_exist() -> None:
    rules = {(kind, path, rule) for kind, path, rule, _ in RULES}
    assert set(CASES) <= rules, set(CASES) - rules
    assert set(TRANSITIONS) <= rules, set(TRANSITIONS) - rules
    assert not any(is_transition(rule) for _, _, rule in CASES), "put it in TRANSITIONS"


def test_every_kind_with_a_cross_field_check_has_a_rule() -> None:
    kinds_with_rules = {kind for kind, _, _, _ in RULES}
    assert kinds_with_rules == set(KINDS)


# -- the cases -------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "path", "rule", "value", "ok"), CASE_PARAMS)
def test_rule_verdict(kind: str, path: str, rule: str, value: Any, ok: bool) -> None:
    doc = apply_defaults(resource(kind, path, value), root_schema(kind))
    assert evaluate(rule, value_at(doc, path)) is ok


@pytest.mark.parametrize(("kind", "path", "rule", "value", "ok"), CASE_PARAMS)
def test_case_is_otherwise_schema_valid(
    kind: str, path: str, rule: str, value: Any, ok: bool
) -> None:
    # So that the rule, and nothing else, decides the case.
    assert schema_errors(resource(kind, path, value), kind) == []


@pytest.mark.parametrize(("kind", "path", "rule", "value", "ok"), CASE_PARAMS)
def test_model_agrees_with_rule(kind: str, path: str, rule: str, value: Any, ok: bool) -> None:
    doc = resource(kind, path, value)
    try:
        MODELS[kind].model_validate(doc)
    except ValidationError as exc:
        assert not ok, f"the model refuses what the CEL rule accepts: {exc}"
    else:
        assert ok, "the model accepts what the CEL rule refuses"
    assert (cel_errors(doc) == []) is ok


# -- rules hold wherever the API server would evaluate them on our own objects ---------------
@pytest.mark.parametrize("kind", KINDS)
def test_rules_hold_on_every_default(kind: str) -> None:
    failures = []
    for _, path, node, _ in [n for n in all_nodes() if n[0] == kind]:
        if "default" in node:
            value = apply_defaults(copy.deepcopy(node["default"]), node)
            failures += [f"default of {path}: {f}" for f in rule_failures(value, node)]
    assert failures == []


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_rules_hold_on_examples_and_valid_resources(path: Path) -> None:
    for doc in our_documents(path):
        assert cel_errors(doc) == []


def test_rule_failures_reports_nested_rules() -> None:
    doc = resource("VulcanEngine", "spec.autoscaling", {"minReplicas": 9, "maxReplicas": 4})
    doc["spec"]["backup"] = {"storage": {}}
    doc["spec"]["resources"] = {"limits": {"gpu": 1}}
    assert cel_errors(doc) == [
        "spec.autoscaling: minReplicas must be <= maxReplicas",
        "spec.resources.limits: keys must be 'cpu', 'memory', 'ephemeral-storage'",
        "spec.backup.storage: set exactly one of pvc or s3",
    ]


# -- transition rules (oldSelf): what may not change in place ---------------------------------
def doc(kind: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default"},
        "spec": copy.deepcopy(spec),
    }
    if status is not None:
        out["status"] = status
    return out


ENGINE = {"version": "2.0.0"}
S3_ENGINE = {"version": "2.0.0", "backup": {"storage": {"s3": S3}}}
HELD = {"restore": {"name": "r1", "step": "Restore"}}
BACKUP = {"engineRef": {"name": "prod"}}
RESTORE = {"engineRef": {"name": "prod"}, "backupRef": {"name": "b1"}}
PROBLEM = {**ENGINE_REF, **INLINE}
STORAGE_RULE = next(r for k, p, r, _ in RULES if k == "VulcanEngine" and p == "")
SPEC_FROZEN = "self == oldSelf"

#: (kind, path, rule) -> [(id, old document, new document, is the update allowed)]
TRANSITIONS: dict[tuple[str, str, str], list[tuple[str, Any, Any, bool]]] = {
    ("VulcanEngine", "", STORAGE_RULE): [
        ("no-status", doc("VulcanEngine", ENGINE), doc("VulcanEngine", S3_ENGINE), True),
        (
            "not-held",
            doc("VulcanEngine", ENGINE, {"phase": "Ready"}),
            doc("VulcanEngine", S3_ENGINE, {"phase": "Ready"}),
            True,
        ),
        (
            "held-other-change",
            doc("VulcanEngine", S3_ENGINE, HELD),
            doc("VulcanEngine", {**S3_ENGINE, "replicas": 5}, HELD),
            True,
        ),
        (
            "held-same-storage-spelled-out",
            doc("VulcanEngine", ENGINE, HELD),
            doc("VulcanEngine", {**ENGINE, "backup": {"storage": {"pvc": {}}}}, HELD),
            True,
        ),
        (
            "held-pvc-to-s3",
            doc("VulcanEngine", ENGINE, HELD),
            doc("VulcanEngine", S3_ENGINE, HELD),
            False,
        ),
        (
            "held-other-bucket",
            doc("VulcanEngine", S3_ENGINE, HELD),
            doc(
                "VulcanEngine",
                {**ENGINE, "backup": {"storage": {"s3": {**S3, "bucket": "elsewhere"}}}},
                HELD,
            ),
            False,
        ),
        (
            "held-other-claim",
            doc("VulcanEngine", ENGINE, HELD),
            doc(
                "VulcanEngine", {**ENGINE, "backup": {"storage": {"pvc": {"claimName": "c"}}}}, HELD
            ),
            False,
        ),
    ],
    ("VulcanBackup", "spec", SPEC_FROZEN): [
        ("unchanged", doc("VulcanBackup", BACKUP), doc("VulcanBackup", BACKUP), True),
        (
            "other-engine",
            doc("VulcanBackup", BACKUP),
            doc("VulcanBackup", {"engineRef": {"name": "staging"}}),
            False,
        ),
    ],
    ("VulcanRestore", "spec", SPEC_FROZEN): [
        ("unchanged", doc("VulcanRestore", RESTORE), doc("VulcanRestore", RESTORE), True),
        (
            "other-backup",
            doc("VulcanRestore", RESTORE),
            doc("VulcanRestore", {**RESTORE, "backupRef": {"name": "b2"}}),
            False,
        ),
        (
            "migrate-off",
            doc("VulcanRestore", RESTORE),
            doc("VulcanRestore", {**RESTORE, "migrate": False}),
            False,
        ),
    ],
    ("SchedulingProblem", "spec.engineRef", SPEC_FROZEN): [
        ("unchanged", doc("SchedulingProblem", PROBLEM), doc("SchedulingProblem", PROBLEM), True),
        (
            "jobs-edited",
            doc("SchedulingProblem", PROBLEM),
            doc("SchedulingProblem", {**PROBLEM, "horizon": 500}),
            True,
        ),
        (
            "other-engine",
            doc("SchedulingProblem", PROBLEM),
            doc("SchedulingProblem", {**PROBLEM, "engineRef": {"name": "staging"}}),
            False,
        ),
    ],
}
TRANSITION_PARAMS = [
    pytest.param(kind, path, rule, old, new, ok, id=f"{kind}:{path or '(root)'}:{case_id}")
    for (kind, path, rule), cases in TRANSITIONS.items()
    for case_id, old, new, ok in cases
]


@pytest.mark.parametrize(("kind", "path", "rule", "old", "new", "ok"), TRANSITION_PARAMS)
def test_transition_verdict(
    kind: str, path: str, rule: str, old: dict[str, Any], new: dict[str, Any], ok: bool
) -> None:
    schema = root_schema(kind)
    before = apply_defaults(copy.deepcopy(old), schema)
    after = apply_defaults(copy.deepcopy(new), schema)
    at = (lambda d: d) if not path else (lambda d: value_at(d, path))
    assert evaluate(rule, at(after), at(before)) is ok
    # The whole update, every rule: only this one decides it, and the documents are valid.
    assert (cel_errors(new, old) == []) is ok
    assert schema_errors(old, kind) == [] and schema_errors(new, kind) == []


def test_every_transition_rule_is_checked() -> None:
    transitions = {(k, p, r) for k, p, r, _ in RULES if is_transition(r)}
    assert transitions == set(TRANSITIONS)


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_an_update_that_changes_nothing_is_allowed(path: Path) -> None:
    # Also what the operator's own metadata writes (finalizer, Kopf's annotations) are.
    for item in our_documents(path):
        assert cel_errors(item, item) == []
