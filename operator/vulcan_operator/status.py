"""Status bookkeeping shared by every kind: conditions, observedGeneration, minimal patches."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What a reconcile found and did: the status to show and the Events to post."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    """A Kubernetes timestamp (`now()`'s form, or any ISO 8601 one) as a datetime, or None when
    there is none or it is not one."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def condition(
    type_: str, ok: bool | None, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    """A condition without its transition time (set_conditions fills that in)."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    cond: dict[str, Any] = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def ready_progressing(
    reason: str,
    message: str,
    generation: int | None,
    *,
    ready: bool | None = False,
    progressing: bool | None = False,
    degraded: bool | None = None,
) -> list[dict[str, Any]]:
    """The Ready and Progressing conditions of one state, with one reason and one message; and
    Degraded with them when `degraded` is given (None: no Degraded condition)."""
    conditions = [
        condition("Ready", ready, reason, message, generation),
        condition("Progressing", progressing, reason, message, generation),
    ]
    if degraded is not None:
        conditions.append(condition("Degraded", degraded, reason, message, generation))
    return conditions


def event_if_changed(
    status: dict[str, Any] | None,
    type_: str,
    reason: str,
    message: str,
    *,
    condition_type: str = "Ready",
) -> list[tuple[str, str, str]]:
    """The Event (type, reason, message) to post, only when the status's `condition_type`
    condition does not already say this reason and message (a state repeated at every poll is
    told once); else no Event."""
    old = get_condition(status, condition_type) or {}
    if old.get("reason") == reason and old.get("message") == message:
        return []
    return [(type_, reason, message)]


def rolled_out(deployment: dict[str, Any]) -> bool:
    """True when a Deployment's rollout is complete, as `kubectl rollout status` decides: the
    controller has seen the latest spec, every desired replica is updated and available, and
    no old replica (or surge pod) is left."""
    desired = (deployment.get("spec") or {}).get("replicas", 1)
    st = deployment.get("status") or {}
    return bool(
        st.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and st.get("updatedReplicas", 0) >= desired
        and st.get("availableReplicas", 0) >= desired
        and st.get("replicas", 0) <= desired
    )


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


def _replacing(current: Any, desired: Any) -> Any:
    """`desired` as a merge-patch value that replaces `current`: keys of `current` that
    `desired` no longer has become null (a merge patch would otherwise keep them)."""
    if not (isinstance(current, dict) and isinstance(desired, dict)):
        return desired
    patch = dict.fromkeys((k for k in current if k not in desired), None)
    for key, value in desired.items():
        patch[key] = _replacing(current.get(key), value) if key in current else value
    return patch


def diff(current: dict[str, Any] | None, desired: dict[str, Any]) -> dict[str, Any]:
    """The top-level status fields of `desired` that differ from `current`, as a merge patch
    that makes each of them exactly as desired (nested keys no longer wanted are removed)."""
    current = current or {}
    return {k: _replacing(current.get(k), v) for k, v in desired.items() if current.get(k) != v}


def generation_patch(
    generation: int, current: dict[str, Any], desired: dict[str, Any]
) -> list[dict[str, Any]]:
    """A JSON patch (RFC 6902) of the status subresource that makes every field of `desired`
    exactly so (written whole; None removes a field `current` has), applied only while the
    object's `metadata.generation` is still `generation`: a spec change meanwhile fails it
    (422), a write of metadata alone (Kopf's annotations) does not, as a resourceVersion
    precondition would. Fields `desired` does not name are left as they are. `current` must
    not be empty (a path under /status needs the status to exist)."""
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/generation", "value": generation}
    ]
    for key, value in desired.items():
        path = "/status/" + key.replace("~", "~0").replace("/", "~1")
        if value is not None:
            ops.append({"op": "add", "path": path, "value": value})
        elif key in current:
            ops.append({"op": "remove", "path": path})
    return ops
