"""The problem in index form: what dispatch, the model and the explanations work on.

`ProblemData` is the public, name-based format. `Instance` flattens it once into integer indices
(tasks in job order, machine and operator numbers, merged maintenance windows, per-task heads and
tails), so the hot loops never look names up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vulcan_operator.solver.problem import ProblemData


class DeadlinePassed(Exception):
    """Dispatch or model building ran out of time (or was asked to stop)."""


def check_deadline(
    deadline: float | None, clock: Callable[[], float], stop: threading.Event | None
) -> None:
    """Raise DeadlinePassed when `clock()` is past `deadline` or `stop` is set."""
    if (deadline is not None and clock() > deadline) or (stop is not None and stop.is_set()):
        raise DeadlinePassed


@dataclass(frozen=True, slots=True)
class Option:
    """One way to run a task: on `machine` for `duration` time units."""

    machine: int
    duration: int


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One task, with everything the solver needs about it as indices."""

    index: int
    job: int
    position: int
    name: str
    options: tuple[Option, ...]
    skill: str | None
    operators: tuple[int, ...]
    head: int
    """Earliest possible start: release date plus the shortest durations of earlier tasks."""
    tail: int
    """Shortest total duration of the tasks after this one in its job."""

    @property
    def min_duration(self) -> int:
        return min(o.duration for o in self.options)

    @property
    def max_duration(self) -> int:
        return max(o.duration for o in self.options)


@dataclass(frozen=True, slots=True)
class JobInfo:
    name: str
    priority: int
    release: int
    due: int | None
    tasks: tuple[int, ...]
    """Indices into `Instance.tasks`, in processing order."""


@dataclass(frozen=True, slots=True)
class Instance:
    """A validated problem in index form."""

    problem: ProblemData
    machines: tuple[str, ...]
    windows: tuple[tuple[tuple[int, int], ...], ...]
    """Per machine: sorted, merged unavailable windows [start, end)."""
    operators: tuple[str, ...]
    jobs: tuple[JobInfo, ...]
    tasks: tuple[TaskInfo, ...]
    horizon: int | None
    objective: str
    weight_makespan: int
    weight_tardiness: int
    _machine_index: dict[str, int] = field(repr=False, compare=False)

    @classmethod
    def from_problem(cls, problem: ProblemData) -> Instance:
        machine_index = {m.name: i for i, m in enumerate(problem.machines)}
        windows = tuple(
            merge_windows((w.start, w.end) for w in m.unavailable) for m in problem.machines
        )
        by_skill: dict[str, list[int]] = {}
        for o, operator in enumerate(problem.operators):
            for skill in dict.fromkeys(operator.skills):
                by_skill.setdefault(skill, []).append(o)
        jobs: list[JobInfo] = []
        tasks: list[TaskInfo] = []
        for j, job in enumerate(problem.jobs):
            mins = [min(t.duration_on(m) for m in t.machines) for t in job.tasks]
            remaining = sum(mins)
            head = job.releaseDate
            first = len(tasks)
            for k, task in enumerate(job.tasks):
                remaining -= mins[k]
                options = tuple(
                    Option(machine_index[m], task.duration_on(m)) for m in task.machines
                )
                operators = tuple(by_skill.get(task.skill, ())) if task.skill else ()
                tasks.append(
                    TaskInfo(
                        index=len(tasks),
                        job=j,
                        position=k,
                        name=task.name,
                        options=options,
                        skill=task.skill,
                        operators=operators,
                        head=head,
                        tail=remaining,
                    )
                )
                head += mins[k]
            jobs.append(
                JobInfo(
                    name=job.name,
                    priority=job.priority,
                    release=job.releaseDate,
                    due=job.dueDate,
                    tasks=tuple(range(first, len(tasks))),
                )
            )
        return cls(
            problem=problem,
            machines=tuple(m.name for m in problem.machines),
            windows=windows,
            operators=tuple(o.name for o in problem.operators),
            jobs=tuple(jobs),
            tasks=tuple(tasks),
            horizon=problem.horizon,
            objective=problem.objective.type,
            weight_makespan=problem.objective.weights.makespan,
            weight_tardiness=problem.objective.weights.tardiness,
            _machine_index=machine_index,
        )

    def machine_index(self, name: str) -> int:
        return self._machine_index[name]

    def safe_horizon(self) -> int:
        """An end time by which every task surely fits, whatever the machine choice.

        After the last release date and the last maintenance window, running every task one
        after the other on its slowest machine is feasible, so this bounds some optimal schedule
        of every objective we offer (they never gain from delaying a task).
        """
        last_window = max((w[-1][1] for w in self.windows if w), default=0)
        last_release = max((j.release for j in self.jobs), default=0)
        return max(last_window, last_release) + sum(t.max_duration for t in self.tasks)

    def makespan_lower_bound(self) -> int:
        """Cheap lower bound: the longest job chain, and the load of single-machine tasks."""
        chain = max((t.head + t.min_duration for t in self.tasks), default=0)
        load = [0] * len(self.machines)
        first = [self.safe_horizon()] * len(self.machines)
        for t in self.tasks:
            if len(t.options) == 1:
                m = t.options[0].machine
                load[m] += t.options[0].duration
                first[m] = min(first[m], t.head)
        machine = max((first[m] + load[m] for m in range(len(load)) if load[m]), default=0)
        return max(chain, machine)

    def objective_of(self, ends: dict[int, int] | list[int]) -> int:
        """Objective value of a schedule given every task's end (by task index)."""
        makespan = max((ends[t.index] for t in self.tasks), default=0)
        tardiness = 0
        for job in self.jobs:
            if job.due is not None and job.tasks:
                tardiness += job.priority * max(0, ends[job.tasks[-1]] - job.due)
        if self.objective == "makespan":
            return makespan
        if self.objective == "weightedTardiness":
            return tardiness
        return self.weight_makespan * makespan + self.weight_tardiness * tardiness


def merge_windows(windows: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort windows and merge the ones that overlap or touch."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def earliest_fit(start: int, duration: int, windows: tuple[tuple[int, int], ...]) -> int:
    """First time >= start at which [t, t + duration) overlaps none of the sorted windows."""
    for w_start, w_end in windows:
        if start + duration <= w_start:
            return start
        if start < w_end:
            start = w_end
    return start
