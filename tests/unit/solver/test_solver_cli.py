"""`vulcan-operator solve`: output, files, exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.solver_testkit import REPO
from vulcan_operator.cli import main
from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.loader import load_file

PLANT = REPO / "examples" / "plant.yaml"
INFEASIBLE = """\
apiVersion: vulcan-engine.com/v1alpha1
kind: SchedulingProblem
metadata: {name: tight}
spec:
  horizon: 50
  machines: [{name: saw}]
  jobs:
    - name: order-1
      tasks:
        - {name: cut, duration: 30, machines: [saw]}
        - {name: trim, duration: 30, machines: [saw]}
"""


def test_solve_plant_writes_result_and_gantt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, svg = tmp_path / "result.json", tmp_path / "plant.svg"
    code = main(
        [
            "solve",
            str(PLANT),
            "--time-limit",
            "3",
            "--workers",
            "2",
            "--seed",
            "1",
            "--output",
            str(out),
            "--gantt",
            str(svg),
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("Solving plant-week-48: 8 jobs, 25 tasks")
    assert "objective" in stdout and "dispatch" in stdout  # progress lines
    assert "status     " in stdout and "makespan   " in stdout  # summary
    assert "machine" in stdout and "operator" in stdout  # schedule table
    result = json.loads(out.read_text())
    assert result["status"] in ("OPTIMAL", "FEASIBLE")
    problem = load_file(PLANT).problem
    from vulcan_operator.solver.result import Assignment

    assert check_schedule(problem, [Assignment(**a) for a in result["assignments"]]) == []
    root = ET.fromstring(svg.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "http" not in svg.read_text().replace("http://www.w3.org/2000/svg", "")


def test_html_gantt(tmp_path: Path) -> None:
    page = tmp_path / "ft06.html"
    assert (
        main(
            [
                "solve",
                str(REPO / "examples" / "ft06.yaml"),
                "--time-limit",
                "2",
                "--quiet",
                "--gantt",
                str(page),
            ]
        )
        == 0
    )
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<script" not in text


def test_infeasible_exits_0_with_an_explanation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem, out = tmp_path / "tight.yaml", tmp_path / "r.json"
    problem.write_text(INFEASIBLE)
    assert main(["solve", str(problem), "--output", str(out), "--time-limit", "2"]) == 0
    assert "INFEASIBLE" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["status"] == "INFEASIBLE"
    assert result["assignments"] == []
    assert "Machine 'saw'" in result["explanation"][0] or "order-1" in result["explanation"][0]


def test_invalid_problem_exits_1_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = tmp_path / "bad.yaml"
    problem.write_text(
        INFEASIBLE.replace(
            "cut, duration: 30, machines: [saw]}",
            "cut, duration: 30, machines: [saw], skill: welding}",
        )
    )
    assert main(["solve", str(problem)]) == 1
    err = capsys.readouterr().err
    assert "spec.jobs[0].tasks[0].skill: no operator has skill 'welding'" in err
    assert "job 'order-1', task 'cut'" in err


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", str(tmp_path / "none.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--gantt", "chart.png"],
        ["--workers", "0"],
        ["--time-limit", "-1"],
        ["--seed", "x"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    try:
        code = main(["solve", str(PLANT), *argv])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    assert code == 2


def test_big_schedules_print_compactly(capsys: pytest.CaptureFixture[str]) -> None:
    from vulcan_operator.solver.cli import schedule_text
    from vulcan_operator.solver.result import Assignment, SolveResult, Status

    problem = load_file(REPO / "examples" / "ft06.yaml").problem
    result = SolveResult(
        Status.FEASIBLE,
        100,
        50,
        100,
        assignments=[Assignment("j0", f"o{i}", "m0", None, i, i + 1) for i in range(200)],
    )
    text = schedule_text(problem, result)
    assert text.splitlines()[0].startswith("200 tasks; per machine")
    assert len(text.splitlines()) == 1 + len(problem.machines)
