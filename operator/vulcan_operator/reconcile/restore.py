"""Restores: the guide's restore runbook (stop the application, restore, migrate, start it
again) as a persisted state machine per VulcanRestore; and what a restore means for its engine.

    (Pending) → ScaleDown → Restore → Migrate → ScaleUp → Done
    with spec.targetDatabase: Restore → Done (the engine's own database is not touched, so it
    keeps serving; no migration either: the migration command migrates the engine's database)
    without spec.migrate: Migrate is skipped.

`status.step` is the step now (or the one that failed), `status.steps` the record of each
(start, end, outcome, message); every transition is an Event. A reconcile moves on as far as
the cluster allows and never waits; the handler calls it again every few seconds.

How the engine learns of a restore: the restore controller writes `status.restore` on the
VulcanEngine ({name, uid, step, replicas}); the engine reconcile reads it from its own body
(no extra call while no restore runs) and renders the Deployment with 0 replicas and no HPA,
and suspends the backup and maintenance CronJobs, while the step is ScaleDown, Restore or
Migrate (or Hold); with `replicas` during ScaleUp. A status field, not an annotation: the
operator never writes an engine's spec or metadata that Argo CD compares, a status field shows
in `kubectl get -o yaml` next to the phase it explains, and it is gone with the engine. The
engine reconcile also checks the marker: a VulcanRestore that was deleted, or that ended
without releasing it, is released (the engine scales back to `replicas`), so a restore can
never leave the engine at zero silently.

Start (Pending until all hold): the engine exists, has been reconciled once, is valid and not
paused; no upgrade is in flight (the restore WAITS for it to end, with condition reason
UpgradeInProgress: an upgrade ends by itself within its deadline, and a restore meanwhile would
race its migrations; the upgrade's own restore, `rollbackStrategy: restore`, is exempt); no
other restore holds the engine; the backup is known: backupRef → that VulcanBackup has
Succeeded (its location and checksum), or spec.location. Version changes of the engine wait
while a restore holds it.

Failures: phase Failed, `step` names the step, `failure` says why. When the engine's database
is known to be untouched (before the restore, a file refused, a restore rolled back, a side
database), the engine is scaled back first. When it may have been changed and is not fit to
serve (restored but not migrated; a restore Job that ended without saying how far it got),
the engine is kept at zero: its status.restore step becomes Hold and its conditions say so
(Degraded=True, reason RestoreFailed, with what to do). Deleting the VulcanRestore releases it.
"""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from vulcan_operator import API_VERSION, names
from vulcan_operator.api.backup import VulcanRestore
from vulcan_operator.api.engine import S3Storage, VulcanEngineSpec
from vulcan_operator.builders.backup import (
    COMPONENT_RESTORE,
    BackupLocation,
    build_vulcan_restore_job,
    parse_restore_result,
)
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import restore_migration_job
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, ApiError, Ref, apply
from vulcan_operator.reconcile import upgrade
from vulcan_operator.reconcile.backup import failure as job_failure
from vulcan_operator.reconcile.jobs import owned_jobs, read_job, read_job_object
from vulcan_operator.status import Outcome, condition, get_condition, now, set_conditions
from vulcan_operator.validation import explain

__all__ = ["KIND", "STEPS", "TERMINAL", "EngineHold", "engine_hold", "reconcile"]

KIND = "VulcanRestore"
ENGINE_KIND = "VulcanEngine"
BACKUP_KIND = "VulcanBackup"
TERMINAL = ("Succeeded", "Failed")
STEPS = ("ScaleDown", "Restore", "Migrate", "ScaleUp", "Done")
#: Steps of the restore program after which the database is known to be as it was: nothing
#: touched yet, a refused file, or the one transaction rolled back (see scripts/restore.sh).
UNTOUCHED = ("configure", "download", "verify", "create-database", "restore")
HELD_STEPS = ("ScaleDown", "Restore", "Migrate", "Hold")


def _engine_ref(namespace: str, name: str) -> Ref:
    return Ref(API_VERSION, ENGINE_KIND, namespace, name)


def _deployment_ref(namespace: str, engine: str) -> Ref:
    return Ref("apps/v1", "Deployment", namespace, names.engine_deployment(engine))


# --- the engine's side ----------------------------------------------------------------------
@dataclass
class EngineHold:
    """What a restore asks of the engine reconcile now."""

    #: Render the Deployment with this many replicas and no HPA (None: as the spec says).
    replicas: int | None = None
    #: Suspend the backup and maintenance CronJobs.
    suspend: bool = False
    #: A restore holds the engine: version changes wait.
    restoring: bool = False
    #: Write status.restore = null (the restore has ended or is gone).
    clear: bool = False
    phase: str | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


async def engine_hold(
    api: Api, namespace: str, engine: str, status: dict[str, Any], generation: int | None
) -> EngineHold:
    """Read the engine's status.restore (and the VulcanRestore it names, only when there is
    one): what to render, which conditions to show, whether to release it.

    The marker is read from the live engine, not from the body the reconcile started with: a
    reconcile that began just before a restore wrote it must not scale the engine back up.
    """
    live_engine = await api.get(_engine_ref(namespace, engine))
    marker = ((live_engine or {}).get("status") or {}).get("restore")
    if not marker:
        return EngineHold()
    name, step, replicas = marker.get("name", ""), marker.get("step"), marker.get("replicas")
    live = await api.get(Ref(API_VERSION, KIND, namespace, name))
    gone = live is None or bool(marker.get("uid") and live["metadata"].get("uid") != marker["uid"])
    phase = ((live or {}).get("status") or {}).get("phase")
    if gone or (phase in TERMINAL and step != "Hold"):
        why = "was deleted" if gone else f"has ended ({phase})"
        back = f"back to {replicas} replicas" if replicas is not None else "back up"
        return EngineHold(
            replicas=replicas,
            clear=True,
            events=[("Normal", "RestoreReleased", f"VulcanRestore '{name}' {why}: scaling {back}")],
        )
    if step == "Hold":
        message = (
            f"kept at zero replicas by the failed VulcanRestore '{name}': "
            f"{marker.get('message') or 'the database may have been changed'}. Fix the "
            f"database, then delete the VulcanRestore (kubectl delete vulcanrestore {name}) to "
            "serve again as it is, or restore again with a new VulcanRestore."
        )
        old = get_condition(status, "Degraded") or {}
        news = old.get("reason") != "RestoreFailed" or old.get("message") != message
        return EngineHold(
            replicas=0,
            suspend=True,
            restoring=True,
            phase="Degraded",
            conditions=[
                condition("Ready", False, "RestoreFailed", message, generation),
                condition("Progressing", False, "RestoreFailed", message, generation),
                condition("Degraded", True, "RestoreFailed", message, generation),
            ],
            events=[("Warning", "RestoreFailed", message)] if news else [],
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
        conditions=[
            condition("Ready", False, "Restoring", message, generation),
            condition("Progressing", True, "Restoring", message, generation),
        ],
    )


# --- the VulcanRestore ----------------------------------------------------------------------
def _parse(body: dict[str, Any]) -> VulcanRestore | list[str]:
    doc = {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec")}
    doc["metadata"] = {
        k: v for k, v in (body.get("metadata") or {}).items() if k in ("name", "namespace")
    }
    try:
        return VulcanRestore.model_validate(doc)
    except ValidationError as exc:
        return explain(exc, VulcanRestore)


class _Wait(Exception):
    """Stop here for now; the status so far is kept."""


@dataclass
class _Run:
    """One reconcile of one VulcanRestore."""

    api: Api
    settings: Settings
    body: dict[str, Any]
    restore: VulcanRestore
    engine: dict[str, Any] | None
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def namespace(self) -> str:
        return str(self.meta["namespace"])

    @property
    def uid(self) -> str:
        return str(self.meta.get("uid", ""))

    @property
    def gen(self) -> int | None:
        return self.meta.get("generation")

    @property
    def engine_name(self) -> str:
        return self.restore.spec.engineRef.name

    @property
    def side(self) -> bool:
        """Restoring into another database: the engine's own is never touched."""
        return bool(self.restore.spec.targetDatabase)

    def engine_spec(self) -> VulcanEngineSpec:
        assert self.engine is not None
        return VulcanEngineSpec.model_validate(self.engine.get("spec") or {})

    # status helpers
    def progress(self, reason: str, message: str) -> None:
        self.conditions = [
            condition("Ready", False, reason, message, self.gen),
            condition("Progressing", True, reason, message, self.gen),
        ]

    def begin(self, step: str, message: str) -> None:
        self.status["step"] = step
        self.status["steps"] = [
            *(self.status.get("steps") or []),
            {"name": step, "startedAt": now(), "message": message},
        ]
        self.events.append(("Normal", step, message))
        self.progress(step, message)

    def end(self, outcome: str, message: str) -> None:
        steps = [dict(s) for s in self.status.get("steps") or []]
        if steps and "finishedAt" not in steps[-1]:
            steps[-1].update(finishedAt=now(), outcome=outcome, message=message)
        self.status["steps"] = steps

    def step_started(self) -> datetime.datetime | None:
        steps = self.status.get("steps") or []
        text = steps[-1].get("startedAt") if steps else None
        try:
            return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            return None

    def outcome(self) -> Outcome:
        old = self.body.get("status") or {}
        status = {
            **self.status,
            "observedGeneration": self.gen,
            "conditions": set_conditions(old.get("conditions"), self.conditions),
        }
        return Outcome(status, self.events)


async def reconcile(api: Api, body: dict[str, Any], settings: Settings) -> Outcome:
    """Move one VulcanRestore on as far as the cluster allows now."""
    old = dict(body.get("status") or {})
    if old.get("phase") in TERMINAL:
        return Outcome(old)  # done, or failed: a restore is never repeated by itself
    meta = body.get("metadata") or {}
    restore = _parse(body)
    if isinstance(restore, list):
        message = "; ".join(restore)
        gen = meta.get("generation")
        return Outcome(
            {
                **old,
                "phase": "Failed",
                "observedGeneration": gen,
                "conditions": set_conditions(
                    old.get("conditions"),
                    [
                        condition("Ready", False, "InvalidSpec", message, gen),
                        condition("Progressing", False, "InvalidSpec", message, gen),
                    ],
                ),
            },
            [("Warning", "InvalidSpec", message)],
        )
    engine = await api.get(_engine_ref(meta["namespace"], restore.spec.engineRef.name))
    run = _Run(api, settings, body, restore, engine, old)
    try:
        if not old.get("step"):
            await _start(run)
        else:
            await _advance(run)
    except _Wait:
        pass
    return run.outcome()


# --- start ----------------------------------------------------------------------------------
def _pending(run: _Run, reason: str, message: str) -> None:
    old = get_condition(run.body.get("status"), "Ready") or {}
    if old.get("reason") != reason or old.get("message") != message:
        run.events.append(("Normal", reason, message))
    run.status["phase"] = "Pending"
    run.conditions = [
        condition("Ready", False, reason, message, run.gen),
        condition("Progressing", False, reason, message, run.gen),
    ]
    raise _Wait


async def _source(run: _Run, spec: VulcanEngineSpec) -> tuple[str, str, S3Storage | None]:
    """(location, expected checksum, S3 settings) of the backup to restore."""
    ref = run.restore.spec.backupRef
    if ref is None:
        return run.restore.spec.location, "", spec.backup.storage.s3
    backup = await run.api.get(Ref(API_VERSION, BACKUP_KIND, run.namespace, ref.name))
    if backup is None:
        _pending(run, "BackupNotFound", f"waiting for VulcanBackup '{ref.name}': not found")
    assert backup is not None
    status = backup.get("status") or {}
    if status.get("phase") == "Failed":
        _fail_early(run, f"VulcanBackup '{ref.name}' failed: there is nothing to restore")
    if status.get("phase") != "Succeeded":
        _pending(
            run,
            "BackupNotReady",
            f"waiting for VulcanBackup '{ref.name}' to succeed "
            f"(it is {status.get('phase') or 'Pending'})",
        )
    if not status.get("location"):
        _fail_early(run, f"VulcanBackup '{ref.name}' has no recorded location")
    return str(status["location"]), str(status.get("checksum") or ""), await _s3(run, spec)


async def _s3(run: _Run, spec: VulcanEngineSpec) -> S3Storage | None:
    """S3 settings for an s3:// location: the VulcanBackup's own storage, else the engine's."""
    ref = run.restore.spec.backupRef
    if ref is not None:
        backup = await run.api.get(Ref(API_VERSION, BACKUP_KIND, run.namespace, ref.name))
        storage = ((backup or {}).get("spec") or {}).get("storage") or {}
        if storage.get("s3"):
            return S3Storage.model_validate(storage["s3"])
    return spec.backup.storage.s3


def _fail_early(run: _Run, message: str) -> None:
    """Fail before anything was touched."""
    run.status.update(
        phase="Failed",
        step="Prepare",
        finishedAt=now(),
        failure={"step": "Prepare", "message": message, "databaseChanged": False},
    )
    run.events.append(("Warning", "Failed", message))
    run.conditions = [
        condition("Ready", False, "PrepareFailed", message, run.gen),
        condition("Progressing", False, "PrepareFailed", message, run.gen),
    ]
    raise _Wait


def _restore_job(
    run: _Run, spec: VulcanEngineSpec, location: str, checksum: str, s3: S3Storage | None
) -> dict[str, Any]:
    (job,) = build_vulcan_restore_job(
        Owner(kind=KIND, name=run.name, namespace=run.namespace, uid=run.uid),
        run.engine_name,
        spec,
        run.settings,
        location=location,
        checksum=checksum,
        target_database=run.restore.spec.targetDatabase,
        s3=s3,
    )
    return job


async def _start(run: _Run) -> None:
    engine, name = run.engine, run.engine_name
    if engine is None:
        _pending(
            run,
            "EngineNotFound",
            f"waiting for VulcanEngine '{name}': not found in namespace '{run.namespace}'",
        )
    assert engine is not None
    try:
        spec = run.engine_spec()
    except ValidationError as exc:
        problems = "; ".join(explain(exc, VulcanEngineSpec))
        _pending(run, "EngineInvalid", f"VulcanEngine '{name}' is invalid: {problems}")
        raise
    estatus = engine.get("status") or {}
    if estatus.get("observedGeneration") is None:
        _pending(run, "EngineNotReconciled", f"waiting for VulcanEngine '{name}' to be set up")
    if spec.paused:
        _pending(run, "EnginePaused", f"VulcanEngine '{name}' is paused (spec.paused)")
    up = estatus.get("upgrade") or {}
    if up and up.get("step") not in upgrade.TERMINAL and up.get("restore") != run.name:
        _pending(
            run,
            "UpgradeInProgress",
            f"waiting for the upgrade of VulcanEngine '{name}' to {up.get('to')} to end "
            f"(step {up.get('step')}): a restore meanwhile would race its migrations",
        )
    marker = estatus.get("restore") or {}
    if marker and marker.get("name") != run.name:
        other = await run.api.get(Ref(API_VERSION, KIND, run.namespace, marker["name"]))
        if other is not None and ((other.get("status") or {}).get("phase") not in TERMINAL):
            _pending(
                run,
                "RestoreInProgress",
                f"waiting for VulcanRestore '{marker['name']}', which holds the engine",
            )
    location, checksum, s3 = await _source(run, spec)
    try:
        where = BackupLocation.parse(location)
        _restore_job(run, spec, location, checksum, s3)  # refuses what cannot be built
    except ValueError as exc:
        _fail_early(run, str(exc))
        raise
    if where.scheme == "pvc":
        claim = await run.api.get(Ref("v1", "PersistentVolumeClaim", run.namespace, where.root))
        if claim is None:
            _fail_early(run, f"{location}: PersistentVolumeClaim '{where.root}' not found")
    database = run.restore.spec.targetDatabase or None
    run.status.update(
        phase="Running",
        startedAt=now(),
        location=location,
        **({"checksum": checksum} if checksum else {}),
        **({"database": database} if database else {}),
    )
    if run.side:
        run.begin(
            "Restore",
            f"restoring {location} into the database '{database}'; VulcanEngine '{name}' keeps "
            "serving from its own",
        )
        return  # the Job is created on the next pass, with the status persisted
    deployment = await run.api.get(_deployment_ref(run.namespace, name))
    if marker and marker.get("replicas") is not None:
        before = int(marker["replicas"])  # taking over from a failed restore that held it
    elif deployment is not None:
        before = int((deployment.get("spec") or {}).get("replicas", 1))
    else:
        before = spec.autoscaling.minReplicas if spec.autoscaling.enabled else spec.replicas
    run.status["replicasBefore"] = before
    run.begin("ScaleDown", f"scaling VulcanEngine '{name}' from {before} replicas to zero")
    # replicasBefore is persisted before the engine is told anything (a restart must never
    # read the count back from a Deployment that is already at zero).


# --- the steps ------------------------------------------------------------------------------
async def _mark(run: _Run, step: str | None, message: str | None = None) -> None:
    """Write (or clear, with step None) the engine's status.restore; taking it over from no one
    or from another restore is conditional on the engine not having changed meanwhile."""
    engine = await run.api.get(_engine_ref(run.namespace, run.engine_name))
    if engine is None:
        return
    current = (engine.get("status") or {}).get("restore") or {}
    body: dict[str, Any]
    if step is None:
        if current.get("name") != run.name:
            return
        body = {"status": {"restore": None}}
    else:
        marker = {
            "name": run.name,
            "uid": run.uid,
            "step": step,
            "replicas": run.status.get("replicasBefore"),
            **({"message": message} if message else {}),
        }
        if {k: current.get(k) for k in marker} == marker:
            run.engine = engine
            return
        body = {"status": {"restore": marker}}
        if current.get("name") != run.name:
            body["metadata"] = {"resourceVersion": engine["metadata"]["resourceVersion"]}
    try:
        run.engine = await run.api.patch(
            _engine_ref(run.namespace, run.engine_name), body, subresource="status"
        )
    except ApiError as exc:
        if exc.status == 409:  # the engine changed meanwhile: look again next time
            raise _Wait from None
        raise


def _scaled_to(deployment: dict[str, Any] | None, replicas: int) -> bool:
    if deployment is None:
        return True
    spec, st = deployment.get("spec") or {}, deployment.get("status") or {}
    if spec.get("replicas", 1) != replicas:
        return False
    if replicas == 0:
        return not st.get("replicas") and not st.get("readyReplicas")
    return True


async def _advance(run: _Run) -> None:
    for _ in STEPS:  # each step hands over to the next at most once per reconcile
        step = run.status["step"]
        if step == "ScaleDown":
            await _scale_down(run)
        elif step == "Restore":
            await _restore(run)
        elif step == "Migrate":
            await _migrate(run)
        elif step == "ScaleUp":
            await _scale_up(run)
            return
        else:
            raise ValueError(f"unknown restore step {step!r}")


def _engine_gone(run: _Run) -> None:
    message = f"VulcanEngine '{run.engine_name}' was deleted during step {run.status['step']}"
    _finish(run, failure={"step": run.status["step"], "message": message})
    raise _Wait


def _deadline(run: _Run) -> datetime.timedelta:
    seconds = 600
    if run.engine is not None:
        with contextlib.suppress(ValidationError):
            seconds = run.engine_spec().upgrade.progressDeadlineSeconds
    return datetime.timedelta(seconds=seconds)


async def _scale_down(run: _Run) -> None:
    if run.engine is None:
        _engine_gone(run)
    await _mark(run, "ScaleDown")
    deployment = await run.api.get(_deployment_ref(run.namespace, run.engine_name))
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
        raise _Wait
    run.end("Succeeded", "scaled to zero")
    location = run.status.get("location")
    run.begin("Restore", f"restoring {location} into the database of '{run.engine_name}'")


async def _restore(run: _Run) -> None:
    if not run.side:
        if run.engine is None:
            _engine_gone(run)
        await _mark(run, "Restore")
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
        spec = run.engine_spec()
        location, checksum = str(run.status["location"]), str(run.status.get("checksum") or "")
        job = _restore_job(run, spec, location, checksum, await _s3(run, spec))
        await apply(run.api, job, create_only=True)
        run.status["jobName"] = job["metadata"]["name"]
        run.progress("Restore", f"restore Job {run.status['jobName']} created")
        raise _Wait
    job = jobs[-1]
    run.status["jobName"] = job["metadata"]["name"]
    state = await read_job_object(run.api, job)
    if state.state == "Running":
        detail = f"; waiting: {state.message}" if state.message else ""
        run.progress("Restore", f"restore Job {run.status['jobName']} is running{detail}")
        raise _Wait
    result = parse_restore_result(state.termination)
    if state.state == "Succeeded":
        run.status.update(
            rowCounts=result.get("rowCounts") or {},
            **{k: result[k] for k in ("database", "databaseRevision") if result.get(k)},
        )
        tables = len(result.get("rowCounts") or {})
        run.end("Succeeded", f"restored into '{result.get('database')}' ({tables} tables)")
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
            _finish(run)
            raise _Wait
        if run.restore.spec.migrate:
            version = _running_version(run)
            run.begin("Migrate", f"migrating the restored database with {version}")
        else:
            _begin_scale_up(run)
        return
    _, message = job_failure(result, state, "restore")
    untouched = run.side or (
        result.get("outcome") == "Failed"
        and (result.get("step") in UNTOUCHED or result.get("exitCode") in (2, 3))
    )
    if untouched and not run.side:
        message += "; the database was not changed"
    await _failed(run, message, database_changed=False if untouched else None)


def _running_version(run: _Run) -> str:
    assert run.engine is not None
    status = run.engine.get("status") or {}
    return str(status.get("currentVersion") or run.engine_spec().version)


async def _migrate(run: _Run) -> None:
    if run.engine is None:
        _engine_gone(run)
    assert run.engine is not None
    await _mark(run, "Migrate")
    spec = run.engine_spec()
    version = _running_version(run)
    inputs = EngineInputs.from_resource(run.engine, settings=run.settings, run_version=version)
    command = list(spec.upgrade.migrationCommand)
    job = restore_migration_job(inputs, version, run.uid)
    name = job["metadata"]["name"]
    await apply(run.api, job, create_only=True)
    run.status["migrationJobName"] = name
    state = await read_job(run.api, run.namespace, name)
    if state.state in ("Running", "Missing"):
        run.progress("Migrate", f"migration Job {name} ({' '.join(command)}) is running")
        raise _Wait
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


def _begin_scale_up(run: _Run) -> None:
    before = run.status.get("replicasBefore")
    run.begin("ScaleUp", f"scaling VulcanEngine '{run.engine_name}' back to {before} replicas")


async def _failed(run: _Run, message: str, *, database_changed: bool | None) -> None:
    """A step failed: scale back when that is safe, else hold the engine at zero."""
    step = run.status["step"]
    run.end("Failed", message)
    failure = {"step": step, "message": message, "databaseChanged": database_changed}
    if database_changed is False or run.side:
        run.status["failure"] = failure
        if run.side:
            _finish(run, failure=failure)
            raise _Wait
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
    raise _Wait


def _finish(run: _Run, failure: dict[str, Any] | None = None, hold: bool = False) -> None:
    run.status["finishedAt"] = now()
    if failure is None:
        run.status.update(phase="Succeeded", step="Done")
        counts = run.status.get("rowCounts") or {}
        rows = ", ".join(f"{t} {n}" for t, n in sorted(counts.items())[:10])
        message = f"restored {run.status.get('location')}" + (f" (rows: {rows})" if rows else "")
        run.events.append(("Normal", "Succeeded", message))
        run.conditions = [
            condition("Ready", True, "Succeeded", message, run.gen),
            condition("Progressing", False, "Succeeded", message, run.gen),
        ]
        return
    run.status.update(phase="Failed", step=failure["step"], failure=failure)
    reason = f"{failure['step']}Failed"
    message = f"failed at step {failure['step']}: {failure['message']}"
    if not hold and failure.get("databaseChanged") is False and not run.side:
        message += f"; VulcanEngine '{run.engine_name}' was scaled back"
    run.events.append(("Warning", "Failed", message))
    if hold:
        run.events.append(("Warning", "EngineHeld", failure["message"]))
    run.conditions = [
        condition("Ready", False, reason, message, run.gen),
        condition("Progressing", False, reason, message, run.gen),
    ]


async def _scale_up(run: _Run) -> None:
    if run.engine is None:
        _engine_gone(run)
    before = int(run.status.get("replicasBefore") or 0)
    await _mark(run, "ScaleUp")
    deployment = await run.api.get(_deployment_ref(run.namespace, run.engine_name))
    if not _scaled_to(deployment, before):
        run.progress("ScaleUp", f"waiting for VulcanEngine '{run.engine_name}' to scale back")
        raise _Wait
    await _mark(run, None)
    run.end("Succeeded", f"scaled back to {before} replicas")
    failure = run.status.get("failure")
    _finish(run, failure=failure)
