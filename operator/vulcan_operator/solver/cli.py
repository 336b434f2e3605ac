"""`vulcan-operator solve`: solve a SchedulingProblem file locally.

Prints one line per improving schedule (objective, bound, gap, elapsed), then a summary and the
schedule (a table, or one line per machine for big schedules). --output writes the result JSON,
--gantt an SVG or HTML chart. Exit 0 whenever a result was produced (INFEASIBLE included), 1 for
an invalid problem file, 2 for usage errors. SIGTERM or Ctrl-C stops the search early and the
best schedule so far is reported and written as usual.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from pydantic import ValidationError

from vulcan_operator.solver import api
from vulcan_operator.solver.gantt import write_gantt
from vulcan_operator.solver.guard import abandoned_solver_thread
from vulcan_operator.solver.loader import ProblemFileError, load_file
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import text_printer
from vulcan_operator.solver.result import SolveResult
from vulcan_operator.solver.runner import (
    add_override_arguments,
    apply_overrides,
    gantt_path,
    override_error,
    stderr_lines,
)

FULL_TABLE_MAX = 80
"""Schedules with more tasks are printed one line per machine."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="SchedulingProblem YAML (or a bare problem mapping)")
    add_override_arguments(parser)
    parser.add_argument("--output", "-o", metavar="RESULT.json", help="write the result JSON")
    parser.add_argument(
        "--gantt",
        type=gantt_path,
        metavar="FILE.svg|FILE.html",
        help="draw the schedule as a Gantt chart",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_file(args.file)
    except ProblemFileError as error:
        print(f"error: invalid problem file {args.file}:", file=sys.stderr)
        for message in error.messages:
            print(f"  {message}", file=sys.stderr)
        return 1
    try:
        settings = apply_overrides(loaded.settings, args)
    except ValidationError as error:
        for line in override_error(error):
            print(f"vulcan-operator solve: error: {line}", file=sys.stderr)
        return 2
    problem = loaded.problem
    print(_header(loaded.name, problem, settings), flush=True)
    api.run(
        problem,
        settings,
        api.Callbacks(
            progress=() if args.quiet else [text_printer(sys.stdout)],
            result=lambda result: _report(result, problem, loaded.name, args),
            search_log=stderr_lines if args.log_search or loaded.log_search else None,
        ),
    )
    if abandoned_solver_thread():  # CP-SAT ignored the stop request: do not wait for it
        api.exit_process(0)
    return 0


def _report(result: SolveResult, problem: ProblemData, name: str, args: argparse.Namespace) -> None:
    """Write the files first (they matter most when time is short), then print."""
    written = []
    if args.output:
        Path(args.output).write_text(result.to_json() + "\n", encoding="utf-8")
        written.append(f"result written to {args.output}")
    if args.gantt:
        if result.assignments:
            write_gantt(args.gantt, problem, result, name)
            written.append(f"Gantt chart written to {args.gantt}")
        else:
            written.append(f"no schedule, so no Gantt chart written to {args.gantt}")
    print()
    print(summary_text(result))
    if result.assignments:
        print()
        print(schedule_text(problem, result))
    if written:
        print()
        print("\n".join(written))
    sys.stdout.flush()


def _header(name: str, problem: ProblemData, settings: SolverSettings) -> str:
    tasks = sum(len(j.tasks) for j in problem.jobs)
    horizon = f", horizon {problem.horizon}" if problem.horizon is not None else ""
    return (
        f"Solving {name}: {len(problem.jobs)} jobs, {tasks} tasks, {len(problem.machines)} "
        f"machines, {len(problem.operators)} operators; objective {problem.objective.type}"
        f"{horizon}\nlimit {settings.maxTimeSeconds:g} s, {settings.numWorkers} workers, "
        f"seed {settings.seed}"
    )


def summary_text(result: SolveResult) -> str:
    lines = [f"status     {result.status.value}"]
    if result.objective is not None:
        lines.append(f"objective  {result.objective}")
    if result.bound is not None:
        lines.append(f"bound      {result.bound}")
    if result.gap is not None:
        lines.append(f"gap        {100 * result.gap:.2f} %")
    if result.makespan is not None:
        lines.append(f"makespan   {result.makespan}")
    lines.append(
        f"time       {result.wall_seconds:.2f} s ({result.stop_reason or 'done'}), "
        f"{result.solutions} improving schedule(s)"
    )
    for sentence in result.explanation:
        lines.append(f"why        {sentence}")
    return "\n".join(lines)


def schedule_text(problem: ProblemData, result: SolveResult) -> str:
    """The schedule as a table by start time, or one line per machine when it is big."""
    rows = sorted(result.assignments, key=lambda a: (a.start, a.machine, a.job))
    if len(rows) <= FULL_TABLE_MAX:
        header = ("start", "end", "machine", "job", "task", "operator")
        cells = [
            (str(a.start), str(a.end), a.machine, a.job, a.task, a.operator or "-") for a in rows
        ]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
        for c in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        return "\n".join(lines)
    per_machine: dict[str, list[int]] = defaultdict(list)
    for a in rows:
        per_machine[a.machine].append(a.end - a.start)
    span = max(1, result.makespan or 1)
    width = max(len(m.name) for m in problem.machines)
    lines = [f"{len(rows)} tasks; per machine (use --output for the full schedule):"]
    for m in problem.machines:
        busy = sum(per_machine.get(m.name, []))
        lines.append(
            f"  {m.name.ljust(width)}  {len(per_machine.get(m.name, [])):5d} tasks  "
            f"busy {busy:8d}  ({100 * busy / span:5.1f} % of the makespan)"
        )
    return "\n".join(lines)
