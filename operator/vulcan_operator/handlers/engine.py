"""Kopf handlers of VulcanEngine: thin; the work is in reconcile.engine."""

from __future__ import annotations

from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile import engine, upgrade
from vulcan_operator.status import diff

PLURAL = "vulcanengines"


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    api = Api()

    async def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        outcome = await engine.reconcile(api, dict(body), settings)
        for type_, reason, message in outcome.events:
            kopf.event(body, type=type_, reason=reason, message=message)
        patch.status.update(diff(body.get("status"), outcome.status))

    on = {"registry": registry}
    kopf.on.resume(GROUP, VERSION, PLURAL, **on)(reconcile)
    kopf.on.create(GROUP, VERSION, PLURAL, **on)(reconcile)
    kopf.on.update(GROUP, VERSION, PLURAL, **on)(reconcile)
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
        **on,
    )(reconcile)
    # While something is in flight (a rollout, an upgrade), look again every few seconds.
    kopf.timer(
        GROUP, VERSION, PLURAL, id="poll", interval=settings.poll_seconds, when=in_flight, **on
    )(reconcile)


def in_flight(status: kopf.Status, **_: Any) -> bool:
    up = status.get("upgrade") or {}
    return status.get("phase") in engine.IN_FLIGHT or (
        bool(up) and up.get("step") not in upgrade.TERMINAL
    )
