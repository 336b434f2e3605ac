"""Large problems: plants of 1,000-20,000 tasks, Taillard ta51-ta80 and Brandimarte-style
flexible job shops at 5x and 20x, ours against the plain model (and, for plants, our own
dispatch schedule), each run in a child process of its own.

    .venv/bin/python bench/large.py plants --tasks 1000 5000 20000 --time-limit 60
    .venv/bin/python bench/large.py taillard --instances ta51 ta61 ta71 --time-limit 10
    .venv/bin/python bench/large.py fjsp --scales 5 20 --count 3 --time-limit 10
    .venv/bin/python bench/large.py taillard --instances ta71 --members 4 --time-limit 10

Per problem and seed the runs follow each other (ours, then plain, alternating who goes first),
so they see the same machine load. A child reports the objective, the time to its first
schedule, its wall time and its peak resident memory (VmHWM); a child that passes the limit by
more than 30 s is killed and counted as "no schedule". Ours gets `memoryLimitMB` = 2048 (the
guard and CP-SAT keep under it); the plain model gets CP-SAT's own max_memory_in_mb = 2048.

- `plants`: `plantgen.plant(tasks, seed)`, weighted tardiness. Plain = our own model of the
  problem (model.build) with no hint and none of our options, CP-SAT's defaults, no dispatch;
  dispatch = the best of our dispatch rules (what ours starts from).
- `taillard`: `../shared/bench/jsp-large` (ta51-ta80, best known in bks.json); plain =
  bench/baseline.py. Gap = (makespan - bks) / bks; no schedule counts as 100 %.
- `fjsp`: Brandimarte-style flexible job shops at 5x and 20x the size of mk01-mk10
  (`brandimarte_like`), gap to a lower bound (longest job, total work / machines), so the
  gaps overstate the distance to the optimum; plain = bench/baseline.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MEMORY_MB = 2048


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _problem(spec: dict[str, Any]) -> tuple[Any, Any]:
    """(ProblemData, (jobs, machines) for the job-shop baseline or None)."""
    sys.path.insert(0, str(HERE))
    import loaders
    from plantgen import plant_problem

    if spec["kind"] == "plant":
        return plant_problem(spec["tasks"], spec["seed"]), None
    if spec["kind"] == "fjsp":
        jobs, machines = brandimarte_like(spec["scale"], spec["instance"])
    else:
        jobs, machines = loaders.read(Path(spec["path"]), "jsp")
    return loaders.to_problem(jobs, machines), (jobs, machines)


def brandimarte_like(scale: int, seed: int) -> tuple[list[list[list[tuple[int, int]]]], int]:
    """A flexible job shop drawn as Brandimarte drew mk01-mk10 (5-10 operations a job, up to
    3 eligible machines an operation, durations 1-20), with `scale` x 15 jobs on
    `scale` x 3 + 5 machines (x5: 75 jobs on 20 machines; x20: 300 jobs on 65)."""
    rng = random.Random(1000 * scale + seed)
    machines = 3 * scale + 5
    jobs = []
    for _ in range(15 * scale):
        ops = []
        for _ in range(rng.randint(5, 10)):
            eligible = rng.sample(range(machines), rng.randint(1, 3))
            ops.append([(m, rng.randint(1, 20)) for m in eligible])
        jobs.append(ops)
    return jobs, machines


def lower_bound(jobs: list[list[list[tuple[int, int]]]], machines: int) -> int:
    """Longest job (shortest durations) and total shortest work over the machines."""
    chain = max(sum(min(d for _, d in op) for op in ops) for ops in jobs)
    work = sum(min(d for _, d in op) for ops in jobs for op in ops)
    return max(chain, -(-work // machines))


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One run (in its own process): ours, plain or dispatch."""
    started = time.monotonic()
    problem, shop = _problem(spec)
    from vulcan_operator.solver.check import check_schedule
    from vulcan_operator.solver.dispatch import best_dispatch
    from vulcan_operator.solver.instance import Instance
    from vulcan_operator.solver.portfolio import member
    from vulcan_operator.solver.problem import SolverSettings
    from vulcan_operator.solver.solve import solve

    limit, workers, seed = spec["limit"], spec["workers"], spec["seed"]
    out: dict[str, Any] = {"objective": None, "first": None}
    if spec["model"] == "ours":
        first: list[float] = []
        settings, tuning, strategy = member(
            SolverSettings(
                maxTimeSeconds=limit, numWorkers=workers, seed=seed, memoryLimitMB=MEMORY_MB
            ),
            spec.get("member", 0),
        )
        out["strategy"] = strategy
        result = solve(
            problem,
            settings,
            tuning=tuning,
            on_progress=lambda p: first.append(p.elapsed_seconds) if not first else None,
        )
        out["objective"] = result.objective
        out["first"] = first[0] if first else None
        out["valid"] = not check_schedule(problem, result.assignments)
        out["stop"] = result.stop_reason
        out["solveWall"] = round(result.wall_seconds, 2)
    elif spec["model"] == "dispatch":
        instance = Instance.from_problem(problem)
        found = best_dispatch(instance, deadline=started + limit, more_until=started + limit)
        if found is not None:
            out["objective"] = instance.objective_of(found[0].ends)
            out["rule"] = found[1]
            out["first"] = time.monotonic() - started
    elif shop is not None:
        from baseline import solve_plain

        _, makespan, _, _ = solve_plain(shop[0], shop[1], limit, workers, seed)
        out["objective"] = makespan
    else:
        out.update(_plain_plant(problem, limit, workers, seed, started))
    out["wall"] = round(time.monotonic() - started, 2)
    out["peakMiB"] = round(_peak_mib())
    return out


def _plain_plant(problem: Any, limit: float, workers: int, seed: int, started: float) -> Any:
    from ortools.sat.python import cp_model

    from vulcan_operator.solver.instance import Instance
    from vulcan_operator.solver.model import ModelOptions, build

    instance = Instance.from_problem(problem)
    plain = ModelOptions(
        hint=False,
        tight_horizon=False,
        window_holes=False,
        skill_cumulative=False,
        machine_load=False,
    )
    built = build(instance, None, plain)
    first: list[float] = []

    class First(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            if not first:
                first.append(time.monotonic() - started)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, limit - (time.monotonic() - started))
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.max_memory_in_mb = MEMORY_MB
    status = solver.solve(built.model, First())
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    return {
        "objective": round(solver.objective_value) if found else None,
        "first": first[0] if first else None,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=spec["limit"] + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"objective": None, "error": "killed after limit + 30 s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"objective": None, "error": done.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", choices=["plants", "taillard", "fjsp"])
    parser.add_argument("--scales", type=int, nargs="+", default=[5, 20], help="fjsp sizes")
    parser.add_argument("--count", type=int, default=3, help="fjsp instances per size")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--instances", nargs="+", help="taillard: only these")
    parser.add_argument("--bench-dir", default=str(HERE.parent.parent / "shared" / "bench"))
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument(
        "--members",
        type=int,
        default=0,
        help="portfolio: run members 0..N-1 of ours one after another (same limit each) "
        "and compare the best of them with member 0 (one pod); no plain, no dispatch",
    )
    parser.add_argument("--jsonl", help="append every record here")
    args = parser.parse_args(argv)
    problems: list[dict[str, Any]] = []
    if args.set == "plants":
        problems = [{"kind": "plant", "tasks": t, "name": f"plant{t}"} for t in args.tasks]
    elif args.set == "fjsp":
        for scale in args.scales:
            for n in range(args.count):
                shop = brandimarte_like(scale, n)
                problems.append(
                    {
                        "kind": "fjsp",
                        "scale": scale,
                        "instance": n,
                        "name": f"mk-x{scale}-{n}",
                        "bks": lower_bound(*shop),  # a lower bound: gaps are upper bounds
                    }
                )
    else:
        folder = Path(args.bench_dir) / "jsp-large"
        known = json.loads((folder / "bks.json").read_text())
        for name in sorted(known):
            if not args.instances or name in args.instances:
                problems.append(
                    {
                        "kind": "jsp",
                        "path": str(folder / f"{name}.txt"),
                        "name": name,
                        "bks": known[name]["bks"],
                    }
                )
    models = ["ours"] + ([] if args.no_plain else ["plain"])
    if args.set == "plants":
        models.append("dispatch")
    if args.members:
        models = [f"member{k}" for k in range(args.members)]
    rows = []
    for k, base in enumerate(problems):
        for seed in args.seeds:
            order = models if k % 2 == 0 else list(reversed(models))
            for model in order:
                spec = {
                    **base,
                    "seed": seed,
                    "limit": args.time_limit,
                    "workers": args.workers,
                    "model": model,
                }
                if model.startswith("member"):
                    spec.update(model="ours", member=int(model[6:]))
                record = {**spec, **run_child(spec), "load": round(os.getloadavg()[0], 2)}
                rows.append(record)
                print(json.dumps({k: v for k, v in record.items() if k != "path"}), flush=True)
                if args.jsonl:
                    with Path(args.jsonl).open("a") as out:
                        out.write(json.dumps(record) + "\n")
    print()
    print(portfolio_summary(rows) if args.members else summary(rows))
    return 0


def portfolio_summary(rows: list[dict[str, Any]]) -> str:
    """Per problem and seed: one pod (member 0) against the best of the N members."""
    by: dict[tuple[str, int], dict[int, Any]] = {}
    for r in rows:
        by.setdefault((r["name"], r["seed"]), {})[r["member"]] = r.get("objective")
    n = max(len(v) for v in by.values())
    lines = [
        f"| problem | seed | one pod (member 0) | best of {n} | found by | gain % |",
        "|---|---:|---:|---:|---|---:|",
    ]
    gains = []
    for (name, seed), found in by.items():
        values = {k: v for k, v in found.items() if v is not None}
        if 0 not in values:
            continue
        winner = min(values, key=lambda k: (values[k], k))
        one, best = values[0], values[winner]
        gain = 100 * (one - best) / one if one else 0.0
        gains.append(gain)
        lines.append(f"| {name} | {seed} | {one} | {best} | member {winner} | {gain:.2f} |")
    if gains:
        lines += ["", f"- mean gain of best-of-{n} over one pod: {statistics.mean(gains):.2f} %"]
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """A markdown table: per problem, each model's objective (and gap for Taillard)."""
    models = sorted({r["model"] for r in rows}, key=["ours", "plain", "dispatch"].index)
    lines = [
        "| problem | seed | "
        + " | ".join(f"{m} objective | {m} first s | {m} peak MiB" for m in models)
        + " |",
        "|---|---:|" + "---:|---:|---:|" * len(models),
    ]
    by = {(r["name"], r["seed"], r["model"]): r for r in rows}
    gaps: dict[str, list[float]] = {m: [] for m in models}
    for name, seed in dict.fromkeys((r["name"], r["seed"]) for r in rows):
        cells = []
        for m in models:
            r = by.get((name, seed, m), {})
            value = r.get("objective")
            first = r.get("first")
            cells += [
                "-" if value is None else str(value),
                "-" if first is None else f"{first:.2f}",
                str(r.get("peakMiB", "-")),
            ]
            if "bks" in r:  # no schedule counts as 100 %
                gap = 100.0 if value is None else 100 * (value - r["bks"]) / r["bks"]
                gaps[m].append(gap)
        lines.append(f"| {name} | {seed} | " + " | ".join(cells) + " |")
    notes = [
        f"- {m}: mean gap {statistics.mean(values):.2f} % ({len(values)} runs)"
        for m, values in gaps.items()
        if values
    ]
    if gaps.get("ours") and gaps.get("plain") and statistics.mean(gaps["plain"]):
        ratio = statistics.mean(gaps["ours"]) / statistics.mean(gaps["plain"])
        notes.append(f"- ratio of mean gaps ours / plain: **{ratio:.2f}**")
    return "\n".join(lines + (["", *notes] if notes else []))


if __name__ == "__main__":
    sys.exit(main())
