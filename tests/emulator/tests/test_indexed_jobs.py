"""The Job controller's Indexed Jobs (completionMode: Indexed), as Kubernetes runs them: one pod
per completion index with the index in an annotation, a label and JOB_COMPLETION_INDEX; the
status counts them; Complete when every index has succeeded."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.emulator import Emulator, JobOutcome
from tests.support.solverpod_bridge import pod_field

INDEX = "batch.kubernetes.io/job-completion-index"


def indexed(name: str, completions: int, parallelism: int, **spec: Any) -> dict[str, Any]:
    return {
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

    def __init__(self, fail: int | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.now = 0
        self.most = 0
        self.fail = fail

    async def __call__(self, job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        self.seen.append(pod)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            index = int(pod["metadata"]["annotations"][INDEX])
            if index == self.fail:
                return JobOutcome.fail(exit_code=3, message=f"member {index} failed")
            await asyncio.sleep(0.2 if self.fail is None else 60)
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
