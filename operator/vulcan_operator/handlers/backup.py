"""Kopf handlers of VulcanBackup: one polling timer per unfinished backup (`register_polling`);
the work is in reconcile.backup. It stops when the backup has Succeeded or Failed."""

from __future__ import annotations

import kopf

from vulcan_operator import kinds
from vulcan_operator.config import Settings
from vulcan_operator.handlers import register_polling
from vulcan_operator.reconcile import backup

PLURAL = kinds.BACKUP.plural


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    register_polling(
        registry,
        settings,
        plural=PLURAL,
        reconcile=backup.reconcile,
        terminal=backup.TERMINAL,
        handler_id="reconcile_backup",
    )
