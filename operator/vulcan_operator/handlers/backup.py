"""Kopf handlers of VulcanBackup: thin; the work is in reconcile.backup.

One timer per unfinished backup runs the reconcile every `poll_seconds` (the first run at once,
when the backup appears or the operator starts) and writes only the status diff. A timer is
one task per object, so two reconciles of the same backup never overlap. It stops when the
backup has Succeeded or Failed: a finished backup is never looked at again.
"""

from __future__ import annotations

from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION, kinds
from vulcan_operator.config import Settings
from vulcan_operator.handlers import publish
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile import backup

PLURAL = kinds.BACKUP.plural


def unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in backup.TERMINAL


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    api = Api()

    async def reconcile_backup(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        outcome = await backup.reconcile(api, dict(body), settings)
        publish(body, patch, outcome)

    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=settings.poll_seconds,
        when=unfinished,
        registry=registry,
    )(reconcile_backup)
