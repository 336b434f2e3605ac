"""Seeded plants of real size: 1,000 to 20,000 tasks, for bench/large.py.

    .venv/bin/python bench/plantgen.py --tasks 5000 --seed 1 > /tmp/plant5k.json

A plant of T tasks: T/10 jobs of 5-15 tasks; T/100 machines (at least 10) in zones of 10; each
task runs on 1-3 machines of its job's zone (own durations), one in eight of a job's tasks moves
to another zone; one skill per zone and one for inspection, T/40 operators (at least 6) with
1-3 skills, 45 % of the tasks need a skill; every machine has one downtime window per 1,500
time units; release dates spread over the first 85 % of the expected horizon (1.2 x the mean
machine load), due dates at release + 1.5-5 x the job's work; priorities 1-10; the objective is
weighted tardiness.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

from vulcan_operator.solver.problem import ProblemData

ZONE_SIZE = 10


def plant(tasks: int, seed: int = 1) -> dict[str, Any]:
    """The plant as a problem dict (validate with ProblemData.model_validate)."""
    rng = random.Random(seed * 1_000_003 + tasks)
    n_machines = max(10, tasks // 100)
    n_zones = max(1, n_machines // ZONE_SIZE)
    zones = [list(range(z, n_machines, n_zones)) for z in range(n_zones)]
    skills = [f"zone{z}" for z in range(n_zones)] + ["inspection"]
    n_operators = max(6, tasks // 40)
    operators = []
    for o in range(n_operators):
        own = {skills[o % n_zones], *rng.sample(skills, rng.randint(0, 2))}
        operators.append({"name": f"op{o}", "skills": sorted(own)})
    n_jobs = max(1, tasks // 10)
    # Expected load per machine (tasks x mean duration / machines), with some slack.
    horizon = int(1.2 * tasks * 34 / n_machines)
    machines = []
    for m in range(n_machines):
        machine: dict[str, Any] = {"name": f"m{m}", "zone": f"hall-{m % n_zones}"}
        windows = []
        for w in range(max(1, horizon // 1500)):
            start = rng.randint(w * 1500, (w + 1) * 1500 - 100)
            windows.append({"start": start, "end": start + rng.randint(20, 80)})
        machine["unavailable"] = windows
        machines.append(machine)
    jobs = []
    made = 0
    for j in range(n_jobs):
        count = tasks - made if j == n_jobs - 1 else rng.randint(5, 15)
        count = max(1, min(count, tasks - made - (n_jobs - 1 - j)))
        made += count
        zone = rng.randrange(n_zones)
        job_tasks, work = [], 0
        for k in range(count):
            here = zones[rng.randrange(n_zones)] if rng.random() < 0.125 else zones[zone]
            eligible = rng.sample(here, min(len(here), rng.randint(1, 3)))
            base = rng.randint(5, 60)
            work += base
            task: dict[str, Any] = {
                "name": f"t{k}",
                "duration": base,
                "machines": [f"m{m}" for m in eligible],
                "machineDurations": {
                    f"m{m}": max(1, base + rng.randint(-5, 20)) for m in eligible[1:]
                },
            }
            if rng.random() < 0.45:
                task["skill"] = "inspection" if rng.random() < 0.2 else skills[zone]
            job_tasks.append(task)
        release = rng.randint(0, int(0.85 * horizon))
        jobs.append(
            {
                "name": f"j{j}",
                "priority": rng.randint(1, 10),
                "releaseDate": release,
                "dueDate": release + int(work * rng.uniform(1.5, 5.0)),
                "tasks": job_tasks,
            }
        )
    return {
        "objective": {"type": "weightedTardiness"},
        "machines": machines,
        "operators": operators,
        "jobs": jobs,
    }


def plant_problem(tasks: int, seed: int = 1) -> ProblemData:
    return ProblemData.model_validate(plant(tasks, seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    json.dump(plant(args.tasks, args.seed), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
