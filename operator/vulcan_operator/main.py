"""Kopf entry: builds the handler registry and the operator's start-up settings.

Handlers are registered on a registry made here (not Kopf's global one), so tests can run the
real operator in-process with their own login handler added to a fresh registry.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from vulcan_operator import GROUP


def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Start-up settings: where Kopf keeps its own bookkeeping, timeouts, posting."""
    # Kopf's progress and diff-base go to annotations under our group, never into status,
    # which belongs to our API (and never into spec).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Recycle watch streams so a silently frozen stream cannot stall the operator forever.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Our own actions are posted as Events explicitly (kopf.event); from the logs, only
    # warnings and errors become Events, so an idle resync writes nothing.
    settings.posting.level = logging.WARNING


def make_registry() -> kopf.OperatorRegistry:
    """A fresh registry with every handler of the operator."""
    registry = kopf.OperatorRegistry()
    kopf.on.startup(registry=registry)(configure)
    return registry
