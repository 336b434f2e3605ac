"""Kopf handlers of VulcanEngine: thin; the work is in reconcile.engine."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION, kinds, metrics
from vulcan_operator.config import Settings
from vulcan_operator.handlers import publish
from vulcan_operator.health import Heartbeat
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile import engine, engine_backups, upgrade
from vulcan_operator.reconcile.engine_drills import RESTORE_VERIFIED
from vulcan_operator.status import get_condition

PLURAL = kinds.ENGINE.plural


def register(registry: kopf.OperatorRegistry, settings: Settings, heartbeat: Heartbeat) -> None:
    api = Api()
    # Kopf runs the change handlers and both timers of one engine in separate tasks: one
    # reconcile at a time per engine, so they never race on the same children.
    locks: dict[str, asyncio.Lock] = {}

    async def reconcile(body: kopf.Body, patch: kopf.Patch, uid: str, **_: Any) -> None:
        heartbeat.beat(uid)
        async with locks.setdefault(uid, asyncio.Lock()):
            with metrics.reconcile_timer(engine.KIND):
                outcome = await engine.reconcile(api, dict(body), settings)
        publish(body, patch, outcome)
        export_metrics(body, outcome.status)

    async def forget(namespace: str | None, name: str, uid: str, **_: Any) -> None:
        heartbeat.forget(uid)
        locks.pop(uid, None)
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
    # While something is in flight (a rollout, an upgrade), look again every few seconds.
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="poll",
        interval=settings.poll_seconds,
        when=in_flight,
        registry=registry,
    )(reconcile)
    # No finalizer for this: the metrics of a deleted engine go when the operator hears of it.
    kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)(forget)


def in_flight(status: kopf.Status, **_: Any) -> bool:
    """An upgrade, a rollout or a restore under way (not a restore holding the engine after
    a failure: that waits for a person, and the resync looks at it)."""
    up = status.get("upgrade") or {}
    held = status.get("restore") or {}
    return (
        status.get("phase") in engine.IN_FLIGHT
        or (bool(up) and up.get("step") not in upgrade.TERMINAL)
        or (bool(held) and held.get("step") != "Hold")
    )


def export_metrics(body: kopf.Body, status: dict[str, Any]) -> None:
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
