"""Kopf handlers of VulcanEngine: thin; the work is in reconcile.engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from vulcan_operator import API_VERSION, GROUP, VERSION, kinds, metrics
from vulcan_operator.config import Settings
from vulcan_operator.handlers import AT_ONCE, children
from vulcan_operator.handlers.problem import ENGINES_INDEX
from vulcan_operator.health import Heartbeat
from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.k8s.cache import CHILD_KINDS, ENGINE, CachedApi, Writes, index_id
from vulcan_operator.reconcile import engine, engine_backups, upgrade
from vulcan_operator.reconcile.engine_drills import RESTORE_VERIFIED
from vulcan_operator.reconcile.queue import Wakeups
from vulcan_operator.status import diff, generation_patch, get_condition

PLURAL = kinds.ENGINE.plural
#: Seconds a drift repair waits, so that one edit's burst of watch events makes one reconcile.
REPAIR_DELAY = 0.5
#: Reconciles of one engine in a row when its status write meets a newer version (409).
ATTEMPTS = 3
log = logging.getLogger(__name__)


def cached(api: Api, writes: Writes, kwargs: dict[str, Any]) -> CachedApi:
    """The Api of one reconcile: children and engines from Kopf's indexes (`k8s.cache`)."""
    indexes = {key: kwargs[index_id(*key)] for key in CHILD_KINDS}
    indexes[ENGINE] = kwargs[ENGINES_INDEX]
    return CachedApi(api, indexes, writes)


def register(registry: kopf.OperatorRegistry, settings: Settings, heartbeat: Heartbeat) -> None:
    api = Api()
    writes = Writes()
    # Kopf runs the change handlers, the resync timer and the `follow` daemon of one engine in
    # separate tasks: one reconcile at a time per engine, so they never race on the same
    # children.
    locks: dict[str, asyncio.Lock] = {}
    at_once = asyncio.Semaphore(AT_ONCE)  # taken inside an engine's lock, never before it
    repairs: dict[tuple[str, str], asyncio.Task[None]] = {}
    flights = Wakeups()  # an engine's `follow` daemon, woken when a pass left it in flight

    async def settle(namespace: str, name: str, uid: str, kwargs: dict[str, Any]) -> bool:
        """Reconcile one engine and write its status before letting go of its lock, only over
        the spec it read: the engine as the watch shows it, or as this process's last write
        of it answered while the watch is behind that (a restore's release is written during
        the reconcile). The write carries every field the reconcile sets, on a precondition
        of the generation read (`status.generation_patch`; the first status, of the
        resourceVersion): a spec changed meanwhile refuses it, Kopf's own annotations do not.
        Refused, again from the engine as the server has it; False if that kept failing.
        Metrics from the status about to be written (a refused pass is followed by one that
        sets them again); the Events of every pass (what was done). An engine in flight (a
        rollout, an upgrade, a restore) is looked at again in `poll_seconds` (`follow`)."""
        ref = Ref(API_VERSION, engine.KIND, namespace, name)
        events: list[tuple[str, str, str]] = []
        written = False
        status: Mapping[str, Any] = {}  # the engine's, as last known
        try:
            async with locks.setdefault(uid, asyncio.Lock()), at_once:
                reads = cached(api, writes, kwargs)
                body: Any = await reads.get(ref)  # the index, or our own newer write (a copy)
                target = body  # whom the Events are about (kopf.event takes the dict)
                for _ in range(ATTEMPTS):
                    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                        return True
                    status = body.get("status") or {}
                    with metrics.reconcile_timer(engine.KIND):
                        outcome = await engine.reconcile(reads, body, settings)
                    events += [e for e in outcome.events if e not in events]
                    status = outcome.status
                    now = writes.pick(ref, body) or body
                    meta, seen = now.get("metadata") or {}, now.get("status") or {}
                    changed = diff(seen, outcome.status)
                    export_metrics(now, outcome.status)  # never behind the status a reader sees
                    try:
                        if changed and seen:
                            ops = generation_patch(meta["generation"], seen, outcome.status)
                            await reads.json_patch(ref, ops, subresource="status")
                        elif changed:  # the first status: over the version read
                            first = {"resourceVersion": meta["resourceVersion"]}
                            await reads.patch(
                                ref, {"metadata": first, "status": changed}, subresource="status"
                            )
                        written = True
                        break
                    except ApiError as exc:
                        if exc.status not in (409, 422):
                            raise
                        body = await reads.get(ref)  # from the server
                        if body is not None and exc.status == 422 and _same(body, now):
                            raise  # neither the spec nor the status moved: the status was refused
            for type_, reason, message in events:
                kopf.event(target, type=type_, reason=reason, message=message)
            return written
        finally:  # in flight (even when this pass failed): look again in a few seconds
            if in_flight(status):
                flights.wake(uid)

    async def reconcile(namespace: str | None, name: str, uid: str, **kwargs: Any) -> None:
        heartbeat.beat(uid)
        if not await settle(str(namespace), name, uid, kwargs):
            raise kopf.TemporaryError("the engine changed while it was reconciled", delay=1)

    async def repair_now(namespace: str, name: str, kwargs: dict[str, Any]) -> None:
        """Reconcile an engine whose child drifted (children.register); after a 409 the
        engine's own reconcile follows."""
        await asyncio.sleep(REPAIR_DELAY)
        found = next(iter(kwargs[ENGINES_INDEX].get((namespace, name), ())), None)
        if found is not None:
            await settle(namespace, name, str(found["metadata"].get("uid") or ""), kwargs)

    def repair(namespace: str, name: str, kwargs: dict[str, Any]) -> None:
        key = (namespace, name)
        if key in repairs or not settings.shard.owns(namespace):
            return

        async def run() -> None:
            try:
                await repair_now(namespace, name, kwargs)
            except Exception:  # the next resync tries again
                log.exception("repairing the children of VulcanEngine %s/%s failed", *key)
            finally:
                repairs.pop(key, None)

        repairs[key] = asyncio.get_running_loop().create_task(run())

    async def follow(
        stopped: kopf.DaemonStopped, namespace: str | None, name: str, uid: str, **kwargs: Any
    ) -> None:
        """While the engine is in flight, reconcile it every `poll_seconds`: a pass that
        leaves it in flight wakes this. (Not a Kopf timer filtered on the status: Kopf stops
        such a timer when the filter turns false, and patched the engine, a write, whenever
        that happened during the timer's own pass, which writes the status ending the flight.)
        An error is logged; the pass after it (or the resync) tries again."""
        try:
            while not stopped:
                await flights.sleep(uid, None, stopped.wait())
                await stopped.wait(settings.poll_seconds)  # at once when stopped
                if stopped:
                    break
                try:
                    await settle(str(namespace), name, uid, kwargs)
                except Exception:
                    log.exception("reconciling VulcanEngine %s/%s failed", namespace, name)
        finally:
            flights.forget(uid)

    children.register(registry, settings.shard, writes, repair, ENGINES_INDEX)

    async def forget(type: str, namespace: str | None, name: str, uid: str, **_: Any) -> None:
        if type == "DELETED":  # no finalizer (handlers.without_finalizers): the engine is gone
            heartbeat.forget(uid)
            locks.pop(uid, None)
            flights.forget(uid)
            metrics.forget_engine(str(namespace), name)

    kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)(reconcile)
    kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)(reconcile)
    kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)(reconcile)
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
        registry=registry,
    )(reconcile)
    kopf.daemon(GROUP, VERSION, PLURAL, id="follow", cancellation_timeout=5.0, registry=registry)(
        follow
    )
    kopf.on.event(GROUP, VERSION, PLURAL, id="forget", registry=registry)(forget)


def _same(engine: dict[str, Any], read: dict[str, Any]) -> bool:
    """Whether two copies of an engine have the same generation and status."""
    generation = (engine.get("metadata") or {}).get("generation")
    same_spec = generation == (read.get("metadata") or {}).get("generation")
    return same_spec and engine.get("status") == read.get("status")


def in_flight(status: Mapping[str, Any]) -> bool:
    """An upgrade, a rollout or a restore under way (not a restore holding the engine after
    a failure: that waits for a person, and the resync looks at it)."""
    up = status.get("upgrade") or {}
    held = status.get("restore") or {}
    return (
        status.get("phase") in engine.IN_FLIGHT
        or (bool(up) and up.get("step") not in upgrade.TERMINAL)
        or (bool(held) and held.get("step") != "Hold")
    )


def export_metrics(body: Mapping[str, Any], status: dict[str, Any]) -> None:
    """The engine's Ready and BackupHealthy conditions as gauges; no backup series while
    BackupHealthy is Unknown (before the first backup, or backups off), so no alert fires."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    ready = (get_condition(status, "Ready") or {}).get("status") == "True"
    healthy = (get_condition(status, engine_backups.BACKUP_HEALTHY) or {}).get("status")
    if healthy in ("True", "False"):
        metrics.set_engine_status(namespace, name, ready=ready, backup_healthy=healthy == "True")
    else:
        metrics.set_engine_status(namespace, name, ready=ready)
        metrics.forget_backup(namespace, name)
    verified = (get_condition(status, RESTORE_VERIFIED) or {}).get("status")
    spec = body.get("spec") or {}
    metrics.set_engine_service(
        namespace,
        name,
        hibernated=status.get("phase") == "Hibernated",
        paused=bool(spec.get("paused")),
        restore_verified=None if verified not in ("True", "False") else verified == "True",
    )
