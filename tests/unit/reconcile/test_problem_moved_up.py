"""`reconcile.problem.moved_up`: which status changes of a queued problem its daemon may hold
back (only a new queue position), and which it must write at once (issue 19)."""

from __future__ import annotations

from typing import Any

from vulcan_operator.reconcile.problem import moved_up
from vulcan_operator.status import condition, set_conditions


def queued(position: int | None, reason: str = "Queued", phase: str = "Queued") -> dict[str, Any]:
    message = f"waiting for a solver slot of engine 'prod' (2 at once): position {position}"
    conditions = set_conditions(
        None,
        [
            condition("Ready", False, reason, message, 1),
            condition("Progressing", True, reason, message, 1),
        ],
    )
    for c in conditions:
        c["lastTransitionTime"] = "2026-12-07T10:00:00Z"
    return {
        "phase": phase,
        "observedGeneration": 1,
        "queuePosition": position,
        "conditions": conditions,
    }


def test_only_a_new_position_may_wait() -> None:
    assert moved_up(queued(3), queued(2))
    assert moved_up({**queued(3), "history": []}, queued(2))  # the CRD's default: not ours
    assert not moved_up(None, queued(2))  # the first Queued write
    assert not moved_up(queued(1), {**queued(None, "Starting", "Pending"), "jobName": "j"})
    assert not moved_up(queued(2, "KueuePending"), queued(2, "KueuePending"))  # Kueue's words
    assert not moved_up(queued(2), {**queued(1), "observedGeneration": 2})  # anything else
    assert not moved_up(queued(2), {**queued(1), "history": [{"makespan": 7}]})
