"""One solve: dispatch start, CP-SAT search under a hard wall-clock guard, a result.

`solve()` never raises for a problem's content and always returns within the time limit plus
`GRACE_SECONDS`: CP-SAT runs on a worker thread watched by `guard` (stop at the limit, on
`stop` or near the memory limit; give up on the thread at the grace deadline and return the
best schedule seen so far). Setting `stop` (what SIGTERM does in the entrypoints) stops the
search the same way, early.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ortools.sat.python import cp_model

from vulcan_operator.solver import explain, guard, lns
from vulcan_operator.solver.dispatch import best_dispatch
from vulcan_operator.solver.guard import GRACE_SECONDS, MEMORY_SHARE
from vulcan_operator.solver.instance import DeadlinePassed, Instance
from vulcan_operator.solver.model import BuiltModel, ModelOptions, add_hint, build, decode
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import Progress, ProgressCallback
from vulcan_operator.solver.result import SolveResult, Status, relative_gap
from vulcan_operator.solver.schedule import Schedule, compact

DISPATCH_SHARE = 0.05
"""After the first dispatch rule, further rules must finish within this share of the limit."""
ACTIVE_SHARE = 0.5
"""On problems so large that the (poor) list schedule comes first, the first active-schedule
rule may take this share of the limit (20,000 plant tasks: 22 s for weighted tardiness
232,973 against the list schedule's 10.3 million)."""

BUILD_SECONDS_PER_OPTION = 1.5e-4
"""Measured cost of building the full model, per (task x eligible machine), on a loaded
2-core machine (5,000 plant tasks with about 10,000 options: 1.1-1.8 s)."""
BUILD_SHARE = 0.03
"""Above this share of the time limit for building the full model, the problem is large: it
is solved by time-window neighbourhoods (`lns`) instead, each one a small CP-SAT model."""

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
    phases: tuple[Phase, ...] | None = None
    """None: chosen by size (`phases_for`)."""


LNS_FIRST_TASKS = 500
LNS_PHASES: tuple[Phase, ...] = (Phase(1.0, {"use_lns_only": True}),)
"""From this many tasks on, every worker does LNS from the dispatch schedule from the start:
such problems are not proven optimal within seconds anyway, and the first fifth of the time
in CP-SAT's portfolio was lost. Taillard 30x20 (600 tasks), 10 s, 2 workers, on this machine:
mean gap 13.26 -> 10.92 % (5 instances, seed 3) and 14.61 -> 12.46 % (10 instances, seed 4,
8 of 10 better). Smaller problems keep DEFAULT_PHASES, whose first phase proves them optimal."""


def phases_for(instance: Instance, tuning: Tuning) -> tuple[Phase, ...]:
    """The search phases: the tuning's own, else by the problem's size."""
    if tuning.phases is not None:
        return tuning.phases
    return LNS_PHASES if len(instance.tasks) >= LNS_FIRST_TASKS else DEFAULT_PHASES


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
    search_log: Callable[[str], None] | None = None,
) -> SolveResult:
    """Solve `problem` within `settings.maxTimeSeconds` (+ GRACE_SECONDS at worst).

    Dispatch and model building run here under the same deadline (they check it as they go);
    the CP-SAT phases run on a thread watched by `guard.watch`. `search_log` (when given)
    hears CP-SAT's own search log line by line, and one line per dispatch rule and per
    neighbourhood repair."""
    started = clock()
    settings = settings or SolverSettings()
    tuning = tuning or Tuning()
    limit = settings.maxTimeSeconds
    deadline = started + limit
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
    end = _End()
    built: BuiltModel | None = None
    first_bound = instance.makespan_lower_bound() if instance.objective == "makespan" else None

    def within_horizon(schedule: Schedule) -> bool:
        return instance.horizon is None or schedule.makespan() <= instance.horizon

    def offer_dispatch(schedule: Schedule, rule: str) -> None:
        if search_log is not None:
            value = instance.objective_of(schedule.ends)
            search_log(f"dispatch rule {rule}: objective {value} at {elapsed():.2f} s")
        if within_horizon(schedule):  # the first schedule, at once: not after every rule
            best.offer(schedule, first_bound, "dispatch")

    try:
        dispatched = best_dispatch(
            instance,
            deadline=deadline,
            more_until=started + DISPATCH_SHARE * limit,
            active_until=started + ACTIVE_SHARE * limit,
            clock=clock,
            stop=stop,
            on_better=offer_dispatch,
        )
        start = dispatched[0] if dispatched else None
        feasible = start is not None and within_horizon(start)
        if start is not None and feasible and is_large(instance, limit):
            _neighbourhoods(
                instance,
                start,
                best,
                end,
                settings,
                stop,
                elapsed,
                limit,
                deadline,
                clock,
                search_log,
            )
        else:
            built = build(instance, start, tuning.model, deadline=deadline, clock=clock, stop=stop)
    except DeadlinePassed:
        end.reason = "interrupted" if stop is not None and stop.is_set() else "timeLimit"
    if built is not None:
        best.raise_bound(built.objective_lower_bound)
        _search(built, best, end, settings, tuning, stop, elapsed, limit, search_log)
    return _result(instance, built, best, end, elapsed, limit, settings, stop)


def is_large(instance: Instance, limit: float) -> bool:
    """Whether building the full model would take more than BUILD_SHARE of the limit."""
    options = sum(len(t.options) + len(t.operators) for t in instance.tasks)
    return options * BUILD_SECONDS_PER_OPTION > BUILD_SHARE * limit


def _neighbourhoods(
    instance: Instance,
    start: Schedule,
    best: _Best,
    end: _End,
    settings: SolverSettings,
    stop: threading.Event | None,
    elapsed: Callable[[], float],
    limit: float,
    deadline: float,
    clock: Callable[[], float],
    search_log: Callable[[str], None] | None,
) -> None:
    """Large problems: time-window LNS from the dispatch schedule, under the guard."""
    repairer = lns.Repairer(instance, settings.numWorkers, settings.seed)
    repairer.log = search_log
    repairer.memory_mb = max(64, int(settings.memoryLimitMB * MEMORY_SHARE))

    def search() -> None:
        try:
            lns.search(
                instance,
                start,
                lambda schedule: best.offer(schedule, None, "lns"),
                deadline=deadline,
                workers=settings.numWorkers,
                seed=settings.seed,
                stop=stop,
                clock=clock,
                repairer=repairer,
            )
        except BaseException as error:
            end.error = error

    try:
        watched = guard.watch(
            search,
            repairer.stop,
            stop=stop,
            elapsed=elapsed,
            phase_end=limit,
            limit=limit,
            memory_mb=settings.memoryLimitMB,
        )
    except RuntimeError as error:
        end.reason, end.error = "error", error
        end.detail = f"The search could not start ({error}); the dispatch schedule is returned."
        return
    end.reason = watched.reason or ("interrupted" if stop is not None and stop.is_set() else "")
    end.detail = watched.detail


@dataclass(slots=True)
class _End:
    """How the search ended: the last solver, its status or exception, and why it stopped."""

    solver: cp_model.CpSolver | None = None
    status: Any = None
    error: BaseException | None = None
    reason: str = ""
    detail: str = ""


def _search(
    built: BuiltModel,
    best: _Best,
    end: _End,
    settings: SolverSettings,
    tuning: Tuning,
    stop: threading.Event | None,
    elapsed: Callable[[], float],
    limit: float,
    search_log: Callable[[str], None] | None = None,
) -> None:
    """The CP-SAT phases, each hinted with the best schedule so far."""
    phases = phases_for(built.instance, tuning)
    for k, phase in enumerate(phases):
        last = k == len(phases) - 1
        if stop is not None and stop.is_set():
            end.reason = "interrupted"
            return
        phase_end = limit if last else min(limit, phase.until * limit)
        if phase_end - elapsed() <= 0.01:
            if last:
                end.reason = end.reason or "timeLimit"
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
        end.solver, end.status, end.error = _solver(values), None, None
        if search_log is not None:
            search_log(f"phase {k + 1} of {len(phases)} until {phase_end:.2f} s")
            log_to(end.solver, search_log)
        _guarded(end, built, best, stop, elapsed, phase_end, limit, settings.memoryLimitMB)
        if end.reason in STOPS_FOR_GOOD or end.error is not None:
            return
        if end.status in (cp_model.OPTIMAL, cp_model.INFEASIBLE, cp_model.MODEL_INVALID):
            return
        best.raise_bound(end.solver.best_objective_bound)


STOPS_FOR_GOOD = ("interrupted", "wallClockGuard", "memoryLimit", "error")


def log_to(solver: cp_model.CpSolver, search_log: Callable[[str], None]) -> None:
    """Send `solver`'s search log to `search_log` (never to stdout: the JSON lines live there)."""
    solver.parameters.log_search_progress = True
    solver.parameters.log_to_stdout = False
    solver.log_callback = search_log


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
    end: _End,
    built: BuiltModel,
    best: _Best,
    stop: threading.Event | None,
    elapsed: Callable[[], float],
    phase_end: float,
    limit: float,
    memory_mb: int,
) -> None:
    """Run one CP-SAT search under the guard (see `guard.watch`). Sets end.status or
    end.error, and end.reason (and end.detail) when the search was stopped."""
    solver = end.solver
    assert solver is not None

    def search() -> None:
        try:
            end.status = solver.solve(built.model, _Callback(built, best))
        except BaseException as error:
            end.error = error

    try:
        watched = guard.watch(
            search,
            solver.stop_search,
            stop=stop,
            elapsed=elapsed,
            phase_end=phase_end,
            limit=limit,
            memory_mb=memory_mb,
        )
    except RuntimeError as error:  # no thread (e.g. under a hard memory cap)
        end.reason, end.error = "error", error
        end.detail = f"The search could not start ({error}); the dispatch schedule is returned."
        return
    if watched.reason:
        end.reason = watched.reason
    if watched.detail:
        end.detail = watched.detail


def _result(
    instance: Instance,
    built: BuiltModel | None,
    best: _Best,
    end: _End,
    elapsed: Callable[[], float],
    limit: float,
    settings: SolverSettings,
    stop: threading.Event | None,
) -> SolveResult:
    finished = end.solver is not None and end.reason != "wallClockGuard" and end.error is None
    status = end.status if finished else None
    explanation: list[str] = [end.detail] if end.detail else []
    reason = end.reason
    if (
        built is not None
        and end.solver is not None
        and status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    ):
        # The final response may hold a solution no callback saw (e.g. found in presolve).
        best.offer(decode(end.solver, built), None, "cp-sat")
    if end.solver is not None and status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        best.raise_bound(end.solver.best_objective_bound)
    if end.error is not None and not end.detail:
        if isinstance(end.error, MemoryError):
            reason = "outOfMemory"
            explanation.append(
                f"CP-SAT ran out of memory ({end.error}); the best schedule so far is returned. "
                f"Raise spec.solver.memoryLimitMB (now {settings.memoryLimitMB} MiB)."
            )
        else:
            reason = "error"
            explanation.append(f"The solver failed: {end.error!r}.")
    with best.lock:
        schedule, objective, bound = best.schedule, best.objective, best.bound
    if status == cp_model.INFEASIBLE and built is not None:
        budget = min(max(0.0, limit - elapsed()), 30.0)
        return SolveResult(
            Status.INFEASIBLE,
            wall_seconds=elapsed(),
            explanation=explain.diagnose(instance, budget, settings.numWorkers, stop),
            stop_reason="infeasible",
        )
    if status == cp_model.MODEL_INVALID and built is not None:
        return SolveResult(
            Status.MODEL_INVALID,
            wall_seconds=elapsed(),
            explanation=[
                "CP-SAT rejected the model (a bug in the solver, please report): "
                f"{built.model.validate()}"
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
    optimal = status == cp_model.OPTIMAL or objective == bound
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
