"""spec.solver.logSearch in the solver Job: a pod flag, not a setting of the search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders.problem import ProblemInputs, build_job
from vulcan_operator.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def ft06(log_search: object = None) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ft06.yaml").read_text())
    doc["metadata"].update(namespace="plant-a", uid="u-1", generation=1)
    if log_search is not None:
        doc["spec"].setdefault("solver", {})["logSearch"] = log_search
    return doc


def inputs(doc: dict[str, Any]) -> ProblemInputs:
    return ProblemInputs(
        name=doc["metadata"]["name"],
        namespace="plant-a",
        uid="u-1",
        generation=1,
        spec=SchedulingProblem.model_validate(doc).spec,
        engine=VulcanEngineSpec.model_validate({"version": "2.0.0"}),
        settings=Settings(operator_image="ghcr.io/vulcan-engine/vulcan-operator:test"),
    )


@pytest.mark.parametrize("value", [True, False, None])
def test_the_pod_gets_the_flag_only_when_asked(value: bool | None) -> None:
    job = build_job(inputs(ft06(value)))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert ("--log-search" in container["args"]) is bool(value)


def test_it_does_not_change_the_solve_settings() -> None:
    assert inputs(ft06(True)).solver == inputs(ft06()).solver


def test_a_wrong_type_names_the_field() -> None:
    with pytest.raises(ValueError, match="logSearch"):
        SchedulingProblem.model_validate(ft06("loud"))
