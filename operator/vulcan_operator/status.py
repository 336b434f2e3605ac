"""Status bookkeeping shared by every kind: conditions, observedGeneration, minimal patches."""

from __future__ import annotations

import datetime
from typing import Any


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, ok: bool | None, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    """A condition without its transition time (set_conditions fills that in)."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    cond: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def set_conditions(
    current: list[dict[str, Any]] | None, updates: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Merge `updates` into `current` by type; lastTransitionTime moves only on a status change."""
    merged = {c["type"]: dict(c) for c in current or []}
    for update in updates:
        old = merged.get(update["type"])
        new = dict(update)
        if old is not None and old.get("status") == new["status"]:
            new["lastTransitionTime"] = old.get("lastTransitionTime") or now()
        else:
            new["lastTransitionTime"] = now()
        merged[update["type"]] = new
    return list(merged.values())


def get_condition(status: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in (status or {}).get("conditions") or [] if c["type"] == type_), None)


def diff(current: dict[str, Any] | None, desired: dict[str, Any]) -> dict[str, Any]:
    """The top-level status fields of `desired` that differ from `current` (a merge patch)."""
    current = current or {}
    return {k: v for k, v in desired.items() if current.get(k) != v}
