"""The CP-SAT model of the flexible job shop with operators: variables, constraints, objective.

One interval per task (start, duration, end). A task with several eligible machines gets one
optional interval per machine, exactly one present; a task needing a skill gets one optional
interval per operator who has it, exactly one present (a single candidate uses the task's own
interval). NoOverlap per machine (maintenance windows are fixed intervals in it) and per
operator; job order as precedences; release dates, heads and tails in the start domains.

Everything that is not needed for correctness (hint, tight horizon, redundant constraints) is
switched by `ModelOptions`, so bench/ can measure each idea on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from ortools.sat.python import cp_model

from vulcan_operator.solver.instance import Instance, TaskInfo, check_deadline
from vulcan_operator.solver.schedule import NO_OPERATOR, Schedule

LinearExpr = cp_model.LinearExprT


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Modelling choices; the defaults are the measured winners (bench/RESULTS.md)."""

    hint: bool = True
    """Give the best dispatch schedule to CP-SAT as a (complete) solution hint."""
    tight_horizon: bool = True
    """Bound ends by the dispatch schedule's objective (makespan, or per-job tardiness)."""
    window_holes: bool = True
    """Remove start times that would overlap a maintenance window from single-machine tasks."""
    skill_cumulative: bool = True
    """Redundant: at most |operators with skill s| tasks needing s run at once."""
    flexible_cumulative: bool = False
    """Redundant: at most |machines| flexible tasks run at once (one cumulative per machine set)."""
    machine_load: bool = True
    """Redundant (makespan): each machine's chosen work fits between its first head and the
    makespan."""


@dataclass(slots=True)
class TaskVars:
    start: cp_model.IntVar
    end: LinearExpr
    duration: LinearExpr
    interval: cp_model.IntervalVar
    machines: list[tuple[int, int, cp_model.IntVar | None]] = field(default_factory=list)
    """(machine, duration, presence literal); the literal is None for a single option."""
    operators: list[tuple[int, cp_model.IntVar | None]] = field(default_factory=list)
    """(operator, presence literal); None for a single candidate; empty without a skill."""


@dataclass(slots=True)
class BuiltModel:
    model: cp_model.CpModel
    instance: Instance
    tasks: list[TaskVars]
    objective: LinearExpr
    makespan: cp_model.IntVar
    horizon: int
    """Every end is at most this."""
    objective_lower_bound: int
    lateness: list[tuple[int, cp_model.IntVar]] = field(default_factory=list)
    """(job index, tardiness variable) of the jobs with a due date, for non-makespan goals."""
    hinted: bool = False


def horizon_for(instance: Instance, start: Schedule | None, options: ModelOptions) -> int:
    """Latest end any task may have in the model."""
    horizon = instance.safe_horizon()
    if instance.horizon is not None:
        horizon = min(horizon, instance.horizon)
    if start is not None and options.tight_horizon:
        makespan = start.makespan()
        if makespan <= horizon:
            value = instance.objective_of(start.ends)
            if instance.objective == "makespan":
                horizon = makespan
            elif instance.objective == "weightedSum" and instance.weight_makespan > 0:
                horizon = max(makespan, min(horizon, value // instance.weight_makespan))
    return horizon


def build(
    instance: Instance,
    start: Schedule | None = None,
    options: ModelOptions | None = None,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> BuiltModel:
    """The CP-SAT model; `start` (a feasible schedule) tightens bounds and becomes the hint.

    Raises DeadlinePassed when building outlasts `deadline` (or `stop` is set): checked every
    few hundred tasks, so a huge problem cannot overrun its time limit here."""
    options = options or ModelOptions()
    model = cp_model.CpModel()
    horizon = horizon_for(instance, start, options)
    feasible_start = start is not None and start.makespan() <= horizon
    tasks = []
    for t in instance.tasks:
        if t.index % 256 == 255:
            check_deadline(deadline, clock, stop)
        tasks.append(_task_variables(model, instance, t, horizon, options))
    check_deadline(deadline, clock, stop)
    _machine_constraints(model, instance, tasks, horizon)
    check_deadline(deadline, clock, stop)
    _operator_constraints(model, instance, tasks)
    _job_constraints(model, instance, tasks)
    if options.skill_cumulative:
        _skill_cumulatives(model, instance, tasks)
    if options.flexible_cumulative:
        _flexible_cumulatives(model, instance, tasks)
    lower = instance.makespan_lower_bound()
    makespan = model.new_int_var(min(lower, horizon), horizon, "makespan")
    for job in instance.jobs:
        if job.tasks:
            model.add(makespan >= tasks[job.tasks[-1]].end)
    if options.machine_load and instance.objective == "makespan":
        _machine_load(model, instance, tasks, makespan, horizon)
    start_value = (
        instance.objective_of(start.ends) if start is not None and feasible_start else None
    )
    lateness = _lateness(
        model, instance, tasks, horizon, start_value if options.tight_horizon else None
    )
    objective, objective_lower = _objective(instance, makespan, lower, lateness)
    model.minimize(objective)
    check_deadline(deadline, clock, stop)
    built = BuiltModel(
        model, instance, tasks, objective, makespan, horizon, objective_lower, lateness
    )
    if options.hint and start is not None and feasible_start:
        add_hint(built, start)
    return built


def _task_variables(
    model: cp_model.CpModel,
    instance: Instance,
    task: TaskInfo,
    horizon: int,
    options: ModelOptions,
) -> TaskVars:
    name = f"t{task.index}"
    latest_start = horizon - task.tail - task.min_duration
    lo = task.head
    hi = max(lo, latest_start)
    if len(task.options) == 1:
        machine, duration = task.options[0].machine, task.options[0].duration
        domain = cp_model.Domain(lo, max(lo, horizon - task.tail - duration))
        windows = instance.windows[machine]
        if options.window_holes and windows:
            holes = [
                v
                for ws, we in windows
                if we > lo and ws - duration + 1 <= hi
                for v in (max(lo, ws - duration + 1), min(hi, we - 1))
            ]
            if holes:
                allowed = cp_model.Domain.from_flat_intervals(holes).complement()
                domain = domain.intersection_with(allowed)
                if domain.is_empty():
                    domain = cp_model.Domain(lo, lo)  # infeasible anyway: NoOverlap says so
        start = model.new_int_var_from_domain(domain, f"{name}.s")
        interval = model.new_fixed_size_interval_var(start, duration, f"{name}.i")
        vars_ = TaskVars(start, start + duration, duration, interval)
        vars_.machines.append((machine, duration, None))
        return vars_
    start = model.new_int_var(lo, hi, f"{name}.s")
    durations = sorted({o.duration for o in task.options})
    if len(durations) == 1:
        duration_expr: LinearExpr = durations[0]
        end: LinearExpr = start + durations[0]
        interval = model.new_fixed_size_interval_var(start, durations[0], f"{name}.i")
    else:
        duration_var = model.new_int_var_from_domain(
            cp_model.Domain.from_values(durations), f"{name}.d"
        )
        end_var = model.new_int_var(lo + durations[0], horizon - task.tail, f"{name}.e")
        interval = model.new_interval_var(start, duration_var, end_var, f"{name}.i")
        duration_expr, end = duration_var, end_var
    vars_ = TaskVars(start, end, duration_expr, interval)
    literals = []
    for option in task.options:
        literal = model.new_bool_var(f"{name}.m{option.machine}")
        literals.append(literal)
        vars_.machines.append((option.machine, option.duration, literal))
        if latest_start + task.min_duration - option.duration < lo:
            model.add(literal == 0)  # too long to fit before the horizon on this machine
    model.add_exactly_one(literals)
    if len(durations) > 1:
        model.add(duration_expr == sum(d * lit for _, d, lit in vars_.machines if lit is not None))
    return vars_


def _machine_constraints(
    model: cp_model.CpModel, instance: Instance, tasks: list[TaskVars], horizon: int
) -> None:
    per_machine: list[list[cp_model.IntervalVar]] = [[] for _ in instance.machines]
    for t, vars_ in zip(instance.tasks, tasks, strict=True):
        for machine, duration, literal in vars_.machines:
            if literal is None:
                per_machine[machine].append(vars_.interval)
            else:
                per_machine[machine].append(
                    model.new_optional_fixed_size_interval_var(
                        vars_.start, duration, literal, f"t{t.index}.m{machine}.i"
                    )
                )
    for machine, intervals in enumerate(per_machine):
        if not intervals:
            continue
        for ws, we in instance.windows[machine]:
            if ws < horizon:
                intervals.append(
                    model.new_fixed_size_interval_var(ws, we - ws, f"m{machine}.off{ws}")
                )
        if len(intervals) > 1:
            model.add_no_overlap(intervals)


def _operator_constraints(
    model: cp_model.CpModel, instance: Instance, tasks: list[TaskVars]
) -> None:
    per_operator: list[list[cp_model.IntervalVar]] = [[] for _ in instance.operators]
    for t, vars_ in zip(instance.tasks, tasks, strict=True):
        if not t.operators:
            continue
        if len(t.operators) == 1:
            vars_.operators.append((t.operators[0], None))
            per_operator[t.operators[0]].append(vars_.interval)
            continue
        literals = []
        for o in t.operators:
            literal = model.new_bool_var(f"t{t.index}.o{o}")
            literals.append(literal)
            vars_.operators.append((o, literal))
            per_operator[o].append(
                model.new_optional_interval_var(
                    vars_.start, vars_.duration, vars_.end, literal, f"t{t.index}.o{o}.i"
                )
            )
        model.add_exactly_one(literals)
    for intervals in per_operator:
        if len(intervals) > 1:
            model.add_no_overlap(intervals)


def _job_constraints(model: cp_model.CpModel, instance: Instance, tasks: list[TaskVars]) -> None:
    for job in instance.jobs:
        for before, after in pairwise(job.tasks):
            model.add(tasks[after].start >= tasks[before].end)


def _skill_cumulatives(model: cp_model.CpModel, instance: Instance, tasks: list[TaskVars]) -> None:
    by_skill: dict[str, list[int]] = {}
    for t in instance.tasks:
        if t.skill is not None and len(t.operators) > 1:
            by_skill.setdefault(t.skill, []).append(t.index)
    for skill, members in by_skill.items():
        capacity = len(instance.tasks[members[0]].operators)
        if len(members) > capacity:
            model.add_cumulative(
                [tasks[i].interval for i in members], [1] * len(members), capacity
            ).with_name(f"skill {skill}")


def _flexible_cumulatives(
    model: cp_model.CpModel, instance: Instance, tasks: list[TaskVars]
) -> None:
    by_set: dict[frozenset[int], list[int]] = {}
    for t in instance.tasks:
        if len(t.options) > 1:
            by_set.setdefault(frozenset(o.machine for o in t.options), []).append(t.index)
    for machines, members in by_set.items():
        # Tasks whose machines all lie in this set compete for len(machines) machines.
        inside = [t.index for t in instance.tasks if {o.machine for o in t.options} <= machines]
        if len(inside) > len(machines) and len(members) > 1:
            model.add_cumulative(
                [tasks[i].interval for i in inside], [1] * len(inside), len(machines)
            )


def _machine_load(
    model: cp_model.CpModel,
    instance: Instance,
    tasks: list[TaskVars],
    makespan: cp_model.IntVar,
    horizon: int,
) -> None:
    load: list[list[LinearExpr]] = [[] for _ in instance.machines]
    first = [horizon] * len(instance.machines)
    for t, vars_ in zip(instance.tasks, tasks, strict=True):
        for machine, duration, literal in vars_.machines:
            load[machine].append(duration if literal is None else duration * literal)
            first[machine] = min(first[machine], t.head)
    for machine, terms in enumerate(load):
        if len(terms) > 1:
            model.add(sum(terms) <= makespan - first[machine])


def _lateness(
    model: cp_model.CpModel,
    instance: Instance,
    tasks: list[TaskVars],
    horizon: int,
    start_value: int | None,
) -> list[tuple[int, cp_model.IntVar]]:
    if instance.objective == "makespan":
        return []
    out = []
    for j, job in enumerate(instance.jobs):
        if job.due is None or not job.tasks:
            continue
        late_max = max(0, horizon - job.due)
        weight = job.priority * (
            1 if instance.objective == "weightedTardiness" else instance.weight_tardiness
        )
        if start_value is not None and weight > 0:
            # A schedule at least as good as the start pays at most start_value in tardiness.
            late_max = min(late_max, start_value // weight)
        lateness = model.new_int_var(0, late_max, f"j{j}.tardiness")
        model.add(lateness >= tasks[job.tasks[-1]].end - job.due)
        out.append((j, lateness))
    return out


def _objective(
    instance: Instance,
    makespan: cp_model.IntVar,
    makespan_lower: int,
    lateness: list[tuple[int, cp_model.IntVar]],
) -> tuple[LinearExpr, int]:
    if instance.objective == "makespan":
        return makespan, makespan_lower
    variables = [var for _, var in lateness]
    weights = [instance.jobs[j].priority for j, _ in lateness]
    if instance.objective == "weightedTardiness":
        return cp_model.LinearExpr.weighted_sum(variables, weights), 0
    scale = instance.weight_tardiness
    return (
        cp_model.LinearExpr.weighted_sum(
            [makespan, *variables], [instance.weight_makespan, *(scale * w for w in weights)]
        ),
        instance.weight_makespan * makespan_lower,
    )


def add_hint(built: BuiltModel, schedule: Schedule) -> None:
    """Hint every decision variable with `schedule` (a complete hint)."""
    model = built.model
    for vars_, start, machine, operator in zip(
        built.tasks, schedule.starts, schedule.machines, schedule.operators, strict=True
    ):
        model.add_hint(vars_.start, start)
        if isinstance(vars_.duration, cp_model.IntVar):
            model.add_hint(vars_.duration, machine_duration(vars_, machine))
        if isinstance(vars_.end, cp_model.IntVar):
            model.add_hint(vars_.end, start + machine_duration(vars_, machine))
        for m, _, literal in vars_.machines:
            if literal is not None:
                model.add_hint(literal, m == machine)
        for o, literal in vars_.operators:
            if literal is not None and operator != NO_OPERATOR:
                model.add_hint(literal, o == operator)
    ends = schedule.ends
    model.add_hint(built.makespan, max(ends, default=0))
    for j, var in built.lateness:
        job = built.instance.jobs[j]
        due = job.due or 0
        model.add_hint(var, max(0, ends[job.tasks[-1]] - due))
    built.hinted = True


def machine_duration(vars_: TaskVars, machine: int) -> int:
    return next(d for m, d, _ in vars_.machines if m == machine)


def decode(values: SolutionValues, built: BuiltModel) -> Schedule:
    """The schedule of a CP-SAT solution (from a solver or a solution callback)."""
    starts, machines, durations, operators = [], [], [], []
    for vars_ in built.tasks:
        starts.append(values.value(vars_.start))
        chosen = vars_.machines[0]
        for option in vars_.machines:
            if option[2] is not None and values.boolean_value(option[2]):
                chosen = option
                break
        machines.append(chosen[0])
        durations.append(chosen[1])
        operator = NO_OPERATOR
        for o, literal in vars_.operators:
            if literal is None or values.boolean_value(literal):
                operator = o
                break
        operators.append(operator)
    return Schedule(starts, machines, durations, operators)


class SolutionValues(Protocol):
    """What `decode` needs: CpSolver and CpSolverSolutionCallback both provide it."""

    def value(self, expression: cp_model.IntVar, /) -> int: ...

    def boolean_value(self, literal: cp_model.IntVar, /) -> bool: ...
