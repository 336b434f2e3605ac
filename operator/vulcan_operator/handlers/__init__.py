"""Thin Kopf handlers, one module per kind; the work is in `reconcile`."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api
from vulcan_operator.status import Outcome, diff

#: Engine reconciles at once, all engines together, and problem reconciles too (each kind its
#: own). Each holds its state (an engine's Secrets, desired children, API answers) while it
#: waits for the API: a thousand engines appearing together would all hold theirs at once, and
#: thousands of waiting problems would crowd the engines out of the client's threads. The API
#: calls of 16 keep those threads busy: more would not finish sooner.
AT_ONCE = 16
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


def without_finalizers(registry: kopf.OperatorRegistry) -> None:
    """No Kopf finalizer on our objects. Kopf puts one on every object a timer or daemon
    serves, to stop them before the object goes: two writes per object (on when it appears,
    off when it is deleted) for nothing we need, since every child goes with its owner
    (ownerReferences) and a timer or daemon of a deleted object is stopped on its DELETED
    event (what is kept per object is forgotten then: `engine.register`,
    `problem_daemon.register`). Kopf takes its finalizer off objects an older version put it
    on. Kopf's handlers are frozen dataclasses without a public way to change one, so they are
    replaced with `dataclasses.replace` (tests/unit/handlers/test_registry.py fails if a Kopf
    release changes that)."""
    spawning: list[Any] = registry._spawning._handlers
    spawning[:] = [dataclasses.replace(h, requires_finalizer=False) for h in spawning]
