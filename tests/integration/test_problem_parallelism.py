"""spec.solver.parallelism end to end: the real Kopf operator against the API emulator, whose Job
controller runs an Indexed Job's pods with their REAL command here (`SolverPodBridge`), each
with its JOB_COMPLETION_INDEX: two portfolio members race on one job shop, the problem's
result is the best of them with the member that found it, and the engine's queue counts the
two pods against its limit."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.kopf_runner import OperatorRunner
from tests.support.solverpod_bridge import INDEX_ANNOTATION, SolverPodBridge

NS = "default"
API = "vulcan-engine.com/v1alpha1"
PROBLEMS = "schedulingproblems"


def engine(**solver: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": NS},
        "spec": {
            "version": "2.0.0",
            "solver": {
                "maxTimeSeconds": 2,
                "numWorkers": 1,
                "memoryLimitMB": 512,
                "maxConcurrentJobs": 2,
                **solver,
            },
        },
    }


def job_shop(seed: int, jobs: int = 8, machines: int = 6) -> dict[str, Any]:
    """A small random job shop: every job visits every machine once."""
    rng = random.Random(seed)
    return {
        "machines": [{"name": f"m{m}"} for m in range(machines)],
        "jobs": [
            {
                "name": f"j{j}",
                "tasks": [
                    {"name": f"t{i}", "duration": rng.randint(1, 30), "machines": [f"m{m}"]}
                    for i, m in enumerate(rng.sample(range(machines), machines))
                ],
            }
            for j in range(jobs)
        ],
    }


def problem(
    name: str, parallelism: int | None = None, shop: dict[str, Any] | None = None, **solver: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"engineRef": {"name": "prod"}, **(shop or job_shop(seed=11))}
    if parallelism is not None:
        solver["parallelism"] = parallelism
    if solver:
        spec["solver"] = solver
    return {
        "apiVersion": API,
        "kind": "SchedulingProblem",
        "metadata": {"name": name},
        "spec": spec,
    }


def status(emulator: Emulator, name: str) -> dict[str, Any]:
    return (emulator.get(PROBLEMS, NS, name) or {}).get("status") or {}


def versions(emulator: Emulator, name: str) -> list[dict[str, Any]]:
    history = emulator.objects[f"{API}/{PROBLEMS}", NS, name].history
    return [dict(v.get("status") or {}) for v in history if v is not None]


async def ended(emulator: Emulator, name: str) -> dict[str, Any]:
    await emulator.wait_for(lambda: status(emulator, name).get("phase") in ("Succeeded", "Failed"))
    return status(emulator, name)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")


@pytest.fixture
async def solving(
    emulator: Emulator, bridge: SolverPodBridge, operator: OperatorRunner
) -> AsyncIterator[SolverPodBridge]:
    emulator.create(engine())
    yield bridge


async def test_two_members_race_the_best_wins_and_the_queue_counts_both(
    emulator: Emulator, solving: SolverPodBridge
) -> None:
    emulator.create(problem("race", parallelism=2))
    await emulator.wait_for(lambda: status(emulator, "race").get("jobName"))
    emulator.create(problem("after"))  # one pod: waits, both slots are taken
    st = await ended(emulator, "race")
    assert st["phase"] == "Succeeded", st

    # One Indexed Job of two pods; both members ran, each as its own portfolio member.
    job = emulator.get("jobs", NS, st["jobName"])
    assert job is not None
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
    assert job["status"]["succeeded"] == 2 and job["status"]["completedIndexes"] == "0-1"
    runs = [r for r in solving.runs if r.job == st["jobName"]]
    assert sorted(r.index for r in runs) == [0, 1] and all(r.code == 0 for r in runs), runs
    assert "portfolio member 0 of 2: strategy default" in runs[0].stderr + runs[1].stderr
    assert "portfolio member 1 of 2: strategy portfolio-then-lns" in (
        runs[0].stderr + runs[1].stderr
    )

    # The verdict is the best member's, and says which one found it.
    members = {r.index: json.loads(r.termination) for r in runs}
    assert {m["foundBy"] for m in members.values()} == {0, 1}
    best = min(m["objective"] for m in members.values())
    result = st["result"]
    assert result["status"] in ("OPTIMAL", "FEASIBLE") and result["objective"] == best
    assert result["foundBy"] in (0, 1) and members[result["foundBy"]]["objective"] == best
    # Live progress was the best across the members: it never got worse.
    live = [
        v["progress"]["objective"]
        for v in versions(emulator, "race")
        if (v.get("progress") or {}).get("objective") is not None
    ]
    assert live and live == sorted(live, reverse=True) and live[-1] == best, live
    # The stored schedule is that member's.
    cm = emulator.get("configmaps", NS, "race-schedule")
    assert cm is not None and st["solutionRef"]["configMapName"] == "race-schedule"
    assert json.loads(cm["data"]["best.json"])["foundBy"] == result["foundBy"]
    schedule = json.loads(cm["data"]["result.json"])
    assert (schedule["foundBy"], schedule["objective"]) == (result["foundBy"], best)
    assert max(a["end"] for a in schedule["assignments"]) == result["makespan"]

    # The queue counted two pods: the next problem waited until both had ended.
    after = await ended(emulator, "after")
    assert after["phase"] == "Succeeded", after
    assert any(v.get("phase") == "Queued" for v in versions(emulator, "after"))
    (next_run,) = [r for r in solving.runs if r.job == after["jobName"]]
    assert next_run.started >= max(r.ended for r in runs)
    assert solving.max_running == 2
    assert "foundBy" not in after["result"]  # one pod: as before


async def test_a_failing_member_fails_alone_and_the_others_race_on(
    emulator: Emulator, solving: SolverPodBridge
) -> None:
    async def member(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        if pod["metadata"]["annotations"][INDEX_ANNOTATION] == "1":
            return JobOutcome.oom_killed()  # at once, without a result
        return await solving.run(job, pod)

    def choose(job: dict[str, Any]) -> JobOutcome | None:
        solver = job["metadata"]["labels"].get("app.kubernetes.io/component") == "solver"
        return JobOutcome.run(member) if solver else None

    emulator.jobs.outcome_for = choose
    emulator.create(problem("crash", parallelism=2))
    st = await ended(emulator, "crash")
    assert st["phase"] == "Succeeded", st
    assert st["result"]["foundBy"] == 0 and st["result"]["status"] in ("OPTIMAL", "FEASIBLE")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert "member 1 ended without a result (OOMKilled, exit code 137)" in ready["message"]
    # Member 0 was not stopped when member 1 failed: it solved to its own end.
    (run,) = solving.runs
    assert (run.index, run.code, run.killed) == (0, 0, False)
    # The Job says what Kubernetes says of it: index 1 failed, index 0 completed.
    job = await emulator.wait_for(
        lambda: (
            (j := emulator.get("jobs", NS, st["jobName"])) and j["status"].get("conditions") and j
        )
    )
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert [c["reason"] for c in failed] == ["FailedIndexes"]
    assert (job["status"]["completedIndexes"], job["status"]["failedIndexes"]) == ("0", "1")


async def test_more_pods_than_the_engine_runs_at_once_fails_naming_the_field(
    emulator: Emulator, solving: SolverPodBridge
) -> None:
    emulator.create(problem("too-wide", parallelism=3))
    st = await ended(emulator, "too-wide")
    assert st["phase"] == "Failed"
    assert st["result"]["explanation"] == [
        "spec.solver.parallelism: 3 is more than engine 'prod' allows (2, its "
        "spec.solver.maxConcurrentJobs: each pod of a problem takes one of its slots)"
    ]
    assert emulator.list("jobs", NS) == []


async def test_deleting_a_racing_problem_stops_every_member(
    emulator: Emulator, solving: SolverPodBridge
) -> None:
    shop = job_shop(seed=3, jobs=15, machines=15)  # not closed in 60 s
    emulator.create(problem("doomed", parallelism=2, shop=shop, maxTimeSeconds=60))
    await emulator.wait_for(lambda: solving.running == 2)
    await emulator.wait_for(
        lambda: (status(emulator, "doomed").get("progress") or {}).get("objective")
    )
    job = status(emulator, "doomed")["jobName"]
    emulator.delete(PROBLEMS, NS, "doomed")
    await emulator.wait_for(lambda: emulator.get("jobs", NS, job) is None)
    await emulator.wait_for(lambda: emulator.list("pods", NS, labels=f"job-name={job}") == [])
    await emulator.wait_for(lambda: solving.running == 0 and len(solving.runs) == 2)
    assert sorted(r.index for r in solving.runs) == [0, 1]
    assert all(r.killed and r.ended - r.started < 30 for r in solving.runs), solving.runs
