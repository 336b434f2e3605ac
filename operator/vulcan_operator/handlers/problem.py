"""Kopf handlers of SchedulingProblem: thin; the work is in reconcile.problem.

- One daemon per unfinished problem (and per problem whose spec changed after it finished)
  runs the reconcile, writes the status diff, posts the Events, and then sleeps until
  something relevant happens: its Job changed, a solver slot of its engine was freed, its
  engine appeared, or `problem_poll_seconds` passed. An idle problem makes no API writes.
  The daemon stops when the problem is finished for its current generation.
- Indexes (kept by Kopf from watch events, complete before any daemon starts): the problems
  of each engine, the solver Jobs of each engine, the engines. The queue decisions read them,
  so waiting costs no API calls.
- Watch events of solver Jobs and of engines only wake the daemons concerned.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import kopf

from vulcan_operator import API_VERSION, GROUP, VERSION, names
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.metrics import observe_problem, reconcile_timer, set_queue_depth
from vulcan_operator.reconcile import problem, solverjob
from vulcan_operator.reconcile.queue import (
    Admissions,
    JobEntry,
    QueueEntry,
    QueueView,
    Wakeups,
    engine_key,
)
from vulcan_operator.status import diff

PLURAL = "schedulingproblems"
# Kopf passes each index to every handler as a keyword argument of this name.
PROBLEMS_INDEX = "vulcan_problem_queue"
JOBS_INDEX = "vulcan_solver_jobs"
ENGINES_INDEX = "vulcan_engines"
ENGINES = "vulcanengines"
SOLVER_JOBS: dict[str, str] = {
    names.LABEL_COMPONENT: names.COMPONENT_SOLVER,
    names.LABEL_MANAGED_BY: names.MANAGED_BY,
}


#: Ready reasons of a problem that waits for something else than a solver slot.
NOT_WAITING = ("ConfigMapNotFound", "InvalidSpec", "NameConflict")
TERMINAL = problem.TERMINAL


def needs_work(meta: kopf.Meta, status: kopf.Status, **_: Any) -> bool:
    """Unfinished, or finished for an older generation (the spec changed since)."""
    return status.get("phase") not in problem.TERMINAL or status.get(
        "observedGeneration"
    ) != meta.get("generation")


def _newest(live: dict[str, Any], ours: dict[str, Any] | None) -> dict[str, Any]:
    """The live body, unless our own last write is newer than what the watch delivered."""
    if ours is None:
        return live
    try:
        newer = int(ours["metadata"]["resourceVersion"]) > int(live["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return live
    return ours if newer else live


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    api = Api()
    admissions = Admissions()
    wakeups = Wakeups()
    poll = float(settings.problem_poll_seconds)

    def view(kwargs: dict[str, Any]) -> QueueView:
        """The queues, from the indexes Kopf passes to every handler."""
        return QueueView(
            kwargs[PROBLEMS_INDEX], kwargs[JOBS_INDEX], kwargs[ENGINES_INDEX], admissions
        )

    @kopf.index(GROUP, VERSION, PLURAL, id=PROBLEMS_INDEX, registry=registry)
    async def vulcan_problem_queue(
        namespace: str | None,
        name: str,
        uid: str,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        **_: Any,
    ) -> dict[Any, QueueEntry]:
        engine = (spec.get("engineRef") or {}).get("name")
        if not engine:
            return {}
        generation = meta.get("generation")
        job = names.problem_job(name, uid, int(generation or 1))
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        waiting = not (
            (status.get("observedGeneration") == generation and status.get("phase") in TERMINAL)
            or status.get("jobName") == job
            or ready.get("reason") in NOT_WAITING
        )
        created = str(meta.get("creationTimestamp") or "")
        entry = QueueEntry(created, name, uid, waiting, status.get("phase", ""), job)
        return {engine_key(str(namespace), engine): entry}

    @kopf.index("batch", "v1", "jobs", labels=SOLVER_JOBS, id=JOBS_INDEX, registry=registry)
    async def vulcan_solver_jobs(
        namespace: str | None, name: str, body: kopf.Body, labels: kopf.Labels, **_: Any
    ) -> dict[Any, JobEntry]:
        job = dict(body)
        owner = next(
            (
                o.get("uid", "")
                for o in body.get("metadata", {}).get("ownerReferences") or []
                if o.get("kind") == problem.KIND
            ),
            "",
        )
        active = solverjob.finished(job) is None and not (job.get("spec") or {}).get("suspend")
        key = (str(namespace), labels.get(names.LABEL_ENGINE, ""))
        return {key: JobEntry(name, active, owner)}

    @kopf.index(GROUP, VERSION, ENGINES, id=ENGINES_INDEX, registry=registry)
    async def vulcan_engines(
        namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        return {(namespace, name): {"spec": copy.deepcopy(dict(body.get("spec") or {}))}}

    @kopf.on.event("batch", "v1", "jobs", labels=SOLVER_JOBS, registry=registry)
    async def solver_job_changed(
        type: str, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **kwargs: Any
    ) -> None:
        for owner in body.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("kind") == problem.KIND:
                wakeups.wake(owner.get("uid", ""))
        if type == "DELETED" or solverjob.finished(dict(body)) is not None:
            head = view(kwargs).head((str(namespace), labels.get(names.LABEL_ENGINE, "")))
            if head is not None:  # a slot is free: the first in the queue takes it
                wakeups.wake(head.uid)

    @kopf.on.event(GROUP, VERSION, ENGINES, registry=registry)
    async def engine_changed(type: str, namespace: str | None, name: str, **kwargs: Any) -> None:
        problems: kopf.Index[Any, QueueEntry] = kwargs[PROBLEMS_INDEX]
        if type in ("ADDED", None):
            for entry in problems.get(engine_key(str(namespace), name), []):
                if entry.phase in ("", "Pending"):
                    wakeups.wake(entry.uid)

    @kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        when=needs_work,
        cancellation_backoff=1.0,
        cancellation_timeout=5.0,
        registry=registry,
    )
    async def solve_problem(
        stopped: kopf.DaemonStopped,
        body: kopf.Body,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **kwargs: Any,
    ) -> None:
        meta = body.get("metadata", {})
        uid, namespace, name = meta.get("uid", ""), meta.get("namespace"), meta.get("name")
        ref = Ref(API_VERSION, problem.KIND, namespace, name)
        queue = view(kwargs)
        ours: dict[str, Any] | None = None
        try:
            while not stopped:
                current = _newest(copy.deepcopy(dict(body)), ours)
                try:
                    with reconcile_timer(problem.KIND):
                        outcome = await problem.reconcile(api, current, settings, queue)
                    for type_, reason, message in outcome.events:
                        kopf.event(body, type=type_, reason=reason, message=message)
                    patch = diff(current.get("status"), outcome.status)
                    if patch:
                        ours = await api.patch(ref, {"status": patch}, subresource="status")
                except ApiError as exc:
                    if exc.status == 404:
                        return  # the problem is gone
                    logger.warning(f"reconcile failed, retrying in {poll:g} s: {exc}")
                    await wakeups.sleep(uid, poll, stopped.wait())
                    continue
                except Exception:
                    logger.exception(f"reconcile failed, retrying in {poll:g} s")
                    await wakeups.sleep(uid, poll, stopped.wait())
                    continue
                if outcome.finished is not None:
                    observe_problem(
                        outcome.finished.status,
                        outcome.finished.seconds,
                        outcome.finished.jobs_by_priority,
                    )
                if outcome.took_slot is not None:  # the next in the queue may find one too
                    head = queue.head(outcome.took_slot)
                    if head is not None:
                        wakeups.wake(head.uid)
                engine = ((current.get("spec") or {}).get("engineRef") or {}).get("name")
                if engine:
                    depth = len(queue.waiting(engine_key(str(namespace), str(engine))))
                    set_queue_depth(str(namespace), str(engine), depth)
                await wakeups.sleep(uid, outcome.requeue, stopped.wait())
        finally:
            wakeups.forget(uid)
