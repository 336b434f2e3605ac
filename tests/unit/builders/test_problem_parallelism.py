"""spec.solver.parallelism in the solver Job: an Indexed Job of N portfolio members; with the
field unset or 1, the Job and Role are what they always were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import validate_manifests
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders.problem import ProblemInputs, build, cap_issues
from vulcan_operator.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def ft06(parallelism: object = None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ft06.yaml").read_text())
    doc["metadata"].update(namespace="plant-a", uid="u-1", generation=1)
    if parallelism is not None:
        doc["spec"].setdefault("solver", {})["parallelism"] = parallelism
    return doc


def inputs(doc: dict[str, Any], **solver: Any) -> ProblemInputs:
    return ProblemInputs(
        name=doc["metadata"]["name"],
        namespace="plant-a",
        uid="u-1",
        generation=1,
        spec=SchedulingProblem.model_validate(doc).spec,
        engine=VulcanEngineSpec.model_validate({"version": "2.0.0", "solver": solver}),
        settings=Settings(operator_image="ghcr.io/vulcan-engine/vulcan-operator:test"),
    )


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objs}


def test_one_pod_is_the_plain_job_and_role_of_before() -> None:
    assert build(inputs(ft06(1))) == build(inputs(ft06()))
    children = by_kind(build(inputs(ft06())))
    job = children["Job"]
    assert "completionMode" not in job["spec"] and "completions" not in job["spec"]
    assert "--parallelism" not in job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert children["Role"]["rules"][2]["verbs"] == ["patch"]


def test_three_pods_are_an_indexed_job_whose_pods_read_the_stored_best() -> None:
    objs = build(inputs(ft06(3)))
    children = by_kind(objs)
    spec = children["Job"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    # No retries, counted per member: a failing member does not end the others' race.
    assert spec["backoffLimitPerIndex"] == 0 and "backoffLimit" not in spec
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--parallelism") + 1] == "3"
    # Every pod has the limits of one pod: the caps are per pod.
    one = by_kind(build(inputs(ft06())))["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert spec["template"]["spec"]["containers"][0]["resources"] == one["resources"]
    # Get and patch on the one schedule ConfigMap, nothing more.
    rule = children["Role"]["rules"][2]
    assert rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["ft06-schedule"],
        "verbs": ["get", "patch"],
    }
    validate_manifests(objs)


@pytest.mark.parametrize("value", [0, 9, "two"])
def test_out_of_range_values_name_the_field(value: object) -> None:
    with pytest.raises(ValueError, match="parallelism"):
        SchedulingProblem.model_validate(ft06(value))


def test_more_pods_than_the_engine_runs_at_once_is_over_its_caps() -> None:
    spec = SchedulingProblem.model_validate(ft06(3)).spec
    two = VulcanEngineSpec.model_validate({"version": "2.0.0", "solver": {"maxConcurrentJobs": 2}})
    assert cap_issues(spec, two) == [
        "spec.solver.parallelism: 3 is more than engine 'prod' allows (2, its "
        "spec.solver.maxConcurrentJobs: each pod of a problem takes one of its slots)"
    ]
    three = VulcanEngineSpec.model_validate(
        {"version": "2.0.0", "solver": {"maxConcurrentJobs": 3}}
    )
    assert cap_issues(spec, three) == []


def test_it_does_not_change_the_solve_settings() -> None:
    assert inputs(ft06(4)).solver == inputs(ft06()).solver
