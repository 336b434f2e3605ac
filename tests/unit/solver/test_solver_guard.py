"""The wall-clock guarantee: a solve returns by limit + grace whatever CP-SAT does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from ortools.sat.python import cp_model

from tests.support.solver_testkit import assert_valid, random_job_shop
from vulcan_operator.solver.guard import GRACE_SECONDS
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.result import Status
from vulcan_operator.solver.solve import solve

LIMIT = 1.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so the stuck fake solver threads end."""
    event = threading.Event()
    yield event
    event.set()


def test_hung_solver_still_returns_the_dispatch_schedule(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    def hung(self: cp_model.CpSolver, model: Any, callback: Any = None) -> Any:
        release.wait(60)  # ignores stop_search(): a solver that overruns its limit
        return cp_model.UNKNOWN

    monkeypatch.setattr(cp_model.CpSolver, "solve", hung)
    problem = random_job_shop(1, 10, 5)
    started = time.monotonic()
    result = solve(problem, SolverSettings(maxTimeSeconds=LIMIT, numWorkers=2))
    took = time.monotonic() - started
    assert took <= LIMIT + GRACE_SECONDS + 0.5  # generous slack for a loaded machine
    assert result.status == Status.FEASIBLE
    assert result.stop_reason == "wallClockGuard"
    assert "did not stop at the time limit" in result.explanation[0]
    assert_valid(problem, result)


def test_overrun_after_search_keeps_the_best_schedule(
    monkeypatch: pytest.MonkeyPatch, release: threading.Event
) -> None:
    original = cp_model.CpSolver.solve

    def overrun(self: cp_model.CpSolver, model: Any, callback: Any = None) -> Any:
        status = original(self, model, callback)  # finds schedules, reports them...
        release.wait(60)  # ...then hangs, e.g. in a slow shutdown
        return status

    monkeypatch.setattr(cp_model.CpSolver, "solve", overrun)
    problem = random_job_shop(2, 10, 5)
    seen: list[int] = []
    started = time.monotonic()
    result = solve(
        problem,
        SolverSettings(maxTimeSeconds=LIMIT, numWorkers=2),
        on_progress=lambda p: seen.append(p.objective),
    )
    assert time.monotonic() - started <= LIMIT + GRACE_SECONDS + 0.5
    assert result.objective == min(seen)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert_valid(problem, result)


def test_stop_request_during_search(release: threading.Event) -> None:
    problem = random_job_shop(3, 15, 10)
    stop = threading.Event()
    timer = threading.Timer(0.8, stop.set)
    timer.start()
    started = time.monotonic()
    result = solve(problem, SolverSettings(maxTimeSeconds=30, numWorkers=2), stop=stop)
    timer.cancel()
    assert time.monotonic() - started < 0.8 + GRACE_SECONDS + 1.0
    assert result.stop_reason == "interrupted"
    assert_valid(problem, result)
