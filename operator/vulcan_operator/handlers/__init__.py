"""Thin Kopf handlers, one module per kind; the work is in `reconcile`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api
from vulcan_operator.status import Outcome, diff

#: A reconcile of one object: (api, body, settings) → what to show and post.
Reconcile = Callable[[Api, dict[str, Any], Settings], Awaitable[Outcome]]


def publish(body: kopf.Body, patch: kopf.Patch, outcome: Outcome) -> None:
    """A reconcile's Events, and only the status fields that changed (Kopf writes the patch)."""
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    patch.status.update(diff(body.get("status"), outcome.status))


def register_polling(
    registry: kopf.OperatorRegistry,
    settings: Settings,
    *,
    plural: str,
    reconcile: Reconcile,
    terminal: tuple[str, ...],
    handler_id: str,
) -> None:
    """One timer per unfinished object of `plural`: it runs `reconcile` every `poll_seconds`
    (the first run at once, when the object appears or the operator starts: the object resumes
    where its status says it was) and writes only the status diff. A timer is one task per
    object, so two reconciles of the same object never overlap. It stops when the object's
    phase is in `terminal`: a finished object is never looked at again."""
    api = Api()

    def unfinished(status: kopf.Status, **_: Any) -> bool:
        return status.get("phase") not in terminal

    async def poll(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        publish(body, patch, await reconcile(api, dict(body), settings))

    kopf.timer(
        GROUP,
        VERSION,
        plural,
        id=handler_id,
        interval=settings.poll_seconds,
        when=unfinished,
        registry=registry,
    )(poll)
