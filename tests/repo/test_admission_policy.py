"""manifests/admission-policy/: the ValidatingAdmissionPolicy that limits what the operator's
ServiceAccount may write. Its CEL runs here in cel-python (as the CRD rules do in
tests/unit/api/test_cel_rules.py), the way the API server runs a policy: matchConditions, then
the variables in order, then every validation. It must admit every Secret, Role, RoleBinding
and Job the builders really make, and refuse the forbidden ones with its message.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.admission_policy import GOVERNED, OPERATOR, POLICY, documents, review
from tests.support.manifests import validate_manifests
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import migration_job
from vulcan_operator.cli.preview import render

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "vulcan"
LABEL = "app.kubernetes.io/managed-by"
Obj = dict[str, Any]


# --- what the operator really writes ------------------------------------------------------------
def _examples() -> list[Obj]:
    docs = []
    for name in ("vulcanengine", "ft06", "plant", "vulcanbackup", "vulcanrestore"):
        docs += [d for d in yaml.safe_load_all((REPO / "examples" / f"{name}.yaml").read_text())]
    return [d for d in docs if d]


def written_by_the_operator() -> list[Obj]:
    """Every Secret, Role, RoleBinding and Job the builders make for the examples (the
    restore's backup given a status, as a succeeded backup has), and an upgrade's migration."""
    docs = _examples()
    engine = next(d for d in docs if d["kind"] == "VulcanEngine")
    backup = copy.deepcopy(next(d for d in docs if d["kind"] == "VulcanBackup"))
    backup["status"] = {
        "phase": "Succeeded",
        "location": "pvc://prod-backups/vulcan/prod/on-demand/vulcan_20261129_020000.dump",
        "checksum": "9f" * 32,
    }
    objs = []
    for doc in docs:
        if doc["kind"] == "VulcanBackup":
            doc = {**doc, "status": {}}  # not run yet
        objs += render([doc], engines=[engine, backup], namespace=NAMESPACE)
    engine = {**engine, "metadata": {**engine["metadata"], "uid": "u-1"}}
    inputs = EngineInputs.from_resource(engine)
    objs.append(migration_job(inputs, "2.1.0", ["alembic", "upgrade", "head"], "migrate"))
    return [o for o in objs if o["kind"] in GOVERNED]


WRITTEN = written_by_the_operator()


def by_kind(kind: str) -> Obj:
    return copy.deepcopy(next(o for o in WRITTEN if o["kind"] == kind))


def test_the_examples_give_every_governed_kind() -> None:
    kinds = sorted({o["kind"] for o in WRITTEN})
    assert kinds == sorted(GOVERNED)
    purposes = {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in WRITTEN}
    # solver, backup, restore and migration Jobs, the keys Secret and the solver's RBAC
    assert len([o for o in WRITTEN if o["kind"] == "Job"]) >= 5, purposes


@pytest.mark.parametrize("obj", WRITTEN, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_what_the_operator_writes_is_admitted(obj: Obj) -> None:
    assert review("CREATE", obj) == []
    changed = copy.deepcopy(obj)
    changed["metadata"].setdefault("annotations", {})["vulcan-engine.com/spec-hash"] = "changed"
    assert review("UPDATE", changed, obj) == []
    assert review("DELETE", None, obj) == []


# --- what it must not write ---------------------------------------------------------------------
def unlabelled(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    del obj["metadata"]["labels"][LABEL]
    return obj


def relabelled(obj: Obj, value: str) -> Obj:
    obj = copy.deepcopy(obj)
    obj["metadata"]["labels"][LABEL] = value
    return obj


USERS_SECRET: Obj = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "vulcan-db", "namespace": NAMESPACE},
    "data": {"database-url": "cG9zdGdyZXM6Ly8="},
}
NOT_LABELLED = "labelled app.kubernetes.io/managed-by=vulcan-operator"
NOT_OURS_BEFORE = "already labelled app.kubernetes.io/managed-by=vulcan-operator"


@pytest.mark.parametrize("kind", sorted(GOVERNED))
def test_unlabelled_objects_are_refused(kind: str) -> None:
    obj = by_kind(kind)
    for bad in (unlabelled(obj), relabelled(obj, "helm")):
        refused = review("CREATE", bad)
        assert refused and NOT_LABELLED in refused[0], refused
        assert review("UPDATE", bad, obj), "dropping the label in a patch"
    # Adding our label to a user's object in the same patch that changes it is a takeover.
    refused = review("UPDATE", obj, unlabelled(obj))
    assert refused is not None and len(refused) == 1 and NOT_OURS_BEFORE in refused[0]
    assert review("DELETE", None, unlabelled(obj)) == refused


def test_a_users_secret_cannot_be_read_into_nor_taken_over() -> None:
    ours = {
        **USERS_SECRET,
        "metadata": {**USERS_SECRET["metadata"], "labels": {LABEL: "vulcan-operator"}},
    }
    assert review("UPDATE", ours, USERS_SECRET)
    assert review("CREATE", USERS_SECRET)


def test_other_users_are_not_governed() -> None:
    assert review("CREATE", USERS_SECRET, user="admin") is None
    assert (
        review("CREATE", USERS_SECRET, user="system:serviceaccount:other:vulcan-operator") is None
    )
    assert review("DELETE", None, unlabelled(by_kind("Job")), user="system:admin") is None


def role_with(rules: list[Obj]) -> Obj:
    role = by_kind("Role")
    role["rules"] = rules
    return role


SOLVER_ROLE = by_kind("Role")
GET_PROBLEM, PATCH_STATUS, PATCH_SCHEDULE = SOLVER_ROLE["rules"]
BAD_RULES = {
    "secrets": {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["x"],
    },
    "no-resource-names": {k: v for k, v in GET_PROBLEM.items() if k != "resourceNames"},
    "two-names": {**GET_PROBLEM, "resourceNames": ["a", "b"]},
    "empty-names": {**GET_PROBLEM, "resourceNames": []},
    "extra-verb": {**GET_PROBLEM, "verbs": ["get", "list"]},
    "wildcard-verb": {**PATCH_STATUS, "verbs": ["*"]},
    "wildcard-resource": {**GET_PROBLEM, "resources": ["*"]},
    "extra-resource": {**PATCH_SCHEDULE, "resources": ["configmaps", "secrets"]},
    "other-group": {**PATCH_SCHEDULE, "apiGroups": ["apps"]},
    "both-groups": {**GET_PROBLEM, "apiGroups": ["vulcan-engine.com", ""]},
    "status-get": {**PATCH_STATUS, "verbs": ["get"]},
    "schedule-list": {**PATCH_SCHEDULE, "verbs": ["get", "list", "patch"]},
    "schedule-update": {**PATCH_SCHEDULE, "verbs": ["get", "update"]},
    "escalate": {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles"],
        "verbs": ["escalate"],
        "resourceNames": ["x"],
    },
    "non-resource": {**GET_PROBLEM, "nonResourceURLs": ["/metrics"]},
}


def test_the_solver_role_is_exactly_the_builders() -> None:
    assert review("CREATE", SOLVER_ROLE) == []
    for rule in SOLVER_ROLE["rules"]:
        assert review("CREATE", role_with([rule])) == [], rule
    assert review("CREATE", role_with([])) == []
    # Pods racing on one problem (spec.solver.parallelism) also get their schedule ConfigMap.
    racing = {**PATCH_SCHEDULE, "verbs": ["get", "patch"]}
    assert review("CREATE", role_with([GET_PROBLEM, PATCH_STATUS, racing])) == []


@pytest.mark.parametrize("name", sorted(BAD_RULES))
def test_a_role_with_other_rules_is_refused(name: str) -> None:
    for rules in ([BAD_RULES[name]], [*SOLVER_ROLE["rules"], BAD_RULES[name]]):
        refused = review("CREATE", role_with(rules))
        assert refused and "only the solver pod's rules" in refused[0], refused
        assert review("UPDATE", role_with(rules), SOLVER_ROLE), "widening it in a patch"


def binding_with(**changes: Any) -> Obj:
    binding = by_kind("RoleBinding")
    for path, value in changes.items():
        target = binding
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return binding


BAD_BINDINGS: dict[str, dict[str, Any]] = {
    "cluster-admin": {
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        }
    },
    "another-role": {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "admin"}
    },
    "another-account": {
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NAMESPACE}]
    },
    "another-namespace": {
        "subjects": [{"kind": "ServiceAccount", "name": "ft06-solver", "namespace": "kube-system"}]
    },
    "a-user": {
        "subjects": [
            {"kind": "User", "name": "ft06-solver", "apiGroup": "rbac.authorization.k8s.io"}
        ]
    },
    "a-group": {
        "subjects": [
            {
                "kind": "Group",
                "name": "system:authenticated",
                "apiGroup": "rbac.authorization.k8s.io",
            }
        ]
    },
    "two-subjects": {
        "subjects": [
            {"kind": "ServiceAccount", "name": "ft06-solver", "namespace": NAMESPACE},
            {"kind": "ServiceAccount", "name": "default", "namespace": NAMESPACE},
        ]
    },
    "no-subjects": {"subjects": []},
}


def test_the_solver_binding_is_the_builders() -> None:
    binding = by_kind("RoleBinding")
    assert binding["roleRef"]["name"] == binding["metadata"]["name"]
    assert review("CREATE", binding) == []


@pytest.mark.parametrize("name", sorted(BAD_BINDINGS))
def test_a_binding_to_anything_else_is_refused(name: str) -> None:
    refused = review("CREATE", binding_with(**BAD_BINDINGS[name]))
    assert refused and "may bind only the Role of its own name" in refused[0], refused


def job_pod(**changes: Any) -> Obj:
    job = by_kind("Job")
    pod = job["spec"]["template"]["spec"]
    for key, value in changes.items():
        if value is None:
            pod.pop(key, None)
        else:
            pod[key] = value
    return job


TOKEN_VOLUME = {
    "name": "token",
    "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
}
BAD_JOBS: dict[str, dict[str, Any]] = {
    "default-account-token": {"serviceAccountName": None, "automountServiceAccountToken": None},
    "another-account": {"serviceAccountName": "admin", "automountServiceAccountToken": True},
    "token-volume": {
        "serviceAccountName": "admin",
        "automountServiceAccountToken": False,
        "volumes": [TOKEN_VOLUME],
    },
}


def test_every_job_the_operator_makes_is_tokenless_or_a_solver() -> None:
    for job in (o for o in WRITTEN if o["kind"] == "Job"):
        pod = job["spec"]["template"]["spec"]
        solver = pod.get("serviceAccountName", "").endswith("-solver")
        assert solver or pod.get("automountServiceAccountToken") is False, job["metadata"]["name"]


@pytest.mark.parametrize("name", sorted(BAD_JOBS))
def test_a_job_that_borrows_a_token_is_refused(name: str) -> None:
    refused = review("CREATE", job_pod(**BAD_JOBS[name]))
    assert refused and "must not give its pods an API token" in refused[0], refused
    ok = job_pod(serviceAccountName="admin", automountServiceAccountToken=False)
    assert review("CREATE", ok) == []


# --- the objects themselves ---------------------------------------------------------------------
def test_the_policy_is_valid_and_bound_to_deny() -> None:
    docs = documents()
    validate_manifests(docs)
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == POLICY["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"], "every namespace"
    assert POLICY["spec"]["failurePolicy"] == "Fail"
    governed = {
        (group, plural)
        for rule in POLICY["spec"]["matchConstraints"]["resourceRules"]
        for group in rule["apiGroups"]
        for plural in rule["resources"]
        if set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}
    }
    assert governed == {(g, p) for g, _, p in GOVERNED.values()}


def test_the_policy_names_the_operators_service_account() -> None:
    accounts = [
        d
        for path in (REPO / "manifests").rglob("*.yaml")
        for d in yaml.safe_load_all(path.read_text())
        if d and d.get("kind") == "ServiceAccount"
    ]
    (account,) = accounts
    meta = account["metadata"]
    expected = f"system:serviceaccount:{meta['namespace']}:{meta['name']}"
    assert expected == OPERATOR
    (condition,) = POLICY["spec"]["matchConditions"]
    assert f"'{OPERATOR}'" in condition["expression"]
