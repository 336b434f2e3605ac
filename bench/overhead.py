"""Solver overhead: model building vs the time limit, and time to the first schedule.

    .venv/bin/python bench/overhead.py                  # largest instance + the 20x20 ones

"Building" is everything before CP-SAT starts searching: index form, the dispatch schedules
(the hint) and the CP-SAT model. Targets (issue 4): building < 2 % of the time limit on the
largest bench instance; the first feasible schedule of a 20x20 instance in < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import loaders
from vulcan_operator.solver.dispatch import best_dispatch
from vulcan_operator.solver.instance import Instance
from vulcan_operator.solver.model import build
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import solve


def build_seconds(inst: loaders.BenchInstance) -> tuple[float, float, float]:
    problem = loaders.to_problem(*loaders.read(inst.path))
    t0 = time.perf_counter()
    instance = Instance.from_problem(problem)
    t1 = time.perf_counter()
    start = best_dispatch(instance)
    t2 = time.perf_counter()
    build(instance, start[0] if start else None)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def first_schedule(inst: loaders.BenchInstance, limit: float) -> tuple[float, float]:
    """(seconds to the first progress event, seconds to the first CP-SAT one)."""
    problem = loaders.to_problem(*loaders.read(inst.path))
    events: list[tuple[float, str]] = []
    solve(
        problem,
        SolverSettings(maxTimeSeconds=limit, numWorkers=2, seed=1),
        on_progress=lambda p: events.append((p.elapsed_seconds, p.source)),
    )
    first = events[0][0]
    cp_sat = next((e for e, source in events if source == "cp-sat"), float("nan"))
    return first, cp_sat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench-dir")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    every = loaders.instances(loaders.bench_dir(args.bench_dir))
    largest = max(every, key=lambda i: i.path.stat().st_size)
    for inst in [largest]:
        runs = [build_seconds(inst) for _ in range(args.repeat)]
        index, dispatch, model = (statistics.median(r[k] for r in runs) for k in range(3))
        total = index + dispatch + model
        print(
            f"{inst.name}: building {1000 * total:.1f} ms = {100 * total / args.time_limit:.2f} "
            f"% of {args.time_limit:g} s (index {1000 * index:.1f} ms, dispatch "
            f"{1000 * dispatch:.1f} ms, CP-SAT model {1000 * model:.1f} ms; median of "
            f"{args.repeat})"
        )
    for inst in every:
        if (
            inst.family == "jsp"
            and loaders.read(inst.path)[1] == 20
            and len(loaders.read(inst.path)[0]) == 20
        ):
            first, cp_sat = first_schedule(inst, 2.0)
            print(
                f"{inst.name} (20x20): first schedule after {first:.3f} s, first CP-SAT "
                f"schedule after {cp_sat:.3f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
