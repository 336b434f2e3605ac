"""Version changes of a VulcanEngine: install, upgrade and rollback, as a persisted state machine.

The state lives in `status.upgrade` (from, to, step, backup, revisions, ...), so an operator that
restarts half-way resumes where it was. Every step is idempotent: the pre-upgrade VulcanBackup
and the migration Jobs have deterministic names, so a step that already ran is found, never
repeated. One flow at a time: a version change during a flow waits until the flow has ended.

    install:  Install (migration Job and rollout together) → Succeeded
    upgrade:  Backup → Migrate → Rollout → Succeeded
              a failure before Rollout: Failed, the old version keeps serving
              a failed Rollout: with autoRollback → Revert (downgrade Job or restore) →
              RevertRollout → RolledBack; without it → Failed on the new version
    rollback: (spec.version set back to a version in status.history, e.g. a Git revert)
              Downgrade (to the revision that version ran with) → Rollout → Succeeded;
              refused when the revision it needs is unknown
A version that failed is not tried again while spec.version names it, unless the
`vulcan-engine.com/retry-upgrade` annotation is given a new value: a new flow, with its own
pre-upgrade VulcanBackup and revert VulcanRestore (their names carry a hash of the flow key).

The database revision decides what is safe, so a flow whose next decision needs it and cannot
read it holds (Degraded, reason RevisionUnknown, saying why) and resumes by itself once it can:
the operator cannot reach the database, its URL is malformed, or the database shows no alembic
revision before nor after a migration (is the Secret naming the engine's database?). It never
rolls the old image back onto a schema whose revision it could not confirm, and after a failed
migration Job it reads the revision again: a migration that moved it is brought back the way
the rollback strategy says (or, without autoRollback, reported as a partly migrated schema),
never reported as "the old version keeps serving".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from vulcan_operator import API_VERSION, kinds, names
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import migration_job
from vulcan_operator.enginedb import DatabaseUnavailable, InvalidDatabaseURL
from vulcan_operator.k8s import Api, NotOurs, Ref, apply
from vulcan_operator.reconcile.jobs import read_job
from vulcan_operator.status import condition, event_if_changed, now, rolled_out

RETRY_ANNOTATION = "vulcan-engine.com/retry-upgrade"
TERMINAL = ("Succeeded", "Failed", "RolledBack", "Refused")
HISTORY_LIMIT = 20

RevisionReader = Callable[[], Awaitable[str | None]]


@dataclass
class Step:
    """What the state machine decided for this reconcile."""

    run_version: str
    upgrade: dict[str, Any] | None
    fields: dict[str, Any] = field(default_factory=dict)  # currentVersion, failedVersion, history
    phase: str | None = None  # Upgrading / RollingBack while a flow runs
    conditions: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Context:
    api: Api
    inputs: EngineInputs  # run_version is filled in per step
    status: dict[str, Any]
    retry: str
    generation: int | None
    deployment: dict[str, Any] | None  # the live backend Deployment
    read_revision: RevisionReader


async def job_state(api: Api, namespace: str, name: str) -> tuple[str, str]:
    """('Running' | 'Succeeded' | 'Failed' | 'Missing', message) of a Job, with the pod's words."""
    run = await read_job(api, namespace, name)
    return run.state, (run.message if run.state == "Failed" else "")


def rollout_state(deployment: dict[str, Any] | None, image: str) -> str:
    """'Done', 'Failed' or 'Running' for the rollout of `image`."""
    if deployment is None:
        return "Running"
    spec, st = deployment.get("spec") or {}, deployment.get("status") or {}
    (container, *_) = spec["template"]["spec"]["containers"]
    if container.get("image") != image:
        return "Running"
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "Failed"
    return "Done" if rolled_out(deployment) else "Running"


def _history_revision(status: dict[str, Any], version: str) -> tuple[bool, str | None]:
    for entry in reversed(status.get("history") or []):
        if entry.get("version") == version and entry.get("outcome") == "Succeeded":
            return True, entry.get("databaseRevision")
    return False, None


def _history(status: dict[str, Any], up: dict[str, Any], outcome: str) -> list[dict[str, Any]]:
    entry = {
        "version": up["to"],
        "image": up["image"],
        "databaseRevision": up.get("revisionAfter"),
        "backup": up.get("backup"),
        "startedAt": up["startedAt"],
        "finishedAt": now(),
        "outcome": outcome,
    }
    entry = {k: v for k, v in entry.items() if v is not None}
    history = list(status.get("history") or [])
    if history and (history[-1].get("version"), history[-1].get("startedAt")) == (
        entry["version"],
        entry["startedAt"],
    ):  # this flow's end again (a reconcile that read the status from before it): one entry
        history.pop()
    return [*history, entry][-HISTORY_LIMIT:]


def _progress(ctx: Context, up: dict[str, Any], message: str) -> dict[str, Any]:
    return condition("Progressing", True, up["step"], message, ctx.generation)


async def _revision(ctx: Context) -> tuple[str | None, str | None]:
    """(revision, problem): the database revision now, or why it is unknown."""
    try:
        return await ctx.read_revision(), None
    except DatabaseUnavailable as exc:
        return None, str(exc)


def flow_key(ctx: Context, running: str | None, target: str) -> str:
    """What names the Jobs of a flow: the same for every reconcile that starts this flow from
    the same status (two reconciles at once from one status, or a retry after the status write
    that recorded the flow was lost), and new for the next flow (the history has grown) or a
    retry asked for with the annotation. Not a clock: a second reconcile must find the first
    one's migration Job, never run a second migration next to it."""
    last = (ctx.status.get("history") or [{}])[-1]
    return json.dumps(
        [ctx.inputs.uid, running, target, ctx.retry, last.get("startedAt"), last.get("finishedAt")]
    )


def start(ctx: Context, running: str | None, target: str) -> dict[str, Any]:
    """A new flow from the running version to `target`."""
    spec = ctx.inputs.spec
    image = f"{spec.image}:{target}"
    base = {
        "from": running,
        "to": target,
        "image": image,
        "startedAt": now(),
        "retry": ctx.retry,
        "flow": flow_key(ctx, running, target),
    }
    if running is None:
        return {**base, "kind": "install", "step": "Install"}
    known, _ = _history_revision(ctx.status, target)
    if known:
        return {**base, "kind": "rollback", "step": "Downgrade"}
    first = "Backup" if spec.upgrade.preUpgradeBackup else "Migrate"
    return {**base, "kind": "upgrade", "step": first}


async def advance(ctx: Context, *, hold: bool = False) -> Step:
    """Move the flow on as far as the cluster allows now; never waits.

    With `hold` (a restore holds the engine), a new flow does not start: the running version
    stays until the restore has ended. A flow already under way goes on (its own restore,
    `rollbackStrategy: restore`, is what holds the engine then).
    """
    status, spec = ctx.status, ctx.inputs.spec
    target = spec.version
    current = status.get("currentVersion")
    up = dict(status.get("upgrade") or {}) or None

    if up is not None and up["step"] in TERMINAL:
        same = up["to"] == target and up.get("retry", "") == ctx.retry
        if same or (up["step"] == "Succeeded" and up["to"] == target):
            return _settled(ctx, up)
        running = up.get("running", current)
        up = None
    else:
        running = (up or {}).get("from", current)
    if up is None:
        if target == running:
            return Step(run_version=target, upgrade=None, fields={"failedVersion": None})
        if hold:
            message = f"the change to version {target} waits until the restore has ended"
            return Step(
                run_version=running or target,
                upgrade=status.get("upgrade"),
                conditions=[
                    condition("Progressing", False, "WaitingForRestore", message, ctx.generation)
                ],
            )
        up = start(ctx, running, target)
    return await _step(ctx, up)


def _settled(ctx: Context, up: dict[str, Any]) -> Step:
    """A flow that ended: show its outcome until spec.version or the retry annotation moves."""
    running = up.get("running") or up["to"]
    if up["step"] == "Succeeded":
        return Step(run_version=running, upgrade=up)
    what = {
        "Failed": f"upgrade to {up['to']} failed at {up.get('failedStep')}: {up.get('reason')}",
        "RolledBack": f"upgrade to {up['to']} failed ({up.get('reason')}) and was rolled back "
        f"to {running}",
        "Refused": f"version change to {up['to']} refused: {up.get('reason')}",
    }[up["step"]]
    retry = f"set the annotation {RETRY_ANNOTATION} to a new value to try again"
    # A first install has no earlier version (and `from` is dropped from the stored status).
    hint = f"; set spec.version back to {up['from']}, or {retry}" if up.get("from") else ""
    hint = hint or f"; {retry}"
    if up["step"] == "Failed" and running == up["to"] and up.get("from"):
        hint = (
            f"; it runs {running} now. Roll back with: kubectl patch vulcanengine "
            f'{ctx.inputs.name} --type merge -p \'{{"spec":{{"version":"{up.get("from")}"}}}}\''
            f" (or revert the version in Git)"
        )
    return Step(
        run_version=running,
        upgrade=up,
        fields={"failedVersion": up["to"]},
        conditions=[
            condition("Degraded", True, f"Upgrade{up['step']}", what + hint, ctx.generation),
            condition("Progressing", False, f"Upgrade{up['step']}", what, ctx.generation),
        ],
    )


def _end(ctx: Context, up: dict[str, Any], step: str, running: str, **extra: Any) -> Step:
    up = {**up, **extra, "step": step, "running": running, "finishedAt": now()}
    up.pop("revisionUnknown", None)
    outcome = "Succeeded" if step == "Succeeded" else step
    fields: dict[str, Any] = {"history": _history(ctx.status, up, outcome)}
    if step == "Succeeded":
        fields.update(
            currentVersion=up["to"], failedVersion=None, databaseRevision=up.get("revisionAfter")
        )
        events = [("Normal", "UpgradeSucceeded", f"now running {up['to']}")]
    else:
        fields["failedVersion"] = up["to"]
        events = [("Warning", f"Upgrade{step}", f"{up['to']}: {up.get('reason')}")]
    settled = _settled(ctx, up)
    settled.fields = {**fields, **settled.fields}
    settled.events = events
    return settled


def _fail(ctx: Context, up: dict[str, Any], reason: str) -> Step:
    running = up.get("from") if up["step"] in ("Backup", "Migrate", "Downgrade") else up["to"]
    return _end(ctx, up, "Failed", running or up["to"], failedStep=up["step"], reason=reason)


def _wait(ctx: Context, up: dict[str, Any], run: str, message: str, events: Any = ()) -> Step:
    up.pop("revisionUnknown", None)  # moving on: a hold, if any, is over
    phase: str | None = "RollingBack" if up["step"] in ("Revert", "RevertRollout") else "Upgrading"
    if up["kind"] == "install":
        phase = None  # a first install shows the Deployment's own progress
    return Step(
        run_version=run,
        upgrade=up,
        phase=phase,
        conditions=[_progress(ctx, up, message)],
        events=list(events),
    )


def _unknown(ctx: Context, up: dict[str, Any], run: str, problem: str) -> Step:
    """Hold the flow where it is: its next decision needs the revision, which is unknown."""
    message = (
        f"{up['kind']} to {up['to']} waits at step {up['step']}: the database revision could "
        f"not be read ({problem}); nothing more is done until it can be read"
    )
    news = up.get("revisionUnknown") != problem
    up["revisionUnknown"] = problem
    return Step(
        run_version=run,
        upgrade=up,
        conditions=[
            condition("Degraded", True, "RevisionUnknown", message, ctx.generation),
            condition("Progressing", False, "RevisionUnknown", message, ctx.generation),
        ],
        events=[("Warning", "RevisionUnknown", message)] if news else [],
    )


def _conflict(ctx: Context, up: dict[str, Any], error: NotOurs) -> Step:
    """Hold the flow at its step: an object it needs to make (a Job, the pre-upgrade
    VulcanBackup, the revert VulcanRestore) has a name taken by one that is not ours. It is left
    alone; the step runs again, as it was, once the name is free."""
    before = up["step"] in ("Backup", "Migrate", "Downgrade")
    run = (up.get("from") or up["to"]) if before else up["to"]
    message = f"{error}; the {up['kind']} to {up['to']} waits at step {up['step']} until then"
    step = _wait(ctx, up, run, message)
    step.conditions = [
        condition("Degraded", True, "ChildConflict", message, ctx.generation),
        condition("Progressing", False, "ChildConflict", message, ctx.generation),
    ]
    # Told once: Progressing (the engine's own child conflicts may take Degraded over).
    step.events = event_if_changed(
        ctx.status, "Warning", "ChildConflict", message, condition_type="Progressing"
    )
    return step


NO_REVISION = (
    "the database shows no alembic revision before nor after the migration, so the operator "
    "cannot tell whether the schema changed; check that the database Secret names the "
    "engine's database"
)


async def _job(
    ctx: Context, up: dict[str, Any], version: str, command: list[str], purpose: str
) -> tuple[str, str]:
    job = migration_job(ctx.inputs, version, command, purpose, flow=up["flow"])
    await apply(ctx.api, job, create_only=True)
    return await job_state(ctx.api, ctx.inputs.namespace, job["metadata"]["name"])


async def _step(ctx: Context, up: dict[str, Any]) -> Step:
    """Run the flow's step; a step that is done hands over to the next in the same pass."""
    for _ in _STEP_FUNCTIONS:  # each hand-over moves forward: never more than one per step
        act = _STEP_FUNCTIONS.get(up["step"])
        if act is None:
            raise ValueError(f"unknown upgrade step {up['step']!r}")
        try:
            step = await act(ctx, up)
        except NotOurs as error:  # never taken over: the flow waits here until the name is free
            return _conflict(ctx, up, error)
        if step is not None:
            return step
    raise RuntimeError(f"upgrade step {up['step']!r} handed over in a loop")


async def _install(ctx: Context, up: dict[str, Any]) -> Step:
    new = up["to"]
    state, message = await _job(ctx, up, new, _migration_command(ctx), "migrate")
    if state == "Failed":
        return _fail(ctx, up, f"migration failed: {message}")
    if state == "Succeeded" and rollout_state(ctx.deployment, up["image"]) == "Done":
        try:
            revision = await ctx.read_revision()
        except InvalidDatabaseURL as exc:  # the engine's pods cannot use it either
            return _unknown(ctx, up, new, str(exc))
        except DatabaseUnavailable:
            revision = None  # recorded as unknown: a rollback to this version is refused
        return _end(ctx, up, "Succeeded", new, revisionAfter=revision)
    return _wait(ctx, up, new, f"installing {new}: migration {state.lower()}")


async def _backup(ctx: Context, up: dict[str, Any]) -> Step | None:
    inputs, old, new = ctx.inputs, up.get("from"), up["to"]
    # The flow key in the name: a retry takes a new backup, never the first attempt's.
    name = up.get("backup") or names.dns_name(inputs.name, "pre", _flow_hash(up), new)
    up["backup"] = name
    backup = {
        "apiVersion": API_VERSION,
        "kind": kinds.BACKUP.kind,
        "metadata": {
            "name": name,
            "namespace": inputs.namespace,
            "labels": names.labels(inputs.name, "backup"),
        },
        "spec": {"engineRef": {"name": inputs.name}},
    }
    await apply(ctx.api, backup, create_only=True)
    live = await ctx.api.get(Ref.of(backup)) or {}
    phase = (live.get("status") or {}).get("phase")
    if phase == "Failed":
        return _fail(ctx, up, f"pre-upgrade backup {name} failed; nothing was changed")
    if phase != "Succeeded":
        return _wait(ctx, up, old or new, f"pre-upgrade backup {name} is {phase or 'Pending'}")
    up["step"] = "Migrate"
    return None


async def _migrate(ctx: Context, up: dict[str, Any]) -> Step:
    old, new = up.get("from"), up["to"]
    if not up.get("revisionRecorded"):  # persisted before the migration may run
        before, problem = await _revision(ctx)
        if problem:
            return _unknown(ctx, up, old or new, problem)
        up["revisionBefore"], up["revisionRecorded"] = before, True
        return _wait(ctx, up, old or new, f"database revision before migrating: {before}")
    command = _migration_command(ctx)
    state, message = await _job(ctx, up, new, command, "migrate")
    if state not in ("Failed", "Succeeded"):
        return _wait(ctx, up, old or new, f"migrating the database with {new}")
    after, problem = await _revision(ctx)
    if problem:
        return _unknown(ctx, up, old or new, f"after the migration Job {state}: {problem}")
    if state == "Failed":
        return _migration_failed(ctx, up, message, after)
    up["revisionAfter"] = after
    up["step"] = "Rollout"
    return _wait(ctx, up, new, f"rolling out {new}", [("Normal", "Migrated", command[-1])])


async def _downgrade(ctx: Context, up: dict[str, Any]) -> Step | None:
    """A rollback to a version from the history: the database to the revision it ran with."""
    old, new = up.get("from"), up["to"]
    _, wanted = _history_revision(ctx.status, new)
    now_rev, problem = await _revision(ctx)
    if problem:
        return _unknown(ctx, up, old or new, problem)
    up.setdefault("revisionBefore", now_rev)
    if now_rev != wanted:
        if wanted is None:
            why = f"the database revision {new} ran with is not recorded"
            return _end(ctx, up, "Refused", old or new, reason=f"cannot downgrade: {why}")
        command = [*ctx.inputs.spec.upgrade.downgradeCommand, wanted]
        state, message = await _job(ctx, up, old or new, command, "downgrade")
        if state == "Failed":
            return _fail(ctx, up, f"downgrade to revision {wanted} failed: {message}")
        return _wait(ctx, up, old or new, f"downgrading the database to {wanted}")
    up["revisionAfter"] = wanted
    up["step"] = "Rollout"
    return None


async def _rollout(ctx: Context, up: dict[str, Any]) -> Step | None:
    new = up["to"]
    state = rollout_state(ctx.deployment, up["image"])
    started = up.setdefault("rolloutStartedAt", now())
    if state == "Done":
        return _end(ctx, up, "Succeeded", new)
    if state != "Failed":
        return _wait(ctx, up, new, f"rolling out {new} (since {started})")
    reason = "the rollout exceeded its progress deadline"
    if not ctx.inputs.spec.upgrade.autoRollback or up["kind"] != "upgrade":
        return _fail(ctx, up, reason)
    up.update(step="Revert", reason=reason)
    return None


async def _revert_rollout(ctx: Context, up: dict[str, Any]) -> Step:
    old, new = up.get("from"), up["to"]
    image = f"{ctx.inputs.spec.image}:{old}"
    if rollout_state(ctx.deployment, image) == "Done":
        return _end(ctx, up, "RolledBack", old or new)
    return _wait(ctx, up, old or new, f"rolling back to {old}")


def _migration_command(ctx: Context) -> list[str]:
    return list(ctx.inputs.spec.upgrade.migrationCommand)


def _flow_hash(up: dict[str, Any]) -> str:
    return names.short_hash(up["flow"])


def _migration_failed(ctx: Context, up: dict[str, Any], message: str, after: str | None) -> Step:
    """A failed migration Job, judged by the revision read after it (never assumed unchanged)."""
    old, new, before = up.get("from"), up["to"], up.get("revisionBefore")
    failed = f"migration with {new} failed: {message}"
    if after == before and before is not None:
        return _fail(ctx, up, f"{failed}; the database is still at {before}, {old} keeps serving")
    if after == before:
        return _unknown(ctx, up, old or new, f"the migration Job failed and {NO_REVISION}")
    moved = f"{failed}; it moved the database from revision {before} to {after}"
    if ctx.inputs.spec.upgrade.autoRollback:  # bring the schema back as for a failed rollout
        up.update(step="Revert", reason=moved, revisionAfter=after)
        return _wait(ctx, up, new, f"{moved}: bringing the schema back to {before}")
    return _fail(
        ctx,
        up,
        f"{moved}: the schema is partly migrated and {old} may not work with it; bring the "
        f"database back to {before} (downgrade or restore) before relying on {old}",
    )


async def _revert(ctx: Context, up: dict[str, Any]) -> Step:
    """Bring the schema back to the revision before the upgrade, then the old image.

    The revision is read again first, and again after bringing it back: the old image goes
    back only onto a schema known to be the one it ran with.
    """
    new, before = up["to"], up.get("revisionBefore")
    if up.get("revertStarted") and not up.get("revertDone"):
        return await _bring_back(ctx, up)
    now_rev, problem = await _revision(ctx)
    if problem:
        return _unknown(ctx, up, new, problem)
    if now_rev == before and (before is not None or up.get("revertDone")):
        up["step"] = "RevertRollout"
        return _wait(ctx, up, up.get("from") or new, f"rolling back to {up.get('from')}")
    if now_rev == before:  # no revision before nor now: unchanged, or the wrong database?
        return _unknown(ctx, up, new, NO_REVISION)
    if up.get("revertDone"):
        why = f"the schema is at revision {now_rev} after bringing it back, not {before}"
        return _fail(ctx, up, f"{up['reason']}; {why}")
    by_restore = ctx.inputs.spec.upgrade.rollbackStrategy == "restore" and up.get("backup")
    if before is None and not by_restore:
        return _fail(
            ctx,
            up,
            f"{up['reason']}; the schema changed and the revision "
            "before is unknown, so it cannot be downgraded safely",
        )
    up["revertStarted"] = True
    return await _bring_back(ctx, up)


async def _bring_back(ctx: Context, up: dict[str, Any]) -> Step:
    """The downgrade Job (to the revision before) or the restore of the pre-upgrade backup."""
    spec = ctx.inputs.spec
    new, before = up["to"], up.get("revisionBefore")
    if spec.upgrade.rollbackStrategy == "restore" and up.get("backup"):
        state, message = await _restore(ctx, up)
    else:
        command = [*spec.upgrade.downgradeCommand, str(before)]
        state, message = await _job(ctx, up, new, command, "downgrade")
    if state == "Failed":
        return _fail(ctx, up, f"{up['reason']}; bringing the schema back failed: {message}")
    if state != "Succeeded":
        return _wait(ctx, up, new, f"bringing the schema back to {before}")
    up["revertDone"] = True
    return _wait(ctx, up, new, f"the schema was brought back; checking it is at {before}")


async def _restore(ctx: Context, up: dict[str, Any]) -> tuple[str, str]:
    """Restore the pre-upgrade backup (rollbackStrategy: restore) through a VulcanRestore."""
    inputs = ctx.inputs
    name = up.get("restore") or names.dns_name(inputs.name, "revert", _flow_hash(up), up["to"])
    up["restore"] = name  # the restore controller lets this one through during the upgrade
    restore = {
        "apiVersion": API_VERSION,
        "kind": kinds.RESTORE.kind,
        "metadata": {
            "name": name,
            "namespace": inputs.namespace,
            "labels": names.labels(inputs.name, "restore"),
        },
        # No migration after it: the pre-upgrade backup has the schema the old version needs.
        "spec": {
            "engineRef": {"name": inputs.name},
            "backupRef": {"name": up["backup"]},
            "migrate": False,
        },
    }
    await apply(ctx.api, restore, create_only=True)
    live = await ctx.api.get(Ref.of(restore)) or {}
    phase = (live.get("status") or {}).get("phase") or "Running"
    return ("Succeeded" if phase == "Succeeded" else phase), f"restore {name} {phase.lower()}"


#: What each step does. A step returns what this reconcile shows, or None when it is done and
#: has set `up["step"]` to the next, which then runs in the same pass.
_STEP_FUNCTIONS: dict[str, Callable[[Context, dict[str, Any]], Awaitable[Step | None]]] = {
    "Install": _install,
    "Backup": _backup,
    "Migrate": _migrate,
    "Downgrade": _downgrade,
    "Rollout": _rollout,
    "Revert": _revert,
    "RevertRollout": _revert_rollout,
}
