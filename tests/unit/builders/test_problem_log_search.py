"""spec.solver.logSearch in the solver Job: a pod flag, not a setting of the search."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.builders.test_problem import container, ft06, inputs
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders.problem import build_job


@pytest.mark.parametrize("value", [True, False, None])
def test_the_pod_gets_the_flag_only_when_asked(value: bool | None) -> None:
    doc: dict[str, Any] = ft06()
    if value is not None:
        doc["spec"].setdefault("solver", {})["logSearch"] = value
    job = build_job(inputs(doc))
    assert ("--log-search" in container(job)["args"]) is bool(value)


def test_it_does_not_change_the_solve_settings() -> None:
    plain, logged = ft06(), ft06()
    logged["spec"].setdefault("solver", {})["logSearch"] = True
    assert inputs(logged).solver == inputs(plain).solver


def test_a_wrong_type_names_the_field() -> None:
    doc = ft06()
    doc["spec"].setdefault("solver", {})["logSearch"] = "loud"
    with pytest.raises(ValueError, match="logSearch"):
        SchedulingProblem.model_validate(doc)
