"""What a finished solver Job tells the guide's solver metrics (issue 15, defect 8): whether it
timed out, its peak memory; and the rows the operator wrote for a pod of another namespace."""

from __future__ import annotations

import json

import pytest

from tests.unit.reconcile.test_solverjob import NOW, job, pod, summary
from vulcan_operator.reconcile import solverjob


def finished(state: str, **terminated: object) -> solverjob.Verdict:
    """The verdict on a Job in `state` whose pod terminated as `terminated` says."""
    return solverjob.verdict(job(state), [pod(dict(terminated))], None, NOW)


@pytest.mark.parametrize(
    ("status", "stop", "timed_out"),
    [
        ("OPTIMAL", "optimal", False),
        ("FEASIBLE", "timeLimit", True),
        ("FEASIBLE", "wallClockGuard", True),
        ("UNKNOWN", "timeLimit", True),
        ("FEASIBLE", "interrupted", False),  # SIGTERM: stopped, not out of time
        ("INFEASIBLE", "infeasible", False),
    ],
)
def test_a_search_stopped_by_its_time_limit_is_a_timeout(
    status: str, stop: str, timed_out: bool
) -> None:
    message = summary(status, stopReason=stop, peakMemoryBytes=123_456_789)
    v = finished("Complete", exitCode=0, message=message)
    assert v.timed_out is timed_out
    assert v.memory_bytes == 123_456_789


def test_a_deadline_is_a_timeout_and_an_oom_kill_used_the_whole_limit() -> None:
    deadline = solverjob.verdict(job("Failed", "DeadlineExceeded"), [], None, NOW)
    assert deadline.reason == "DeadlineExceeded" and deadline.timed_out
    oom = finished("Failed", exitCode=137, reason="OOMKilled")
    assert oom.reason == "OOMKilled" and not oom.timed_out
    assert oom.memory_bytes == 768 * 2**20  # the job's limit, 768Mi


def test_a_summary_without_memory_or_with_a_bogus_one_reports_none() -> None:
    for extra in ({}, {"peakMemoryBytes": "lots"}, {"peakMemoryBytes": -1}):
        v = finished("Complete", exitCode=0, message=summary("OPTIMAL", **extra))
        assert v.memory_bytes is None, extra


def test_rows_written_by_the_operator_join_the_solution_and_the_message() -> None:
    message = json.loads(summary("OPTIMAL"))
    del message["scheduleId"]  # a pod of another namespace writes no rows
    v = finished("Complete", exitCode=0, message=json.dumps(message))
    assert v.solution_ref == {"configMapName": "week-48-schedule"}
    stored = solverjob.with_rows(v, "42", None)
    assert stored.solution_ref == {"configMapName": "week-48-schedule", "scheduleId": "42"}
    assert stored.message.endswith("rows in the engine's database (schedule 42)")
    noted = solverjob.with_rows(v, None, "cannot write the schedule: X")
    assert noted.solution_ref == v.solution_ref and noted.message.endswith(
        "; cannot write the schedule: X"
    )
