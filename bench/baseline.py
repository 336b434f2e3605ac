"""The plain CP-SAT model we compare against (what a first attempt looks like).

One interval per operation (an optional one per alternative machine in the flexible job shop,
exactly one present), NoOverlap per machine, job precedences, minimise the makespan; no hint,
no redundant constraints, no parameter tuning beyond workers, seed and time limit.
"""

from __future__ import annotations

import time

from ortools.sat.python import cp_model

from loaders import Jobs


def solve_plain(
    jobs: Jobs, n_machines: int, time_limit: float, workers: int, seed: int
) -> tuple[str, int | None, int | None, float]:
    """(status, makespan, bound, wall seconds) of the plain model."""
    started = time.monotonic()
    model = cp_model.CpModel()
    horizon = sum(max(d for _, d in op) for ops in jobs for op in ops)
    per_machine: list[list[cp_model.IntervalVar]] = [[] for _ in range(n_machines)]
    last_ends = []
    for j, ops in enumerate(jobs):
        previous_end = None
        for k, alternatives in enumerate(ops):
            start = model.new_int_var(0, horizon, f"s{j}_{k}")
            end = model.new_int_var(0, horizon, f"e{j}_{k}")
            if len(alternatives) == 1:
                machine, duration = alternatives[0]
                per_machine[machine].append(
                    model.new_interval_var(start, duration, end, f"i{j}_{k}")
                )
            else:
                literals = []
                for machine, duration in alternatives:
                    literal = model.new_bool_var(f"p{j}_{k}_{machine}")
                    literals.append(literal)
                    per_machine[machine].append(
                        model.new_optional_interval_var(
                            start, duration, end, literal, f"i{j}_{k}_{machine}"
                        )
                    )
                model.add_exactly_one(literals)
            if previous_end is not None:
                model.add(start >= previous_end)
            previous_end = end
        if previous_end is not None:
            last_ends.append(previous_end)
    for intervals in per_machine:
        model.add_no_overlap(intervals)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, last_ends)
    model.minimize(makespan)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit - (time.monotonic() - started))
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    status = solver.solve(model)
    wall = time.monotonic() - started
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return (
            solver.status_name(status),
            round(solver.objective_value),
            round(solver.best_objective_bound),
            wall,
        )
    return solver.status_name(status), None, None, wall
