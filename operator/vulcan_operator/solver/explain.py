"""Human explanations of infeasibility.

Only an explicit horizon can make a valid problem infeasible (without one, every task fits after
the last window and release). `precheck` finds the common causes before any search, each named
in a sentence: a job whose chain of tasks is too long, a task that fits on none of its machines
between the maintenance windows, a machine or a skill with more work than time. When CP-SAT
proves infeasibility for a subtler reason, `diagnose` asks it for a small set of jobs that
cannot all finish by the horizon (solving with one assumption literal per job).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ortools.sat.python import cp_model

from vulcan_operator.solver.instance import Instance, TaskInfo
from vulcan_operator.solver.model import ModelOptions, build

CHECK_SECONDS = 2.0
"""Longest single CP-SAT check while looking for the jobs in conflict."""


def _fmt_windows(windows: Sequence[tuple[int, int]], limit: int = 4) -> str:
    shown = ", ".join(f"[{s}, {e})" for s, e in windows[:limit])
    more = len(windows) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def free_time(windows: Sequence[tuple[int, int]], start: int, end: int) -> int:
    """Time units in [start, end) outside the (sorted, merged) windows."""
    free = max(0, end - start)
    for ws, we in windows:
        free -= max(0, min(end, we) - max(start, ws))
    return free


def longest_gap(windows: Sequence[tuple[int, int]], start: int, end: int) -> int:
    """Longest stretch in [start, end) outside the windows."""
    best, cursor = 0, start
    for ws, we in windows:
        if we <= cursor:
            continue
        if ws >= end:
            break
        best = max(best, ws - cursor)
        cursor = max(cursor, we)
    return max(best, end - cursor)


def _task_label(instance: Instance, task: TaskInfo) -> str:
    return f"task '{task.name}' of job '{instance.jobs[task.job].name}'"


def precheck(instance: Instance) -> list[str]:
    """Sentences naming what makes the problem infeasible; empty when nothing obvious is."""
    horizon = instance.horizon
    if horizon is None:
        return []
    out: list[str] = []
    late_jobs: set[int] = set()
    for j, job in enumerate(instance.jobs):
        if not job.tasks:
            continue
        last = instance.tasks[job.tasks[-1]]
        earliest_end = last.head + last.min_duration
        if earliest_end > horizon:
            late_jobs.add(j)
            work = earliest_end - job.release
            out.append(
                f"Job '{job.name}' cannot finish by the horizon {horizon}: it is released at "
                f"{job.release} and its {len(job.tasks)} task(s) take at least {work} time units "
                f"one after the other, so it ends at {earliest_end} at the earliest."
            )
    for task in instance.tasks:
        if task.job in late_jobs:
            continue
        latest_end = horizon - task.tail
        reasons = []
        for option in task.options:
            name = instance.machines[option.machine]
            windows = instance.windows[option.machine]
            if latest_end - task.head < option.duration:
                reasons.append(
                    f"on '{name}' it takes {option.duration}, more than the "
                    f"{max(0, latest_end - task.head)} time units between its earliest start "
                    f"{task.head} and its latest end {latest_end}"
                )
            elif longest_gap(windows, task.head, latest_end) < option.duration:
                reasons.append(
                    f"the unavailable windows of '{name}' ({_fmt_windows(windows)}) leave no "
                    f"free stretch of {option.duration} between {task.head} and {latest_end}"
                )
            else:
                break
        else:
            out.append(
                f"The {_task_label(instance, task)} fits on none of its machines before the "
                f"horizon {horizon}: " + "; ".join(reasons) + "."
            )
    if out:
        return out
    out.extend(_machine_overload(instance, horizon))
    out.extend(_skill_overload(instance, horizon))
    return out


def _machine_overload(instance: Instance, horizon: int) -> list[str]:
    out = []
    for m, name in enumerate(instance.machines):
        only_here = [t for t in instance.tasks if len(t.options) == 1 and t.options[0].machine == m]
        if not only_here:
            continue
        start = min(t.head for t in only_here)
        end = horizon - min(t.tail for t in only_here)
        work = sum(t.options[0].duration for t in only_here)
        free = free_time(instance.windows[m], start, end)
        if work > free:
            windows = instance.windows[m]
            after = f" outside its unavailable windows ({_fmt_windows(windows)})" if windows else ""
            out.append(
                f"Machine '{name}' must run {len(only_here)} task(s) that can run nowhere else, "
                f"{work} time units in total, but it has only {free} free time units between "
                f"{start} and {end}{after} to meet the horizon {horizon}."
            )
    return out


def _skill_overload(instance: Instance, horizon: int) -> list[str]:
    out = []
    by_skill: dict[str, list[TaskInfo]] = {}
    for t in instance.tasks:
        if t.skill is not None:
            by_skill.setdefault(t.skill, []).append(t)
    for skill, members in by_skill.items():
        people = len(members[0].operators)
        start = min(t.head for t in members)
        end = horizon - min(t.tail for t in members)
        work = sum(t.min_duration for t in members)
        if work > people * max(0, end - start):
            out.append(
                f"Skill '{skill}': {len(members)} task(s) need it, {work} time units in total, "
                f"but the {people} operator(s) with it have only {people} x {end - start} time "
                f"units between {start} and {end} to meet the horizon {horizon}."
            )
    return out


def diagnose(
    instance: Instance,
    time_limit: float,
    workers: int = 1,
    stop: threading.Event | None = None,
) -> list[str]:
    """After CP-SAT proved infeasibility: which jobs cannot all finish by the horizon.

    Each check is a short CP-SAT solve with one assumption per job; the set CP-SAT blames is
    shrunk one job at a time while `time_limit` lasts (and until `stop` is set)."""
    horizon = instance.horizon
    generic = [
        "CP-SAT proved that no schedule satisfies every constraint."
        + (f" Raising the horizon ({horizon}) makes the problem feasible." if horizon else "")
    ]
    if horizon is None or time_limit < 0.2:
        return generic
    relaxed = Instance.from_problem(instance.problem.model_copy(update={"horizon": None}))
    built = build(relaxed, None, ModelOptions(hint=False, tight_horizon=False))
    model = built.model
    model.clear_objective()  # type: ignore[no-untyped-call]
    literals = {}
    for j, job in enumerate(relaxed.jobs):
        if job.tasks:
            literal = model.new_bool_var(f"job {j} by horizon")
            model.add(built.tasks[job.tasks[-1]].end <= horizon).only_enforce_if(literal)
            literals[j] = literal
    deadline = time.monotonic() + time_limit

    def infeasible(core: list[int]) -> bool | None:
        remaining = min(deadline - time.monotonic(), CHECK_SECONDS)
        if remaining <= 0.05 or (stop is not None and stop.is_set()):
            return None
        model.clear_assumptions()
        model.add_assumptions([literals[j] for j in core])
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = remaining
        solver.parameters.num_workers = workers
        solver.parameters.catch_sigint_signal = False
        status = solver.solve(model)
        if status == cp_model.INFEASIBLE:
            found = solver.sufficient_assumptions_for_infeasibility()
            index = {literals[j].index: j for j in core}
            core[:] = [index[i] for i in found if i in index] or core
            return True
        return False if status in (cp_model.FEASIBLE, cp_model.OPTIMAL) else None

    core = sorted(literals)
    if not infeasible(core):
        return generic
    for j in list(core):  # shrink to a minimal set while time allows
        if len(core) == 1:
            break
        trial = [x for x in core if x != j]
        answer = infeasible(trial)
        if answer is None:
            break
        if answer:
            core = trial
    names = ", ".join(f"'{relaxed.jobs[j].name}'" for j in core)
    machines = sorted(
        {
            relaxed.machines[o.machine]
            for j in core
            for t in relaxed.jobs[j].tasks
            for o in relaxed.tasks[t].options
        }
    )
    with_windows = [m for m in machines if relaxed.windows[relaxed.machine_index(m)]]
    skills = sorted(
        {
            s
            for j in core
            for t in relaxed.jobs[j].tasks
            if (s := relaxed.tasks[t].skill) is not None
        }
    )
    sentence = (
        f"Job(s) {names} cannot all finish by the horizon {horizon}: they compete for "
        f"machine(s) {', '.join(machines)}"
    )
    if with_windows:
        sentence += f" (with unavailable windows on {', '.join(with_windows)})"
    if skills:
        sentence += f" and for the operators with skill(s) {', '.join(skills)}"
    return [sentence + ". Raise the horizon, add machines or operators, or drop a job."]
