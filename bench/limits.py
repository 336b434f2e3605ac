"""The wall-clock promise over the whole bench set: every solve ends within its time limit plus
the guard's grace (`solve.GRACE_SECONDS`), measured around `solve()` (model building and the
dispatch start included), as the solver pod's caller sees it.

    .venv/bin/python bench/limits.py                          # every instance, 2 s, 2 workers
    .venv/bin/python bench/limits.py --time-limit 1 --seeds 1 2 --instances ta41 mk05
    .venv/bin/python bench/limits.py --jsonl /tmp/limits.jsonl

Exit 1 when a solve took longer; one line per solve, then a summary. CI runs a sample of this
(tests/unit/solver/test_solver_limits.py); this is the full check, minutes long.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import loaders
from vulcan_operator.solver.guard import GRACE_SECONDS
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import solve


def check(inst: loaders.BenchInstance, limit: float, workers: int, seed: int) -> dict[str, Any]:
    problem = loaders.to_problem(*loaders.read(inst.path))
    settings = SolverSettings(maxTimeSeconds=limit, numWorkers=workers, seed=seed)
    started = time.monotonic()
    result = solve(problem, settings)
    wall = time.monotonic() - started
    return {
        "instance": inst.name,
        "seed": seed,
        "timeLimit": limit,
        "workers": workers,
        "tasks": sum(len(j.tasks) for j in problem.jobs),
        "status": result.status.value,
        "stopReason": result.stop_reason,
        "wallSeconds": round(result.wall_seconds, 3),
        "outerWall": round(wall, 3),
        "over": wall > limit + GRACE_SECONDS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bench-dir", help="instances (default $VULCAN_BENCH_DIR or ../shared/bench)"
    )
    parser.add_argument("--time-limit", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--instances", nargs="+", help="only these instance names")
    parser.add_argument("--jsonl", help="append every record to this file")
    args = parser.parse_args(argv)
    chosen = loaders.instances(loaders.bench_dir(args.bench_dir), args.instances)
    if not chosen:
        print("no instances found", file=sys.stderr)
        return 1
    rows = []
    for inst in chosen:
        for seed in args.seeds:
            row = check(inst, args.time_limit, args.workers, seed)
            rows.append(row)
            print(
                f"{row['instance']:7s} seed {seed} {row['tasks']:5d} tasks"
                f"  {row['outerWall']:6.2f} s  {row['status']:8s} {row['stopReason']}"
                + ("  OVER" if row["over"] else ""),
                flush=True,
            )
            if args.jsonl:
                with Path(args.jsonl).open("a") as out:
                    out.write(json.dumps(row) + "\n")
    over = [r for r in rows if r["over"]]
    longest = max(rows, key=lambda r: r["outerWall"])
    print(
        f"\n{len(rows)} solves at {args.time_limit:g} s: {len(over)} over limit + "
        f"{GRACE_SECONDS:g} s; longest {longest['instance']} seed {longest['seed']} "
        f"{longest['outerWall']} s (limit + {longest['outerWall'] - args.time_limit:.2f} s)"
    )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
