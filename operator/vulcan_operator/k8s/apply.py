"""Applying desired objects: compare with what is there, create or patch, and ownership."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from vulcan_operator import quantity
from vulcan_operator.k8s.client import Api, ApiError, Ref
from vulcan_operator.names import LABEL_MANAGED_BY


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


class NotOurs(Exception):
    """The desired object's name is taken by an object that is not ours: it was left alone.

    `kind` and `name` name the object; the message says so in a user's words."""

    def __init__(self, desired: dict[str, Any]) -> None:
        meta = desired.get("metadata") or {}
        self.kind = str(desired.get("kind"))
        self.name = str(meta.get("name"))
        owners = meta.get("ownerReferences") or []
        whose = f"this {owners[0].get('kind')}" if owners else "the operator"
        super().__init__(
            f"{self.kind} {self.name} already exists and does not belong to {whose}; "
            "rename or delete it"
        )


def _ours(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """CloudNativePG's rule: an object is ours when it names our owner's uid among its
    ownerReferences. An unowned object we make (the backup volume, which outlives its engine)
    is ours when it carries our managed-by label; one without labels (Kopf's peering) is
    anyone's."""
    meta, current_meta = desired.get("metadata") or {}, current.get("metadata") or {}
    uids = {o.get("uid") for o in meta.get("ownerReferences") or []}
    if uids:
        return any(o.get("uid") in uids for o in current_meta.get("ownerReferences") or [])
    mark = (meta.get("labels") or {}).get(LABEL_MANAGED_BY)
    return mark is None or (current_meta.get("labels") or {}).get(LABEL_MANAGED_BY) == mark


async def apply(
    api: Api, desired: dict[str, Any], *, create_only: bool = False, likely_new: bool = False
) -> str:
    """Make `desired` exist: "created", "patched" (it differed) or "unchanged".

    An existing object that is not ours (`_ours`) is never patched nor taken over: `NotOurs`
    is raised. `create_only` objects are created when missing and otherwise left as they are,
    and so is every unowned object (it has no owner to repair it for). `likely_new` tries the
    create first (one request for a child that never existed, e.g. a new problem's).
    """
    ref = Ref.of(desired)
    current = None if likely_new else await api.get(ref)
    if current is None:
        try:
            await api.create(desired)
        except ApiError as exc:
            if exc.status != 409:
                raise
            current = await api.get(ref)  # there already, or made by a concurrent reconcile
            if current is None:  # deleted in between: the next reconcile creates it
                return "unchanged"
        else:
            return "created"
    if not _ours(current, desired):
        raise NotOurs(desired)
    wanted = {k: v for k, v in desired.items() if k != "status"}
    unowned = not (desired.get("metadata") or {}).get("ownerReferences")
    if create_only or unowned or contains(current, wanted):
        return "unchanged"
    body = wanted
    removals = _removals(current, desired)
    if removals:
        body = {**wanted, "data": {**removals["data"], **(wanted.get("data") or {})}}
    await api.patch(ref, body)
    return "patched"
