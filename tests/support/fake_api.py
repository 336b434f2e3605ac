"""A small in-memory stand-in for `vulcan_operator.k8s.Api`, for pure unit tests of reconcilers.

Objects live in a dict keyed by (apiVersion, kind, namespace, name). It does what the
reconcilers rely on and nothing more: get (None when missing), list by labels, create (409 when
it exists), merge patch (None removes a key; a `metadata.resourceVersion` in the body is a
precondition: 409 when the object moved on), delete, and `has_kind`. Every write bumps the
object's resourceVersion. No controllers run: a test sets Job and Deployment status itself.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from vulcan_operator.k8s import ApiError, Ref

Key = tuple[str, str, str | None, str | None]


def _key(ref: Ref) -> Key:
    return (ref.api_version, ref.kind, ref.namespace, ref.name)


def merge(current: Any, patch: Any) -> Any:
    """RFC 7386 merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge(merged.get(key), value)
    return merged


class FakeApi:
    """The calls of `vulcan_operator.k8s.Api` over a dict; `calls` records the writes."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str | None]] = []  # (verb, kind, name) of each write
        self.kinds: set[tuple[str, str]] = set()
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)
        for obj in objects:
            self.put(obj)

    # --- test helpers -------------------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as the server would (uid, resourceVersion), without recording a call."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[_key(Ref.of(obj))] = obj
        return copy.deepcopy(obj)

    def find(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((api_version, kind, namespace, name))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for (_, k, _, _), o in sorted(self.objects.items()) if k == kind]

    def writes(self, verb: str | None = None) -> list[tuple[str, str, str | None]]:
        return [c for c in self.calls if verb is None or c[0] == verb]

    # --- the Api ------------------------------------------------------------------------
    async def get(self, ref: Ref) -> dict[str, Any] | None:
        obj = self.objects.get(_key(ref))
        return copy.deepcopy(obj) if obj is not None else None

    async def list(self, ref: Ref, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        found = []
        for (api_version, kind, namespace, _), obj in sorted(self.objects.items()):
            if (api_version, kind) != (ref.api_version, ref.kind):
                continue
            if ref.namespace is not None and namespace != ref.namespace:
                continue
            have = obj["metadata"].get("labels") or {}
            if all(have.get(k) == v for k, v in (labels or {}).items()):
                found.append(copy.deepcopy(obj))
        return found

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        ref = Ref.of(obj)
        if _key(ref) in self.objects:
            raise ApiError(409, "AlreadyExists", f"{ref.kind} {ref.name} already exists")
        self.calls.append(("create", ref.kind, ref.name))
        return self.put(obj)

    async def patch(
        self, ref: Ref, body: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        current = self.objects.get(_key(ref))
        if current is None:
            raise ApiError(404, "NotFound", f"{ref.kind} {ref.name} not found")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        if subresource == "status":
            body = {"status": body.get("status")} if "status" in body else {}
        else:
            body = {k: v for k, v in body.items() if k != "status"}
        self.calls.append(("patch", ref.kind, ref.name))
        patched = merge(current, body)
        patched["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[_key(ref)] = patched
        return copy.deepcopy(patched)

    async def delete(self, ref: Ref) -> bool:
        self.calls.append(("delete", ref.kind, ref.name))
        return self.objects.pop(_key(ref), None) is not None

    async def has_kind(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.kinds
