"""The solver Job of a problem whose engine is in another namespace (issue 15, defect 9): it
runs in the problem's namespace and holds no reference to the engine's database Secret."""

from __future__ import annotations

import json

from tests.support.manifests import validate_manifest
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblemSpec
from vulcan_operator.builders.problem import ProblemInputs, build

SPEC = {
    "engineRef": {"name": "prod", "namespace": "vulcan"},
    "machines": [{"name": "m1"}],
    "jobs": [{"name": "j1", "tasks": [{"name": "a", "duration": 3, "machines": ["m1"]}]}],
}
ENGINE = {"version": "2.0.0", "database": {"urlSecretRef": {"name": "vulcan-db", "key": "url"}}}


def inputs(engine_namespace: str) -> ProblemInputs:
    return ProblemInputs(
        name="week-1",
        namespace="plant-a",
        uid="00000000-0000-0000-0000-000000000001",
        generation=1,
        spec=SchedulingProblemSpec.model_validate(SPEC),
        engine=VulcanEngineSpec.model_validate(ENGINE),
        engine_namespace=engine_namespace,
    )


def test_a_foreign_problems_pod_gets_no_database_reference() -> None:
    children = build(inputs("vulcan"))
    for child in children:
        validate_manifest(child)
        assert child["metadata"]["namespace"] == "plant-a"
        assert "vulcan-db" not in json.dumps(child) and "secretKeyRef" not in json.dumps(child)
    (job,) = [c for c in children if c["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "DATABASE_URL" not in {e["name"] for e in container["env"]}


def test_a_problem_of_the_engines_namespace_still_gets_it_by_reference() -> None:
    for own in ("plant-a", ""):
        (job,) = [c for c in build(inputs(own)) if c["kind"] == "Job"]
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "vulcan-db"
