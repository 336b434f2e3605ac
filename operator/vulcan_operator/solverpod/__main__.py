"""The solver pod's process: `python -m vulcan_operator.solverpod`.

    python -m vulcan_operator.solverpod --namespace NS --problem NAME --generation G
        --schedule-configmap CM [--time-limit S] [--workers N] [--memory-limit MB] [--seed N]
        [--lns | --no-lns] [--log-search] [--parallelism N] [--problem-file PATH]
        [--termination-log PATH] [--progress-interval S]

What it does (the operator builds the Job; see builders/problem.py):

1. Reads its SchedulingProblem from the API and checks it is still the generation the Job was
   made for (else exits 3: the operator has replaced this Job). A problemRef ConfigMap comes
   from the mounted file `--problem-file`.
2. Solves it in this process (`solver.api.run`) with the settings given here, with a progress
   callback that patches `status.progress` (objective, bound, gap, elapsed, solutions) at most
   every `--progress-interval` seconds, from a thread of its own (`reporter`). stdout carries
   the JSON lines of `solver.runner` (start, progress, result or invalid). SIGTERM stops the
   search, and the best schedule so far is stored and reported as usual.
3. When a result exists (INFEASIBLE included) and the problem is still the one it solved
   (else it stores nothing and exits 3): writes the full result JSON into the schedule
   ConfigMap (when it fits in 1 MiB), writes the schedule rows into the engine's PostgreSQL
   when `DATABASE_URL` is set (see `store`), then patches the final progress,
   `status.result` and `status.solutionRef` (see `status`).
   With `--parallelism N` (an Indexed Job of N pods racing on the problem) this pod is
   portfolio member `$JOB_COMPLETION_INDEX` (its seed and strategy, `solver.portfolio`), its
   result carries `foundBy` (that index), and the ConfigMap, the rows and the status get it
   only when it is better than what another member stored (compare-and-swap, see `race`).
4. Writes a summary to the termination log (`/dev/termination-log` when present): the result
   summary plus `finishedAt`, `configMap`, `scheduleId`, `jobsByPriority`,
   `peakMemoryBytes` (for solver_memory_bytes) and `notes` (what
   could not be stored, and why). The operator reads it when the Job ends, so the outcome
   reaches the status even if a status patch from here was lost.

API access: in-cluster config (the pod's own ServiceAccount, allowed to get this problem and
patch its status and the one schedule ConfigMap) when `KUBERNETES_SERVICE_HOST` is set, else
the usual kubeconfig (`$KUBECONFIG`), for running it outside a cluster.

Exit codes: 0 a result was produced, 1 invalid problem (messages in the termination log),
2 usage, 3 the problem is gone or changed (nothing solved), 4 the API could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config

from vulcan_operator import API_VERSION, kinds
from vulcan_operator.api.problem import MAX_PARALLELISM
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.solver import api as solver
from vulcan_operator.solver import portfolio, runner
from vulcan_operator.solver.loader import ProblemFileError, load_text
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import json_lines_printer
from vulcan_operator.solver.result import SolveResult
from vulcan_operator.solverpod import race, store
from vulcan_operator.solverpod.reporter import DEFAULT_PROGRESS_INTERVAL, StatusReporter, log
from vulcan_operator.solverpod.status import final_progress, result_status
from vulcan_operator.status import now

__all__ = ["EXIT_API", "EXIT_STALE", "main"]

KIND = kinds.PROBLEM.kind
EXIT_STALE = 3
EXIT_API = 4
#: What parse errors of the problem document name as their source.
SOURCE = "problem.yaml"


def api_client() -> client.ApiClient:
    """In-cluster config inside a pod, else the current kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        kube_config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


# --- the problem ------------------------------------------------------------------------------


def settings_from(args: argparse.Namespace) -> SolverSettings:
    return SolverSettings(
        maxTimeSeconds=args.time_limit,
        numWorkers=args.workers,
        memoryLimitMB=args.memory_limit,
        useLNS=args.lns,
        seed=args.seed,
    )


def problem_document(
    body: dict[str, Any], settings: SolverSettings, problem_file: Path | None
) -> str:
    """The problem as the solver reads it: the resource with these settings, and the
    referenced ConfigMap (from the mounted file) as a second document."""
    spec = dict(body.get("spec") or {})
    spec["solver"] = settings.model_dump()
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": body["metadata"]["name"]},
            "spec": spec,
        }
    ]
    ref = spec.get("problemRef")
    if isinstance(ref, dict):
        text = problem_file.read_text(encoding="utf-8") if problem_file is not None else ""
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": ref.get("configMapName")},
                "data": {ref.get("key", "problem.yaml"): text},
            }
        )
    return "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"


def peak_memory_bytes() -> int:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def jobs_by_priority(problem: ProblemData) -> dict[str, int]:
    return {str(p): n for p, n in sorted(Counter(j.priority for j in problem.jobs).items())}


# --- reporting --------------------------------------------------------------------------------


class Pod:
    """One run: the API, the problem's reference and what was learnt on the way."""

    def __init__(self, api: Api, args: argparse.Namespace) -> None:
        self.api = api
        self.args = args
        self.ref = Ref(API_VERSION, KIND, args.namespace, args.problem)
        self.notes: list[str] = []

    def current(self) -> tuple[dict[str, Any] | None, str]:
        """The problem, or None and why this pod must not touch it (gone, changed)."""
        body = asyncio.run(self.api.get(self.ref))
        if body is None:
            return None, f"SchedulingProblem {self.args.problem} no longer exists"
        generation = body.get("metadata", {}).get("generation")
        if generation is not None and int(generation) != self.args.generation:
            return None, (
                f"SchedulingProblem {self.args.problem} is at generation {generation}; this "
                f"Job solves generation {self.args.generation} and was replaced"
            )
        return body, ""

    def write_configmap(self, text: str) -> str | None:
        args = self.args
        return store.write_configmap(
            self.api, args.namespace, args.schedule_configmap, args.generation, text, self.notes
        )

    def write_database(
        self, body: dict[str, Any], job: str, result: dict[str, Any], racing: bool = False
    ) -> str | None:
        url = os.environ.get("DATABASE_URL", "").strip()
        if not url or not result.get("assignments"):
            return None
        key = store.ScheduleKey(
            namespace=self.args.namespace,
            problem=self.args.problem,
            problem_uid=str(body["metadata"].get("uid", "")),
            generation=self.args.generation,
            job_name=job,
        )
        return store.write_database(url, key, result, self.notes, race.better if racing else None)

    def write_best(
        self, text: str, summary: dict[str, Any], member: int
    ) -> tuple[str | None, bool]:
        args = self.args
        return race.write_best_configmap(
            self.api,
            args.namespace,
            args.schedule_configmap,
            args.generation,
            text,
            summary,
            member,
            self.notes,
        )

    def patch_status(self, status: dict[str, Any]) -> None:
        try:
            asyncio.run(self.api.patch(self.ref, {"status": status}, subresource="status"))
        except Exception as error:  # the termination message still carries the result
            log(f"cannot report the result in the status: {error}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vulcan_operator.solverpod",
        description="Solve one SchedulingProblem in its pod and report to its status.",
    )
    p.add_argument("--namespace", required=True)
    p.add_argument("--problem", required=True, help="the SchedulingProblem's name")
    p.add_argument("--generation", required=True, type=int, help="the generation to solve")
    p.add_argument("--schedule-configmap", required=True, help="ConfigMap for the schedule")
    p.add_argument("--job", default="", help="the Job this pod belongs to (for the records)")
    p.add_argument("--time-limit", type=runner.positive_float, default=300.0, metavar="SECONDS")
    p.add_argument("--workers", type=int, default=4, metavar="N")
    p.add_argument("--memory-limit", type=int, default=8192, metavar="MB")
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--lns", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--log-search",
        action="store_true",
        help="CP-SAT's search log on stderr, in the pod log (spec.solver.logSearch)",
    )
    p.add_argument(
        "--parallelism",
        type=int,
        default=1,
        metavar="N",
        help="pods racing on the problem (an Indexed Job): this one is portfolio member "
        "$JOB_COMPLETION_INDEX, and stores its schedule only when better than the stored one",
    )
    p.add_argument("--problem-file", type=Path, help="the mounted problemRef ConfigMap key")
    p.add_argument("--termination-log", type=Path, help="default: /dev/termination-log")
    p.add_argument(
        "--progress-interval",
        type=runner.positive_float,
        default=DEFAULT_PROGRESS_INTERVAL,
        metavar="SECONDS",
        help="at most one progress patch per this many seconds",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
        member = member_index(args.parallelism)
    except ValueError as error:
        print(f"solverpod: invalid settings: {error}", file=sys.stderr)
        return 2
    try:
        pod = Pod(Api(api_client()), args)
        body, why = pod.current()
    except Exception as error:
        log(f"cannot read the SchedulingProblem: {error}")
        runner.write_termination_log(
            args.termination_log, {"error": "ApiUnavailable", "message": str(error)[:1000]}
        )
        return EXIT_API
    if body is None:
        log(why)
        runner.write_termination_log(args.termination_log, {"error": "Stale", "message": why})
        return EXIT_STALE

    document = problem_document(body, settings, args.problem_file)
    best_of = args.generation if args.parallelism > 1 else None
    reporter = StatusReporter(pod.api, pod.ref, args.progress_interval, best_of)
    reporter.start()
    reporter.set({"elapsedSeconds": 0, "solutions": 0})  # the pod runs: phase Running
    try:
        try:
            loaded = load_text(document, SOURCE)
        except ProblemFileError as error:
            runner.report_invalid(error.messages, args.termination_log)
            return 1
        runner.emit(runner.start_event(loaded.name, loaded.problem, loaded.settings))
        if args.parallelism > 1:
            _, _, strategy = portfolio.member(loaded.settings, member)
            log(f"portfolio member {member} of {args.parallelism}: strategy {strategy}")
        solved = solver.run(
            loaded.problem,
            loaded.settings,
            solver.Callbacks(
                progress=[json_lines_printer(), reporter.report],
                result=_print_result,
                search_log=runner.stderr_lines if args.log_search else None,
            ),
            member=member,
        )
    finally:
        reporter.close()
    result = solved.to_dict()
    racing = args.parallelism > 1
    if racing:
        result["foundBy"] = member

    finished_at = now()
    try:
        still, why = pod.current()
    except Exception as error:  # the API is away: store what can be stored, report anyway
        still, why = body, ""
        pod.notes.append(f"cannot check the SchedulingProblem before storing: {error}")
    if still is None:  # deleted or changed while solving: this schedule is nobody's now
        log(f"not storing the schedule: {why}")
        runner.write_termination_log(args.termination_log, {"error": "Stale", "message": why})
        return EXIT_STALE
    summary = {k: v for k, v in result.items() if k != "assignments"}
    text = json.dumps(result, indent=1)
    if racing:  # only a schedule better than the stored one is stored (`race`)
        configmap, best = pod.write_best(text, summary, member)
        schedule_id = pod.write_database(body, args.job, result, racing) if best else None
    else:
        configmap = pod.write_configmap(text)
        schedule_id = pod.write_database(body, args.job, result)
    status = {
        "progress": final_progress(summary),
        "result": result_status(summary, finished_at),
        "solutionRef": {"configMapName": configmap, "scheduleId": schedule_id},
    }
    if racing:
        if best:
            race.write_best_status(pod.api, pod.ref, args.generation, status, pod.notes)
    else:
        pod.patch_status(status)
    payload = {
        **summary,
        "finishedAt": finished_at,
        "configMap": configmap,
        "scheduleId": schedule_id,
        "jobsByPriority": jobs_by_priority(loaded.problem) if result.get("assignments") else {},
        "peakMemoryBytes": peak_memory_bytes(),
        "notes": pod.notes,
    }
    for note in pod.notes:
        log(note)
    runner.write_termination_log(args.termination_log, payload)
    return 0


def member_index(parallelism: int) -> int:
    """This pod's portfolio member: its completion index in an Indexed Job (0 alone)."""
    if not 1 <= parallelism <= MAX_PARALLELISM:
        raise ValueError(f"--parallelism must be 1 to {MAX_PARALLELISM}, not {parallelism}")
    if parallelism == 1:
        return 0
    raw = os.environ.get("JOB_COMPLETION_INDEX", "")
    if not raw.isdigit() or int(raw) >= parallelism:
        raise ValueError(
            f"JOB_COMPLETION_INDEX must be 0 to {parallelism - 1} with --parallelism "
            f"{parallelism}, not {raw!r}"
        )
    return int(raw)


def _print_result(result: SolveResult) -> None:
    runner.emit({"event": "result", **result.summary()})


if __name__ == "__main__":
    solver.exit_process(main())
