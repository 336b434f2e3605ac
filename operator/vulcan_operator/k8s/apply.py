"""Applying desired objects: compare with what is there, create or patch, and ownership."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from vulcan_operator import quantity
from vulcan_operator.k8s.client import Api, ApiError, Ref


def _quantity(value: Any) -> Decimal | None:
    return quantity.parse_or_none(value)


def contains(current: Any, desired: Any) -> bool:
    """Whether `current` already has every field of `desired` (server-added fields ignored).

    Quantities compare by value, since the API server rewrites them canonically (1000m → 1).
    """
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            contains(current.get(k), v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(contains(c, d) for c, d in zip(current, desired, strict=True))
        )
    if current == desired:
        return True
    if isinstance(desired, (str, int, float)) and not isinstance(desired, bool):
        a, b = _quantity(current), _quantity(desired)
        return a is not None and a == b
    return False


def _removals(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Nulls for keys we used to set but no longer want, in maps we own entirely."""
    if desired.get("kind") != "ConfigMap":
        return {}
    gone = set(current.get("data") or {}) - set(desired.get("data") or {})
    return {"data": dict.fromkeys(gone)} if gone else {}


async def apply(api: Api, desired: dict[str, Any], *, create_only: bool = False) -> str:
    """Create if missing, patch if it differs, nothing if equal. Returns what was done."""
    ref = Ref.of(desired)
    current = await api.get(ref)
    if current is None:
        try:
            await api.create(desired)
        except ApiError as exc:
            if exc.status != 409:  # created meanwhile by a concurrent reconcile
                raise
            return "unchanged"
        return "created"
    wanted = {k: v for k, v in desired.items() if k != "status"}
    if create_only or contains(current, wanted):
        return "unchanged"
    body = wanted
    removals = _removals(current, desired)
    if removals:
        body = {**wanted, "data": {**removals["data"], **(wanted.get("data") or {})}}
    await api.patch(ref, body)
    return "patched"
