"""A solver summary as the SchedulingProblem's status, written once for both sides.

The pod patches `status.progress` while it solves and `status.result` when it is done; the
operator builds the same fields from the pod's termination message when the Job ends
(reconcile/solverjob.py), so the outcome reaches the status even if a patch from the pod was
lost. A summary is `SolveResult.summary()`, perhaps with the pod's additions (`finishedAt`,
`configMap`, `scheduleId`, `jobsByPriority`, `notes`).
"""

from __future__ import annotations

from typing import Any

from vulcan_operator.solver.progress import Progress

__all__ = ["RESULT_KEYS", "final_progress", "progress_status", "result_status"]

#: The summary's keys that `status.result` has (the CRD's fields), besides `finishedAt`.
RESULT_KEYS = (
    "status",
    "objective",
    "bound",
    "makespan",
    "wallSeconds",
    "explanation",
    "foundBy",
)
#: `status.progress` field <- summary key.
PROGRESS_FIELDS = (
    ("objective", "objective"),
    ("bound", "bound"),
    ("gap", "gap"),
    ("elapsedSeconds", "wallSeconds"),
    ("solutions", "solutions"),
)


def result_status(summary: dict[str, Any], finished_at: str) -> dict[str, Any]:
    """`status.result` (the CRD's fields only, no nulls); the summary's own `finishedAt`, when
    it has one, wins over `finished_at`."""
    out = {k: summary[k] for k in RESULT_KEYS if summary.get(k) is not None}
    out["explanation"] = [str(x) for x in out.get("explanation") or []]
    out["finishedAt"] = str(summary.get("finishedAt") or finished_at)
    return out


def final_progress(summary: dict[str, Any]) -> dict[str, Any]:
    """`status.progress` at the end, every field present (a null removes it in a merge patch)."""
    return {field: summary.get(key) for field, key in PROGRESS_FIELDS}


def progress_status(progress: Progress) -> dict[str, Any]:
    """One progress event as `status.progress` (null removes a field in a merge patch)."""
    event = progress.to_event()
    del event["event"]
    return event
