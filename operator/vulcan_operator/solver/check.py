"""An independent schedule checker: works on the public problem and assignments only.

It shares no code with the model or dispatch, so a bug there cannot hide here. Used by the
tests on every returned schedule, and by the entrypoints as a last safety net.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import pairwise

from vulcan_operator.solver.problem import ProblemData
from vulcan_operator.solver.result import Assignment


def _overlaps(items: Iterable[tuple[int, int, str]], what: str, out: list[str]) -> None:
    ordered = sorted(items)
    for (s1, e1, n1), (s2, e2, n2) in pairwise(ordered):
        if s2 < e1:
            out.append(f"{what}: {n1} [{s1}, {e1}) overlaps {n2} [{s2}, {e2})")


def check_schedule(problem: ProblemData, assignments: list[Assignment]) -> list[str]:
    """Every violated rule, one sentence each; empty for a valid schedule."""
    out: list[str] = []
    machines = {m.name: m for m in problem.machines}
    operators = {o.name: set(o.skills) for o in problem.operators}
    by_key: dict[tuple[str, str], list[Assignment]] = defaultdict(list)
    for a in assignments:
        by_key[(a.job, a.task)].append(a)
    per_machine: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    per_operator: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    known = set()
    for job in problem.jobs:
        previous_end: int | None = None
        for task in job.tasks:
            key = (job.name, task.name)
            known.add(key)
            label = f"{job.name}/{task.name}"
            found = by_key.get(key, [])
            if len(found) != 1:
                out.append(f"{label}: assigned {len(found)} times, expected once")
                previous_end = None
                continue
            a = found[0]
            if a.machine not in task.machines:
                out.append(f"{label}: machine {a.machine} is not eligible ({task.machines})")
            elif a.end - a.start != task.duration_on(a.machine):
                out.append(
                    f"{label}: runs {a.end - a.start} on {a.machine}, "
                    f"expected {task.duration_on(a.machine)}"
                )
            if a.start < 0:
                out.append(f"{label}: negative start {a.start}")
            if task.skill is None:
                if a.operator is not None:
                    out.append(f"{label}: needs no operator but has {a.operator}")
            elif a.operator is None:
                out.append(f"{label}: needs an operator with skill {task.skill}, has none")
            elif task.skill not in operators.get(a.operator, set()):
                out.append(f"{label}: operator {a.operator} lacks skill {task.skill}")
            else:
                per_operator[a.operator].append((a.start, a.end, label))
            if previous_end is None and task is job.tasks[0] and a.start < job.releaseDate:
                out.append(f"{label}: starts at {a.start} before release {job.releaseDate}")
            if previous_end is not None and a.start < previous_end:
                out.append(
                    f"{label}: starts at {a.start} before its predecessor ends ({previous_end})"
                )
            if problem.horizon is not None and a.end > problem.horizon:
                out.append(f"{label}: ends at {a.end} after the horizon {problem.horizon}")
            if a.machine in machines:
                per_machine[a.machine].append((a.start, a.end, label))
                for w in machines[a.machine].unavailable:
                    if a.start < w.end and w.start < a.end:
                        out.append(
                            f"{label}: runs [{a.start}, {a.end}) on {a.machine} during "
                            f"its unavailable window [{w.start}, {w.end})"
                        )
            previous_end = a.end
    for key in by_key:
        if key not in known:
            out.append(f"{key[0]}/{key[1]}: not a task of the problem")
    for machine, items in per_machine.items():
        _overlaps(items, f"machine {machine}", out)
    for operator, items in per_operator.items():
        _overlaps(items, f"operator {operator}", out)
    return out
