"""spec.solver.logSearch: CP-SAT's search log on request, on stderr, never among the JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.solver_testkit import REPO, bench_module, random_problem
from vulcan_operator.solver import runner
from vulcan_operator.solver.loader import ProblemFileError, load_text
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import solve


def test_the_exact_model_logs_cp_sat_and_the_dispatch_rules() -> None:
    lines: list[str] = []
    solve(
        random_problem(3), SolverSettings(maxTimeSeconds=2, numWorkers=1), search_log=lines.append
    )
    text = "\n".join(lines)
    assert "dispatch rule " in text
    assert "Starting CP-SAT solver" in text
    assert "log_search_progress: true" in text


def test_no_log_unless_asked(capfd: pytest.CaptureFixture[str]) -> None:
    solve(random_problem(3), SolverSettings(maxTimeSeconds=1, numWorkers=1))
    out, err = capfd.readouterr()
    assert "CP-SAT" not in out + err


def test_the_large_path_logs_one_line_per_repair() -> None:
    plant = bench_module("plantgen").plant_problem(1000, 4)
    lines: list[str] = []
    solve(plant, SolverSettings(maxTimeSeconds=3, numWorkers=1), search_log=lines.append)
    assert any(line.startswith("lns repair: ") for line in lines), lines[:5]


def test_runner_keeps_stdout_json_and_logs_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load((REPO / "examples" / "ft06.yaml").read_text())
    doc["spec"].setdefault("solver", {})["logSearch"] = True
    path = tmp_path / "ft06.yaml"
    path.write_text(yaml.safe_dump(doc))
    code = runner.main(
        ["--problem", str(path), "--output", str(tmp_path / "r.json"), "--time-limit", "2"]
    )
    assert code == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines() if line.strip()]  # all JSON
    assert events[-1]["event"] == "result"
    assert "Starting CP-SAT solver" in err


def test_the_flag_turns_it_on_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = runner.main(
        [
            "--problem",
            str(REPO / "examples" / "ft06.yaml"),
            "--output",
            str(tmp_path / "r.json"),
            "--time-limit",
            "1",
            "--log-search",
        ]
    )
    assert code == 0
    assert "Starting CP-SAT solver" in capsys.readouterr().err


PROBLEM = """
apiVersion: vulcan-engine.com/v1alpha1
kind: SchedulingProblem
metadata: {name: p}
spec:
  engineRef: {name: e}
  solver: SOLVER
  machines: [{name: m}]
  jobs: [{name: j, tasks: [{name: t, duration: 3, machines: [m]}]}]
"""


def test_problem_files_accept_parallelism_and_log_search() -> None:
    loaded = load_text(PROBLEM.replace("SOLVER", "{parallelism: 3, logSearch: true}"), "p.yaml")
    assert loaded.parallelism == 3
    assert loaded.log_search is True


@pytest.mark.parametrize(
    ("solver", "path"),
    [
        ("{parallelism: 0}", "spec.solver.parallelism"),
        ("{parallelism: 65}", "spec.solver.parallelism"),
        ("{logSearch: maybe}", "spec.solver.logSearch"),
    ],
)
def test_bad_values_name_the_field(solver: str, path: str) -> None:
    with pytest.raises(ProblemFileError) as caught:
        load_text(PROBLEM.replace("SOLVER", solver), "p.yaml")
    assert any(m.startswith(path) for m in caught.value.messages), caught.value.messages
