"""Kopf handlers of VulcanRestore: one polling timer per unfinished restore
(`register_polling`); the work is in reconcile.restore. A restore resumes where its status says
it was; the timer stops when it has Succeeded or Failed."""

from __future__ import annotations

import kopf

from vulcan_operator import kinds
from vulcan_operator.config import Settings
from vulcan_operator.handlers import register_polling
from vulcan_operator.reconcile import restore

PLURAL = kinds.RESTORE.plural


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    register_polling(
        registry,
        settings,
        plural=PLURAL,
        reconcile=restore.reconcile,
        terminal=restore.TERMINAL,
        handler_id="reconcile_restore",
    )
