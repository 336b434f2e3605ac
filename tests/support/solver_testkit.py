"""Helpers for the solver tests: problem builders and a schedule-checking assertion."""

from __future__ import annotations

import importlib
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.problem import ProblemData
from vulcan_operator.solver.result import SolveResult

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "solver"


def bench_module(name: str) -> ModuleType:
    """Import bench/<name>.py (bench/ is a script folder, not a package)."""
    bench = str(REPO / "bench")
    if bench not in sys.path:
        sys.path.append(bench)
    return importlib.import_module(name)


MakeProblem = Callable[..., ProblemData]


def make_problem(
    jobs: list[dict[str, Any]], machines: list[Any] | None = None, **fields: Any
) -> ProblemData:
    """A ProblemData from short dicts; machines default to every machine the tasks name."""
    if machines is None:
        names = dict.fromkeys(m for j in jobs for t in j["tasks"] for m in t["machines"])
        machines = list(names)
    machines = [m if isinstance(m, dict) else {"name": m} for m in machines]
    return ProblemData.model_validate({"machines": machines, "jobs": jobs, **fields})


def random_problem(
    seed: int,
    n_jobs: int = 6,
    n_machines: int = 4,
    operators: bool = True,
    windows: bool = True,
    **fields: Any,
) -> ProblemData:
    """A random flexible problem with releases, due dates, windows and skills."""
    rng = random.Random(seed)
    skills = ["a", "b", "c"]
    machines = []
    for m in range(n_machines):
        machine: dict[str, Any] = {"name": f"m{m}"}
        if windows and rng.random() < 0.5:
            start = rng.randint(5, 60)
            machine["unavailable"] = [{"start": start, "end": start + rng.randint(3, 15)}]
        machines.append(machine)
    people = (
        [{"name": f"p{o}", "skills": rng.sample(skills, rng.randint(1, 2))} for o in range(3)]
        if operators
        else []
    )
    known = sorted({s for p in people for s in p["skills"]})
    jobs = []
    for j in range(n_jobs):
        tasks = []
        for k in range(rng.randint(1, 4)):
            eligible = rng.sample([f"m{m}" for m in range(n_machines)], rng.randint(1, 2))
            task: dict[str, Any] = {
                "name": f"t{k}",
                "duration": rng.randint(1, 12),
                "machines": eligible,
                "machineDurations": {eligible[-1]: rng.randint(1, 12)} if len(eligible) > 1 else {},
            }
            if known and rng.random() < 0.4:
                task["skill"] = rng.choice(known)
            tasks.append(task)
        release = rng.randint(0, 20)
        jobs.append(
            {
                "name": f"j{j}",
                "priority": rng.randint(1, 4),
                "releaseDate": release,
                "dueDate": release + rng.randint(10, 60),
                "tasks": tasks,
            }
        )
    return ProblemData.model_validate(
        {"machines": machines, "operators": people, "jobs": jobs, **fields}
    )


def assert_valid(problem: ProblemData, result: SolveResult) -> None:
    """The result's schedule passes the independent checker and its numbers add up."""
    assert result.status.has_schedule, result
    violations = check_schedule(problem, result.assignments)
    assert violations == [], violations
    assert result.makespan == max(a.end for a in result.assignments)
    if result.bound is not None and result.objective is not None:
        assert result.bound <= result.objective


def random_job_shop(seed: int, n_jobs: int, n_machines: int) -> ProblemData:
    """A Taillard-like job shop: every job visits every machine once, durations 1..99."""
    rng = random.Random(seed)
    jobs = []
    for j in range(n_jobs):
        order = rng.sample(range(n_machines), n_machines)
        jobs.append(
            {
                "name": f"j{j}",
                "tasks": [
                    {"name": f"o{k}", "duration": rng.randint(1, 99), "machines": [f"m{m}"]}
                    for k, m in enumerate(order)
                ],
            }
        )
    return make_problem(jobs, machines=[f"m{m}" for m in range(n_machines)])
