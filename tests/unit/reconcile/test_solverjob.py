"""reconcile.solverjob: a Job and its pod in plain words (the queue: test_queue.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vulcan_operator.reconcile import solverjob

NOW = "2026-11-29T02:00:00Z"


def job(
    state: str | None = None, reason: str = "", memory: str = "768Mi", **spec: Any
) -> dict[str, Any]:
    conditions = []
    if state is not None:
        conditions.append({"type": state, "status": "True", "reason": reason, "message": "m"})
    return {
        "metadata": {"name": "week-48-solve-1234abcd", "namespace": "plant-a", "uid": "j"},
        "spec": {
            "activeDeadlineSeconds": 120,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "solver",
                            "image": "ghcr.io/vulcan-engine/vulcan-operator:1",
                            "args": ["--time-limit", "60"],
                            "resources": {"limits": {"cpu": "2", "memory": memory}},
                        }
                    ]
                }
            },
            **spec,
        },
        "status": {"conditions": conditions},
    }


def pod(
    terminated: dict[str, Any] | None = None,
    waiting: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    state = {"terminated": terminated} if terminated else {"waiting": waiting} if waiting else {}
    return {
        "metadata": {"name": "week-48-solve-1234abcd-x7k2p"},
        "status": {"containerStatuses": [{"name": "solver", "state": state}], **status},
    }


def summary(status: str, **extra: Any) -> str:
    base = {
        "status": status,
        "objective": 55,
        "bound": 55,
        "gap": 0.0,
        "makespan": 55,
        "wallSeconds": 1.5,
        "solutions": 4,
        "explanation": [],
        "finishedAt": "2026-11-29T01:59:58Z",
        "configMap": "week-48-schedule",
        "scheduleId": "7",
        "jobsByPriority": {"1": 5, "3": 1},
        "notes": [],
    }
    return json.dumps({**base, **extra})


# --- verdicts -------------------------------------------------------------------------------


def test_a_schedule_succeeds_and_says_where_it_is() -> None:
    v = solverjob.verdict(
        job("Complete"), [pod({"exitCode": 0, "message": summary("OPTIMAL")})], None, NOW
    )
    assert v.succeeded and v.reason == "Solved" and v.metric_status == "OPTIMAL"
    assert v.result == {
        "status": "OPTIMAL",
        "objective": 55,
        "bound": 55,
        "makespan": 55,
        "wallSeconds": 1.5,
        "explanation": [],
        "finishedAt": "2026-11-29T01:59:58Z",
    }
    assert v.solution_ref == {"configMapName": "week-48-schedule", "scheduleId": "7"}
    assert v.progress == {
        "objective": 55,
        "bound": 55,
        "gap": 0.0,
        "elapsedSeconds": 1.5,
        "solutions": 4,
    }
    assert v.seconds == 1.5 and v.jobs_by_priority == {"1": 5, "3": 1}
    assert "ConfigMap week-48-schedule" in v.message and "schedule 7" in v.message


def test_notes_of_the_pod_reach_the_message() -> None:
    message = summary("FEASIBLE", scheduleId=None, notes=["cannot write to the database: x"])
    v = solverjob.verdict(job("Complete"), [pod({"exitCode": 0, "message": message})], None, NOW)
    assert v.succeeded and v.solution_ref == {"configMapName": "week-48-schedule"}
    assert "cannot write to the database" in v.message


def test_infeasible_and_no_solution_are_failures_with_their_explanation() -> None:
    why = ["Job 'j1' cannot finish by the horizon 5"]
    infeasible = solverjob.verdict(
        job("Complete"),
        [pod({"exitCode": 0, "message": summary("INFEASIBLE", objective=None, explanation=why)})],
        None,
        NOW,
    )
    assert not infeasible.succeeded and infeasible.reason == "Infeasible"
    assert why[0] in infeasible.message and infeasible.result["explanation"] == why
    assert "objective" not in infeasible.result and infeasible.metric_status == "INFEASIBLE"
    unknown = solverjob.verdict(
        job("Complete"),
        [pod({"exitCode": 0, "message": summary("UNKNOWN", objective=None)})],
        None,
        NOW,
    )
    assert unknown.reason == "NoSolution" and "raise spec.solver.maxTimeSeconds" in unknown.message
    assert "(60 s)" in unknown.message


def test_a_lost_termination_message_falls_back_to_what_the_pod_reported() -> None:
    reported = {"status": "FEASIBLE", "objective": 60, "makespan": 60, "explanation": []}
    v = solverjob.verdict(job("Complete"), [pod({"exitCode": 0})], reported, NOW)
    assert v.succeeded and v.result["objective"] == 60 and v.result["finishedAt"] == NOW
    nothing = solverjob.verdict(job("Complete"), [], None, NOW)
    assert not nothing.succeeded and nothing.reason == "NoResult"


def test_out_of_memory_names_the_limit_and_the_field_to_raise() -> None:
    v = solverjob.verdict(
        job("Failed", "BackoffLimitExceeded", memory="2Gi"),
        [pod({"exitCode": 137, "reason": "OOMKilled"})],
        None,
        NOW,
    )
    assert v.reason == "OOMKilled" and v.metric_status == "ERROR"
    assert v.message == (
        "the solver ran out of memory (limit 2048 MiB) and was killed: raise "
        "spec.solver.memoryLimitMB"
    )
    assert v.result == {"explanation": [v.message], "finishedAt": NOW}


def test_deadline_exceeded_names_the_deadline() -> None:
    v = solverjob.verdict(job("Failed", "DeadlineExceeded"), [], None, NOW)
    assert v.reason == "DeadlineExceeded"
    assert "deadline of 120 s (time limit 60 s" in v.message
    assert "raise spec.solver.maxTimeSeconds" in v.message


def test_an_evicted_pod_says_so() -> None:
    evicted = pod(
        {"exitCode": 143, "reason": "Error"},
        reason="Evicted",
        message="The node was low on resource: memory.",
    )
    v = solverjob.verdict(job("Failed", "BackoffLimitExceeded"), [evicted], None, NOW)
    assert v.reason == "Evicted" and "low on resource: memory" in v.message
    disrupted = pod(
        {"exitCode": 143, "reason": "Error"},
        conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByAPI"}],
    )
    v = solverjob.verdict(job("Failed", "BackoffLimitExceeded"), [disrupted], None, NOW)
    assert v.reason == "Evicted"


def test_an_invalid_problem_in_the_pod_lists_the_messages() -> None:
    message = json.dumps({"error": "InvalidProblem", "messages": ["jobs[0].name: bad", "x: y"]})
    v = solverjob.verdict(
        job("Failed", "BackoffLimitExceeded"), [pod({"exitCode": 1, "message": message})], None, NOW
    )
    assert v.reason == "InvalidProblem" and v.metric_status == "INVALID"
    assert v.result["explanation"] == ["jobs[0].name: bad", "x: y"]
    assert v.message == "invalid problem: jobs[0].name: bad; x: y"


def test_a_crash_shows_the_exit_code_and_the_log_tail() -> None:
    v = solverjob.verdict(
        job("Failed", "BackoffLimitExceeded"),
        [pod({"exitCode": 2, "message": "Traceback ...\nValueError: boom\n"})],
        None,
        NOW,
    )
    assert v.reason == "SolverFailed"
    assert v.message.startswith("the solver pod failed with exit code 2: Traceback")
    assert "ValueError: boom" in v.message
    gone = solverjob.verdict(job("Failed", "BackoffLimitExceeded"), [], None, NOW)
    assert gone.reason == "SolverFailed" and "the solver Job failed" in gone.message


def test_a_pod_that_cannot_start() -> None:
    pull = pod(waiting={"reason": "ErrImagePull", "message": "manifest unknown"})
    reason, message, fatal = solverjob.starting(job(), [pull]) or ("", "", False)
    assert (reason, fatal) == ("ImagePullFailed", True)
    assert "ghcr.io/vulcan-engine/vulcan-operator:1 cannot be pulled" in message
    assert "manifest unknown" in message
    unschedulable = pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        ]
    )
    reason, message, fatal = solverjob.starting(job(), [unschedulable]) or ("", "", True)
    assert (reason, fatal) == ("Unschedulable", False) and "Insufficient cpu" in message
    assert solverjob.starting(job(), [pod(waiting={"reason": "ContainerCreating"})]) is None
    assert solverjob.starting(job(), []) is None


def test_job_states() -> None:
    assert solverjob.finished(job()) is None
    assert solverjob.finished(job("Complete")) == "Complete"
    assert solverjob.finished(job("Failed", "DeadlineExceeded")) == "Failed"
    assert solverjob.suspended(job(suspend=True))
    assert not solverjob.suspended(job("Complete", suspend=True))


@pytest.mark.parametrize(
    ("quantity", "mib"),
    [("512Mi", 512), ("2Gi", 2048), ("1073741824", 1024), ("1500M", 1431), ("nonsense", None)],
)
def test_memory_limits_in_mib(quantity: str, mib: int | None) -> None:
    assert solverjob.memory_limit_mib(job(memory=quantity)) == mib
