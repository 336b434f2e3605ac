"""The active-schedule generator with heaps builds exactly the schedules of the plain scan.

The reference below is the generator without them: every step recomputes the choice of every
job still running and scans them all. The fast one (jobs join at their release, only the
choices a step delays are recomputed) must agree task by task, for every rule, on problems
with releases, windows, operators and machine choice.
"""

from __future__ import annotations

import math

import pytest

from tests.support.solver_testkit import bench_module, random_problem
from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.dispatch import RULES, _best_choice, _Choice, dispatch
from vulcan_operator.solver.instance import Instance
from vulcan_operator.solver.problem import ProblemData
from vulcan_operator.solver.schedule import NO_OPERATOR, Schedule


def reference(instance: Instance, rule: str) -> Schedule:
    key = RULES[rule]
    tasks, jobs, windows = instance.tasks, instance.jobs, instance.windows
    n = len(tasks)
    starts, machines, durations, operators = [0] * n, [0] * n, [0] * n, [NO_OPERATOR] * n
    machine_free = [0] * len(instance.machines)
    operator_free = [0] * len(instance.operators)
    ready = [job.release for job in jobs]
    position = [0] * len(jobs)
    work = [sum(tasks[i].min_duration for i in job.tasks) for job in jobs]
    active = [j for j, job in enumerate(jobs) if job.tasks]
    while active:
        choice: dict[int, _Choice] = {
            j: _best_choice(
                tasks[jobs[j].tasks[position[j]]], ready[j], machine_free, operator_free, windows
            )
            for j in active
        }
        horizon = min((c.end for c in choice.values()), default=math.inf)
        chosen, best = -1, None
        for j in sorted(active):
            c, job = choice[j], jobs[j]
            if c.start < horizon:
                k = key(c, work[j], len(job.tasks) - position[j], job.due, job.priority)
                if best is None or k < best:
                    chosen, best = j, k
        c = choice[chosen]
        i = jobs[chosen].tasks[position[chosen]]
        starts[i], machines[i], durations[i], operators[i] = (
            c.start,
            c.machine,
            c.duration,
            c.operator,
        )
        machine_free[c.machine] = ready[chosen] = c.end
        if c.operator != NO_OPERATOR:
            operator_free[c.operator] = c.end
        work[chosen] -= tasks[i].min_duration
        position[chosen] += 1
        if position[chosen] == len(jobs[chosen].tasks):
            active.remove(chosen)
    return Schedule(starts, machines, durations, operators)


def _same(problem: ProblemData, rule: str) -> None:
    instance = Instance.from_problem(problem)
    fast, slow = dispatch(instance, rule), reference(instance, rule)
    assert check_schedule(problem, fast.assignments(instance)) == []
    assert (fast.starts, fast.machines, fast.operators) == (
        slow.starts,
        slow.machines,
        slow.operators,
    )


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("seed", range(12))
def test_random_problems(rule: str, seed: int) -> None:
    _same(random_problem(seed, n_jobs=10, n_machines=4), rule)


@pytest.mark.parametrize("rule", ["slack", "mwkr"])
def test_a_plant(rule: str) -> None:
    _same(bench_module("plantgen").plant_problem(1000, 5), rule)
