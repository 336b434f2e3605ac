"""The simulated Job and Deployment controllers, and how tests choose their outcomes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome, RolloutOutcome


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "solver"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "solver"}, "annotations": {"a": "b"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "solve", "image": "vulcan:1", "command": ["solve"]}],
                },
            },
            **spec,
        },
    }


def deployment(name: str, image: str = "vulcan:1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return cond  # type: ignore[no-any-return]
    return None


async def finished(emulator: Emulator, name: str) -> dict[str, Any]:
    return await emulator.wait_for(  # type: ignore[no-any-return]
        lambda: (
            (j := emulator.get("jobs", "default", name))
            and (condition(j, "Complete") or condition(j, "Failed"))
            and j
        )
    )


def pod_of(emulator: Emulator, name: str) -> dict[str, Any]:
    (pod,) = emulator.list("pods", "default", labels=f"job-name={name}")
    return pod


# --- Jobs ----------------------------------------------------------------------------------------


async def test_job_succeeds_by_default(emulator: Emulator) -> None:
    created = emulator.create(job("solve-1"))
    done = await finished(emulator, "solve-1")
    pod = pod_of(emulator, "solve-1")
    assert pod["metadata"]["name"].startswith("solve-1-")
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "solve-1"
    assert pod["metadata"]["labels"]["app"] == "solver"
    assert pod["metadata"]["annotations"] == {"a": "b"}
    (ref,) = pod["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", created["metadata"]["uid"], True)
    assert pod["spec"]["containers"][0]["command"] == ["solve"]
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    status = done["status"]
    assert status["succeeded"] == 1 and "active" not in status
    assert status["startTime"] and status["completionTime"]
    assert condition(done, "Complete")["status"] == "True"  # type: ignore[index]
    assert condition(done, "SuccessCriteriaMet") is not None


async def test_job_goes_through_active_and_running(emulator: Emulator) -> None:
    emulator.jobs.default = JobOutcome.running()
    emulator.create(job("long"))
    running = await emulator.wait_for(
        lambda: (p := pod_of(emulator, "long"))["status"]["phase"] == "Running" and p
    )
    assert running["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    status = emulator.get("jobs", "default", "long")["status"]  # type: ignore[index]
    assert (status["active"], status["ready"]) == (1, 1) and status["startTime"]
    emulator.jobs.finish("default", "long", JobOutcome.succeed(message="done"))
    await finished(emulator, "long")
    terminated = pod_of(emulator, "long")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["message"] == "done"


async def test_job_failure_with_reason_and_message(emulator: Emulator) -> None:
    emulator.jobs.by_prefix["oom-"] = JobOutcome.oom_killed(message="out of memory at 8Gi")
    emulator.jobs.by_prefix["oom-but-"] = JobOutcome.fail(exit_code=2, message="bad input")
    emulator.create(job("oom-1"))
    emulator.create(job("oom-but-other"))
    failed = await finished(emulator, "oom-1")
    cond = condition(failed, "Failed")
    assert cond is not None and cond["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 1 and "active" not in failed["status"]
    pod = pod_of(emulator, "oom-1")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        137,
        "OOMKilled",
        "out of memory at 8Gi",
    )
    await finished(emulator, "oom-but-other")  # the longest prefix wins
    terminated = pod_of(emulator, "oom-but-other")["status"]["containerStatuses"][0]["state"][
        "terminated"
    ]
    assert (terminated["exitCode"], terminated["reason"]) == (2, "Error")


async def test_job_deadline_exceeded(emulator: Emulator) -> None:
    emulator.jobs.outcome_for = lambda j: (
        JobOutcome.deadline_exceeded() if j["metadata"]["name"] == "slow" else None
    )
    emulator.create(job("slow"))
    emulator.create(job("fast"))
    failed = await finished(emulator, "slow")
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert emulator.list("pods", "default", labels="job-name=slow") == []  # killed and removed
    assert condition(await finished(emulator, "fast"), "Complete") is not None


async def test_job_active_deadline_seconds(emulator: Emulator) -> None:
    emulator.jobs.default = JobOutcome.running()
    emulator.create(job("stuck", activeDeadlineSeconds=0.1))
    failed = await finished(emulator, "stuck")
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]


async def test_job_run_outcome_gets_the_job_and_pod(emulator: Emulator) -> None:
    seen: list[tuple[str, str]] = []

    async def run(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        seen.append((job["metadata"]["name"], pod["status"]["phase"]))
        await asyncio.sleep(0.01)
        command = pod["spec"]["containers"][0]["command"]
        return JobOutcome.succeed(message=" ".join(command))

    emulator.jobs.outcome_for = lambda j: JobOutcome.run(run)
    emulator.create(job("executed"))
    await finished(emulator, "executed")
    assert seen == [("executed", "Running")]
    terminated = pod_of(emulator, "executed")["status"]["containerStatuses"][0]["state"][
        "terminated"
    ]
    assert terminated["message"] == "solve"


async def test_deleting_a_job_stops_its_running_runner(emulator: Emulator) -> None:
    started, stopped = threading.Event(), []  # the runner runs in the emulator's thread

    async def forever(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.append(job["metadata"]["name"])
            raise
        return JobOutcome.succeed()

    emulator.jobs.default = JobOutcome.run(forever)
    emulator.create(job("victim"))
    await emulator.wait_for(started.is_set)
    emulator.delete("jobs", "default", "victim")
    await emulator.wait_for(lambda: stopped == ["victim"])
    assert emulator.list("pods", "default") == []


async def test_job_run_outcome_that_raises_fails_the_job(emulator: Emulator) -> None:
    async def broken(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        raise RuntimeError("boom")

    emulator.jobs.default = JobOutcome.run(broken)
    emulator.create(job("broken"))
    assert condition(await finished(emulator, "broken"), "Failed") is not None
    assert [repr(e) for e in emulator.failures] == ["RuntimeError('boom')"]
    emulator.failures.clear()  # expected here; otherwise the fixture fails the test


async def test_suspended_job_waits(emulator: Emulator) -> None:
    emulator.create(job("later", suspend=True))
    await asyncio.sleep(0.05)
    assert emulator.list("pods", "default") == []
    emulator.patch("jobs", "default", "later", {"spec": {"suspend": False}})
    assert condition(await finished(emulator, "later"), "Complete") is not None


async def test_deleting_a_job_deletes_its_pod(emulator: Emulator) -> None:
    emulator.jobs.default = JobOutcome.running()
    emulator.create(job("doomed"))
    await emulator.wait_for(lambda: pod_of(emulator, "doomed"))
    emulator.delete("jobs", "default", "doomed")
    assert emulator.list("pods", "default") == []


async def test_finished_job_is_deleted_after_its_ttl(emulator: Emulator) -> None:
    emulator.create(job("ttl", ttlSecondsAfterFinished=0))
    await emulator.wait_for(lambda: emulator.get("jobs", "default", "ttl") is None)
    assert emulator.list("pods", "default") == []


@pytest.mark.emulator(controllers=False)
async def test_controllers_can_be_off(emulator: Emulator) -> None:
    emulator.create(job("idle"))
    emulator.create(deployment("idle"))
    await asyncio.sleep(0.1)
    assert emulator.list("pods") == []
    assert "status" not in emulator.get("deployments", "default", "idle")  # type: ignore[operator]


# --- Deployments ---------------------------------------------------------------------------------


async def rolled_out(emulator: Emulator, name: str, generation: int = 1) -> dict[str, Any]:
    def check() -> Any:
        d = emulator.get("deployments", "default", name)
        progressing = condition(d, "Progressing")
        return (
            d
            and d["status"]["observedGeneration"] == generation
            and progressing
            and progressing["reason"] != "ReplicaSetUpdated"
            and d
        )

    return await emulator.wait_for(check)  # type: ignore[no-any-return]


async def test_deployment_becomes_available(emulator: Emulator) -> None:
    emulator.create(deployment("web", replicas=3))
    d = await rolled_out(emulator, "web")
    status = d["status"]
    assert (
        status["replicas"],
        status["updatedReplicas"],
        status["readyReplicas"],
        status["availableReplicas"],
    ) == (3, 3, 3, 3)
    assert condition(d, "Available")["status"] == "True"  # type: ignore[index]
    progressing = condition(d, "Progressing")
    assert progressing is not None
    assert (progressing["status"], progressing["reason"]) == ("True", "NewReplicaSetAvailable")


async def test_deployment_progress_is_visible_before_it_is_ready(emulator: Emulator) -> None:
    emulator.deployments.default = RolloutOutcome.pending()
    emulator.create(deployment("slow"))
    d = await emulator.wait_for(lambda: emulator.get("deployments", "default", "slow")["status"])
    assert d["observedGeneration"] == 1
    assert "readyReplicas" not in d  # zero counts are omitted, as in real statuses
    reasons = {c["type"]: c["reason"] for c in d["conditions"]}
    assert reasons == {
        "Available": "MinimumReplicasUnavailable",
        "Progressing": "ReplicaSetUpdated",
    }


@pytest.mark.parametrize(
    ("strategy", "surge"),
    [
        ({}, 1),  # maxSurge 25% of 3, rounded up
        ({"rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}, 2),
        ({"rollingUpdate": {"maxSurge": "50%"}}, 2),
    ],
)
async def test_an_update_in_progress_has_surge_pods_and_fewer_updated_replicas(
    emulator: Emulator, strategy: dict[str, Any], surge: int
) -> None:
    emulator.create(deployment("web", replicas=3, strategy=strategy))
    await rolled_out(emulator, "web")
    emulator.deployments.default = RolloutOutcome.pending()
    emulator.patch("deployments", "default", "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "app", "image": "vulcan:2"}]}}}})  # fmt: skip
    d = await emulator.wait_for(
        lambda: (
            (emulator.get("deployments", "default", "web")["status"]["observedGeneration"] == 2)
            and emulator.get("deployments", "default", "web")["status"]
        )
    )
    assert d.get("replicas", 0) == 3 + surge  # the old pods and the surge pods
    assert d.get("updatedReplicas", 0) == surge < 3
    assert d["availableReplicas"] == 3  # the old pods keep serving


async def test_deployment_default_replicas_scaling_and_zero(emulator: Emulator) -> None:
    emulator.create(deployment("app"))
    d = await rolled_out(emulator, "app")
    assert d["status"]["readyReplicas"] == 1  # spec.replicas defaults to 1
    emulator.patch("deployments", "default", "app", {"spec": {"replicas": 0}})
    d = await rolled_out(emulator, "app", generation=2)
    assert "readyReplicas" not in d["status"] and "replicas" not in d["status"]
    assert condition(d, "Available")["status"] == "True"  # type: ignore[index]


async def test_deployment_failure_by_image(emulator: Emulator) -> None:
    emulator.deployments.by_image["vulcan:broken"] = RolloutOutcome.fail()
    emulator.create(deployment("web", replicas=2))
    await rolled_out(emulator, "web")
    emulator.patch(
        "deployments",
        "default",
        "web",
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": "vulcan:broken"}]}}
            }
        },
    )
    d = await rolled_out(emulator, "web", generation=2)
    progressing = condition(d, "Progressing")
    assert progressing is not None
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert d["status"]["readyReplicas"] == 2  # the old pods still serve
    assert condition(d, "Available")["status"] == "True"  # type: ignore[index]


async def test_deployment_outcome_callable_and_delay(emulator: Emulator) -> None:
    emulator.deployments.outcome_for = lambda d: RolloutOutcome.ready(delay=0.5)
    emulator.create(deployment("delayed"))
    await emulator.wait_for(  # first seen progressing, then (after the delay) available
        lambda: (
            condition(emulator.get("deployments", "default", "delayed"), "Progressing")["reason"]
            == "ReplicaSetUpdated"
        )
    )
    await rolled_out(emulator, "delayed")
