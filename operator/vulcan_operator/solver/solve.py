"""One solve: dispatch start, CP-SAT search under a hard wall-clock guard, a result.

`solve()` never raises for a problem's content and always returns within the time limit plus
`GRACE_SECONDS`: CP-SAT runs on a worker thread; at the limit (plus a quarter second) the guard
asks it to stop, and if it still has not returned by the grace deadline the best schedule seen
so far is returned and the thread is left behind (a daemon; the entrypoints then exit). Setting
`stop` (what SIGTERM does in the entrypoints) stops the search the same way, early.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ortools.sat.python import cp_model

from vulcan_operator.solver import explain
from vulcan_operator.solver.dispatch import best_dispatch
from vulcan_operator.solver.instance import Instance
from vulcan_operator.solver.model import BuiltModel, ModelOptions, add_hint, build, decode
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import Progress, ProgressCallback
from vulcan_operator.solver.result import SolveResult, Status, relative_gap
from vulcan_operator.solver.schedule import Schedule, compact

GRACE_SECONDS = 1.0
"""A solve returns at most this long after its time limit, whatever CP-SAT does."""
_STOP_AFTER = 0.25
"""How long past the limit CP-SAT may run before the guard asks it to stop."""
MEMORY_SHARE = 0.9
"""Share of the memory limit given to CP-SAT; the rest is for Python and the result."""

DEFAULT_PARAMETERS: dict[str, Any] = {}
"""CP-SAT parameters we set beyond the settings (the measured winners, bench/RESULTS.md)."""


@dataclass(frozen=True, slots=True)
class Phase:
    """One CP-SAT search: it runs until `until` x the time limit (the last one to the limit),
    with these parameters on top of the common ones, hinted with the best schedule so far."""

    until: float = 1.0
    parameters: dict[str, Any] = field(default_factory=dict)


DEFAULT_PHASES: tuple[Phase, ...] = (
    Phase(0.2),
    Phase(1.0, {"use_lns_only": True}),
)
"""The search phases, measured in bench/RESULTS.md: CP-SAT's default portfolio for the first
fifth of the time (it proves small problems optimal, or infeasible, in a fraction of a
second), then every worker on large neighbourhood search from the best schedule so far (with
two workers the default portfolio gives LNS only one of them; on the large job shops, LNS on
both cut the mean gap to the best known by a third)."""


@dataclass(frozen=True, slots=True)
class Tuning:
    """Model options, extra CP-SAT parameters and search phases; bench/ varies them."""

    model: ModelOptions = field(default_factory=ModelOptions)
    parameters: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMETERS))
    phases: tuple[Phase, ...] = DEFAULT_PHASES


class _Best:
    """The best schedule so far, shared by the solver thread and the caller (locked)."""

    def __init__(
        self, instance: Instance, started: float, on_progress: ProgressCallback | None
    ) -> None:
        self.instance = instance
        self.started = started
        self.on_progress = on_progress
        self.lock = threading.Lock()
        self.schedule: Schedule | None = None
        self.objective: int | None = None
        self.bound: int | None = None
        self.solutions = 0

    def offer(self, schedule: Schedule, bound: int | None, source: str) -> None:
        schedule = compact(self.instance, schedule)
        objective = self.instance.objective_of(schedule.ends)
        with self.lock:
            if bound is not None:
                self.bound = bound if self.bound is None else max(self.bound, bound)
            if self.objective is not None and objective >= self.objective:
                return
            self.schedule, self.objective = schedule, objective
            self.solutions += 1
            if self.bound is not None:
                self.bound = min(self.bound, objective)
            event = Progress(
                objective=objective,
                bound=self.bound,
                gap=relative_gap(objective, self.bound),
                elapsed_seconds=time.monotonic() - self.started,
                solutions=self.solutions,
                source=source,
            )
        if self.on_progress is not None:
            self.on_progress(event)

    def raise_bound(self, bound: float) -> None:
        """Take a proven lower bound into account (never above the best objective)."""
        if not math.isfinite(bound):
            return
        with self.lock:
            value = _integer_bound(bound)
            self.bound = value if self.bound is None else max(self.bound, value)
            if self.objective is not None:
                self.bound = min(self.bound, self.objective)


def _integer_bound(bound: float) -> int:
    """CP-SAT's (float) bound of our integer objective, rounded up; 0 if not finite."""
    return math.ceil(bound - 1e-6) if math.isfinite(bound) else 0


class _Callback(cp_model.CpSolverSolutionCallback):
    def __init__(self, built: BuiltModel, best: _Best) -> None:
        super().__init__()
        self.built = built
        self.best = best

    def on_solution_callback(self) -> None:
        bound = max(self.built.objective_lower_bound, _integer_bound(self.best_objective_bound))
        self.best.offer(decode(self, self.built), bound, "cp-sat")


def parameters(
    settings: SolverSettings, time_limit: float, tuning: Tuning, phase: Phase | None = None
) -> dict[str, Any]:
    """CP-SAT parameters for one search phase."""
    values: dict[str, Any] = {
        "num_workers": settings.numWorkers,
        "random_seed": settings.seed,
        "max_time_in_seconds": max(0.01, time_limit),
        "max_memory_in_mb": max(64, int(settings.memoryLimitMB * MEMORY_SHARE)),
        "use_lns": settings.useLNS,
        "catch_sigint_signal": False,
        "log_search_progress": False,
    }
    values.update(tuning.parameters)
    if phase is not None:
        values.update(phase.parameters)
    return values


def solve(
    problem: ProblemData,
    settings: SolverSettings | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    tuning: Tuning | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SolveResult:
    """Solve `problem` within `settings.maxTimeSeconds` (+ GRACE_SECONDS at worst)."""
    started = clock()
    settings = settings or SolverSettings()
    tuning = tuning or Tuning()
    limit = settings.maxTimeSeconds
    instance = Instance.from_problem(problem)

    def elapsed() -> float:
        return clock() - started

    if not instance.tasks:
        return SolveResult(Status.OPTIMAL, 0, 0, 0, elapsed(), stop_reason="optimal")
    reasons = explain.precheck(instance)
    if reasons:
        return SolveResult(
            Status.INFEASIBLE, wall_seconds=elapsed(), explanation=reasons, stop_reason="infeasible"
        )

    best = _Best(instance, started, on_progress)
    dispatched = best_dispatch(instance)
    start = dispatched[0] if dispatched else None
    built = build(instance, start, tuning.model)
    if start is not None and start.makespan() <= built.horizon:
        best.offer(start, built.objective_lower_bound, "dispatch")

    solver = cp_model.CpSolver()
    outcome: dict[str, Any] = {}
    reason = ""
    for k, phase in enumerate(tuning.phases):
        last = k == len(tuning.phases) - 1
        if stop is not None and stop.is_set():
            reason = "interrupted"
            break
        phase_end = limit if last else min(limit, phase.until * limit)
        if phase_end - elapsed() <= 0.01:
            if last:
                reason = reason or "timeLimit"
            continue
        if k > 0 and built.hinted:
            with best.lock:
                schedule = best.schedule
            if schedule is not None:
                built.model.clear_hints()  # type: ignore[no-untyped-call]
                add_hint(built, schedule)
        values = parameters(settings, phase_end - elapsed(), tuning, phase)
        if best.schedule is None or not settings.useLNS:
            # LNS needs a schedule to improve and cannot prove infeasibility: search fully.
            values["use_lns_only"] = False
        solver = _solver(values)
        outcome = {}
        reason = _guarded(solver, built, best, outcome, stop, elapsed, phase_end, limit)
        if reason in ("interrupted", "wallClockGuard") or "error" in outcome:
            break
        status = outcome.get("status")
        if status in (cp_model.OPTIMAL, cp_model.INFEASIBLE, cp_model.MODEL_INVALID):
            break
        best.raise_bound(solver.best_objective_bound)
    return _result(instance, built, solver, outcome, best, reason, elapsed, limit, settings, stop)


def _solver(values: dict[str, Any]) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    for name, value in values.items():
        current = getattr(solver.parameters, name)
        if isinstance(current, bool | int | float | str):
            setattr(solver.parameters, name, value)
        else:  # a repeated field
            current.extend(value if isinstance(value, list | tuple) else [value])
    return solver


def _guarded(
    solver: cp_model.CpSolver,
    built: BuiltModel,
    best: _Best,
    outcome: dict[str, Any],
    stop: threading.Event | None,
    elapsed: Callable[[], float],
    phase_end: float,
    limit: float,
) -> str:
    """Run one CP-SAT search on a thread; stop it at phase_end (or on `stop`), and give up
    on it at limit + GRACE_SECONDS. Returns "", "timeLimit", "interrupted" or
    "wallClockGuard"; the solver's status (or exception) lands in `outcome`."""

    def run() -> None:
        try:
            outcome["status"] = solver.solve(built.model, _Callback(built, best))
        except Exception as error:  # reported as a result, not a crash
            outcome["error"] = error

    thread = threading.Thread(target=run, name="cp-sat", daemon=True)
    thread.start()
    reason = ""
    stop_at, abandon_at = phase_end + _STOP_AFTER, limit + GRACE_SECONDS
    while thread.is_alive():
        thread.join(0.02)
        now = elapsed()
        if not reason and stop is not None and stop.is_set():
            reason, abandon_at = "interrupted", min(abandon_at, now + GRACE_SECONDS * 0.75)
            solver.stop_search()
        elif not reason and now >= stop_at:
            reason = "timeLimit"
            solver.stop_search()
        if now >= abandon_at and thread.is_alive():
            return "wallClockGuard"
    return reason


def _result(
    instance: Instance,
    built: BuiltModel,
    solver: cp_model.CpSolver,
    outcome: dict[str, Any],
    best: _Best,
    reason: str,
    elapsed: Callable[[], float],
    limit: float,
    settings: SolverSettings,
    stop: threading.Event | None,
) -> SolveResult:
    status = outcome.get("status")
    finished = reason != "wallClockGuard" and ("status" in outcome or "error" in outcome)
    explanation: list[str] = []
    if finished and status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        # The final response may hold a solution no callback saw (e.g. found during presolve).
        best.offer(decode(solver, built), None, "cp-sat")
    with best.lock:
        schedule, objective = best.schedule, best.objective
        bound = best.bound
    if finished and status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        proven = solver.best_objective_bound
        if status == cp_model.OPTIMAL and objective is not None:
            proven = objective
        if math.isfinite(proven):
            bound = max(bound or 0, _integer_bound(proven), built.objective_lower_bound)
    if objective is not None and bound is not None:
        bound = min(bound, objective)
    if "error" in outcome:
        explanation.append(f"The solver failed: {outcome['error']!r}.")
    if finished and status == cp_model.INFEASIBLE:
        budget = min(max(0.0, limit - elapsed()), 30.0)
        explanation = explain.diagnose(instance, budget, settings.numWorkers, stop)
        return SolveResult(
            Status.INFEASIBLE,
            wall_seconds=elapsed(),
            explanation=explanation,
            stop_reason="infeasible",
        )
    if finished and status == cp_model.MODEL_INVALID:
        detail = built.model.validate()
        return SolveResult(
            Status.MODEL_INVALID,
            wall_seconds=elapsed(),
            explanation=[
                f"CP-SAT rejected the model (a bug in the solver, please report): {detail}"
            ],
            stop_reason="error",
        )
    if schedule is None or objective is None:
        explanation.append(f"No schedule was found within {limit:g} seconds; raise the time limit.")
        return SolveResult(
            Status.UNKNOWN,
            bound=bound,
            wall_seconds=elapsed(),
            explanation=explanation,
            stop_reason=reason or "timeLimit",
        )
    optimal = (finished and status == cp_model.OPTIMAL) or objective == bound
    if optimal:
        reason = "optimal"
    elif not reason:
        reason = "timeLimit"
    if reason == "wallClockGuard":
        explanation.append(
            f"CP-SAT did not stop at the time limit; the best schedule found within "
            f"{limit:g} s (+{GRACE_SECONDS:g} s grace) is returned."
        )
    return SolveResult(
        status=Status.OPTIMAL if optimal else Status.FEASIBLE,
        objective=objective,
        bound=bound,
        makespan=schedule.makespan(),
        wall_seconds=elapsed(),
        explanation=explanation,
        assignments=schedule.assignments(instance),
        solutions=best.solutions,
        stop_reason=reason,
    )
