"""The solver as a library: `run(problem, settings, callbacks) -> SolveResult`.

What every entrypoint needs around `solve()`, once: the `vulcan-operator solve` command
(`solver.cli`), the JSON-lines runner (`solver.runner`) and the solver pod
(`vulcan_operator.solverpod`) all call `run`.

- SIGTERM and SIGINT stop the search (in the main thread): the best schedule so far is the
  result, as for a time limit. The handlers stay until `callbacks.result` has returned, so a
  second signal while the result is written changes nothing.
- The result's schedule is checked by the independent checker; a violation (never expected:
  the model and the checker disagree) is printed on stderr.
- `exit_process(code)` ends an entrypoint without waiting for a CP-SAT thread the wall-clock
  guard gave up on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from vulcan_operator.solver import portfolio
from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.guard import abandoned_solver_thread
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import ProgressCallback, fan_out
from vulcan_operator.solver.result import SolveResult
from vulcan_operator.solver.solve import solve

__all__ = ["Callbacks", "exit_process", "run", "stop_on_signals"]


@dataclass(frozen=True)
class Callbacks:
    """What a caller hears of a solve."""

    #: Called for every improving schedule, from the solver's threads: keep them quick.
    progress: Sequence[ProgressCallback] = ()
    #: Called with the result before `run` returns, while a signal still only stops the
    #: search: write what must survive a SIGTERM here.
    result: Callable[[SolveResult], None] | None = None
    #: Hears CP-SAT's search log, line by line (and the dispatch and repair lines); None: off.
    search_log: Callable[[str], None] | None = None


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set `stop`; returns a function restoring the old handlers.

    Does nothing outside the main thread (Python only delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda _signum, _frame: stop.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def run(
    problem: ProblemData,
    settings: SolverSettings | None = None,
    callbacks: Callbacks | None = None,
    *,
    stop: threading.Event | None = None,
    member: int = 0,
) -> SolveResult:
    """Solve `problem` with `settings`; SIGTERM/SIGINT (and `stop`) end the search early.

    `member`: this run's place in a portfolio of pods racing on the problem (its seed and
    strategy, see `portfolio`); 0 is the single-pod run."""
    callbacks = callbacks or Callbacks()
    stop = stop if stop is not None else threading.Event()
    restore = stop_on_signals(stop)
    try:
        settings, tuning, _ = portfolio.member(settings or SolverSettings(), member)
        result = solve(
            problem,
            settings,
            tuning=tuning,
            stop=stop,
            on_progress=fan_out(list(callbacks.progress)) if callbacks.progress else None,
            search_log=callbacks.search_log,
        )
        violations = check_schedule(problem, result.assignments) if result.assignments else []
        if violations:  # never expected: the model and the checker disagree
            print(
                "internal error: the schedule breaks rules: " + "; ".join(violations[:5]),
                file=sys.stderr,
            )
        if callbacks.result is not None:
            callbacks.result(result)
        return result
    finally:
        restore()


def exit_process(code: int) -> NoReturn:
    """Exit with `code`; at once when CP-SAT ignored a stop request (everything is written:
    do not wait for its thread)."""
    if abandoned_solver_thread():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
