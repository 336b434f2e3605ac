"""Simulated kube-controller-manager parts: the Job and Deployment controllers.

They react to the server's own events, run on the server's loop, and write through the same
store logic as any client (so every step is a watch event). What happens to a given Job or
Deployment is chosen by the test: see `JobOutcome` and `RolloutOutcome`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kmock

from tests.emulator import objects as o
from tests.emulator.api import ApiError

if TYPE_CHECKING:
    from tests.emulator.server import Emulator, Event

Obj = dict[str, Any]
JOBS = kmock.resource("batch", "v1", "jobs")
PODS = kmock.resource("", "v1", "pods")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
#: The completion index of a pod of an Indexed Job (annotation and label).
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
#: A pod's count of earlier failures of its index (Jobs with backoffLimitPerIndex).
FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"


def _condition(previous: list[Obj], kind: str, status: str, reason: str, message: str) -> Obj:
    """A condition; its lastTransitionTime survives while its status stays the same."""
    stamp = o.now()
    for old in previous:
        if old.get("type") == kind and old.get("status") == status:
            stamp = old.get("lastTransitionTime", stamp)
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": o.now(),
        "lastTransitionTime": stamp,
    }


def _max_surge(spec: Obj, wanted: int) -> int:
    """The Deployment's maxSurge in pods: an int, or a percentage of the desired replicas
    rounded up (default 25%). Only RollingUpdate is emulated (the operator uses nothing else)."""
    value = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(wanted * int(value[:-1]) / 100)
    return int(value)


def _counts(**counts: int) -> Obj:
    return {k: v for k, v in counts.items() if v}  # zeros are omitted, as in real statuses


# --- Jobs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOutcome:
    """How a Job's (single) pod ends. Build with the class methods."""

    result: str  # succeed, fail, deadline, running, run
    exit_code: int = 0
    reason: str = "Completed"  # the container's termination reason: Completed, Error, OOMKilled
    message: str = ""  # the container's termination message
    delay: float = 0.0  # seconds the pod runs before it ends
    runner: Callable[[Obj, Obj], Awaitable[JobOutcome]] | None = None

    @classmethod
    def succeed(cls, message: str = "", delay: float = 0.0) -> JobOutcome:
        return cls("succeed", 0, "Completed", message, delay)

    @classmethod
    def fail(
        cls, exit_code: int = 1, reason: str = "Error", message: str = "", delay: float = 0.0
    ) -> JobOutcome:
        return cls("fail", exit_code, reason, message, delay)

    @classmethod
    def oom_killed(cls, message: str = "", delay: float = 0.0) -> JobOutcome:
        return cls.fail(137, "OOMKilled", message, delay)

    @classmethod
    def deadline_exceeded(cls, delay: float = 0.0) -> JobOutcome:
        return cls("deadline", delay=delay)

    @classmethod
    def running(cls) -> JobOutcome:
        """Never ends by itself: `emulator.jobs.finish(...)` (or activeDeadlineSeconds) ends it."""
        return cls("running")

    @classmethod
    def run(cls, fn: Callable[[Obj, Obj], Awaitable[JobOutcome]]) -> JobOutcome:
        """`await fn(job, pod)` while the pod is Running; it returns the final outcome.

        It runs on the emulator's own loop and thread (as a pod runs independently of the
        operator): use thread-safe means to talk to the test's loop.
        """
        return cls("run", runner=fn)


class JobController:
    """batch/v1 Jobs: one pod per Job (no retries), then Complete or Failed; an Indexed Job
    (`completionMode: Indexed`) gets one pod per completion index (see `_run_indexed`).

    Choose outcomes with, in this order: `outcome_for(job)` (a callable; None means "no
    opinion"), `by_prefix` (Job name prefix -> outcome, the longest prefix wins), `default`.
    """

    def __init__(self, emulator: Emulator, *, enabled: bool = True) -> None:
        self.emulator = emulator
        self.enabled = enabled
        self.default = JobOutcome.succeed()
        self.by_prefix: dict[str, JobOutcome] = {}
        self.outcome_for: Callable[[Obj], JobOutcome | None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finishers: dict[str, asyncio.Future[JobOutcome]] = {}

    def choose(self, job: Obj) -> JobOutcome:
        if self.outcome_for is not None and (chosen := self.outcome_for(job)) is not None:
            return chosen
        name = job["metadata"]["name"]
        matching = sorted((p for p in self.by_prefix if name.startswith(p)), key=len)
        return self.by_prefix[matching[-1]] if matching else self.default

    def finish(self, namespace: str, name: str, outcome: JobOutcome | None = None) -> None:
        """End a running Job now (by default: successfully), whatever its chosen outcome."""

        def run() -> None:
            uid = self.emulator._read(JOBS, namespace, name)["metadata"]["uid"]
            future = self._finishers.get(uid)
            if future is None or future.done():
                raise ValueError(f"Job {namespace}/{name} is not running")
            future.set_result(outcome or JobOutcome.succeed())

        self.emulator._call(run)

    def observe(self, event: Event) -> None:
        if event.resource != JOBS:
            return
        job, uid = event.obj, event.obj["metadata"]["uid"]
        if event.type == "DELETED":
            if (task := self._tasks.pop(uid, None)) is not None:
                task.cancel()
            return
        spec, status = job.get("spec") or {}, job.get("status") or {}
        if (
            not self.enabled
            or uid in self._tasks
            or spec.get("suspend")
            or job["metadata"].get("deletionTimestamp")
            or status.get("startTime")
        ):
            return
        assert self.emulator._loop is not None
        self._finishers[uid] = self.emulator._loop.create_future()
        self._tasks[uid] = self.emulator.spawn(self._run(job))

    async def _run(self, job: Obj) -> None:
        ns, name, uid = (
            job["metadata"]["namespace"],
            job["metadata"]["name"],
            job["metadata"]["uid"],
        )
        try:
            outcome = self.choose(job)
            if (job.get("spec") or {}).get("completionMode") == "Indexed":
                await self._run_indexed(job, outcome)
                await self._expire(job)
                return
            pod = self.emulator._create(PODS, ns, self._pod_for(job))
            started = o.now()
            self._job_status(
                ns,
                name,
                {"active": 1, "ready": 0, "startTime": started, "uncountedTerminatedPods": {}},
            )
            await asyncio.sleep(0)  # the Pending pod is seen before the Running one
            pod = self._pod_status(ns, pod, _running(pod, started))
            self._job_status(ns, name, {"ready": 1})
            final = await self._wait(outcome, job, pod)
            self._complete(ns, name, pod, final, started)
            await self._expire(job)
        except ApiError as e:
            if e.code != 404:  # the Job or its pod was deleted meanwhile: nothing to do
                raise
        finally:
            self._tasks.pop(uid, None)
            self._finishers.pop(uid, None)

    async def _expire(self, job: Obj) -> None:
        """Delete the finished Job after its ttlSecondsAfterFinished, if it has one."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is not None:
            await asyncio.sleep(ttl)
            self.emulator._delete(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])

    async def _wait(
        self, outcome: JobOutcome, job: Obj, pod: Obj, *, seconds_left: float | None = None
    ) -> JobOutcome:
        finisher = self._finishers[job["metadata"]["uid"]]
        waiters: set[asyncio.Future[Any]] = {finisher}
        if outcome.result == "run" and outcome.runner is not None:
            waiters.add(
                asyncio.ensure_future(outcome.runner(copy.deepcopy(job), copy.deepcopy(pod)))
            )
        elif outcome.result != "running":
            waiters.add(asyncio.ensure_future(asyncio.sleep(outcome.delay, outcome)))
        deadline = job["spec"].get("activeDeadlineSeconds")
        deadline = deadline if seconds_left is None else seconds_left
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # also when the Job is deleted (this task is cancelled): the pod stops too
            for waiter in waiters - {finisher}:
                waiter.cancel()
        if not done:
            return JobOutcome.deadline_exceeded()
        try:
            final: JobOutcome = done.pop().result()
        except Exception as e:  # a broken runner is a test bug: fail the Job, and the test
            self.emulator.failures.append(e)
            return JobOutcome.fail(message=f"the runner failed: {e!r}")
        if final.result not in {"succeed", "fail", "deadline"}:
            raise ValueError(f"a runner must return a final outcome, not {final.result!r}")
        return final

    def _complete(self, ns: str, name: str, pod: Obj, final: JobOutcome, started: str) -> None:
        if final.result == "deadline":  # active pods are killed and removed
            self.emulator._delete(PODS, ns, pod["metadata"]["name"])
            reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
        else:
            self._terminated(ns, pod, final, started)
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        if final.result == "succeed":
            self._job_status(ns, name, _ended(True, "", "", succeeded=1))
        else:
            self._job_status(ns, name, _ended(False, reason, message, failed=1))

    def _terminated(self, ns: str, pod: Obj, final: JobOutcome, started: str) -> None:
        """The pod's container has ended with `final` (Succeeded or Failed)."""
        terminated = {
            "exitCode": final.exit_code,
            "reason": final.reason,
            "startedAt": started,
            "finishedAt": o.now(),
        }
        if final.message:
            terminated["message"] = final.message
        self._pod_status(
            ns,
            pod,
            {
                **(pod.get("status") or {}),
                "phase": "Succeeded" if final.result == "succeed" else "Failed",
                "conditions": [_condition([], "Ready", "False", "PodCompleted", "")],
                "containerStatuses": [
                    {
                        **status,
                        "ready": False,
                        "started": False,
                        "state": {"terminated": terminated},
                    }
                    for status in (pod.get("status") or {}).get("containerStatuses", [])
                ],
            },
        )

    # --- Indexed Jobs ------------------------------------------------------------------------

    async def _run_indexed(self, job: Obj, outcome: JobOutcome) -> None:
        """completionMode Indexed, as the Job controller runs it: one pod per completion index
        (0 .. completions-1), at most `parallelism` at once, each with the index in its
        annotation and label `batch.kubernetes.io/job-completion-index`, its hostname
        `<job>-<index>` and env JOB_COMPLETION_INDEX (from the annotation, by the downward
        API). Every pod runs the Job's outcome. Complete when every index has succeeded.

        Without `backoffLimitPerIndex` there are no retries: a failed pod fails the Job
        (BackoffLimitExceeded), and its other running pods are deleted (the kubelet stops
        them). With it, a failed pod is retried in a new pod of its index (annotation
        `batch.kubernetes.io/job-index-failure-count`) until the index has failed
        `backoffLimitPerIndex` + 1 times; then the index is failed (`status.failedIndexes`)
        and the other indexes run on. Once every index has ended the Job is Failed
        (FailedIndexes) if any index failed; more failed indexes than `maxFailedIndexes`, or
        more failed pods than `backoffLimit`, end it at once. Past activeDeadlineSeconds,
        every pod is stopped (DeadlineExceeded). The status counts active, ready, succeeded
        and failed pods and lists completedIndexes ("0-2,4") and failedIndexes."""
        meta, spec = job["metadata"], job.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        completions = int(spec.get("completions") or 1)
        slots = asyncio.Semaphore(max(1, min(int(spec.get("parallelism", 1)), completions)))
        deadline = spec.get("activeDeadlineSeconds")
        per_index = spec.get("backoffLimitPerIndex")
        most_failed = spec.get("maxFailedIndexes")
        backoff = int(spec.get("backoffLimit", 0))
        loop = asyncio.get_running_loop()
        ends = None if deadline is None else loop.time() + float(deadline)
        started = o.now()
        done: set[int] = set()
        lost: set[int] = set()  # failed indexes
        running: dict[int, Obj] = {}
        failures = 0  # failed pods
        over = asyncio.Event()  # the Job has ended (failed): no more pods, no more counts

        def count() -> Obj:
            return {
                "active": len(running) or None,
                "ready": len(running),
                "succeeded": len(done) or None,
                "failed": failures or None,
                "completedIndexes": _intervals(done) or None,
                "failedIndexes": None if per_index is None else _intervals(lost),
            }

        def fail(reason: str, message: str) -> None:
            over.set()
            for pod in running.values():  # the kubelet stops them
                with _gone():
                    self.emulator._delete(PODS, ns, pod["metadata"]["name"])
            running.clear()
            for task in tasks:  # their runners stop, as on deleting the Job
                if task is not asyncio.current_task():
                    task.cancel()
            self._job_status(ns, name, {**_ended(False, reason, message), **count()})

        def index_ended() -> None:
            if len(done) + len(lost) < completions:
                self._job_status(ns, name, count())
            elif lost:
                fail("FailedIndexes", "Job has failed indexes")
            else:
                self._job_status(ns, name, {**_ended(True, "", ""), **count()})

        async def one(index: int) -> None:
            with _gone():  # a pod deleted by someone: its index just never completes
                await member(index)

        async def member(index: int) -> None:
            nonlocal failures
            for attempt in itertools.count():
                async with slots:
                    if over.is_set():
                        return
                    pod = self._pod_for(job, index)
                    if per_index is not None:
                        pod["metadata"]["annotations"][FAILURE_COUNT_KEY] = str(attempt)
                    pod = self.emulator._create(PODS, ns, pod)
                    running[index] = pod
                    self._job_status(ns, name, {"startTime": started, **count()})
                    await asyncio.sleep(0)  # the Pending pod is seen before the Running one
                    pod = self._pod_status(ns, pod, _running(pod, started))
                    self._job_status(ns, name, count())
                    left = None if ends is None else max(ends - loop.time(), 0.0)
                    final = await self._wait(outcome, job, pod, seconds_left=left)
                    if over.is_set():
                        return
                    if final.result == "deadline":
                        fail("DeadlineExceeded", "Job was active longer than specified deadline")
                        return
                    running.pop(index, None)
                    with _gone():
                        self._terminated(ns, pod, final, started)
                    if final.result == "succeed":
                        done.add(index)
                        index_ended()
                        return
                    failures += 1
                    if per_index is None or failures > backoff:
                        fail("BackoffLimitExceeded", "Job has reached the specified backoff limit")
                        return
                    if per_index is not None and attempt >= int(per_index):
                        lost.add(index)
                        if most_failed is not None and len(lost) > int(most_failed):
                            fail(
                                "MaxFailedIndexesExceeded",
                                "Job has exceeded the specified maximal number of failed indexes",
                            )
                        else:
                            index_ended()
                        return
                    self._job_status(ns, name, count())

        self._job_status(ns, name, {"startTime": started, "uncountedTerminatedPods": {}})
        tasks = [asyncio.ensure_future(one(i)) for i in range(completions)]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:  # the Job deleted (this task cancelled): every pod stops
            for task in tasks:
                task.cancel()
        for error in results:
            if isinstance(error, Exception):
                raise error

    def _job_status(self, ns: str, name: str, patch: Obj) -> None:
        self.emulator._update(
            JOBS, ns, name, lambda job: o.merge_patch(job, {"status": patch}), subresource="status"
        )

    def _pod_status(self, ns: str, pod: Obj, status: Obj) -> Obj:
        return self.emulator._update(
            PODS,
            ns,
            pod["metadata"]["name"],
            lambda current: {**current, "status": status},
            subresource="status",
        )

    @staticmethod
    def _pod_for(job: Obj, index: int | None = None) -> Obj:
        """The pod of `job` (of completion index `index`, for an Indexed Job)."""
        meta, spec = job["metadata"], job.get("spec") or {}
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            "batch.kubernetes.io/job-name": meta["name"],
            "job-name": meta["name"],
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "controller-uid": meta["uid"],
        }
        pod_meta: Obj = {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        pod_spec = copy.deepcopy(template.get("spec") or {})
        if index is not None:
            pod_meta["generateName"] = f"{meta['name']}-{index}-"
            pod_meta["annotations"] = {**pod_meta.get("annotations", {}), INDEX_KEY: str(index)}
            labels[INDEX_KEY] = str(index)
            pod_spec.setdefault("hostname", f"{meta['name']}-{index}")
            fieldref = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
            for container in pod_spec.get("containers") or []:
                container["env"] = [
                    *(container.get("env") or []),
                    {"name": "JOB_COMPLETION_INDEX", "valueFrom": fieldref},
                ]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def _running(pod: Obj, started: str) -> Obj:
    """The status of a pod whose containers all run and are ready."""
    return {
        "phase": "Running",
        "startTime": started,
        "podIP": _ip(),
        "hostIP": "172.18.0.2",
        "conditions": [_condition([], "Ready", "True", "", "")],
        "containerStatuses": [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            }
            for c in pod["spec"].get("containers") or []
        ],
    }


def _ended(complete: bool, reason: str, message: str, **counts: int) -> Obj:
    """The status patch of a Job that has just ended."""
    if complete:
        text = "Reached expected number of succeeded pods"
        conditions = [
            _condition([], "SuccessCriteriaMet", "True", "CompletionsReached", text),
            _condition([], "Complete", "True", "CompletionsReached", text),
        ]
        extra: Obj = {"completionTime": o.now()}
    else:
        conditions = [
            _condition([], "FailureTarget", "True", reason, message),
            _condition([], "Failed", "True", reason, message),
        ]
        extra = {}
    return {
        "active": None,
        "ready": 0,
        "terminating": 0,
        "conditions": conditions,
        **extra,
        **_counts(**counts),
    }


def _intervals(indexes: set[int]) -> str:
    """Completion indexes as the Job status writes them: "0-2,4"."""
    parts: list[str] = []
    for i in sorted(indexes):
        if parts and parts[-1].split("-")[-1] == str(i - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


@contextlib.contextmanager
def _gone() -> Iterator[None]:
    """A pod deleted meanwhile (its Job was): nothing to update."""
    try:
        yield
    except ApiError as e:
        if e.code != 404:
            raise


def _ip() -> str:
    return f"10.244.0.{random.randint(2, 254)}"


# --- Deployments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutOutcome:
    """How a Deployment's rollout ends: ready, fail (ProgressDeadlineExceeded), or pending
    (stays progressing forever). `delay` overrides the controller's delay."""

    result: str
    delay: float | None = None

    @classmethod
    def ready(cls, delay: float | None = None) -> RolloutOutcome:
        return cls("ready", delay)

    @classmethod
    def fail(cls, delay: float | None = None) -> RolloutOutcome:
        return cls("fail", delay)

    @classmethod
    def pending(cls) -> RolloutOutcome:
        return cls("pending")


class DeploymentController:
    """apps/v1 Deployments: status only (no ReplicaSets or Pods are created).

    On each new generation: at once `observedGeneration` and Progressing=True
    (ReplicaSetUpdated); after `delay` seconds the outcome, chosen by `outcome_for(deployment)`
    (a callable; None means "no opinion"), then `by_image` (any container image -> outcome),
    then `default`.
    """

    def __init__(self, emulator: Emulator, *, enabled: bool = True) -> None:
        self.emulator = emulator
        self.enabled = enabled
        self.delay = 0.05
        self.default = RolloutOutcome.ready()
        self.by_image: dict[str, RolloutOutcome] = {}
        self.outcome_for: Callable[[Obj], RolloutOutcome | None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def choose(self, deployment: Obj) -> RolloutOutcome:
        if self.outcome_for is not None and (chosen := self.outcome_for(deployment)) is not None:
            return chosen
        pod_spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod_spec.get("containers") or []:
            if container.get("image") in self.by_image:
                return self.by_image[container["image"]]
        return self.default

    def observe(self, event: Event) -> None:
        if event.resource != DEPLOYMENTS:
            return
        uid = event.obj["metadata"]["uid"]
        if event.type == "DELETED" or not self.enabled:
            if (task := self._tasks.pop(uid, None)) is not None:
                task.cancel()
            return
        generation = event.obj["metadata"].get("generation")
        if (event.obj.get("status") or {}).get("observedGeneration") == generation:
            return
        if (task := self._tasks.pop(uid, None)) is not None:
            task.cancel()
        self._tasks[uid] = self.emulator.spawn(self._rollout(event.obj))

    async def _rollout(self, deployment: Obj) -> None:
        """A RollingUpdate as the Deployment controller runs it. While it progresses, an update
        of running pods has its surge pods (maxSurge, default 25% rounded up) beside the old
        ones, so `replicas` exceeds the desired count and `updatedReplicas` is below it; a
        first rollout (no pods yet) creates every new pod at once."""
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        outcome = self.choose(deployment)
        wanted = spec.get("replicas", 1)
        before = deployment.get("status") or {}
        running = before.get("replicas", 0)
        ready, available = before.get("readyReplicas", 0), before.get("availableReplicas", 0)
        surge = min(_max_surge(spec, wanted), wanted) if running else 0
        template_hash = hashlib.sha256(json.dumps(spec.get("template"), sort_keys=True).encode())
        replica_set = f"{name}-{template_hash.hexdigest()[:10]}"

        def unfinished(status: str, reason: str, message: str) -> None:
            self._status(
                ns,
                name,
                meta["generation"],
                [
                    ("Available", available > 0 or wanted == 0),
                    ("Progressing", status, reason, f'ReplicaSet "{replica_set}" {message}'),
                ],
                replicas=max(wanted, running) + surge,
                updatedReplicas=surge if running else wanted,
                readyReplicas=ready,
                availableReplicas=available,
                unavailableReplicas=max(wanted - available, 0),
            )

        try:
            unfinished("True", "ReplicaSetUpdated", "is progressing.")
            if outcome.result == "pending":
                return
            await asyncio.sleep(self.delay if outcome.delay is None else outcome.delay)
            if outcome.result != "ready":
                unfinished("False", "ProgressDeadlineExceeded", "has timed out progressing.")
                return
            self._status(
                ns,
                name,
                meta["generation"],
                [
                    ("Available", True),
                    (
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        f'ReplicaSet "{replica_set}" has successfully progressed.',
                    ),
                ],
                replicas=wanted,
                updatedReplicas=wanted,
                readyReplicas=wanted,
                availableReplicas=wanted,
            )
        except ApiError as e:
            if e.code != 404:
                raise

    def _status(
        self, ns: str, name: str, generation: int, conditions: list[Any], **counts: int
    ) -> None:
        def change(current: Obj) -> Obj:
            previous = (current.get("status") or {}).get("conditions") or []
            rendered = []
            for spec in conditions:
                if spec[0] == "Available":
                    rendered.append(
                        _condition(
                            previous,
                            "Available",
                            *(
                                (
                                    "True",
                                    "MinimumReplicasAvailable",
                                    "Deployment has minimum availability.",
                                )
                                if spec[1]
                                else (
                                    "False",
                                    "MinimumReplicasUnavailable",
                                    "Deployment does not have minimum availability.",
                                )
                            ),
                        )
                    )
                else:
                    rendered.append(_condition(previous, *spec))
            status = {"observedGeneration": generation, **_counts(**counts), "conditions": rendered}
            return {**current, "status": status}

        self.emulator._update(DEPLOYMENTS, ns, name, change, subresource="status")
