"""The daemon of each SchedulingProblem that has work to do (handlers/problem.py wakes it).

One daemon per unfinished problem (and per problem whose spec changed after it finished) runs
the reconcile, writes the status diff, posts the Events, and then sleeps until something
relevant happens: its Job changed, a solver slot of its engine was freed, its engine appeared,
or `problem_poll_seconds` passed. An idle problem makes no API writes. The daemon stops when
the problem is finished for its current generation.

It writes the status itself (a daemon has no Kopf patch): only the fields that changed, and
it reconciles from its own last write when the watch has not delivered it yet (`_newest`).
One write per step (queued, started, running, done), and a routine step (the Job started, the
pod running) only once it has lasted a second (`problem.STEP_SECONDS`): a solve that ends
sooner is shown going from its previous step (none, or Queued) to done. Queued, being done, a
failure or a pod in trouble is written at once. A queued problem that only moved up its
engine's queue writes its new position at most once per queued poll (`problem_poll_seconds` x
`QUEUED_POLL_FACTOR`), not at every slot freed ahead of it.

No finalizer (`handlers.without_finalizers`): the daemon stops on the problem's DELETED event
(`problem_deleted`), or at its next status write (404); the problem's Job and other children
go with it by their owner references. tests/integration/test_problem_writes.py fails if a
problem gets a finalizer again.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

import kopf

from vulcan_operator import API_VERSION, GROUP, VERSION, kinds
from vulcan_operator.config import Settings
from vulcan_operator.handlers import AT_ONCE
from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.metrics import observe_problem, reconcile_timer, set_queue_depth
from vulcan_operator.reconcile import problem
from vulcan_operator.reconcile.queue import EngineKey, QueueView, Wakeups, engine_key
from vulcan_operator.status import diff

PLURAL = kinds.PROBLEM.plural


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


def _wake_head(queue: QueueView, wakeups: Wakeups, key: EngineKey) -> None:
    head = queue.head(key)
    if head is not None:
        wakeups.wake(head.uid)


def register(
    registry: kopf.OperatorRegistry,
    settings: Settings,
    api: Api,
    wakeups: Wakeups,
    view: Callable[[dict[str, Any]], QueueView],
) -> None:
    """The daemon; `view` makes the queues from the indexes Kopf passes it, `wakeups` is
    shared with the handlers that wake it."""
    poll = float(settings.problem_poll_seconds)
    refresh = poll * problem.QUEUED_POLL_FACTOR
    running: set[str] = set()  # uids of the problems whose daemon runs
    # Problem reconciles at once, as many as engine reconciles: thousands of waiting problems
    # must not crowd the engines out of the client's threads.
    at_once = asyncio.Semaphore(AT_ONCE)
    deleted: set[str] = set()  # ... and of those among them whose DELETED event came

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def problem_deleted(type: str, uid: str, **_: Any) -> None:
        if type == "DELETED" and uid in running:
            deleted.add(uid)
            wakeups.wake(uid)

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
        key: EngineKey | None = None
        loop = asyncio.get_running_loop()
        written = -refresh  # the loop's time of our last status write
        step, since = None, 0.0  # the routine step the status shows, since when (loop time)
        running.add(uid)
        try:
            while not stopped and uid not in deleted:
                current = _newest(copy.deepcopy(dict(body)), ours)
                try:
                    async with at_once:
                        with reconcile_timer(problem.KIND):
                            outcome = await problem.reconcile(api, current, settings, queue)
                    for type_, reason, message in outcome.events:
                        kopf.event(body, type=type_, reason=reason, message=message)
                    patch = diff(current.get("status"), outcome.status)
                    requeue = outcome.requeue
                    later = written + refresh - loop.time()
                    if (
                        patch
                        and later > 0
                        and problem.moved_up(current.get("status"), outcome.status)
                    ):
                        patch, requeue = {}, later  # the new position waits for the refresh
                    shown = problem.routine_step(outcome.status)
                    if shown != step:
                        step, since = shown, loop.time()
                    soon = since + problem.STEP_SECONDS - loop.time()
                    if patch and step and soon > 0:
                        # a routine step is written once it has lasted a second: if the
                        # next one comes first, only that one is shown
                        patch, requeue = {}, soon if requeue is None else min(requeue, soon)
                    if patch:
                        ours = await api.patch(ref, {"status": patch}, subresource="status")
                        written = loop.time()
                except ApiError as exc:
                    if exc.status == 404:
                        return  # the problem is gone
                    logger.warning("reconcile failed, retrying in %g s: %s", poll, exc)
                    await wakeups.sleep(uid, poll, stopped.wait())
                    continue
                except Exception:
                    logger.exception("reconcile failed, retrying in %g s", poll)
                    await wakeups.sleep(uid, poll, stopped.wait())
                    continue
                engine_ref = (current.get("spec") or {}).get("engineRef") or {}
                engine = engine_ref.get("name")
                engine_ns = engine_ref.get("namespace") or namespace
                if engine:
                    key = engine_key(str(engine_ns), str(engine))
                    set_queue_depth(str(engine_ns), str(engine), len(queue.waiting(key)))
                if outcome.finished is not None:
                    done = outcome.finished
                    observe_problem(
                        str(engine_ns),
                        str(engine),
                        done.status,
                        done.seconds,
                        done.jobs_by_priority,
                        timed_out=done.timed_out,
                        memory_bytes=done.memory_bytes,
                    )
                # A slot was freed (the solve ended) or taken (the next may find one too):
                # the head of the engine's queue looks.
                if key is not None and (outcome.finished or outcome.took_slot):
                    _wake_head(queue, wakeups, key)
                if not stopped:  # (stopping: Kopf waits for the exit, see main.configure)
                    await wakeups.sleep(uid, requeue, stopped.wait())
        finally:
            running.discard(uid)
            deleted.discard(uid)
            wakeups.forget(uid)
            if key is not None:  # deleted while it held a slot, perhaps
                _wake_head(queue, wakeups, key)
