"""Our solver vs the plain CP-SAT model, side by side, one instance at a time.

    .venv/bin/python bench/run.py                       # whole set, 10 s, 2 workers, seeds 1 2
    .venv/bin/python bench/run.py --instances ta21 mk04 --seeds 1
    .venv/bin/python bench/run.py --option hint=false --param use_lns=false --no-baseline
    .venv/bin/python bench/run.py --report /tmp/a.jsonl  # table from earlier runs

Both get the same wall-clock limit (model building included), workers and seed. The two runs
of one instance and seed follow each other (alternating which goes first), so they see the
same machine load. Every run is appended to --jsonl as one JSON object; the table (per
instance: makespan and gap to the best known per seed, then mean gaps and the ratio
ours/baseline) goes to stdout and, with --markdown, to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import loaders
from baseline import solve_plain
from vulcan_operator.solver.model import ModelOptions
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import DEFAULT_PARAMETERS, Phase, Tuning, solve


def _value(text: str) -> Any:
    if "," in text:
        return [_value(part) for part in text.split(",") if part]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pairs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = _value(value)
    return out


def run_ours(
    inst: loaders.BenchInstance, limit: float, workers: int, seed: int, tuning: Tuning
) -> dict[str, Any]:
    problem = loaders.to_problem(*loaders.read(inst.path))
    settings = SolverSettings(maxTimeSeconds=limit, numWorkers=workers, seed=seed)
    first: list[float] = []
    result = solve(
        problem,
        settings,
        tuning=tuning,
        on_progress=lambda p: first.append(p.elapsed_seconds) if not first else None,
    )
    return {
        "status": result.status.value,
        "makespan": result.makespan,
        "bound": result.bound,
        "wall": round(result.wall_seconds, 3),
        "first": first[0] if first else None,
    }


def run_baseline(
    inst: loaders.BenchInstance, limit: float, workers: int, seed: int
) -> dict[str, Any]:
    jobs, machines = loaders.read(inst.path)
    status, makespan, bound, wall = solve_plain(jobs, machines, limit, workers, seed)
    return {"status": status, "makespan": makespan, "bound": bound, "wall": round(wall, 3)}


def gap(makespan: int | None, bks: int) -> float | None:
    return None if makespan is None else 100.0 * (makespan - bks) / bks


def table(rows: list[dict[str, Any]], label: str = "ours", against: str = "baseline") -> str:
    """Markdown table and summary lines from run records."""
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    meta: dict[str, dict[str, Any]] = {}
    seeds: set[int] = set()
    for row in rows:
        by[(row["instance"], row["model"])][row["seed"]] = row
        meta[row["instance"]] = row
        seeds.add(row["seed"])
    order = sorted(seeds)
    names = sorted(meta, key=lambda n: (meta[n]["family"] != "jsp", n))
    seed_cols = " | ".join(f"ours s{s} | base s{s}" for s in order)
    lines = [
        f"| instance | size | bks | {seed_cols} | ours gap % | base gap % | diff (pts) |",
        "|---|---|---:|" + "---:|" * (2 * len(order)) + "---:|---:|---:|",
    ]
    gaps: dict[str, dict[int, list[float]]] = {"ours": defaultdict(list), "base": defaultdict(list)}
    worst = (-1e9, "")
    for name in names:
        info = meta[name]
        cells, means = [], {}
        for model, key in (("ours", label), ("base", against)):
            values = []
            for s in order:
                row = by.get((name, key), {}).get(s)
                g = gap(row["makespan"], info["bks"]) if row else None
                if g is None:
                    g = 100.0 if row else None  # no schedule: count as 100 % (never happened)
                if g is not None:
                    gaps[model][s].append(g)
                    values.append(g)
            means[model] = statistics.mean(values) if values else float("nan")
        for s in order:
            for key in (label, against):
                row = by.get((name, key), {}).get(s)
                cells.append("-" if not row or row["makespan"] is None else str(row["makespan"]))
        diff = means["ours"] - means["base"]
        worst = max(worst, (diff, name))
        lines.append(
            f"| {name} | {info['n_jobs']}x{info['n_machines']} | {info['bks']} | "
            + " | ".join(cells)
            + f" | {means['ours']:.2f} | {means['base']:.2f} | {diff:+.2f} |"
        )
    lines.append("")
    for s in order:
        o, b = gaps["ours"][s], gaps["base"][s]
        if o and b:
            lines.append(
                f"- seed {s}: mean gap ours {statistics.mean(o):.2f} %, baseline "
                f"{statistics.mean(b):.2f} % ({len(o)} / {len(b)} instances)"
            )
    all_o = [g for s in order for g in gaps["ours"][s]]
    all_b = [g for s in order for g in gaps["base"][s]]
    if all_o and all_b:
        mo, mb = statistics.mean(all_o), statistics.mean(all_b)
        ratio = mo / mb if mb else float("nan")
        lines.append(
            f"- all seeds: mean gap ours {mo:.2f} %, baseline {mb:.2f} %, "
            f"ratio ours/baseline **{ratio:.2f}**"
        )
        lines.append(f"- worst instance vs baseline: {worst[1]} ({worst[0]:+.2f} points)")
    return "\n".join(lines)


def _variant_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--option", action="append", default=[])
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--phase", action="append", default=[])
    return parser


def _tuning(options: list[str], params: list[str], phase_texts: list[str]) -> Tuning:
    phases = tuple(
        Phase(float(until), _pairs([p for p in rest.split(";") if p]))
        for until, _, rest in (text.partition(":") for text in phase_texts)
    )
    return Tuning(
        model=replace(ModelOptions(), **_pairs(options)),
        parameters={**DEFAULT_PARAMETERS, **_pairs(params)},
        phases=tuple(phases) or None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bench-dir", help="instances (default $VULCAN_BENCH_DIR or ../shared/bench)"
    )
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--instances", nargs="+", help="only these instance names")
    parser.add_argument("--family", choices=loaders.FAMILIES)
    parser.add_argument(
        "--option", action="append", default=[], help="ModelOptions field=value (repeatable)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help="extra CP-SAT parameter name=value (repeatable)",
    )
    parser.add_argument(
        "--phase",
        action="append",
        default=[],
        help="search phase UNTIL[:name=value;...] (repeatable; UNTIL is the "
        "share of the time limit at which it ends)",
    )
    parser.add_argument("--label", default="ours", help="name of our variant in the records")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="another variant run in turn with ours: 'LABEL: --option .. --param .. --phase ..'",
    )
    parser.add_argument("--against", default="baseline", help="label to compare with (--report)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-ours", action="store_true")
    parser.add_argument("--jsonl", help="append every run record to this file")
    parser.add_argument("--markdown", help="write the table to this file")
    parser.add_argument("--report", nargs="+", help="only print the table of these JSONL files")
    args = parser.parse_args(argv)

    if args.report:
        rows = [
            json.loads(line)
            for path in args.report
            for line in Path(path).read_text().splitlines()
            if line.strip()
        ]
        print(table(rows, args.label, args.against))
        return 0

    variants = [(args.label, _tuning(args.option, args.param, args.phase))]
    for text in args.variant:
        label, _, rest = text.partition(":")
        extra = _variant_parser().parse_args(shlex.split(rest))
        variants.append((label.strip(), _tuning(extra.option, extra.param, extra.phase)))
    chosen = loaders.instances(loaders.bench_dir(args.bench_dir), args.instances)
    if args.family:
        chosen = [i for i in chosen if i.family == args.family]
    if not chosen:
        print("no instances found", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = []
    turn = 0
    for inst in chosen:
        for seed in args.seeds:
            runs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
            if not args.no_ours:
                for label, tuning in variants:
                    runs.append(
                        (
                            label,
                            partial(run_ours, inst, args.time_limit, args.workers, seed, tuning),
                        )
                    )
            if not args.no_baseline:
                runs.append(
                    ("baseline", partial(run_baseline, inst, args.time_limit, args.workers, seed))
                )
            shift = turn % max(1, len(runs))  # rotate who goes first: same load for all
            runs = runs[shift:] + runs[:shift]
            turn += 1
            for model, fn in runs:
                record = {
                    "instance": inst.name,
                    "family": inst.family,
                    "seed": seed,
                    "model": model,
                    "bks": inst.bks,
                    "timeLimit": args.time_limit,
                    "workers": args.workers,
                    "options": args.option,
                    "params": args.param,
                    "phases": args.phase,
                    "variants": args.variant,
                    "n_jobs": None,
                    "n_machines": None,
                    "at": time.strftime("%H:%M:%S"),
                    "load": round(os.getloadavg()[0], 2),
                }
                jobs, machines = loaders.read(inst.path)
                record["n_jobs"], record["n_machines"] = len(jobs), machines
                record.update(fn())
                g = gap(record["makespan"], inst.bks)
                print(
                    f"{inst.name:7s} seed {seed} {model:10s} makespan {record['makespan']} "
                    f"gap {'-' if g is None else f'{g:.2f}%'} wall {record['wall']}s "
                    f"load {record['load']}",
                    flush=True,
                )
                rows.append(record)
                if args.jsonl:
                    with Path(args.jsonl).open("a") as out:
                        out.write(json.dumps(record) + "\n")
    text = table(rows, args.label)
    print()
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
