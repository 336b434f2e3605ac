"""Thin Kopf handlers, one module per kind; the work is in `reconcile`."""

from __future__ import annotations

import kopf

from vulcan_operator.status import Outcome, diff


def publish(body: kopf.Body, patch: kopf.Patch, outcome: Outcome) -> None:
    """A reconcile's Events, and only the status fields that changed (Kopf writes the patch)."""
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    patch.status.update(diff(body.get("status"), outcome.status))
