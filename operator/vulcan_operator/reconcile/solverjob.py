"""What a solver Job and its pod say, in plain words: pure functions over their dicts.

`starting(job, pods)` explains a pod that does not run (yet): an image that cannot be pulled
(a failure), a pod that cannot be scheduled (a wait). `verdict(job, pods, reported)` turns a
finished Job into the problem's outcome: the solver's own result (from the pod's termination
message, else from what the pod wrote into the status; of an Indexed Job, the best of its
pods', see `best_member`), or why there is none: out of memory, deadline exceeded, evicted,
invalid problem, a crash. The solver's summary becomes
`status.result` and `status.progress` as in the pod itself (`solverpod.status`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from vulcan_operator import quantity
from vulcan_operator.solverpod import race
from vulcan_operator.solverpod.status import final_progress, result_status

__all__ = [
    "IMAGE_PULL_REASONS",
    "Verdict",
    "best_member",
    "finished",
    "memory_limit_mib",
    "solver_container",
    "starting",
    "suspended",
    "termination",
    "verdict",
    "with_rows",
]

IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
SCHEDULE_STATUSES = ("OPTIMAL", "FEASIBLE")
CONTAINER = "solver"
#: The Job controller's annotation on each pod of an Indexed Job: its completion index.
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
#: The search's stop reasons (SolveResult.stop_reason) that are a time-out.
TIMEOUT_STOPS = ("timeLimit", "wallClockGuard", "noTime")


@dataclass(frozen=True)
class Verdict:
    """The outcome of a finished solver Job."""

    succeeded: bool
    reason: str  # CamelCase, for conditions and Events
    message: str
    #: `status.result` (the CRD's fields), always set: a failure explains itself in it.
    result: dict[str, Any]
    #: `status.solutionRef` (configMapName, scheduleId), None when nothing was stored.
    solution_ref: dict[str, Any] | None = None
    #: The final `status.progress`, when the solver reported one.
    progress: dict[str, Any] | None = None
    #: Label of solver_problems_total: the CP-SAT status, else ERROR.
    metric_status: str = "ERROR"
    seconds: float | None = None
    jobs_by_priority: dict[int | str, int] = field(default_factory=dict)
    #: The search stopped at its time limit without proving the optimum, or the pod passed
    #: its deadline (solver_timeout_total).
    timed_out: bool = False
    #: The solve's peak resident memory as the pod measured it, or the memory limit when it
    #: was OOM-killed (solver_memory_bytes); None when unknown.
    memory_bytes: int | None = None


def _conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c.get("type", ""): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }


def finished(job: dict[str, Any]) -> str | None:
    """'Complete' or 'Failed' once the Job has ended, else None."""
    conditions = _conditions(job)
    for kind in ("Complete", "Failed"):
        if kind in conditions:
            return kind
    return None


def suspended(job: dict[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend")) and finished(job) is None


def solver_container(pod: dict[str, Any]) -> dict[str, Any]:
    """The solver container's status in a pod ({} when none yet)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER:
            return dict(status)
    return dict(statuses[0]) if statuses else {}


def termination(pod: dict[str, Any]) -> dict[str, Any]:
    """The solver container's `state.terminated` ({} while it has not terminated)."""
    state = solver_container(pod).get("state") or {}
    return dict(state.get("terminated") or {})


def memory_limit_mib(job: dict[str, Any]) -> int | None:
    """The solver container's memory limit in MiB, from the Job's pod template."""
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    for container in containers:
        value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        limit = quantity.parse_or_none(value)
        if limit is not None:
            return round(limit / 2**20)
    return None


def _image(job: dict[str, Any]) -> str:
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or [{}]
    return str(containers[0].get("image", "?"))


def starting(job: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[str, str, bool] | None:
    """Why the solver pod is not running: (reason, message, fatal), or None when nothing is
    wrong (it is starting, or running)."""
    for pod in pods:
        waiting = (solver_container(pod).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            detail = waiting.get("message") or waiting["reason"]
            return (
                "ImagePullFailed",
                f"the solver image {_image(job)} cannot be pulled ({waiting['reason']}: "
                f"{detail}); check the operator's image setting and the registry credentials",
                True,
            )
        if waiting.get("reason") in ("CreateContainerConfigError", "CreateContainerError"):
            return (
                waiting["reason"],
                f"the solver container cannot be created: {waiting.get('message') or ''}",
                False,
            )
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                return (
                    "Unschedulable",
                    "the solver pod cannot be scheduled: "
                    f"{condition.get('message') or 'no node has room'} (it asks for the "
                    "solver's workers as CPUs and memoryLimitMB as memory)",
                    False,
                )
    return None


def _message_json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


def _failure(reason: str, message: str, finished_at: str) -> Verdict:
    return Verdict(
        succeeded=False,
        reason=reason,
        message=message,
        result={"explanation": [message], "finishedAt": finished_at},
    )


def _when(job: dict[str, Any], kind: str, now: str) -> str:
    status = job.get("status") or {}
    condition = _conditions(job).get(kind) or {}
    return str(status.get("completionTime") or condition.get("lastTransitionTime") or now)


def _solved(summary: dict[str, Any], finished_at: str, limit: str) -> Verdict:
    status = str(summary.get("status"))
    result = result_status(summary, finished_at)
    ref = {
        k: str(summary[src])
        for k, src in (("configMapName", "configMap"), ("scheduleId", "scheduleId"))
        if summary.get(src) is not None
    }
    progress = {k: v for k, v in final_progress(summary).items() if v is not None}
    seconds = summary.get("wallSeconds")
    memory = summary.get("peakMemoryBytes")
    common: dict[str, Any] = {
        "result": result,
        "progress": progress or None,
        "metric_status": status,
        "seconds": float(seconds) if isinstance(seconds, (int, float)) else None,
        "timed_out": status != "OPTIMAL" and summary.get("stopReason") in TIMEOUT_STOPS,
        "memory_bytes": memory if isinstance(memory, int) and memory >= 0 else None,
    }
    explanation = "; ".join(result["explanation"])
    notes = [str(n) for n in summary.get("notes") or []]
    if status in SCHEDULE_STATUSES:
        where = []
        if ref.get("configMapName"):
            where.append(f"ConfigMap {ref['configMapName']}")
        if ref.get("scheduleId"):
            where.append(f"the engine's database (schedule {ref['scheduleId']})")
        message = (
            f"{status}: objective {_number(summary.get('objective'))}, makespan "
            f"{_number(summary.get('makespan'))}, solved in {_number(seconds or 0)} s"
        )
        if where:
            message += "; schedule in " + " and ".join(where)
        if notes:
            message += "; " + "; ".join(notes)
        return Verdict(
            succeeded=True,
            reason="Solved",
            message=message,
            solution_ref=ref or None,
            jobs_by_priority={
                str(k): int(v) for k, v in (summary.get("jobsByPriority") or {}).items()
            },
            **common,
        )
    if status == "INFEASIBLE":
        message = "infeasible: no schedule satisfies every constraint"
        return Verdict(
            succeeded=False,
            reason="Infeasible",
            message=f"{message}: {explanation}" if explanation else message,
            solution_ref=ref or None,
            **common,
        )
    if status == "UNKNOWN":
        message = (
            f"no schedule found within the time limit ({limit}): raise spec.solver.maxTimeSeconds"
        )
        return Verdict(
            succeeded=False,
            reason="NoSolution",
            message=f"{message} ({explanation})" if explanation else message,
            **common,
        )
    message = f"the solver rejected its own model ({status}), a bug in the operator"
    return Verdict(
        succeeded=False,
        reason="ModelInvalid",
        message=f"{message}: {explanation}" if explanation else message,
        **common,
    )


def with_rows(found: Verdict, schedule_id: str | None, note: str | None) -> Verdict:
    """`found` with the schedule rows the operator wrote for the pod (an engine of another
    namespace): their schedule id, or the note why there are none."""
    ref = dict(found.solution_ref or {})
    message = found.message
    if schedule_id is not None:
        ref["scheduleId"] = schedule_id
        message += f"; rows in the engine's database (schedule {schedule_id})"
    if note:
        message += f"; {note}"
    return replace(found, solution_ref=ref or None, message=message)


def best_member(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best result the pods of an Indexed Job (a portfolio racing on one problem) report
    in their termination messages (`race.rank`; at a tie, the one stored in the ConfigMap),
    with a note per member that ended without a result; None when none reported one."""
    found: list[dict[str, Any]] = []
    lost: list[str] = []
    for pod in pods:
        ended = termination(pod)
        summary = _message_json(str(ended.get("message") or "")) if ended else None
        if summary is not None and summary.get("status"):
            found.append(summary)
        elif ended:
            index = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION)
            lost.append(
                f"member {index} ended without a result ({ended.get('reason') or 'Error'}, "
                f"exit code {ended.get('exitCode')})"
            )
    if not found:
        return None
    best = min(found, key=lambda s: (race.rank(s), 0 if s.get("configMap") else 1))
    return {**best, "notes": [*(best.get("notes") or []), *lost]}


def verdict(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    reported: dict[str, Any] | None,
    now: str,
) -> Verdict:
    """The outcome of a finished Job. `reported` is `status.result` as the pod wrote it."""
    state = finished(job)
    spec = job.get("spec") or {}
    deadline = spec.get("activeDeadlineSeconds")
    limit = _time_limit(job)
    terminated = next((t for t in (termination(p) for p in pods) if t), {})
    message_text = str(terminated.get("message") or "")
    summary = _message_json(message_text)
    when = _when(job, state or "Complete", now)

    if spec.get("completionMode") == "Indexed":
        best = best_member(pods)
        if best is None and reported and reported.get("foundBy") is not None:
            best = dict(reported)  # the pods are gone (a deadline): what a member stored
        if best is not None and best.get("status"):  # even if another member failed
            return _solved(best, when, limit)

    if state == "Complete":
        if summary is not None and summary.get("status"):
            return _solved(summary, when, limit)
        if reported and reported.get("status"):
            return _solved({**reported, "finishedAt": reported.get("finishedAt")}, when, limit)
        return _failure("NoResult", "the solver pod finished without reporting a result", when)

    failed = _conditions(job).get("Failed") or {}
    if failed.get("reason") == "DeadlineExceeded":
        return replace(
            _failure(
                "DeadlineExceeded",
                f"the solver pod ran past its deadline of {deadline} s (time limit {limit} "
                "plus time to start and to store the schedule) and was stopped: raise "
                "spec.solver.maxTimeSeconds, or see the pod's log if the solver hung",
                when,
            ),
            timed_out=True,
        )
    pod = pods[0] if pods else {}
    pod_status = pod.get("status") or {}
    if terminated.get("reason") == "OOMKilled":
        mib = memory_limit_mib(job)
        at = f" (limit {mib} MiB)" if mib is not None else ""
        return replace(
            _failure(
                "OOMKilled",
                f"the solver ran out of memory{at} and was killed: raise spec.solver.memoryLimitMB",
                when,
            ),
            memory_bytes=None if mib is None else mib * 2**20,
        )
    disrupted = any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in pod_status.get("conditions") or []
    )
    if pod_status.get("reason") == "Evicted" or disrupted:
        detail = pod_status.get("message") or "the node needed its resources back"
        return _failure(
            "Evicted",
            f"the solver pod was evicted from its node ({detail}); change the spec (or "
            "delete and re-create the problem) to solve it again",
            when,
        )
    if summary is not None and summary.get("error") == "InvalidProblem":
        lines = [str(m) for m in summary.get("messages") or []]
        result = {"explanation": lines, "finishedAt": when}
        return Verdict(
            succeeded=False,
            reason="InvalidProblem",
            message="invalid problem: " + "; ".join(lines),
            result=result,
            metric_status="INVALID",
        )
    if summary is not None and summary.get("error") in ("Stale", "ApiUnavailable"):
        what = (
            "could not read its SchedulingProblem from the API"
            if summary["error"] == "ApiUnavailable"
            else "found its SchedulingProblem changed"
        )
        return _failure(
            "SolverFailed",
            f"the solver pod {what}: {summary.get('message') or ''}".rstrip(": "),
            when,
        )
    if terminated:
        code = terminated.get("exitCode")
        detail = message_text.strip()[-500:] or terminated.get("reason") or ""
        return _failure(
            "SolverFailed",
            f"the solver pod failed with exit code {code}" + (f": {detail}" if detail else ""),
            when,
        )
    detail = failed.get("message") or failed.get("reason") or "no pod left to tell why"
    return _failure("SolverFailed", f"the solver Job failed: {detail}", when)


def _time_limit(job: dict[str, Any]) -> str:
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or [{}]
    args = [str(a) for a in containers[0].get("args") or []]
    if "--time-limit" in args and args.index("--time-limit") + 1 < len(args):
        return f"{args[args.index('--time-limit') + 1]} s"
    return "the configured time"
