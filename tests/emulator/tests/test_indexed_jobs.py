"""The Job controller's Indexed Jobs (completionMode: Indexed), as Kubernetes runs them: one pod
per completion index with the index in an annotation, a label and JOB_COMPLETION_INDEX; the
status counts them; Complete when every index has succeeded. Failures end the Job at once, or,
with backoffLimitPerIndex, are counted per index while the other indexes run on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.emulator import ApiError, Emulator, JobOutcome
from tests.support.solverpod_bridge import pod_field

INDEX = "batch.kubernetes.io/job-completion-index"


def indexed(name: str, completions: int, parallelism: int, **spec: Any) -> dict[str, Any]:
    """An Indexed Job; a field given as None is left out."""
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "solver"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "solve",
                            "image": "vulcan:1",
                            "env": [{"name": "A", "value": "b"}],
                        }
                    ],
                },
            },
            **spec,
        },
    }
    job["spec"] = {k: v for k, v in job["spec"].items() if v is not None}
    return job


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
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


class Pods:
    """A runner that records every pod it runs and how many run at once."""

    def __init__(self, fail: int | None = None, others: float | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.now = 0
        self.most = 0
        self.fail = fail
        # How long the other members run (by default: until stopped, when one fails).
        self.others = others if others is not None else 0.2 if fail is None else 60

    async def __call__(self, job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        self.seen.append(pod)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            index = int(pod["metadata"]["annotations"][INDEX])
            if index == self.fail:
                return JobOutcome.fail(exit_code=3, message=f"member {index} failed")
            await asyncio.sleep(self.others)
            return JobOutcome.succeed(message=f"member {index}")
        finally:
            self.now -= 1


async def test_one_pod_per_index_all_at_once_then_complete(emulator: Emulator) -> None:
    pods = Pods()
    emulator.jobs.default = JobOutcome.run(pods)
    emulator.create(indexed("race", 3, 3))
    running = await emulator.wait_for(
        lambda: (j := emulator.get("jobs", "default", "race"))["status"].get("active") == 3 and j
    )
    assert running["status"]["ready"] == 3 and "succeeded" not in running["status"]
    done = await finished(emulator, "race")
    assert condition(done, "Complete") is not None
    status = done["status"]
    assert (status["succeeded"], status["completedIndexes"]) == (3, "0-2")
    assert "active" not in status and "failed" not in status and status["completionTime"]
    assert pods.most == 3  # side by side
    by_index = {p["metadata"]["annotations"][INDEX]: p for p in pods.seen}
    assert sorted(by_index) == ["0", "1", "2"]
    for index, pod in by_index.items():
        meta = pod["metadata"]
        assert meta["labels"][INDEX] == index
        assert meta["generateName"] == f"race-{index}-"
        assert meta["name"].startswith(f"race-{index}-")
        assert pod["spec"]["hostname"] == f"race-{index}"
        (env_a, env_index) = pod["spec"]["containers"][0]["env"]
        assert env_a == {"name": "A", "value": "b"}
        assert env_index == {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}},
        }
        # What the kubelet puts in the environment (the solver pod bridge does the same).
        assert pod_field(pod, env_index["valueFrom"]["fieldRef"]["fieldPath"]) == index
    messages = sorted(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        for p in emulator.list("pods", "default", labels="job-name=race")
    )
    assert messages == ["member 0", "member 1", "member 2"]


async def test_parallelism_below_completions_runs_in_turns(emulator: Emulator) -> None:
    pods = Pods()
    emulator.jobs.default = JobOutcome.run(pods)
    emulator.create(indexed("turns", 3, 1))
    done = await finished(emulator, "turns")
    assert condition(done, "Complete") is not None and done["status"]["succeeded"] == 3
    assert pods.most == 1 and len(pods.seen) == 3


async def test_a_failed_index_fails_the_job_and_stops_the_other_pods(emulator: Emulator) -> None:
    pods = Pods(fail=1)
    emulator.jobs.default = JobOutcome.run(pods)
    emulator.create(indexed("broken", 3, 3))
    done = await finished(emulator, "broken")
    cond = condition(done, "Failed")
    assert cond is not None and cond["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 1 and "active" not in done["status"]
    await emulator.wait_for(lambda: pods.now == 0)  # the others were stopped
    (left,) = emulator.list("pods", "default", labels="job-name=broken")
    assert left["metadata"]["annotations"][INDEX] == "1"
    assert left["status"]["phase"] == "Failed"


async def test_with_a_backoff_limit_per_index_the_other_indexes_run_on(
    emulator: Emulator,
) -> None:
    pods = Pods(fail=1, others=0.3)
    emulator.jobs.default = JobOutcome.run(pods)
    created = emulator.create(indexed("race", 3, 3, backoffLimitPerIndex=0, backoffLimit=None))
    assert created["spec"]["backoffLimit"] == 2**31 - 1  # the default when counted per index
    done = await finished(emulator, "race")
    cond = condition(done, "Failed")
    assert cond is not None and cond["reason"] == "FailedIndexes", done["status"]
    status = done["status"]
    assert (status["succeeded"], status["completedIndexes"]) == (2, "0,2")
    assert (status["failed"], status["failedIndexes"]) == (1, "1")
    assert len(pods.seen) == 3  # no retry of index 1
    ended = {
        p["metadata"]["annotations"][INDEX]: p["status"]["phase"]
        for p in emulator.list("pods", "default", labels="job-name=race")
    }
    assert ended == {"0": "Succeeded", "1": "Failed", "2": "Succeeded"}  # ran to their end


async def test_a_failed_index_is_retried_up_to_its_limit(emulator: Emulator) -> None:
    pods = Pods(fail=1, others=0.3)
    emulator.jobs.default = JobOutcome.run(pods)
    emulator.create(indexed("retry", 2, 2, backoffLimitPerIndex=1, backoffLimit=None))
    done = await finished(emulator, "retry")
    assert condition(done, "Failed")["reason"] == "FailedIndexes"  # type: ignore[index]
    assert (done["status"]["failed"], done["status"]["failedIndexes"]) == (2, "1")
    tries = [
        p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"]
        for p in pods.seen
        if p["metadata"]["annotations"][INDEX] == "1"
    ]
    assert tries == ["0", "1"]


async def test_more_failed_indexes_than_allowed_end_the_job_at_once(emulator: Emulator) -> None:
    pods = Pods(fail=0)  # the others would run a minute
    emulator.jobs.default = JobOutcome.run(pods)
    emulator.create(
        indexed("strict", 3, 3, backoffLimitPerIndex=0, maxFailedIndexes=0, backoffLimit=None)
    )
    done = await finished(emulator, "strict")
    assert condition(done, "Failed")["reason"] == "MaxFailedIndexesExceeded"  # type: ignore[index]
    await emulator.wait_for(lambda: pods.now == 0)  # the others were stopped


async def test_the_jobs_own_backoff_limit_still_counts_every_failure(emulator: Emulator) -> None:
    pods = Pods(fail=0)
    emulator.jobs.default = JobOutcome.run(pods)
    emulator.create(indexed("capped", 2, 2, backoffLimitPerIndex=1))  # and backoffLimit: 0
    done = await finished(emulator, "capped")
    assert condition(done, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    await emulator.wait_for(lambda: pods.now == 0)


async def test_per_index_limits_are_checked_as_the_api_server_does(emulator: Emulator) -> None:
    plain = indexed("plain", 2, 2, backoffLimitPerIndex=0)
    del plain["spec"]["completionMode"]
    with pytest.raises(ApiError, match=r"spec\.backoffLimitPerIndex: .*requires indexed"):
        emulator.create(plain)
    with pytest.raises(ApiError, match=r"spec\.backoffLimitPerIndex: Required value"):
        emulator.create(indexed("alone", 2, 2, maxFailedIndexes=1))
    retried = indexed("retried", 2, 2, backoffLimitPerIndex=0)
    retried["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    with pytest.raises(ApiError, match=r"restartPolicy: .*only Never"):
        emulator.create(retried)
    emulator.jobs.default = JobOutcome.running()
    emulator.create(indexed("fixed", 2, 2, backoffLimitPerIndex=0))
    with pytest.raises(ApiError, match="immutable"):
        emulator.patch("jobs", "default", "fixed", {"spec": {"backoffLimitPerIndex": 1}})


async def test_the_deadline_ends_every_index(emulator: Emulator) -> None:
    emulator.jobs.default = JobOutcome.running()
    emulator.create(indexed("slow", 2, 2, activeDeadlineSeconds=0.3))
    done = await finished(emulator, "slow")
    assert condition(done, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert emulator.list("pods", "default", labels="job-name=slow") == []


async def test_finish_ends_every_index(emulator: Emulator) -> None:
    emulator.jobs.default = JobOutcome.running()
    emulator.create(indexed("held", 2, 2))
    await emulator.wait_for(lambda: emulator.get("jobs", "default", "held")["status"]["ready"] == 2)
    emulator.jobs.finish("default", "held", JobOutcome.succeed(message="stop"))
    done = await finished(emulator, "held")
    assert condition(done, "Complete") is not None
    assert done["status"]["completedIndexes"] == "0-1"
