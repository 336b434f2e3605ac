"""Greedy dispatch schedules: a fast, always-feasible first schedule and the CP-SAT hint.

Two generators, both respecting every constraint except an explicit horizon:

- An active-schedule generator in the Giffler-Thompson style, extended to machine choice,
  operators and maintenance windows: among the jobs whose next task can start before the
  earliest possible completion of any next task, a priority rule picks one; it runs on the
  machine (and with the operator) that finish it first. The jobs in the race sit in heaps
  and only the choices a step delays are computed again, so its cost grows with tasks x
  options x log(jobs) (0.6 s for 5,000 plant tasks, 5.5 s for 20,000, on a loaded machine).
- `list`: tasks in the order of their earliest possible start, each placed where it ends
  first. Linear in tasks x options: the safety net for very large problems.

`best_dispatch` tries several rules under a deadline and keeps the best for the objective.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vulcan_operator.solver.instance import (
    DeadlinePassed,
    Instance,
    TaskInfo,
    check_deadline,
    earliest_fit,
)
from vulcan_operator.solver.schedule import NO_OPERATOR, Schedule

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _Choice:
    start: int
    end: int
    machine: int
    duration: int
    operator: int


RuleKey = Callable[[_Choice, int, int, int | None, int], tuple[float, ...]]
"""(choice, remaining work, remaining tasks, due date, priority) -> sort key."""

RULES: dict[str, RuleKey] = {
    "mwkr": lambda c, work, left, due, prio: (-work, c.start),
    "mopnr": lambda c, work, left, due, prio: (-left, -work),
    "spt": lambda c, work, left, due, prio: (c.duration, -work),
    "est": lambda c, work, left, due, prio: (c.start, -work),
    "slack": lambda c, work, left, due, prio: (
        math.inf if due is None else (due - c.start - work) / prio,
        -work,
    ),
}
"""Priority rules of the active-schedule generator: the smallest key goes first."""

MAKESPAN_RULES = ("mwkr", "mopnr", "spt", "est")
LIST_RULE = "list"
ACTIVE_SECONDS_PER_OPTION = 1e-4
"""Measured cost of the active-schedule generator per task option, in seconds (on a loaded
2-core machine: 0.6 s for a 5,000-task plant, 5.5 s for 20,000 tasks)."""
LIST_FIRST_SHARE = 0.02
"""When an active-schedule rule would take more than this share of the time, the (poor but
linear) list schedule comes first, so that a first schedule exists at once."""
_CHECK_EVERY = 64


def rules_for(instance: Instance, seconds: float | None = None) -> tuple[str, ...]:
    """The rules to try, in order; the list rule first when an active-schedule rule could
    take more than LIST_FIRST_SHARE of `seconds`."""
    rules: tuple[str, ...] = MAKESPAN_RULES
    if instance.objective != "makespan" and any(j.due is not None for j in instance.jobs):
        # First: on large plants the later rules may get no time (DISPATCH_SHARE), and for
        # due dates slack is by far the best (5,000 tasks: 25,515 against 1.3-1.8 million).
        rules = ("slack", *rules)
    options = sum(len(t.options) for t in instance.tasks)
    if seconds is not None and options * ACTIVE_SECONDS_PER_OPTION > LIST_FIRST_SHARE * seconds:
        return (LIST_RULE, *rules)
    return (*rules, LIST_RULE)


def _best_choice(
    task: TaskInfo,
    ready: int,
    machine_free: list[int],
    operator_free: list[int],
    windows: tuple[tuple[tuple[int, int], ...], ...],
) -> _Choice:
    """Where `task` ends first: machine, operator and start (ties: the shorter duration).

    The operator is the one free first: the start only grows with the operator's free time,
    so no other operator starts the task earlier."""
    best: _Choice | None = None
    for option in task.options:
        m, d = option.machine, option.duration
        base = max(ready, machine_free[m])
        o = _operator_for(task.operators, operator_free) if task.operators else NO_OPERATOR
        earliest = base if o == NO_OPERATOR else max(base, operator_free[o])
        start = earliest_fit(earliest, d, windows[m]) if windows[m] else earliest
        if best is None or start + d < best.end or (start + d == best.end and d < best.duration):
            best = _Choice(start, start + d, m, d, o)
    assert best is not None
    return best


def _operator_for(operators: tuple[int, ...], operator_free: list[int]) -> int:
    """The operator free first (the first listed among equals). Using an operator only
    delays it, so this choice changes only for the tasks that chose the one used."""
    return min(operators, key=operator_free.__getitem__)


def dispatch(
    instance: Instance,
    rule: str,
    deadline: float | None = None,
    clock: Clock = time.monotonic,
    stop: threading.Event | None = None,
) -> Schedule:
    """One greedy schedule built with `rule`; DeadlinePassed when `clock()` passes deadline
    or `stop` is set (checked every few dozen steps)."""
    if rule == LIST_RULE:
        return _list_schedule(instance, deadline, clock, stop)
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
    # Each job in the race has its next task's best choice cached, in two heaps (by end: the
    # earliest completion; by start: the conflict set) with a version to skip stale entries,
    # and is listed under the machine and operator of that choice: using a machine or an
    # operator only delays the choices that use it (the others stay best), so only those are
    # computed again. Jobs join the race once their release date comes before the earliest
    # completion: one released later can neither compete nor complete first.
    pending = sorted((j for j, job in enumerate(jobs) if job.tasks), key=lambda j: jobs[j].release)
    admitted = 0
    cache: dict[int, _Choice] = {}
    version = [0] * len(jobs)
    by_end: list[tuple[int, int, int]] = []
    by_start: list[tuple[int, int, int]] = []
    on_machine: list[set[int]] = [set() for _ in instance.machines]
    on_operator: list[set[int]] = [set() for _ in instance.operators]

    def forget(j: int) -> None:
        old = cache.pop(j, None)
        if old is not None:
            on_machine[old.machine].discard(j)
            if old.operator != NO_OPERATOR:
                on_operator[old.operator].discard(j)

    def choose(j: int) -> _Choice:
        forget(j)
        task = tasks[jobs[j].tasks[position[j]]]
        c = cache[j] = _best_choice(task, job_ready[j], machine_free, operator_free, windows)
        version[j] += 1
        heapq.heappush(by_end, (c.end, j, version[j]))
        heapq.heappush(by_start, (c.start, j, version[j]))
        on_machine[c.machine].add(j)
        if c.operator != NO_OPERATOR:
            on_operator[c.operator].add(j)
        return c

    def earliest_end() -> float:
        while by_end and (by_end[0][1] not in cache or by_end[0][2] != version[by_end[0][1]]):
            heapq.heappop(by_end)
        return by_end[0][0] if by_end else math.inf

    step = 0
    while cache or admitted < len(pending):
        step += 1
        if step % _CHECK_EVERY == 0:
            check_deadline(deadline, clock, stop)
        if not cache:
            choose(pending[admitted])
            admitted += 1
        horizon = earliest_end()
        while admitted < len(pending) and jobs[pending[admitted]].release < horizon:
            horizon = min(horizon, choose(pending[admitted]).end)
            admitted += 1
        conflict: list[int] = []
        while by_start and by_start[0][0] < horizon:
            _, j, v = heapq.heappop(by_start)
            if j in cache and v == version[j]:
                conflict.append(j)
        chosen, chosen_key = -1, None
        for j in sorted(conflict):
            c, job = cache[j], jobs[j]
            k = key(c, remaining_work[j], len(job.tasks) - position[j], job.due, job.priority)
            if chosen_key is None or k < chosen_key:
                chosen, chosen_key = j, k
        for j in conflict:
            if j != chosen:
                heapq.heappush(by_start, (cache[j].start, j, version[j]))
        j = chosen
        c = cache[j]
        forget(j)
        i = jobs[j].tasks[position[j]]
        starts[i], machines[i] = c.start, c.machine
        durations[i], operators[i] = c.duration, c.operator
        machine_free[c.machine] = c.end
        delayed = set(on_machine[c.machine])
        if c.operator != NO_OPERATOR:
            operator_free[c.operator] = c.end
            delayed |= on_operator[c.operator]
        job_ready[j] = c.end
        remaining_work[j] -= tasks[i].min_duration
        position[j] += 1
        if position[j] < len(jobs[j].tasks):
            choose(j)
        for other in delayed:
            choose(other)
    return Schedule(starts, machines, durations, operators)


def _list_schedule(
    instance: Instance, deadline: float | None, clock: Clock, stop: threading.Event | None
) -> Schedule:
    tasks, jobs = instance.tasks, instance.jobs
    n = len(tasks)
    starts, machines = [0] * n, [0] * n
    durations, operators = [0] * n, [NO_OPERATOR] * n
    machine_free = [0] * len(instance.machines)
    operator_free = [0] * len(instance.operators)
    job_ready = [job.release for job in jobs]
    work = [0] * n  # shortest remaining work of the job from each task on
    for job in jobs:
        total = 0
        for i in reversed(job.tasks):
            total += tasks[i].min_duration
            work[i] = total
    order = sorted(range(n), key=lambda i: (tasks[i].head, -work[i], i))
    for step, i in enumerate(order):
        if step % 256 == 255:
            check_deadline(deadline, clock, stop)
        task = tasks[i]
        c = _best_choice(task, job_ready[task.job], machine_free, operator_free, instance.windows)
        starts[i], machines[i], durations[i], operators[i] = (
            c.start,
            c.machine,
            c.duration,
            c.operator,
        )
        machine_free[c.machine] = job_ready[task.job] = c.end
        if c.operator != NO_OPERATOR:
            operator_free[c.operator] = c.end
    return Schedule(starts, machines, durations, operators)


def best_dispatch(
    instance: Instance,
    rules: Sequence[str] | None = None,
    *,
    deadline: float | None = None,
    more_until: float | None = None,
    active_until: float | None = None,
    clock: Clock = time.monotonic,
    stop: threading.Event | None = None,
    on_better: Callable[[Schedule, str], None] | None = None,
) -> tuple[Schedule, str] | None:
    """The best greedy schedule for the objective (ties: shorter makespan), and its rule.

    Until one rule has finished, rules may run until `deadline`; after that, the others must
    finish by `more_until` -- except the first active-schedule rule after the list rule (the
    list schedule comes first only on problems too large for the others, and is poor), which
    may run until `active_until`. None when no rule finished in time (or there are no tasks).
    `on_better` hears each rule's schedule that beats the ones before, as soon as it exists."""
    if not instance.tasks:
        return None
    seconds = None if deadline is None else deadline - clock()
    best: tuple[tuple[int, int], Schedule, str] | None = None
    for rule in rules or rules_for(instance, seconds):
        limit = deadline
        until = more_until
        if best is not None and best[2] == LIST_RULE and active_until is not None:
            until = max(active_until, more_until or active_until)
        if best is not None and until is not None:
            if clock() >= until:
                break
            limit = until if deadline is None else min(deadline, until)
        try:
            schedule = dispatch(instance, rule, limit, clock, stop)
        except DeadlinePassed:
            if stop is not None and stop.is_set():
                break
            if best is not None or (deadline is not None and clock() > deadline):
                break
            continue
        ends = schedule.ends
        score = (instance.objective_of(ends), max(ends))
        if best is None or score < best[0]:
            best = (score, schedule, rule)
            if on_better is not None:
                on_better(schedule, rule)
    return None if best is None else (best[1], best[2])
