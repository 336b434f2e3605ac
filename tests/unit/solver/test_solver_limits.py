"""Solver limits: memory and wall time.

Memory. The pod's memory limit is also given to CP-SAT (`max_memory_in_mb`, 90 % of it). What
happens when a problem does not fit:
- CP-SAT fails an allocation (std::bad_alloc, a MemoryError in Python, as measured under a
  hard address-space cap): the solve still ends at once with the best schedule so far, stop
  reason `outOfMemory` and an explanation naming memory;
- CP-SAT 9.15 does not stop at `max_memory_in_mb` (measured: 1 MB, or a process 300 MB over it,
  and the search runs to the time limit), so the solver's guard watches the process's resident
  memory and stops the search at MEMORY_SHARE of the limit (stop reason `memoryLimit`); past
  that only the kernel enforces the limit: the pod is OOM-killed and the operator says to raise
  spec.solver.memoryLimitMB (reconcile/solverjob.py, tests/integration/test_problems.py);
- a worker thread that cannot even start (seen under a hard cap) is a result (the dispatch
  schedule, stop reason `error`), not a crash.

Wall time. `solve()` returns within the time limit plus GRACE_SECONDS across a sample of the
bench families (the instances in tests/data/solver, random job shops and flexible problems);
the whole bench set by `bench/limits.py` (27 instances: none over, at 1 s and at 0.2 s); and
on large problems too: the greedy dispatch start and the model build check the same deadline.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ortools.sat.python import cp_model

from tests.support.solver_testkit import (
    DATA,
    assert_valid,
    bench_module,
    random_job_shop,
    random_problem,
)
from vulcan_operator.solver import runner
from vulcan_operator.solver.guard import GRACE_SECONDS, MEMORY_SHARE
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.result import Status
from vulcan_operator.solver.solve import Tuning, parameters, solve

# On a loaded CI machine a thread wakes up late: the guard's own slack, not the solver's.
SCHEDULING_SLACK = 0.3
MEMORY_STOPS = ("memoryLimit", "outOfMemory", "error")


def flexible(seed: int, jobs: int, machines: int, options: int) -> ProblemData:
    """Every job visits `machines` operations, each with `options` eligible machines."""
    rng = random.Random(seed)
    return ProblemData.model_validate(
        {
            "machines": [{"name": f"m{m}"} for m in range(machines)],
            "jobs": [
                {
                    "name": f"j{j}",
                    "tasks": [
                        {
                            "name": f"o{k}",
                            "duration": rng.randint(1, 99),
                            "machines": [f"m{m}" for m in rng.sample(range(machines), options)],
                        }
                        for k in range(machines)
                    ],
                }
                for j in range(jobs)
            ],
        }
    )


def timed_solve(problem: ProblemData, settings: SolverSettings) -> tuple[Any, float]:
    started = time.monotonic()
    result = solve(problem, settings)
    return result, time.monotonic() - started


# --- memory -----------------------------------------------------------------------------------
def test_the_memory_limit_reaches_cpsat() -> None:
    args = argparse.Namespace(time_limit=1.0, workers=1, seed=None, memory_limit=256)
    settings = runner.apply_overrides(SolverSettings(), args)
    assert settings.memoryLimitMB == 256
    values = parameters(settings, 1.0, Tuning())
    assert values["max_memory_in_mb"] == int(256 * MEMORY_SHARE)


@pytest.fixture
def out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """CP-SAT failing an allocation, as it does under a hard memory cap (std::bad_alloc
    surfaces as MemoryError), a little into the search."""

    def solve_until_oom(self: cp_model.CpSolver, model: Any, callback: Any = None) -> Any:
        time.sleep(0.2)
        raise MemoryError("std::bad_alloc")

    monkeypatch.setattr(cp_model.CpSolver, "solve", solve_until_oom)


def run_runner(tmp_path: Path, problem: ProblemData, *args: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(problem.model_dump()))
    output, log = tmp_path / "result.json", tmp_path / "termination-log"
    code = runner.main(
        [
            "--problem",
            str(path),
            "--output",
            str(output),
            "--termination-log",
            str(log),
            *args,
        ]
    )
    return code, json.loads(log.read_text())


@pytest.mark.usefixtures("out_of_memory")
def test_running_out_of_memory_ends_the_solve_at_once_with_a_schedule_and_says_so(
    tmp_path: Path,
) -> None:
    problem = random_job_shop(4, 15, 8)
    started = time.monotonic()
    code, summary = run_runner(
        tmp_path, problem, "--time-limit", "5", "--workers", "2", "--memory-limit", "256"
    )
    took = time.monotonic() - started
    assert code == 0
    assert took < 5, "it waited for the time limit"
    assert summary["status"] == Status.FEASIBLE  # the dispatch schedule, not nothing
    assert any("memory" in line.lower() for line in summary["explanation"]), summary
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["assignments"]) == 15 * 8


@pytest.mark.usefixtures("out_of_memory")
def test_an_out_of_memory_stop_is_not_called_a_time_limit(tmp_path: Path) -> None:
    _, summary = run_runner(tmp_path, random_job_shop(4, 15, 8), "--time-limit", "5")
    assert summary["stopReason"] in MEMORY_STOPS, summary


def test_a_solver_thread_that_cannot_start_is_a_result_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == "cp-sat":
            raise RuntimeError("can't start new thread")
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    code, summary = run_runner(tmp_path, random_job_shop(4, 6, 4), "--time-limit", "2")
    assert code == 0 and summary["status"] == Status.FEASIBLE


def test_the_search_stops_at_the_memory_limit() -> None:
    ballast = b"x" * (320 << 20)  # written, so resident: the process is over 256 MiB
    problem = random_job_shop(5, 15, 10)
    result, took = timed_solve(
        problem, SolverSettings(maxTimeSeconds=2, numWorkers=2, memoryLimitMB=256)
    )
    del ballast
    assert result.stop_reason in MEMORY_STOPS, (result.stop_reason, took)


# --- wall time --------------------------------------------------------------------------------
LIMIT = 0.5


def bench_sample() -> list[tuple[str, ProblemData]]:
    loaders = bench_module("loaders")
    return [
        ("ft06", loaders.to_problem(*loaders.read(DATA / "ft06.txt", "jsp"))),
        ("mk01", loaders.to_problem(*loaders.read(DATA / "mk01.txt", "fjsp"))),
        ("job shop 20x10", random_job_shop(7, 20, 10)),
        ("flexible 30x8x3", flexible(8, 30, 8, 3)),
        ("plant-like", random_problem(9, n_jobs=25, n_machines=6)),
    ]


SAMPLE = bench_sample()


@pytest.mark.parametrize(("name", "problem"), SAMPLE, ids=[name for name, _ in SAMPLE])
def test_wall_time_stays_within_the_limit_plus_grace(name: str, problem: ProblemData) -> None:
    result, took = timed_solve(problem, SolverSettings(maxTimeSeconds=LIMIT, numWorkers=2))
    assert took <= LIMIT + GRACE_SECONDS + SCHEDULING_SLACK, (name, took, result.stop_reason)
    assert result.wall_seconds <= LIMIT + GRACE_SECONDS + SCHEDULING_SLACK
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert_valid(problem, result)


def test_a_large_problem_also_stays_within_the_limit_plus_grace() -> None:
    problem = flexible(10, 250, 10, 3)
    limit = 0.1
    result, took = timed_solve(problem, SolverSettings(maxTimeSeconds=limit, numWorkers=2))
    assert took <= limit + GRACE_SECONDS + SCHEDULING_SLACK, (took, result.stop_reason)
