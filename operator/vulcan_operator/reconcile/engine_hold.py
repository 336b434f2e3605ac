"""What a restore asks of its engine, and the lock that says so: the engine's `status.restore`.

The marker ({name, uid, step, replicas, message, database}) is the lock of the engine's
database, one restore at a time (`reconcile.restore` takes and moves it). Every write of it
carries a resourceVersion precondition on the engine's status: a 409 means someone moved first.

The engine reconcile reads the marker from the live engine (no extra call while no restore
runs) and renders the Deployment with 0 replicas and no HPA, and suspends the backup and
maintenance CronJobs, while the step is ScaleDown, Restore or Migrate (or Hold); with `replicas`
during ScaleUp; as the spec says for a side restore (`database` set). It also releases a marker
whose VulcanRestore was deleted, or ended without releasing it (conditionally too: a restore
taking the lock over at that moment is never undone), so a restore can never leave the engine
at zero silently. A failed restore that may have changed the database holds the engine at zero
(step Hold: Degraded, reason RestoreFailed) until it is deleted or a new restore takes over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vulcan_operator import API_VERSION, kinds, names
from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.status import condition, event_if_changed, ready_progressing

__all__ = [
    "LOCK_ATTEMPTS",
    "MARKER_KEYS",
    "TERMINAL",
    "Conflict",
    "EngineHold",
    "deployment_ref",
    "engine_hold",
    "engine_ref",
    "holder_ended",
    "write_marker",
]

ENGINE_KIND = kinds.ENGINE.kind
RESTORE_KIND = kinds.RESTORE.kind
#: Phases of a VulcanRestore that has ended.
TERMINAL = ("Succeeded", "Failed")
LOCK_ATTEMPTS = 3
MARKER_KEYS = ("name", "uid", "step", "replicas", "message", "database")


def engine_ref(namespace: str, name: str) -> Ref:
    return Ref(API_VERSION, ENGINE_KIND, namespace, name)


def deployment_ref(namespace: str, engine: str) -> Ref:
    return Ref("apps/v1", "Deployment", namespace, names.engine_deployment(engine))


@dataclass
class EngineHold:
    """What a restore asks of the engine reconcile now."""

    #: Render the Deployment with this many replicas and no HPA (None: as the spec says).
    replicas: int | None = None
    #: Suspend the backup and maintenance CronJobs.
    suspend: bool = False
    #: A restore holds the engine: version changes wait.
    restoring: bool = False
    phase: str | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


async def engine_hold(
    api: Api, namespace: str, engine: str, status: dict[str, Any], generation: int | None
) -> EngineHold:
    """Read the engine's status.restore (and the VulcanRestore it names, only when there is
    one): what to render, which conditions to show; release a lock whose holder has ended.

    The marker is read from the live engine, not from the body the reconcile started with: a
    reconcile that began just before a restore wrote it must not scale the engine back up. The
    release is conditional on the engine's resourceVersion (a restore waiting for the lock may
    take it over at the same moment: its marker is never cleared by a stale decision).
    """
    for _ in range(LOCK_ATTEMPTS):
        live_engine = await api.get(engine_ref(namespace, engine))
        marker = ((live_engine or {}).get("status") or {}).get("restore")
        if not marker or live_engine is None:
            return EngineHold()
        name, replicas = marker.get("name", ""), marker.get("replicas")
        why = await holder_ended(api, namespace, marker)
        if why is None:
            return _held(marker, status, generation)
        try:
            await write_marker(api, live_engine, None)
        except Conflict:
            continue  # the engine changed meanwhile: look again
        if marker.get("database"):  # a side restore: the engine was never scaled down
            return EngineHold(
                events=[("Normal", "RestoreReleased", f"VulcanRestore '{name}' {why}")]
            )
        back = f"back to {replicas} replicas" if replicas is not None else "back up"
        return EngineHold(
            replicas=replicas,
            events=[("Normal", "RestoreReleased", f"VulcanRestore '{name}' {why}: scaling {back}")],
        )
    # Could not settle it (the engine kept changing): leave the replicas as they are this
    # pass, CronJobs suspended, version changes waiting; the next pass decides.
    deployment = await api.get(deployment_ref(namespace, engine))
    now_replicas = int(((deployment or {}).get("spec") or {}).get("replicas", 0))
    return EngineHold(replicas=now_replicas, suspend=True, restoring=True)


async def holder_ended(
    api: Api, namespace: str, marker: dict[str, Any], *, takeover: bool = False
) -> str | None:
    """None while the VulcanRestore named by `marker` holds the engine; else how it ended.
    A restore that failed and holds the engine at zero (step Hold) keeps it at zero until it
    is deleted, or until a new restore takes the lock over (`takeover`)."""
    live = await api.get(Ref(API_VERSION, RESTORE_KIND, namespace, marker.get("name", "")))
    if live is None or (marker.get("uid") and live["metadata"].get("uid") != marker["uid"]):
        return "was deleted"
    phase = (live.get("status") or {}).get("phase")
    if phase in TERMINAL and (takeover or marker.get("step") != "Hold"):
        return f"has ended ({phase})"
    return None


def _held(marker: dict[str, Any], status: dict[str, Any], generation: int | None) -> EngineHold:
    """What a live marker asks of the engine."""
    name, step, replicas = marker.get("name", ""), marker.get("step"), marker.get("replicas")
    if marker.get("database"):  # a side restore shares the server: no version change meanwhile
        return EngineHold(restoring=True)
    if step == "Hold":
        message = (
            f"kept at zero replicas by the failed VulcanRestore '{name}': "
            f"{marker.get('message') or 'the database may have been changed'}. Fix the "
            f"database, then delete the VulcanRestore (kubectl delete vulcanrestore {name}) to "
            "serve again as it is, or restore again with a new VulcanRestore."
        )
        return EngineHold(
            replicas=0,
            suspend=True,
            restoring=True,
            phase="Degraded",
            conditions=ready_progressing("RestoreFailed", message, generation, degraded=True),
            events=event_if_changed(
                status, "Warning", "RestoreFailed", message, condition_type="Degraded"
            ),
        )
    if step == "ScaleUp":
        message = f"VulcanRestore '{name}' is scaling the engine back to {replicas} replicas"
        return EngineHold(
            replicas=replicas,
            restoring=True,
            phase="Restoring",
            conditions=[condition("Progressing", True, "Restoring", message, generation)],
        )
    message = f"VulcanRestore '{name}' is at step {step}: the engine is scaled to zero meanwhile"
    return EngineHold(
        replicas=0,
        suspend=True,
        restoring=True,
        phase="Restoring",
        conditions=ready_progressing("Restoring", message, generation, progressing=True),
    )


class Conflict(Exception):
    """The engine changed since it was read (resourceVersion precondition failed)."""


async def write_marker(
    api: Api, engine: dict[str, Any], marker: dict[str, Any] | None
) -> dict[str, Any]:
    """Set (or clear) the engine's status.restore, only if the engine is still as read."""
    full = None if marker is None else {k: marker.get(k) for k in MARKER_KEYS}
    body = {
        "metadata": {"resourceVersion": engine["metadata"]["resourceVersion"]},
        "status": {"restore": full},
    }
    try:
        return await api.patch(Ref.of(engine), body, subresource="status")
    except ApiError as exc:
        if exc.status in (404, 409, 422):
            raise Conflict from None
        raise
