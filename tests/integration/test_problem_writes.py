"""The API writes of one SchedulingProblem's life, counted (issue 19: writes per problem near
the minimum), with the real operator against the emulator.

The solver Jobs are the emulator's (a pod that runs until the test ends it, with a solver
summary as its termination message), so every write about the problem is the operator's:
its five children created once, one status write per step (Pending and Running only once
they lasted a second, Succeeded), no finalizer added and taken off again, and nothing once the
problem is done. Events are counted apart (bench/scale.py does the same).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome, RequestRecord
from tests.support.kopf_runner import OperatorRunner

API = "vulcan-engine.com/v1alpha1"
NS = "default"
PROBLEMS = "schedulingproblems"
SUMMARY = {
    "status": "OPTIMAL",
    "objective": 7,
    "bound": 7,
    "gap": 0.0,
    "makespan": 7,
    "wallSeconds": 0.01,
    "solutions": 1,
    "stopReason": "optimal",
    "explanation": [],
}
#: What the operator creates for a problem: the pod's identity and rights, its input, its Job.
CHILDREN = ["configmaps", "jobs", "rolebindings", "roles", "serviceaccounts"]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")


def engine(max_jobs: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": NS},
        "spec": {
            "version": "2.0.0",
            "solver": {"maxTimeSeconds": 5, "numWorkers": 1, "maxConcurrentJobs": max_jobs},
        },
    }


def problem(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "engineRef": {"name": "prod"},
            "machines": [{"name": "m1"}],
            "jobs": [{"name": "j1", "tasks": [{"name": "a", "duration": 7, "machines": ["m1"]}]}],
        },
    }


def status(emulator: Emulator, name: str) -> dict[str, Any]:
    return (emulator.get(PROBLEMS, NS, name) or {}).get("status") or {}


def about(r: RequestRecord, name: str) -> bool:
    """A write about the problem `name`: to it, to a child named after it, or an Event of it."""
    if r.resource == "events":
        return ((r.body or {}).get("involvedObject") or {}).get("name") == name
    target = r.name or ((r.body or {}).get("metadata") or {}).get("name") or ""
    return target == name or target.startswith(f"{name}-")


def writes_of(emulator: Emulator, since: int, name: str) -> list[RequestRecord]:
    return [r for r in emulator.writes(since=since) if about(r, name)]


def shape(r: RequestRecord) -> str:
    sub = f"/{r.subresource}" if r.subresource else ""
    return f"{r.verb} {r.resource}{sub}"


async def wait_job(emulator: Emulator, name: str) -> str:
    jobs = await emulator.wait_for(
        lambda: [
            j["metadata"]["name"]
            for j in emulator.list("jobs", NS)
            if j["metadata"]["name"].startswith(f"{name}-")
        ]
    )
    return str(jobs[0])


async def quiet(emulator: Emulator, name: str, seconds: float = 3.0) -> None:
    """Nothing more is written about `name` for `seconds` (three polls)."""
    while True:
        mark = emulator.mark()
        await asyncio.sleep(seconds)
        if not writes_of(emulator, mark, name):
            return


async def test_one_problem_writes_its_children_once_and_one_status_patch_per_step(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.jobs.by_prefix["life-"] = JobOutcome.running()
    emulator.create(engine(max_jobs=2))
    mark = emulator.mark()
    emulator.create(problem("life"))
    job = await wait_job(emulator, "life")
    await emulator.wait_for(lambda: status(emulator, "life").get("phase") == "Running", 60)
    emulator.jobs.finish(NS, job, JobOutcome.succeed(message=json.dumps(SUMMARY)))
    await emulator.wait_for(lambda: status(emulator, "life").get("phase") == "Succeeded", 60)
    await quiet(emulator, "life")

    writes = writes_of(emulator, mark, "life")
    api = [r for r in writes if r.resource != "events"]
    assert all(r.status is not None and r.status < 300 for r in writes), writes
    created = sorted(r.resource or "" for r in api if r.verb == "create")
    assert created == CHILDREN, created
    # The problem itself is never patched (Kopf's finalizer was two patches: on, then off).
    steps = [r.body["status"].get("phase") for r in api if r.subresource == "status"]
    assert [shape(r) for r in api if r.verb != "create"] == [
        "patch schedulingproblems/status"
    ] * len(steps)
    # Pending (its pod starting) lasted less than a second: not written, unless the operator
    # saw the pod run only later (a loaded machine)
    assert steps in (["Running", "Succeeded"], ["Pending", "Running", "Succeeded"]), steps
    assert len(api) == 5 + len(steps), [(shape(r), r.body) for r in api]  # 10 before issue 19
    assert not (emulator.get(PROBLEMS, NS, "life") or {})["metadata"].get("finalizers")
    st = status(emulator, "life")
    assert st["result"]["makespan"] == 7 and st["jobName"] == job
    reasons = [r.body.get("reason") for r in writes if r.resource == "events"]
    assert reasons == ["JobCreated", "Solved"], reasons


async def test_a_step_shorter_than_a_second_is_folded_into_the_next(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    """A pod that runs for less than a second (the emulator's Job says `ready: 1` meanwhile):
    neither Pending (the Job made) nor Running is written, each would be once it had lasted a
    second, and the problem is done before that. 6 writes: the minimum (5 created, 1 status);
    8 before (Pending, Running, Succeeded)."""
    summary = json.dumps(SUMMARY)
    emulator.jobs.by_prefix["brief-"] = JobOutcome.succeed(message=summary, delay=0.2)
    emulator.create(engine(max_jobs=2))
    mark = emulator.mark()
    emulator.create(problem("brief"))
    await emulator.wait_for(lambda: status(emulator, "brief").get("phase") == "Succeeded", 60)
    await quiet(emulator, "brief")
    api = [r for r in writes_of(emulator, mark, "brief") if r.resource != "events"]
    steps = [r.body["status"].get("phase") for r in api if r.subresource == "status"]
    assert steps == ["Succeeded"], steps
    assert len(api) == 6, [(shape(r), r.body) for r in api]


async def test_a_deleted_queued_problem_stops_at_once_without_a_finalizer(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    """Without a finalizer the daemon of a deleted problem ends on the DELETED event: a queued
    one must not start (and create a Job for nothing) when the slot frees."""
    emulator.jobs.by_prefix["first-"] = JobOutcome.running()
    emulator.create(engine(max_jobs=1))
    emulator.create(problem("first"))
    job = await wait_job(emulator, "first")
    emulator.create(problem("gone"))
    await emulator.wait_for(lambda: status(emulator, "gone").get("queuePosition") == 1, 60)
    assert not (emulator.get(PROBLEMS, NS, "gone") or {})["metadata"].get("finalizers")
    emulator.delete(PROBLEMS, NS, "gone")
    await emulator.wait_for(lambda: emulator.get(PROBLEMS, NS, "gone") is None)
    mark = emulator.mark()
    emulator.jobs.finish(NS, job, JobOutcome.succeed(message=json.dumps(SUMMARY)))
    await emulator.wait_for(lambda: status(emulator, "first").get("phase") == "Succeeded", 60)
    await asyncio.sleep(4)  # more than a queued problem's poll (3 x 1 s)
    # (Kopf posts Events in the background: the Queued one may come after the deletion.)
    assert [r for r in writes_of(emulator, mark, "gone") if r.resource != "events"] == []
    assert not any(
        r.path.endswith("/gone") or "/gone-" in r.path for r in emulator.requests(since=mark)
    ), "the deleted problem's daemon still runs"


@pytest.fixture
def queued_refresh_15s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls every 5 s: a queued problem refreshes its position every 15 s (3 polls)."""
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "5")


async def test_a_queued_problem_moving_up_writes_no_extra_status_until_its_refresh(
    emulator: Emulator, queued_refresh_15s: None, operator: OperatorRunner
) -> None:
    """Each slot freed wakes the head of the queue; a head that cannot start yet (it moved
    up) used to write its new position at once: a status write per problem ahead of it."""
    for name in ("a", "b", "c"):
        emulator.jobs.by_prefix[f"{name}-"] = JobOutcome.running()
    emulator.create(engine(max_jobs=1))
    emulator.create(problem("a"))
    job_a = await wait_job(emulator, "a")
    mark = emulator.mark()
    emulator.create(problem("b"))
    await emulator.wait_for(lambda: status(emulator, "b").get("queuePosition") == 1, 60)
    emulator.create(problem("c"))
    await emulator.wait_for(lambda: status(emulator, "c").get("queuePosition") == 2, 60)
    emulator.jobs.finish(NS, job_a, JobOutcome.succeed(message=json.dumps(SUMMARY)))
    job_b = await wait_job(emulator, "b")  # b took the slot; c, now the head, looked
    await asyncio.sleep(2)
    assert status(emulator, "c").get("queuePosition") == 2  # held back (refresh in 15 s)
    emulator.jobs.finish(NS, job_b, JobOutcome.succeed(message=json.dumps(SUMMARY)))
    job_c = await wait_job(emulator, "c")
    await emulator.wait_for(lambda: status(emulator, "c").get("phase") == "Running", 60)
    emulator.jobs.finish(NS, job_c, JobOutcome.succeed(message=json.dumps(SUMMARY)))
    await emulator.wait_for(lambda: status(emulator, "c").get("phase") == "Succeeded", 60)
    steps = [
        r.body["status"].get("phase")
        for r in writes_of(emulator, mark, "c")
        if r.subresource == "status"
    ]
    assert steps[0] == "Queued" and steps[-2:] == ["Running", "Succeeded"], steps
    assert len(steps) == len(set(steps)), steps  # one write per step
    st = status(emulator, "c")
    assert st.get("queuePosition") is None and st["result"]["makespan"] == 7


async def test_the_finalizer_an_older_version_put_on_a_problem_is_taken_off(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.jobs.by_prefix["old-"] = JobOutcome.succeed(message=json.dumps(SUMMARY))
    emulator.create(engine(max_jobs=2))
    body = problem("old")
    body["metadata"]["finalizers"] = ["vulcan-engine.com/finalizer"]
    emulator.create(body)
    await emulator.wait_for(lambda: status(emulator, "old").get("phase") == "Succeeded", 60)
    await emulator.wait_for(
        lambda: not (emulator.get(PROBLEMS, NS, "old") or {})["metadata"].get("finalizers"), 60
    )
    emulator.delete(PROBLEMS, NS, "old")
    await emulator.wait_for(lambda: emulator.get(PROBLEMS, NS, "old") is None, 60)
