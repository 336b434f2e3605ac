"""reconcile.solverjob of an Indexed Job (spec.solver.parallelism): the verdict is the best
member's, with the member that found it."""

from __future__ import annotations

import json
from typing import Any

from vulcan_operator.reconcile import solverjob

NOW = "2026-11-29T02:00:00Z"


def job(state: str, reason: str = "CompletionsReached") -> dict[str, Any]:
    return {
        "metadata": {"name": "week-48-solve-1234abcd", "namespace": "plant-a", "uid": "j"},
        "spec": {
            "completionMode": "Indexed",
            "completions": 3,
            "parallelism": 3,
            "activeDeadlineSeconds": 120,
            "template": {"spec": {"containers": [{"name": "solver", "args": []}]}},
        },
        "status": {"conditions": [{"type": state, "status": "True", "reason": reason}]},
    }


def member(index: int, terminated: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"week-48-solve-1234abcd-{index}-x7k2p",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        },
        "status": {"containerStatuses": [{"name": "solver", "state": {"terminated": terminated}}]},
    }


def solved(index: int, objective: int, status: str = "FEASIBLE", stored: bool = True) -> str:
    return json.dumps(
        {
            "status": status,
            "objective": objective,
            "makespan": objective,
            "wallSeconds": 2.0,
            "explanation": [],
            "foundBy": index,
            "configMap": "week-48-schedule" if stored else None,
            "notes": [] if stored else ["not better than the stored one: not stored"],
        }
    )


def test_the_best_member_is_the_verdict_whatever_order_the_pods_are_in() -> None:
    pods = [
        member(0, {"exitCode": 0, "message": solved(0, 60, stored=False)}),
        member(1, {"exitCode": 0, "message": solved(1, 55)}),
        member(2, {"exitCode": 0, "message": solved(2, 58, stored=False)}),
    ]
    for order in (pods, pods[::-1]):
        v = solverjob.verdict(job("Complete"), order, None, NOW)
        assert v.succeeded and v.reason == "Solved"
        assert v.result["objective"] == 55 and v.result["foundBy"] == 1
        assert v.solution_ref == {"configMapName": "week-48-schedule"}
        assert "not stored" not in v.message  # a losing member's note is its own


def test_a_tie_is_the_member_whose_schedule_is_stored() -> None:
    pods = [
        member(0, {"exitCode": 0, "message": solved(0, 55, stored=False)}),
        member(1, {"exitCode": 0, "message": solved(1, 55)}),
    ]
    assert solverjob.verdict(job("Complete"), pods, None, NOW).result["foundBy"] == 1


def test_a_failed_member_does_not_fail_the_problem_when_another_found_a_schedule() -> None:
    pods = [
        member(0, {"exitCode": 137, "reason": "OOMKilled"}),
        member(1, {"exitCode": 0, "message": solved(1, 70)}),
    ]
    v = solverjob.verdict(job("Failed", "BackoffLimitExceeded"), pods, None, NOW)
    assert v.succeeded and v.result["foundBy"] == 1
    assert "member 0 ended without a result (OOMKilled, exit code 137)" in v.message


def test_without_any_result_the_failure_is_explained_as_for_one_pod() -> None:
    pods = [member(0, {"exitCode": 137, "reason": "OOMKilled"})]
    v = solverjob.verdict(job("Failed", "BackoffLimitExceeded"), pods, None, NOW)
    assert not v.succeeded and v.reason == "OOMKilled"


def test_past_the_deadline_the_result_a_member_stored_in_the_status_counts() -> None:
    reported = {"status": "FEASIBLE", "objective": 61, "foundBy": 1, "explanation": []}
    v = solverjob.verdict(job("Failed", "DeadlineExceeded"), [], reported, NOW)
    assert v.succeeded and (v.result["objective"], v.result["foundBy"]) == (61, 1)
    # Without a member's result (foundBy), the deadline is the verdict, as for one pod.
    v = solverjob.verdict(job("Failed", "DeadlineExceeded"), [], {"explanation": []}, NOW)
    assert not v.succeeded and v.reason == "DeadlineExceeded"
