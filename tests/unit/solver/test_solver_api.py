"""solver.api.run, the entry every command line and the pod share, and the guard's watch alone."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.solver_testkit import assert_valid, random_job_shop
from vulcan_operator.solver import api, guard
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.progress import Progress
from vulcan_operator.solver.result import SolveResult


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so a stuck fake search ends."""
    event = threading.Event()
    yield event
    event.set()


def test_run_reports_progress_and_hands_the_result_over_before_returning() -> None:
    problem = random_job_shop(1, 4, 3)
    seen: list[Progress] = []
    handed: list[SolveResult] = []
    result = api.run(
        problem,
        SolverSettings(maxTimeSeconds=5, numWorkers=2),
        api.Callbacks(progress=[seen.append], result=handed.append),
    )
    assert_valid(problem, result)
    assert handed == [result]
    assert seen and seen[-1].objective == result.objective


def test_sigterm_stops_the_search_and_the_best_schedule_so_far_is_the_result() -> None:
    problem = random_job_shop(7, 20, 20)  # far from proven optimal in a minute
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    timer.start()
    try:
        result = api.run(problem, SolverSettings(maxTimeSeconds=60, numWorkers=2))
    finally:
        timer.cancel()
    assert time.monotonic() - started < 1.0 + guard.GRACE_SECONDS + 5  # slack for a loaded CI
    assert result.stop_reason == "interrupted"
    assert_valid(problem, result)
    assert signal.getsignal(signal.SIGTERM) == before  # handed back


def test_a_signal_while_the_result_is_written_changes_nothing() -> None:
    problem = random_job_shop(2, 3, 3)
    written: list[str] = []

    def write(result: SolveResult) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test run with the default handler
        time.sleep(0.05)
        written.append(result.status.value)

    api.run(problem, SolverSettings(maxTimeSeconds=5), api.Callbacks(result=write))
    assert len(written) == 1


def test_the_guard_gives_up_on_a_search_that_ignores_its_stop(release: threading.Event) -> None:
    asked: list[float] = []
    started = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - started

    watched = guard.watch(
        lambda: release.wait(30),
        lambda: asked.append(elapsed()),
        stop=None,
        elapsed=elapsed,
        phase_end=0.1,
        limit=0.1,
        memory_mb=1 << 30,
    )
    took = elapsed()
    assert watched.reason == "wallClockGuard"
    assert len(asked) == 1 and asked[0] >= 0.1 + guard.STOP_AFTER
    assert 0.1 + guard.GRACE_SECONDS <= took < 0.1 + guard.GRACE_SECONDS + 1
    assert guard.abandoned_solver_thread()
    release.set()


def test_the_guard_stops_a_search_on_request(release: threading.Event) -> None:
    stop = threading.Event()
    stop.set()
    watched = guard.watch(
        lambda: release.wait(30),
        release.set,  # this search does stop when asked
        stop=stop,
        elapsed=lambda: 0.0,
        phase_end=10,
        limit=10,
        memory_mb=1 << 30,
    )
    assert watched == guard.Watch("interrupted", "")
