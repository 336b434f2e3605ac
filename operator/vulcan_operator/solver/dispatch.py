"""Greedy dispatch schedules: a fast, always-feasible first schedule and the CP-SAT hint.

An active-schedule generator in the Giffler-Thompson style, extended to machine choice,
operators and maintenance windows: among the jobs whose next task can start before the
earliest possible completion of any next task, a priority rule picks one; it runs on the
machine (and with the operator) that finish it first. Several rules are tried and the best
schedule for the objective wins. It respects every constraint except an explicit horizon.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vulcan_operator.solver.instance import Instance, earliest_fit
from vulcan_operator.solver.schedule import NO_OPERATOR, Schedule


@dataclass(frozen=True, slots=True)
class _Choice:
    start: int
    end: int
    machine: int
    duration: int
    operator: int


@dataclass(frozen=True, slots=True)
class _JobState:
    """What a rule may look at for one candidate job."""

    job: int
    choice: _Choice
    remaining_work: int
    """Shortest total duration of the job's unscheduled tasks, the candidate included."""
    remaining_tasks: int
    due: int | None
    priority: int


RuleKey = Callable[[_JobState], tuple[float, ...]]

RULES: dict[str, RuleKey] = {
    "mwkr": lambda s: (-s.remaining_work, s.choice.start),
    "mopnr": lambda s: (-s.remaining_tasks, -s.remaining_work),
    "spt": lambda s: (s.choice.duration, -s.remaining_work),
    "est": lambda s: (s.choice.start, -s.remaining_work),
    "slack": lambda s: (
        math.inf if s.due is None else (s.due - s.choice.start - s.remaining_work) / s.priority,
        -s.remaining_work,
    ),
}
"""Priority rules: the candidate with the smallest key goes first."""

MAKESPAN_RULES = ("mwkr", "mopnr", "spt", "est")


def rules_for(instance: Instance) -> tuple[str, ...]:
    if instance.objective == "makespan" or all(j.due is None for j in instance.jobs):
        return MAKESPAN_RULES
    return (*MAKESPAN_RULES, "slack")


def dispatch(instance: Instance, rule: str) -> Schedule:
    """One greedy schedule built with priority rule `rule`."""
    key = RULES[rule]
    tasks, jobs, windows = instance.tasks, instance.jobs, instance.windows
    n = len(tasks)
    starts, machines = [0] * n, [0] * n
    durations, operators = [0] * n, [NO_OPERATOR] * n
    machine_free = [0] * len(instance.machines)
    operator_free = [0] * len(instance.operators)
    job_ready = [job.release for job in jobs]
    position = [0] * len(jobs)
    remaining_work = [sum(tasks[i].min_duration for i in job.tasks) for job in jobs]
    active = {j for j, job in enumerate(jobs) if job.tasks}
    cache: dict[int, _Choice] = {}

    def evaluate(j: int) -> _Choice:
        task = tasks[jobs[j].tasks[position[j]]]
        best: _Choice | None = None
        for option in task.options:
            m, d = option.machine, option.duration
            base = max(job_ready[j], machine_free[m])
            candidates = task.operators or (NO_OPERATOR,)
            for o in candidates:
                earliest = base if o == NO_OPERATOR else max(base, operator_free[o])
                start = earliest_fit(earliest, d, windows[m])
                if best is None or (start + d, d) < (best.end, best.duration):
                    best = _Choice(start, start + d, m, d, o)
        assert best is not None
        return best

    while active:
        for j in active:
            if j not in cache:
                cache[j] = evaluate(j)
        earliest_end = min(cache[j].end for j in active)
        conflict = [
            _JobState(
                job=j,
                choice=cache[j],
                remaining_work=remaining_work[j],
                remaining_tasks=len(jobs[j].tasks) - position[j],
                due=jobs[j].due,
                priority=jobs[j].priority,
            )
            for j in sorted(active)
            if cache[j].start < earliest_end
        ]
        chosen = min(conflict, key=key)
        j, c = chosen.job, chosen.choice
        i = jobs[j].tasks[position[j]]
        starts[i], machines[i] = c.start, c.machine
        durations[i], operators[i] = c.duration, c.operator
        machine_free[c.machine] = c.end
        if c.operator != NO_OPERATOR:
            operator_free[c.operator] = c.end
        job_ready[j] = c.end
        remaining_work[j] -= tasks[i].min_duration
        position[j] += 1
        del cache[j]
        if position[j] == len(jobs[j].tasks):
            active.discard(j)
        for other in list(cache):
            task = tasks[jobs[other].tasks[position[other]]]
            if c.operator in task.operators or any(
                opt.machine == c.machine for opt in task.options
            ):
                del cache[other]
    return Schedule(starts, machines, durations, operators)


def best_dispatch(
    instance: Instance, rules: Sequence[str] | None = None
) -> tuple[Schedule, str] | None:
    """The best greedy schedule for the objective (ties: shorter makespan), and its rule."""
    if not instance.tasks:
        return None
    best: tuple[tuple[int, int], Schedule, str] | None = None
    for rule in rules or rules_for(instance):
        schedule = dispatch(instance, rule)
        ends = schedule.ends
        score = (instance.objective_of(ends), max(ends))
        if best is None or score < best[0]:
            best = (score, schedule, rule)
    assert best is not None
    return best[1], best[2]
