"""The Gantt chart names the time unit of its axis (the problem's own, whatever it is)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.support.solver_testkit import random_problem
from vulcan_operator.solver.gantt import TIME_UNIT, render_svg
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import solve


def test_the_time_axis_says_its_unit() -> None:
    problem = random_problem(2)
    result = solve(problem, SolverSettings(maxTimeSeconds=1, numWorkers=1))
    svg = ET.fromstring(render_svg(problem, result))
    texts = ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert TIME_UNIT in texts
    assert "unit" in TIME_UNIT
