"""The solver pod: solve one SchedulingProblem with CP-SAT and report back to the cluster.

    python -m vulcan_operator.solverpod --namespace NS --problem NAME --generation G
        --schedule-configmap CM [--time-limit S] [--workers N] [--memory-limit MB] [--seed N]
        [--lns | --no-lns] [--problem-file PATH] [--termination-log PATH]
        [--progress-interval S]

What it does (the operator builds the Job; see builders/problem.py):

1. Reads its SchedulingProblem from the API and checks it is still the generation the Job was
   made for (else exits 3: the operator has replaced this Job). A problemRef ConfigMap comes
   from the mounted file `--problem-file`.
2. Runs the solver entrypoint (`solver.runner.main`) on it with the settings given here, with
   a progress callback that patches `status.progress` (objective, bound, gap, elapsed,
   solutions) at most every `--progress-interval` seconds, from a thread of its own.
3. When a result exists (INFEASIBLE included) and the problem is still the one it solved
   (else it stores nothing and exits 3): writes the full result JSON into the schedule
   ConfigMap (when it fits in 1 MiB), writes the schedule rows into the engine's PostgreSQL
   when `DATABASE_URL` is set (see `scheduledb`), then patches the final progress,
   `status.result` and `status.solutionRef`.
4. Writes a summary to the termination log (`/dev/termination-log` when present): the result
   summary plus `finishedAt`, `configMap`, `scheduleId`, `jobsByPriority` and `notes` (what
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
import datetime
import json
import os
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config

from vulcan_operator import API_VERSION
from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.scheduledb import ScheduleKey, write_schedule
from vulcan_operator.solver import runner
from vulcan_operator.solver.loader import load_text
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.progress import Progress

__all__ = ["CONFIGMAP_LIMIT", "EXIT_API", "EXIT_STALE", "StatusReporter", "main"]

KIND = "SchedulingProblem"
EXIT_STALE = 3
EXIT_API = 4
#: A ConfigMap holds at most 1 MiB; keep room for its metadata.
CONFIGMAP_LIMIT = 1_000_000
RESULT_KEY = "result.json"
DEFAULT_PROGRESS_INTERVAL = 1.0


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log(message: str) -> None:
    print(f"solverpod: {message}", file=sys.stderr, flush=True)


def api_client() -> client.ApiClient:
    """In-cluster config inside a pod, else the current kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        kube_config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def progress_status(progress: Progress) -> dict[str, Any]:
    """One progress event as `status.progress` (null removes a field in a merge patch)."""
    event = progress.to_event()
    del event["event"]
    return event


class StatusReporter:
    """Patches `status.progress` from its own thread, at most once per `interval` seconds.

    `report()` is the solver's progress callback: it only keeps the newest event, so a slow
    API never slows the search. `close()` sends what is still pending and stops the thread.
    """

    def __init__(self, api: Api, ref: Ref, interval: float = DEFAULT_PROGRESS_INTERVAL) -> None:
        self.api = api
        self.ref = ref
        self.interval = interval
        self.patches = 0
        self._lock = threading.Lock()
        self._pending: dict[str, Any] | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, progress: Progress) -> None:
        self.set(progress_status(progress))

    def set(self, status_progress: dict[str, Any]) -> None:
        with self._lock:
            self._pending = status_progress
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while not self._closing.is_set():
                self._wake.wait()
                self._wake.clear()
                self._flush(loop)
                self._closing.wait(self.interval)  # the throttle; closing cuts it short
            self._flush(loop)
        finally:
            loop.close()

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            loop.run_until_complete(
                self.api.patch(self.ref, {"status": {"progress": pending}}, subresource="status")
            )
            self.patches += 1
        except Exception as error:  # progress is best effort: the result still gets through
            _log(f"cannot report progress: {error}")


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


def jobs_by_priority(document: str) -> dict[str, int]:
    try:
        problem = load_text(document).problem
    except Exception:  # already solved from it; a count is not worth failing for
        return {}
    return {str(p): n for p, n in sorted(Counter(j.priority for j in problem.jobs).items())}


def result_status(summary: dict[str, Any], finished_at: str) -> dict[str, Any]:
    """`status.result` (the CRD's fields only, no nulls)."""
    keys = ("status", "objective", "bound", "makespan", "wallSeconds", "explanation")
    out = {k: summary[k] for k in keys if summary.get(k) is not None}
    out.setdefault("explanation", [])
    out["finishedAt"] = finished_at
    return out


def final_progress(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "objective": summary.get("objective"),
        "bound": summary.get("bound"),
        "gap": summary.get("gap"),
        "elapsedSeconds": summary.get("wallSeconds"),
        "solutions": summary.get("solutions"),
    }


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
        name: str = self.args.schedule_configmap
        if len(text.encode("utf-8")) > CONFIGMAP_LIMIT:
            self.notes.append(
                f"the schedule ({len(text.encode('utf-8'))} bytes) is larger than a ConfigMap "
                f"can hold (1 MiB): not written to ConfigMap {name}"
            )
            return None
        data = {RESULT_KEY: text, "generation": str(self.args.generation)}
        try:
            asyncio.run(
                self.api.patch(Ref("v1", "ConfigMap", self.args.namespace, name), {"data": data})
            )
        except ApiError as error:
            self.notes.append(f"cannot write the schedule to ConfigMap {name}: {error}")
            return None
        return name

    def write_database(self, body: dict[str, Any], job: str, result: dict[str, Any]) -> str | None:
        url = os.environ.get("DATABASE_URL", "").strip()
        if not url or not result.get("assignments"):
            return None
        meta = body["metadata"]
        key = ScheduleKey(
            namespace=self.args.namespace,
            problem=self.args.problem,
            problem_uid=str(meta.get("uid", "")),
            generation=self.args.generation,
            job_name=job,
        )
        try:
            schedule_id: int = asyncio.run(write_schedule(url, key, result))
            return str(schedule_id)
        except Exception as error:  # the ConfigMap still has the schedule
            # Only the kind of error and PostgreSQL's own SQLSTATE: a driver's message may
            # quote a fragment of a malformed URL, password included.
            sqlstate = getattr(error, "sqlstate", None)
            self.notes.append(
                "cannot write the schedule to the engine's database: "
                f"{type(error).__name__}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
            )
            return None

    def patch_status(self, status: dict[str, Any]) -> None:
        try:
            asyncio.run(self.api.patch(self.ref, {"status": status}, subresource="status"))
        except Exception as error:  # the termination message still carries the result
            _log(f"cannot report the result in the status: {error}")


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
    except ValueError as error:
        print(f"solverpod: invalid settings: {error}", file=sys.stderr)
        return 2
    try:
        pod = Pod(Api(api_client()), args)
        body, why = pod.current()
    except Exception as error:
        _log(f"cannot read the SchedulingProblem: {error}")
        runner.write_termination_log(
            args.termination_log, {"error": "ApiUnavailable", "message": str(error)[:1000]}
        )
        return EXIT_API
    if body is None:
        _log(why)
        runner.write_termination_log(args.termination_log, {"error": "Stale", "message": why})
        return EXIT_STALE

    with tempfile.TemporaryDirectory(prefix="solve-") as work:
        folder = Path(work)
        document = problem_document(body, settings, args.problem_file)
        problem_path, output, summary_path = (
            folder / "problem.yaml",
            folder / "result.json",
            folder / "summary.json",
        )
        problem_path.write_text(document, encoding="utf-8")
        reporter = StatusReporter(pod.api, pod.ref, args.progress_interval)
        reporter.start()
        reporter.set({"elapsedSeconds": 0, "solutions": 0})  # the pod runs: phase Running
        try:
            code = runner.main(
                [
                    "--problem",
                    str(problem_path),
                    "--output",
                    str(output),
                    "--termination-log",
                    str(summary_path),
                ],
                progress_callbacks=[reporter.report],
            )
        finally:
            reporter.close()
        if code != 0 or not output.exists():
            if summary_path.exists():
                text = summary_path.read_text(encoding="utf-8")
                runner.write_termination_log(args.termination_log, json.loads(text))
            return code or 1
        result: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))

    finished_at = now()
    try:
        still, why = pod.current()
    except Exception as error:  # the API is away: store what can be stored, report anyway
        still, why = body, ""
        pod.notes.append(f"cannot check the SchedulingProblem before storing: {error}")
    if still is None:  # deleted or changed while solving: this schedule is nobody's now
        _log(f"not storing the schedule: {why}")
        runner.write_termination_log(args.termination_log, {"error": "Stale", "message": why})
        return EXIT_STALE
    summary = {k: v for k, v in result.items() if k != "assignments"}
    configmap = pod.write_configmap(json.dumps(result, indent=1))
    schedule_id = pod.write_database(body, args.job, result)
    pod.patch_status(
        {
            "progress": final_progress(summary),
            "result": result_status(summary, finished_at),
            "solutionRef": {"configMapName": configmap, "scheduleId": schedule_id},
        }
    )
    payload = {
        **summary,
        "finishedAt": finished_at,
        "configMap": configmap,
        "scheduleId": schedule_id,
        "jobsByPriority": jobs_by_priority(document) if result.get("assignments") else {},
        "notes": pod.notes,
    }
    for note in pod.notes:
        _log(note)
    runner.write_termination_log(args.termination_log, payload)
    return 0


def _entry() -> None:
    code = main()
    if runner.abandoned_solver_thread():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _entry()
