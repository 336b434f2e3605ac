"""Loaders for the standard benchmark formats, and where the instances live.

- Job shop (OR-Library / Taillard body format): first line `n_jobs n_machines`, then one line
  per job of `machine duration` pairs in processing order, machines numbered from 0.
- Flexible job shop (Brandimarte): first line `n_jobs n_machines [...]`, then one line per job:
  the number of operations, then per operation `k` followed by `k` pairs `machine duration`.

`read_*` return plain lists (for the baseline model); `to_problem` turns them into our
`ProblemData`. The instances and their best-known makespans (`bks.json`) are in
`../shared/bench` relative to the repository, or wherever `VULCAN_BENCH_DIR` points.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vulcan_operator.solver.problem import ProblemData

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BENCH_DIR = REPO / ".." / "shared" / "bench"
FAMILIES = ("jsp", "fjsp")

Operation = list[tuple[int, int]]
"""Alternatives of one operation: (machine, duration) pairs (one pair in a job shop)."""
Jobs = list[list[Operation]]


def bench_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The benchmark folder: the argument, else $VULCAN_BENCH_DIR, else ../shared/bench."""
    chosen = override or os.environ.get("VULCAN_BENCH_DIR") or DEFAULT_BENCH_DIR
    return Path(chosen).resolve()


def _numbers(text: str) -> list[list[int]]:
    return [[int(x) for x in line.split()] for line in text.splitlines() if line.strip()]


def parse_jsp(text: str) -> tuple[Jobs, int]:
    rows = _numbers(text)
    n_jobs, n_machines = rows[0][0], rows[0][1]
    jobs: Jobs = []
    for row in rows[1 : 1 + n_jobs]:
        if len(row) % 2:
            raise ValueError(f"job line with an odd number of values: {row}")
        jobs.append([[(row[i], row[i + 1])] for i in range(0, len(row), 2)])
    if len(jobs) != n_jobs:
        raise ValueError(f"expected {n_jobs} job lines, found {len(jobs)}")
    return jobs, n_machines


def parse_fjsp(text: str) -> tuple[Jobs, int]:
    rows = _numbers(text)
    n_jobs, n_machines = rows[0][0], rows[0][1]
    jobs: Jobs = []
    for row in rows[1 : 1 + n_jobs]:
        n_ops, pos, ops = row[0], 1, []
        for _ in range(n_ops):
            k = row[pos]
            ops.append([(row[pos + 1 + 2 * a], row[pos + 2 + 2 * a]) for a in range(k)])
            pos += 1 + 2 * k
        if pos != len(row):
            raise ValueError(f"job line has {len(row) - pos} values left over: {row}")
        jobs.append(ops)
    if len(jobs) != n_jobs:
        raise ValueError(f"expected {n_jobs} job lines, found {len(jobs)}")
    return jobs, n_machines


def read(path: Path, family: str | None = None) -> tuple[Jobs, int]:
    """Parse a file; the family (jsp or fjsp) defaults to the name of its folder."""
    text = path.read_text()
    return parse_fjsp(text) if (family or path.parent.name) == "fjsp" else parse_jsp(text)


def to_problem(jobs: Jobs, n_machines: int) -> ProblemData:
    """Machines m0.., jobs j0.., tasks o0..; minimise the makespan.

    Zero-duration operations (orb07 has one) are dropped: they occupy no machine time and a
    chain through them is the same chain, so the optimal makespan is unchanged.
    """
    machines = [{"name": f"m{m}"} for m in range(n_machines)]
    out_jobs = []
    for j, ops in enumerate(jobs):
        tasks = []
        for k, alternatives in enumerate(ops):
            alts = [(m, d) for m, d in alternatives if d > 0]
            if len(alts) < len(alternatives):
                continue
            durations = {f"m{m}": d for m, d in alts}
            default = min(durations.values())
            tasks.append(
                {
                    "name": f"o{k}",
                    "duration": default,
                    "machines": list(durations),
                    "machineDurations": {m: d for m, d in durations.items() if d != default},
                }
            )
        out_jobs.append({"name": f"j{j}", "tasks": tasks})
    return ProblemData.model_validate(
        {"objective": {"type": "makespan"}, "machines": machines, "jobs": out_jobs}
    )


@dataclass(frozen=True)
class BenchInstance:
    family: str
    name: str
    path: Path
    bks: int
    lower_bound: int
    optimal: bool


def instances(root: Path, names: list[str] | None = None) -> list[BenchInstance]:
    """Every instance with a best-known makespan, job shop first, in name order."""
    out = []
    for family in FAMILIES:
        folder = root / family
        if not folder.is_dir():
            continue
        known = json.loads((folder / "bks.json").read_text())
        for name in sorted(known):
            if names and name not in names:
                continue
            info = known[name]
            path = folder / f"{name}.txt"
            if path.exists():
                out.append(
                    BenchInstance(
                        family,
                        name,
                        path,
                        int(info["bks"]),
                        int(info["lower_bound"]),
                        bool(info["optimal"]),
                    )
                )
    return out


def best_known(path: Path) -> int | None:
    """The best-known makespan of an instance file, from bks.json beside it."""
    known = path.parent / "bks.json"
    if not known.exists():
        return None
    info = json.loads(known.read_text()).get(path.stem)
    return None if info is None else int(info["bks"])
