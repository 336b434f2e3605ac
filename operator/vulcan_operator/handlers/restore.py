"""Kopf handlers of VulcanRestore: thin; the work is in reconcile.restore.

One timer per unfinished restore runs the reconcile every `poll_seconds` (the first run at
once, when the restore appears or the operator starts: a restore resumes where its status
says it was) and writes only the status diff. One task per object: two reconciles of the same
restore never overlap. It stops when the restore has Succeeded or Failed.
"""

from __future__ import annotations

from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION, kinds
from vulcan_operator.config import Settings
from vulcan_operator.handlers import publish
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile import restore

PLURAL = kinds.RESTORE.plural


def unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in restore.TERMINAL


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    api = Api()

    async def reconcile_restore(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        outcome = await restore.reconcile(api, dict(body), settings)
        publish(body, patch, outcome)

    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=settings.poll_seconds,
        when=unfinished,
        registry=registry,
    )(reconcile_restore)
