"""Measure the plant-only model options on generated plants (the public sets have neither
operators nor maintenance windows).

    .venv/bin/python bench/plants.py --problems 8 --option skill_cumulative=false

Each generated plant: 25 jobs of 3-6 tasks with release and due dates and priorities, 10
machines in three zones (a third with maintenance windows), 2-3 eligible machines per task with
their own durations, 6 operators over 3 skills (half the tasks need one). Prints, per plant,
the objective with the default options and with the given ones, then the mean ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import replace
from typing import Any

from run import _pairs
from vulcan_operator.solver.model import ModelOptions
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.solve import Tuning, solve


def plant(seed: int, objective: str) -> ProblemData:
    rng = random.Random(seed)
    machines: list[dict[str, Any]] = []
    for m in range(10):
        machine: dict[str, Any] = {"name": f"m{m}", "zone": f"hall-{m % 3}"}
        if m % 3 == 0:
            start = rng.randint(50, 400)
            machine["unavailable"] = [{"start": start, "end": start + rng.randint(20, 90)}]
        machines.append(machine)
    skills = ["turning", "welding", "inspection"]
    operators = [
        {"name": f"op{o}", "skills": [skills[o % 3], skills[(o + rng.randint(1, 2)) % 3]]}
        for o in range(6)
    ]
    jobs = []
    for j in range(25):
        tasks = []
        for k in range(rng.randint(3, 6)):
            eligible = rng.sample(range(10), rng.randint(2, 3))
            base = rng.randint(10, 60)
            task: dict[str, Any] = {
                "name": f"t{k}",
                "duration": base,
                "machines": [f"m{m}" for m in eligible],
                "machineDurations": {
                    f"m{m}": max(1, base + rng.randint(-10, 25)) for m in eligible[1:]
                },
            }
            if rng.random() < 0.5:
                task["skill"] = rng.choice(skills)
            tasks.append(task)
        release = rng.randint(0, 200)
        jobs.append(
            {
                "name": f"j{j}",
                "priority": rng.randint(1, 5),
                "releaseDate": release,
                "dueDate": release + rng.randint(150, 500),
                "tasks": tasks,
            }
        )
    return ProblemData.model_validate(
        {
            "objective": {"type": objective, "weights": {"makespan": 1, "tardiness": 1}},
            "machines": machines,
            "operators": operators,
            "jobs": jobs,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--objective", default="makespan")
    parser.add_argument("--option", action="append", default=[])
    args = parser.parse_args(argv)
    variant = Tuning(model=replace(ModelOptions(), **_pairs(args.option)))
    settings = SolverSettings(
        maxTimeSeconds=args.time_limit, numWorkers=args.workers, seed=args.seed
    )
    ratios = []
    for p in range(args.problems):
        problem = plant(p, args.objective)
        runs = [("default", Tuning()), ("variant", variant)]
        if p % 2:
            runs.reverse()
        values = {}
        for name, tuning in runs:
            values[name] = solve(problem, settings, tuning=tuning).objective
        a, b = values["default"], values["variant"]
        if a and b:
            ratios.append(b / a)
        print(f"plant {p}: default {a}, {' '.join(args.option) or 'default'} {b}", flush=True)
    if ratios:
        print(
            f"mean objective ratio variant/default: {statistics.mean(ratios):.4f} "
            f"over {len(ratios)} plants"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
