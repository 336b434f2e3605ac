"""Restores: the guide's restore runbook (stop the application, restore, migrate, start it
again) as a persisted state machine per VulcanRestore.

    (Pending) → ScaleDown → Restore → Migrate → ScaleUp → Done
    with spec.targetDatabase: Restore → Done (the engine's own database is not touched, so it
    keeps serving; no migration either: the migration command migrates the engine's database)
    without spec.migrate: Migrate is skipped.

`status.step` is the step now (or the one that failed), `status.steps` the record of each
(start, end, outcome, message); every transition is an Event. A reconcile moves on as far as
the cluster allows and never waits; the handler calls it again every few seconds. What must hold
before the first step, and the run's context, are in `reconcile.restore_start`; the lock (the
engine's status.restore, moved at every step) and what it asks of the engine in
`reconcile.engine_hold`.

Results: the restore Job's result (the pod's termination message) is recorded in the status
as soon as it is seen, `rowCounts` keys and `databaseRevision` filtered to plain identifiers
(`reconcile.jobs.safe_row_counts`: a table name is the dump's to choose); the next pass deletes
the Job (restore Jobs have no TTL) and moves on from the status, so a Job that is gone after
that is no loss.

Failures: phase Failed, `step` names the step, `failure` says why. When the engine's database
is known to be untouched (before the restore, a file refused, a restore rolled back, a side
database), the engine is scaled back first. When it may have been changed and is not fit to
serve (restored but not migrated; a restore Job that ended without saying how far it got),
the engine is kept at zero: its status.restore step becomes Hold and its conditions say so
(Degraded=True, reason RestoreFailed, with what to do). Deleting the VulcanRestore releases it;
a new VulcanRestore may take the lock over from it.

Name conflicts: a Job the restore makes (restore, migration) whose name is taken by an object
that is not ours is never touched; the restore waits at its step (Ready=False, NameConflict
naming it, one Warning Event: `restore_start.name_conflict`) and goes on once the name is free.
The restore Job's name is looked at before the lock is taken, so the engine is not scaled down
for a restore that would then wait.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from pydantic import ValidationError

from vulcan_operator import names
from vulcan_operator.api import errors
from vulcan_operator.api.backup import VulcanRestore
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import restore_migration_job
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, NotOurs, Ref, apply
from vulcan_operator.names import COMPONENT_RESTORE
from vulcan_operator.reconcile.engine_hold import (
    LOCK_ATTEMPTS,
    MARKER_KEYS,
    TERMINAL,
    Conflict,
    deployment_ref,
    engine_ref,
    holder_ended,
    write_marker,
)
from vulcan_operator.reconcile.jobs import (
    failure,
    owned_jobs,
    parse_restore_result,
    read_job,
    read_job_object,
    safe_database,
    safe_revision,
    safe_row_counts,
)
from vulcan_operator.reconcile.restore_start import (
    KIND,
    Run,
    Wait,
    mine,
    name_conflict,
    no_backup_running,
    restore_job,
    start,
)
from vulcan_operator.status import Outcome, now, ready_progressing, set_conditions

__all__ = ["KIND", "STEPS", "TERMINAL", "reconcile"]

STEPS = ("ScaleDown", "Restore", "Migrate", "ScaleUp", "Done")
#: Steps of the restore program after which the database is known to be as it was: nothing
#: touched yet, a refused file, or the one transaction rolled back (see jobscripts/restore.sh).
UNTOUCHED = ("configure", "download", "verify", "create-database", "restore")


async def reconcile(api: Api, body: dict[str, Any], settings: Settings) -> Outcome:
    """Move one VulcanRestore on as far as the cluster allows now."""
    old = dict(body.get("status") or {})
    if old.get("phase") in TERMINAL:
        return Outcome(old)  # done, or failed: a restore is never repeated by itself
    meta = body.get("metadata") or {}
    restore = errors.parse(body, VulcanRestore)
    if isinstance(restore, list):
        message = "; ".join(restore)
        gen = meta.get("generation")
        return Outcome(
            {
                **old,
                "phase": "Failed",
                "observedGeneration": gen,
                "conditions": set_conditions(
                    old.get("conditions"), ready_progressing("InvalidSpec", message, gen)
                ),
            },
            [("Warning", "InvalidSpec", message)],
        )
    engine = await api.get(engine_ref(meta["namespace"], restore.spec.engineRef.name))
    run = Run(api, settings, body, restore, engine, old)
    try:
        if not old.get("step"):
            await start(run)
        else:
            await _advance(run)
    except Wait:
        pass
    return run.outcome()


# --- the steps ------------------------------------------------------------------------------
async def _mark(run: Run, step: str | None, message: str | None = None) -> None:
    """Move our marker to `step` (or release it, with step None). Always conditional on the
    engine's resourceVersion; a marker that is no longer ours is taken back only from a holder
    that has ended (never by one restore from another that runs)."""
    for _ in range(LOCK_ATTEMPTS):
        engine = await run.api.get(engine_ref(run.namespace, run.engine_name))
        if engine is None:
            return
        current = (engine.get("status") or {}).get("restore") or {}
        marker: dict[str, Any] | None = None
        if step is None:
            if not current or not mine(run, current):
                return
        else:
            if (
                current
                and not mine(run, current)
                and await holder_ended(run.api, run.namespace, current, takeover=True) is None
            ):
                run.progress(
                    "WaitingForRestore",
                    f"VulcanRestore '{current.get('name')}' holds VulcanEngine '{run.engine_name}'",
                )
                raise Wait
            marker = {
                "name": run.name,
                "uid": run.uid,
                "step": step,
                "replicas": run.status.get("replicasBefore"),
                "message": message,
                "database": run.restore.spec.targetDatabase or None,
            }
            if {k: current.get(k) for k in MARKER_KEYS} == marker:
                run.engine = engine
                return
        try:
            run.engine = await write_marker(run.api, engine, marker)
            return
        except Conflict:
            continue
    raise Wait  # the engine kept changing: look again next time


def _scaled_to(deployment: dict[str, Any] | None, replicas: int) -> bool:
    if deployment is None:
        return True
    spec, st = deployment.get("spec") or {}, deployment.get("status") or {}
    if spec.get("replicas", 1) != replicas:
        return False
    if replicas == 0:
        return not st.get("replicas") and not st.get("readyReplicas")
    return True


async def _advance(run: Run) -> None:
    for _ in STEPS:  # each step hands over to the next at most once per reconcile
        step = run.status["step"]
        act = _STEP_FUNCTIONS.get(step)
        if act is None:
            raise ValueError(f"unknown restore step {step!r}")
        await act(run)
        if step == "ScaleUp":
            return


def _engine_gone(run: Run) -> NoReturn:
    message = f"VulcanEngine '{run.engine_name}' was deleted during step {run.status['step']}"
    _finish(run, failure={"step": run.status["step"], "message": message})
    raise Wait


def _deadline(run: Run) -> datetime.timedelta:
    seconds = 600
    if run.engine is not None:
        with contextlib.suppress(ValidationError):
            seconds = run.engine_spec().upgrade.progressDeadlineSeconds
    return datetime.timedelta(seconds=seconds)


async def _scale_down(run: Run) -> None:
    if run.engine is None:
        _engine_gone(run)
    await _mark(run, "ScaleDown")
    deployment = await run.api.get(deployment_ref(run.namespace, run.engine_name))
    if not _scaled_to(deployment, 0):
        started = run.step_started()
        if started is not None and datetime.datetime.now(datetime.UTC) - started > _deadline(run):
            message = (
                f"VulcanEngine '{run.engine_name}' did not scale to zero within "
                f"{int(_deadline(run).total_seconds())} s; nothing was restored"
            )
            await _failed(run, message, database_changed=False)
            return
        run.progress("ScaleDown", f"waiting for VulcanEngine '{run.engine_name}' to reach zero")
        raise Wait
    run.end("Succeeded", "scaled to zero")
    location = run.status.get("location")
    run.begin("Restore", f"restoring {location} into the database of '{run.engine_name}'")


def _result_recorded(run: Run) -> bool:
    """Whether the restore Job's result is in the status already (its step record ended)."""
    steps = run.status.get("steps") or []
    return bool(steps) and steps[-1].get("name") == "Restore" and "finishedAt" in steps[-1]


async def _restore(run: Run) -> None:
    if not run.side:
        if run.engine is None:
            _engine_gone(run)
        await _mark(run, "Restore")
    if _result_recorded(run):
        # The result was persisted by the previous pass: the Job has served its purpose (and
        # may be gone already: nothing is lost), the rest follows from the status.
        if run.status.get("jobName"):
            await run.api.delete(Ref("batch/v1", "Job", run.namespace, run.status["jobName"]))
        await _after_restore(run)
        return
    selector = names.selector(run.engine_name, COMPONENT_RESTORE)
    jobs = await owned_jobs(run.api, run.namespace, selector, run.uid)
    if not jobs:
        if run.status.get("jobName"):
            await _failed(
                run,
                f"the restore Job {run.status['jobName']} disappeared before it reported a "
                "result; the database may or may not have been replaced",
                database_changed=None,
            )
            return
        if run.engine is None:
            _engine_gone(run)
        if not run.side:
            await no_backup_running(run, "restoring")
        spec = run.engine_spec()
        location, checksum = str(run.status["location"]), str(run.status.get("checksum") or "")
        job = restore_job(run, spec, location, checksum, run.status.get("parts") or {})
        try:
            await apply(run.api, job, create_only=True)
        except NotOurs as error:
            name_conflict(run, error)
        run.status["jobName"] = job["metadata"]["name"]
        run.progress("Restore", f"restore Job {run.status['jobName']} created")
        raise Wait
    job = jobs[-1]
    run.status["jobName"] = job["metadata"]["name"]
    state = await read_job_object(run.api, job)
    if state.state == "Running":
        detail = f"; waiting: {state.message}" if state.message else ""
        run.progress("Restore", f"restore Job {run.status['jobName']} is running{detail}")
        raise Wait
    result = parse_restore_result(state.termination)
    if state.state == "Succeeded":
        counts = safe_row_counts(result.get("rowCounts"))
        found = {
            "database": safe_database(result.get("database")),
            "databaseRevision": safe_revision(result.get("databaseRevision")),
        }
        restored = result.get("parts") or ["database"]
        run.status.update(
            rowCounts=counts, restoredParts=restored, **{k: v for k, v in found.items() if v}
        )
        into = found["database"] or "?"
        run.end(
            "Succeeded",
            f"restored into '{into}' ({len(counts)} tables; restored: {', '.join(restored)})",
        )
    else:
        _, message = failure(result, state, "restore")
        untouched = run.side or (
            result.get("outcome") == "Failed"
            and (result.get("step") in UNTOUCHED or result.get("exitCode") in (2, 3))
        )
        if untouched and not run.side:
            message += "; the database was not changed"
        run.end("Failed", message)
        run.status["failure"] = {
            "step": "Restore",
            "message": message,
            "databaseChanged": False if untouched else None,
        }
    # The result is kept in the status first (a Job can vanish: TTL, a person, a node);
    # the next pass deletes the Job and moves on from what the status says.
    run.progress("Restore", f"restore Job {run.status['jobName']} has ended: result recorded")
    raise Wait


async def _after_restore(run: Run) -> None:
    """The step after a recorded restore result."""
    steps = run.status.get("steps") or []
    if steps[-1].get("outcome") == "Succeeded":
        if run.side:
            if run.restore.spec.migrate:
                run.events.append(
                    (
                        "Normal",
                        "MigrateSkipped",
                        "not migrating: the migration command runs against the engine's own "
                        "database, and this restore went into another one",
                    )
                )
            await _mark(run, None)
            _finish(run)
            raise Wait
        if run.restore.spec.migrate:
            version = _running_version(run)
            run.begin("Migrate", f"migrating the restored database with {version}")
        else:
            _begin_scale_up(run)
        return
    failure = run.status.get("failure") or {}
    message = str(failure.get("message") or steps[-1].get("message") or "the restore failed")
    await _failed(run, message, database_changed=failure.get("databaseChanged"))


def _running_version(run: Run) -> str:
    assert run.engine is not None
    status = run.engine.get("status") or {}
    return str(status.get("currentVersion") or run.engine_spec().version)


async def _migrate(run: Run) -> None:
    if run.engine is None:
        _engine_gone(run)
    await _mark(run, "Migrate")
    spec = run.engine_spec()
    version = _running_version(run)
    inputs = EngineInputs.from_resource(run.engine, settings=run.settings, run_version=version)
    command = list(spec.upgrade.migrationCommand)
    job = restore_migration_job(inputs, version, run.uid)
    name = job["metadata"]["name"]
    try:
        await apply(run.api, job, create_only=True)
    except NotOurs as error:
        name_conflict(run, error)
    run.status["migrationJobName"] = name
    state = await read_job(run.api, run.namespace, name)
    if state.state in ("Running", "Missing"):
        run.progress("Migrate", f"migration Job {name} ({' '.join(command)}) is running")
        raise Wait
    if state.state == "Failed":
        await _failed(
            run,
            f"the database was restored, but the migration ({' '.join(command)} with "
            f"{version}) failed: {state.message}",
            database_changed=True,
        )
        return
    run.end("Succeeded", f"migrated with {version}")
    _begin_scale_up(run)


def _begin_scale_up(run: Run) -> None:
    before = run.status.get("replicasBefore")
    run.begin("ScaleUp", f"scaling VulcanEngine '{run.engine_name}' back to {before} replicas")


async def _failed(run: Run, message: str, *, database_changed: bool | None) -> None:
    """A step failed: scale back when that is safe, else hold the engine at zero."""
    step = run.status["step"]
    run.end("Failed", message)
    failure = {"step": step, "message": message, "databaseChanged": database_changed}
    if database_changed is False or run.side:
        run.status["failure"] = failure
        if run.side:
            await _mark(run, None)
            _finish(run, failure=failure)
            raise Wait
        before = run.status.get("replicasBefore")
        run.begin(
            "ScaleUp",
            f"step {step} failed; scaling VulcanEngine '{run.engine_name}' back to {before} "
            "replicas",
        )
        return
    # The database may have been changed and the engine is not fit to serve it: hold it.
    held = (
        "VulcanEngine '" + run.engine_name + "' is kept at zero replicas, because serving "
        "a database in this state is not safe"
    )
    failure["message"] = f"{message}. {held}"
    await _mark(run, "Hold", failure["message"])
    _finish(run, failure=failure, hold=True)
    raise Wait


def _finish(run: Run, failure: dict[str, Any] | None = None, hold: bool = False) -> None:
    run.status["finishedAt"] = now()
    if failure is None:
        run.status.update(phase="Succeeded", step="Done")
        counts = run.status.get("rowCounts") or {}
        rows = ", ".join(f"{t} {n}" for t, n in sorted(counts.items())[:10])
        message = f"restored {run.status.get('location')}" + (f" (rows: {rows})" if rows else "")
        run.events.append(("Normal", "Succeeded", message))
        run.conditions = ready_progressing("Succeeded", message, run.gen, ready=True)
        return
    run.status.update(phase="Failed", step=failure["step"], failure=failure)
    reason = f"{failure['step']}Failed"
    message = f"failed at step {failure['step']}: {failure['message']}"
    if not hold and failure.get("databaseChanged") is False and not run.side:
        message += f"; VulcanEngine '{run.engine_name}' was scaled back"
    run.events.append(("Warning", "Failed", message))
    if hold:
        run.events.append(("Warning", "EngineHeld", failure["message"]))
    run.conditions = ready_progressing(reason, message, run.gen)


async def _scale_up(run: Run) -> None:
    if run.engine is None:
        _engine_gone(run)
    before = int(run.status.get("replicasBefore") or 0)
    await _mark(run, "ScaleUp")
    deployment = await run.api.get(deployment_ref(run.namespace, run.engine_name))
    if not _scaled_to(deployment, before):
        run.progress("ScaleUp", f"waiting for VulcanEngine '{run.engine_name}' to scale back")
        raise Wait
    await _mark(run, None)
    run.end("Succeeded", f"scaled back to {before} replicas")
    failure = run.status.get("failure")
    _finish(run, failure=failure)


#: What each step does; a step hands over by setting status.step (`Run.begin`).
_STEP_FUNCTIONS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "ScaleDown": _scale_down,
    "Restore": _restore,
    "Migrate": _migrate,
    "ScaleUp": _scale_up,
}
