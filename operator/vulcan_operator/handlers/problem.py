"""Kopf handlers of SchedulingProblem: thin; the work is in reconcile.problem.

- One daemon per unfinished problem (and per problem whose spec changed after it finished)
  runs the reconcile (`problem_daemon`); it sleeps until one of the handlers here wakes it.
- Indexes (kept by Kopf from watch events, complete before any daemon starts): the problems
  of each engine (keyed by the engine's namespace: a problem may name an engine of another
  namespace), the solver Jobs of each problem (keyed by the owner's namespace and uid, never
  by their labels), the engines. The queue decisions read them, so waiting costs no API calls.
- Watch events of solver Jobs and of engines only wake the daemons concerned; a problem's
  daemon wakes the head of its engine's queue when it frees a slot (problem_daemon).
"""

from __future__ import annotations

from typing import Any

import kopf

from vulcan_operator import API_VERSION, GROUP, VERSION, kinds, names
from vulcan_operator.api.problem import MAX_PARALLELISM
from vulcan_operator.config import Settings
from vulcan_operator.handlers import problem_daemon
from vulcan_operator.handlers.problem_daemon import PLURAL
from vulcan_operator.k8s import Api
from vulcan_operator.k8s.cache import trimmed
from vulcan_operator.reconcile import problem, solverjob
from vulcan_operator.reconcile.queue import (
    Admissions,
    JobEntry,
    QueueEntry,
    QueueView,
    Wakeups,
    engine_key,
)
from vulcan_operator.status import get_condition

# Kopf passes each index to every handler as a keyword argument of this name.
PROBLEMS_INDEX = "vulcan_problem_queue"
JOBS_INDEX = "vulcan_solver_jobs"
ENGINES_INDEX = "vulcan_engines"
ENGINES = kinds.ENGINE.plural
SOLVER_JOBS: dict[str, str] = {
    names.LABEL_COMPONENT: names.COMPONENT_SOLVER,
    names.LABEL_MANAGED_BY: names.MANAGED_BY,
}


#: Ready reasons of a problem that waits for something else than a solver slot.
NOT_WAITING = ("ConfigMapNotFound", "InvalidSpec", "NameConflict")
TERMINAL = problem.TERMINAL


def pods(spec: kopf.Spec) -> int:
    """The solver pods of a problem (spec.solver.parallelism; 1 when unset or not a number
    the API server would have refused)."""
    value = (spec.get("solver") or {}).get("parallelism")
    if isinstance(value, bool) or not isinstance(value, int):
        return 1
    return min(max(value, 1), MAX_PARALLELISM)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    api = Api()
    admissions = Admissions()
    wakeups = Wakeups()

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
        ref = spec.get("engineRef") or {}
        engine = ref.get("name")
        if not engine:
            return {}
        generation = meta.get("generation")
        job = names.problem_job(name, uid, int(generation or 1))
        ready = get_condition(dict(status), "Ready") or {}
        waiting = not (
            (status.get("observedGeneration") == generation and status.get("phase") in TERMINAL)
            or status.get("jobName") == job
            or ready.get("reason") in NOT_WAITING
        )
        created = str(meta.get("creationTimestamp") or "")
        phase = status.get("phase", "")
        entry = QueueEntry(created, name, uid, waiting, phase, job, str(namespace), pods(spec))
        return {engine_key(str(ref.get("namespace") or namespace), engine): entry}

    @kopf.index("batch", "v1", "jobs", labels=SOLVER_JOBS, id=JOBS_INDEX, registry=registry)
    async def vulcan_solver_jobs(
        namespace: str | None, name: str, body: kopf.Body, **_: Any
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
        if not owner:
            return {}
        active = solverjob.finished(job) is None and not (job.get("spec") or {}).get("suspend")
        return {(str(namespace), owner): JobEntry(name, active)}

    @kopf.index(GROUP, VERSION, ENGINES, id=ENGINES_INDEX, registry=registry)
    async def vulcan_engines(
        namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        # The whole engine (less managedFields and Kopf's diff-base): the queues read its spec;
        # the engine reconcile its status.restore and, for the backup store conflicts, every
        # engine's metadata and spec (k8s.cache.CachedApi).
        return {(namespace, name): trimmed(body, API_VERSION, kinds.ENGINE.kind)}

    @kopf.on.event("batch", "v1", "jobs", labels=SOLVER_JOBS, registry=registry)
    async def solver_job_changed(body: kopf.Body, **_: Any) -> None:
        # The owner's daemon looks; when the Job freed a slot, it wakes the next in its
        # engine's queue.
        for owner in body.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("kind") == problem.KIND:
                wakeups.wake(owner.get("uid", ""))

    @kopf.on.event(GROUP, VERSION, ENGINES, registry=registry)
    async def engine_changed(type: str, namespace: str | None, name: str, **kwargs: Any) -> None:
        problems: kopf.Index[Any, QueueEntry] = kwargs[PROBLEMS_INDEX]
        if type in ("ADDED", None):
            for entry in problems.get(engine_key(str(namespace), name), []):
                if entry.phase in ("", "Pending"):
                    wakeups.wake(entry.uid)

    problem_daemon.register(registry, settings, api, wakeups, view)
