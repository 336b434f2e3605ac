"""The solver as a JSON-lines process, and the helpers its command lines share.

    python -m vulcan_operator.solver.runner --problem FILE --output RESULT.json
        [--time-limit S] [--workers N] [--seed N] [--memory-limit MB]
        [--termination-log PATH] [--gantt FILE.svg|FILE.html] [--log-search]

stdout carries one JSON object per line: `{"event": "start", ...}`, then
`{"event": "progress", "objective", "bound", "gap", "elapsedSeconds", "solutions"}` for every
improving schedule (gap is a fraction), then `{"event": "result", ...summary}`. The full result
JSON goes to --output. A summary (< 4 KiB) goes to the termination log: --termination-log, else
/dev/termination-log when it exists and is writable (Kubernetes mounts it). Exit 0 whenever a
result was written (INFEASIBLE included), 1 for an invalid problem (messages on stderr, in an
`{"event": "invalid"}` line and in the termination log), 2 for usage errors. SIGTERM and SIGINT
stop the search; the best schedule so far is written and the process exits 0.

Progress is pluggable: `main(argv, progress_callbacks=[...])` adds callbacks next to the JSON
lines. The solver pod (`vulcan_operator.solverpod`, what the solver Job runs) is not this
program: it calls `solver.api.run` itself and shares the JSON lines and the termination log
from here (`emit`, `start_event`, `report_invalid`, `write_termination_log`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vulcan_operator.solver import api
from vulcan_operator.solver.gantt import write_gantt
from vulcan_operator.solver.loader import ProblemFileError, error_lines, load_file
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import ProgressCallback, json_lines_printer
from vulcan_operator.solver.result import SolveResult

TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_LOG_LIMIT = 4096


def gantt_path(value: str) -> str:
    """argparse type: a path ending in .svg or .html."""
    if Path(value).suffix.lower() not in (".svg", ".html", ".htm"):
        raise argparse.ArgumentTypeError(f"{value!r} must end in .svg or .html")
    return value


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be greater than 0")
    return number


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """--time-limit, --workers, --seed, --memory-limit: override the spec's solver settings."""
    parser.add_argument(
        "--time-limit",
        type=positive_float,
        metavar="SECONDS",
        help="wall-clock limit (default: spec.solver.maxTimeSeconds, else 300)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="CP-SAT workers (default: spec.solver.numWorkers, else 4)",
    )
    parser.add_argument(
        "--seed", type=int, metavar="N", help="random seed (default: spec.solver.seed, else 0)"
    )
    parser.add_argument(
        "--memory-limit",
        type=int,
        metavar="MB",
        help="solver memory limit in MiB (default: spec.solver.memoryLimitMB)",
    )
    parser.add_argument(
        "--log-search",
        action="store_true",
        help="CP-SAT's search log on stderr (also with spec.solver.logSearch: true)",
    )


def apply_overrides(settings: SolverSettings, args: argparse.Namespace) -> SolverSettings:
    """The settings with the command-line overrides; ValidationError when out of range."""
    updates: dict[str, Any] = {}
    for flag, field in (
        ("time_limit", "maxTimeSeconds"),
        ("workers", "numWorkers"),
        ("seed", "seed"),
        ("memory_limit", "memoryLimitMB"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            updates[field] = value
    return SolverSettings.model_validate({**settings.model_dump(), **updates})


def override_error(error: ValidationError) -> list[str]:
    flags = {
        "maxTimeSeconds": "--time-limit",
        "numWorkers": "--workers",
        "seed": "--seed",
        "memoryLimitMB": "--memory-limit",
    }
    lines = error_lines(error, "")
    for field, flag in flags.items():
        lines = [line.replace(field, flag, 1) if line.startswith(field) else line for line in lines]
    return lines


def write_termination_log(path: Path | None, payload: dict[str, Any]) -> None:
    target = path
    if target is None and TERMINATION_LOG.exists() and os.access(TERMINATION_LOG, os.W_OK):
        target = TERMINATION_LOG
    if target is None:
        return
    text = json.dumps(payload)
    if len(text.encode()) >= TERMINATION_LOG_LIMIT:
        short = dict(payload)
        for key in ("explanation", "messages"):
            if isinstance(short.get(key), list):
                short[key] = [str(item)[:300] for item in short[key][:5]]
        text = json.dumps(short)
    if len(text.encode()) >= TERMINATION_LOG_LIMIT:
        keep = ("status", "objective", "bound", "makespan", "wallSeconds", "error")
        text = json.dumps({k: payload[k] for k in keep if k in payload})
    try:
        target.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        print(f"warning: cannot write the termination log {target}: {error}", file=sys.stderr)


def stderr_lines(line: str) -> None:
    """A search log line on stderr (stdout carries the JSON lines)."""
    print(line, file=sys.stderr, flush=True)


def emit(event: dict[str, Any]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(event), flush=True)


def start_event(name: str, problem: ProblemData, settings: SolverSettings) -> dict[str, Any]:
    return {
        "event": "start",
        "problem": name,
        "jobs": len(problem.jobs),
        "tasks": sum(len(j.tasks) for j in problem.jobs),
        "machines": len(problem.machines),
        "operators": len(problem.operators),
        "objective": problem.objective.type,
        "timeLimit": settings.maxTimeSeconds,
        "workers": settings.numWorkers,
        "seed": settings.seed,
        "memoryLimitMB": settings.memoryLimitMB,
    }


def report_invalid(messages: list[str], termination_log: Path | None) -> None:
    """An invalid problem: on stderr, as an `invalid` JSON line and in the termination log."""
    for message in messages:
        print(f"invalid problem: {message}", file=sys.stderr)
    emit({"event": "invalid", "messages": messages})
    write_termination_log(termination_log, {"error": "InvalidProblem", "messages": messages})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vulcan_operator.solver.runner",
        description="Solve one SchedulingProblem (the solver pod).",
    )
    p.add_argument("--problem", required=True, help="SchedulingProblem YAML (or a bare problem)")
    p.add_argument("--output", required=True, help="where to write the result JSON")
    add_override_arguments(p)
    p.add_argument(
        "--termination-log",
        type=Path,
        help="summary file (default: /dev/termination-log when writable)",
    )
    p.add_argument("--gantt", type=gantt_path, help="also draw the schedule (.svg or .html)")
    return p


def main(
    argv: Sequence[str] | None = None, progress_callbacks: Sequence[ProgressCallback] = ()
) -> int:
    args = parser().parse_args(argv)
    try:
        loaded = load_file(args.problem)
        settings = apply_overrides(loaded.settings, args)
    except (ProblemFileError, ValidationError) as error:
        messages = error.messages if isinstance(error, ProblemFileError) else override_error(error)
        report_invalid(messages, args.termination_log)
        return 1
    problem = loaded.problem
    emit(start_event(loaded.name, problem, settings))

    def finish(result: SolveResult) -> None:
        Path(args.output).write_text(result.to_json() + "\n", encoding="utf-8")
        if args.gantt and result.assignments:
            write_gantt(args.gantt, problem, result, loaded.name)
        summary = result.summary()
        emit({"event": "result", **summary})
        write_termination_log(args.termination_log, summary)

    api.run(
        problem,
        settings,
        api.Callbacks(
            progress=[json_lines_printer(), *progress_callbacks],
            result=finish,
            search_log=stderr_lines if args.log_search or loaded.log_search else None,
        ),
    )
    return 0


if __name__ == "__main__":
    api.exit_process(main())
