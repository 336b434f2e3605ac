"""Restores: the guide's restore runbook (stop the application, restore, migrate, start it
again) as a persisted state machine per VulcanRestore; and what a restore means for its engine.

    (Pending) → ScaleDown → Restore → Migrate → ScaleUp → Done
    with spec.targetDatabase: Restore → Done (the engine's own database is not touched, so it
    keeps serving; no migration either: the migration command migrates the engine's database)
    without spec.migrate: Migrate is skipped.

`status.step` is the step now (or the one that failed), `status.steps` the record of each
(start, end, outcome, message); every transition is an Event. A reconcile moves on as far as
the cluster allows and never waits; the handler calls it again every few seconds.

The lock: the engine's `status.restore` ({name, uid, step, replicas, message, database}) is
the lock of its database, one restore at a time. A restore takes it when it starts (before
anything is touched), with a resourceVersion precondition on the engine's status (a 409 means
someone moved first: it reads again), and only from no one or from a holder that has ended
(its VulcanRestore deleted or Succeeded/Failed); otherwise it waits, Pending with reason
WaitingForRestore naming the holder. Every later write of the marker (each step, the release)
carries the same precondition. A side restore (spec.targetDatabase) takes the lock too (it
shares the server), with `database` set and no replicas: the engine keeps serving.

How the engine reads it: the engine reconcile reads the marker from the live engine (no extra
call while no restore runs) and renders the Deployment with 0 replicas and no HPA, and
suspends the backup and maintenance CronJobs, while the step is ScaleDown, Restore or Migrate
(or Hold); with `replicas` during ScaleUp; as the spec says for a side restore. A status field,
not an annotation: the operator never writes an engine's spec or metadata that Argo CD
compares, a status field shows in `kubectl get -o yaml` next to the phase it explains, and it
is gone with the engine. The engine reconcile also releases a marker whose VulcanRestore was
deleted, or ended without releasing it (conditionally too: a restore taking the lock over at
that moment is never undone), so a restore can never leave the engine at zero silently.

Start (Pending until all hold; refusals first, they never wait): the source is the engine's own
(backupRef → a VulcanBackup of the same engine that Succeeded, with its recorded location and
checksum; or spec.location, a backup file of the engine's store, with spec.checksum: see
`builders.backup.storage.restore_source_problem`); a side restore does not name the engine's own
database (read from its DATABASE_URL Secret; the restore program refuses it too); the engine
exists, has been reconciled once, is valid and not paused; no upgrade is in flight (the
restore WAITS for it to end, with condition reason UpgradeInProgress: an upgrade ends by
itself within its deadline, and a restore meanwhile would race its migrations; the upgrade's
own restore, `rollbackStrategy: restore`, is exempt); no backup Job of the engine is running
(WaitingForBackup: the engine is not scaled down under a running backup, and the restore Job
is not started while one runs); the lock. Version changes of the engine and new VulcanBackups
wait while a restore holds it.

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
"""

from __future__ import annotations

import contextlib
import datetime
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from vulcan_operator import API_VERSION, enginedb, names
from vulcan_operator.api import errors
from vulcan_operator.api.backup import CHECKSUM_REQUIRED, VulcanRestore
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.jobs import build_vulcan_restore_job
from vulcan_operator.builders.backup.storage import BackupLocation, restore_source_problem
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import restore_migration_job
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, ApiError, Ref, apply
from vulcan_operator.names import COMPONENT_BACKUP, COMPONENT_RESTORE
from vulcan_operator.reconcile import upgrade
from vulcan_operator.reconcile.backup import failure as job_failure
from vulcan_operator.reconcile.jobs import (
    owned_jobs,
    parse_restore_result,
    read_job,
    read_job_object,
    running_jobs,
    safe_database,
    safe_revision,
    safe_row_counts,
)
from vulcan_operator.status import Outcome, condition, get_condition, now, set_conditions

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
        live_engine = await api.get(_engine_ref(namespace, engine))
        marker = ((live_engine or {}).get("status") or {}).get("restore")
        if not marker or live_engine is None:
            return EngineHold()
        name, replicas = marker.get("name", ""), marker.get("replicas")
        why = await _ended(api, namespace, marker)
        if why is None:
            return _held(marker, status, generation)
        try:
            await _write_marker(api, live_engine, None)
        except _Conflict:
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
    deployment = await api.get(_deployment_ref(namespace, engine))
    now_replicas = int(((deployment or {}).get("spec") or {}).get("replicas", 0))
    return EngineHold(replicas=now_replicas, suspend=True, restoring=True)


async def _ended(
    api: Api, namespace: str, marker: dict[str, Any], *, takeover: bool = False
) -> str | None:
    """None while the VulcanRestore named by `marker` holds the engine; else how it ended.
    A restore that failed and holds the engine at zero (step Hold) keeps it at zero until it
    is deleted, or until a new restore takes the lock over (`takeover`)."""
    live = await api.get(Ref(API_VERSION, KIND, namespace, marker.get("name", "")))
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
    """The VulcanRestore as a typed model, or the list of problems with its spec."""
    return errors.parse(body, VulcanRestore)


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


CHECKSUM = re.compile(r"^[0-9a-f]{64}$")


async def _source(run: _Run, spec: VulcanEngineSpec) -> tuple[str, str]:
    """(location, expected checksum) of the backup to restore: a file of this engine's own
    store, with a checksum the operator recorded (backupRef) or the spec gives (location)."""
    storage, name = spec.backup.storage, run.engine_name
    ref, given = run.restore.spec.backupRef, run.restore.spec.checksum
    if ref is None:
        location = run.restore.spec.location
        if not CHECKSUM.fullmatch(given):
            _fail_early(run, f"spec.checksum is {CHECKSUM_REQUIRED}")
        problem = restore_source_problem(name, run.namespace, storage, location)
        if problem:
            _fail_early(run, problem)
        return location, given
    backup = await run.api.get(Ref(API_VERSION, BACKUP_KIND, run.namespace, ref.name))
    if backup is None:
        _pending(run, "BackupNotFound", f"waiting for VulcanBackup '{ref.name}': not found")
    assert backup is not None
    of = ((backup.get("spec") or {}).get("engineRef") or {}).get("name")
    if of != name:
        _fail_early(
            run,
            f"spec.backupRef: VulcanBackup '{ref.name}' is a backup of VulcanEngine '{of}', not "
            f"of '{name}': a restore takes only its own engine's backups",
        )
    status = backup.get("status") or {}
    if status.get("phase") == "Failed":
        _fail_early(
            run, f"spec.backupRef: VulcanBackup '{ref.name}' failed: there is nothing to restore"
        )
    if status.get("phase") != "Succeeded":
        _pending(
            run,
            "BackupNotReady",
            f"waiting for VulcanBackup '{ref.name}' to succeed "
            f"(it is {status.get('phase') or 'Pending'})",
        )
    checksum, location = str(status.get("checksum") or ""), str(status.get("location") or "")
    if not CHECKSUM.fullmatch(checksum) or not location:
        _fail_early(
            run,
            f"spec.backupRef: VulcanBackup '{ref.name}' recorded no location and sha256 "
            "checksum: there is nothing to check the file against",
        )
    if given and given != checksum:
        _fail_early(
            run,
            f"spec.checksum does not match the sha256 VulcanBackup '{ref.name}' recorded "
            "(status.checksum); leave it out, or give the same",
        )
    problem = restore_source_problem(name, run.namespace, storage, location)
    if problem:
        _fail_early(
            run,
            f"spec.backupRef: VulcanBackup '{ref.name}' is not in VulcanEngine '{name}''s "
            f"backup storage: {problem}",
        )
    return location, checksum


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


def _restore_job(run: _Run, spec: VulcanEngineSpec, location: str, checksum: str) -> dict[str, Any]:
    (job,) = build_vulcan_restore_job(
        Owner(kind=KIND, name=run.name, namespace=run.namespace, uid=run.uid),
        run.engine_name,
        spec,
        run.settings,
        location=location,
        checksum=checksum,
        target_database=run.restore.spec.targetDatabase,
    )
    return job


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names (path, else ?dbname=, else the user name, as libpq
    does); ValueError for what is not a PostgreSQL URL. Never puts the URL in a message."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        user = parts.username
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme.split("+")[0] not in ("postgres", "postgresql"):
        raise ValueError("not a postgresql:// URL")
    name = urllib.parse.unquote(parts.path.lstrip("/"))
    if not name:
        name = (urllib.parse.parse_qs(parts.query).get("dbname") or [""])[0]
    return name or urllib.parse.unquote(user or "")


async def _own_database(run: _Run, spec: VulcanEngineSpec) -> None:
    """Refuse a side restore into the engine's own database (it would replace the data under
    a serving engine). The name comes from the engine's DATABASE_URL Secret."""
    ref = spec.database_url_ref(run.engine_name)
    try:
        url = await enginedb.database_url(run.api, run.namespace, ref)
        enginedb.asyncpg_url(url)  # the same check as everywhere the operator reads it
        own = database_name(url)
    except (enginedb.InvalidDatabaseURL, ValueError):
        _fail_early(
            run,
            f"the DATABASE_URL in Secret '{ref.name}' (key '{ref.key}') is not a valid "
            "postgresql:// URL: the engine's own database cannot be told from "
            "spec.targetDatabase, and the restore could not connect",
        )
        raise
    except enginedb.DatabaseUnavailable as exc:
        _pending(run, "DatabaseUrlUnavailable", f"cannot read the engine's database name: {exc}")
        raise
    if own and own == run.restore.spec.targetDatabase:
        _fail_early(
            run,
            f"spec.targetDatabase '{own}' is VulcanEngine '{run.engine_name}''s own database: a "
            "side restore goes into another database (to restore the engine's own, leave "
            "targetDatabase out: the engine is then scaled down first)",
        )


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
        problems = "; ".join(errors.describe(exc, VulcanEngineSpec))
        _pending(run, "EngineInvalid", f"VulcanEngine '{name}' is invalid: {problems}")
        raise
    location, checksum = await _source(run, spec)  # refusals first: they never wait
    try:
        where = BackupLocation.parse(location)
        _restore_job(run, spec, location, checksum)  # refuses what cannot be built
    except ValueError as exc:
        _fail_early(run, str(exc))
        raise
    if run.side:
        await _own_database(run, spec)
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
    if where.scheme == "pvc":
        claim = await run.api.get(Ref("v1", "PersistentVolumeClaim", run.namespace, where.root))
        if claim is None:
            _fail_early(run, f"{location}: PersistentVolumeClaim '{where.root}' not found")
    if not run.side:
        await _no_backup_running(run, "scaling it down")
    marker = await _lock(run, spec)
    database_ = run.restore.spec.targetDatabase or None
    run.status.update(
        phase="Running",
        startedAt=now(),
        location=location,
        checksum=checksum,
        **({"database": database_} if database_ else {}),
    )
    if run.side:
        run.begin(
            "Restore",
            f"restoring {location} into the database '{database_}'; VulcanEngine '{name}' keeps "
            "serving from its own",
        )
        return  # the Job is created on the next pass, with the status persisted
    before = marker["replicas"]
    run.status["replicasBefore"] = before
    run.begin("ScaleDown", f"scaling VulcanEngine '{name}' from {before} replicas to zero")


async def _no_backup_running(run: _Run, before: str) -> None:
    """Wait while a backup Job of the engine runs (scheduled or a VulcanBackup's): the restore
    would take the database and the backup volume from under it."""
    running = await running_jobs(
        run.api, run.namespace, names.selector(run.engine_name, COMPONENT_BACKUP)
    )
    if running:
        message = (
            f"waiting for the backup Job {', '.join(running)} of VulcanEngine "
            f"'{run.engine_name}' to finish before {before}"
        )
        if run.status.get("step"):
            run.progress("WaitingForBackup", message)
            raise _Wait
        _pending(run, "WaitingForBackup", message)


# --- the lock: the engine's status.restore ----------------------------------------------------
class _Conflict(Exception):
    """The engine changed since it was read (resourceVersion precondition failed)."""


LOCK_ATTEMPTS = 3
MARKER_KEYS = ("name", "uid", "step", "replicas", "message", "database")


async def _write_marker(
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
            raise _Conflict from None
        raise


def _mine(run: _Run, marker: dict[str, Any]) -> bool:
    return marker.get("name") == run.name and marker.get("uid") in (None, "", run.uid)


async def _lock(run: _Run, spec: VulcanEngineSpec) -> dict[str, Any]:
    """Take the engine's restore lock (its status.restore, written with a resourceVersion
    precondition), from no one or from a restore that has ended; else wait, saying for whom."""
    name = run.engine_name
    for _ in range(LOCK_ATTEMPTS):
        engine = await run.api.get(_engine_ref(run.namespace, name))
        if engine is None:
            _pending(run, "EngineNotFound", f"waiting for VulcanEngine '{name}': not found")
        assert engine is not None
        current = (engine.get("status") or {}).get("restore") or {}
        if (
            current
            and not _mine(run, current)
            and await _ended(run.api, run.namespace, current, takeover=True) is None
        ):
            _pending(
                run,
                "WaitingForRestore",
                f"waiting for VulcanRestore '{current.get('name')}', which holds "
                f"VulcanEngine '{name}' (one restore at a time)",
            )
        marker: dict[str, Any] = {"name": run.name, "uid": run.uid}
        if run.side:
            marker.update(step="Restore", database=run.restore.spec.targetDatabase)
        else:
            marker.update(step="ScaleDown", replicas=await _replicas_before(run, spec, current))
        if {k: current.get(k) for k in MARKER_KEYS} == {k: marker.get(k) for k in MARKER_KEYS}:
            run.engine = engine
            return marker
        try:
            run.engine = await _write_marker(run.api, engine, marker)
        except _Conflict:
            continue  # someone moved first: read again
        return marker
    _pending(run, "WaitingForRestore", f"VulcanEngine '{name}' kept changing; trying again")
    raise AssertionError("unreachable")


async def _replicas_before(run: _Run, spec: VulcanEngineSpec, current: dict[str, Any]) -> int:
    """The replicas to scale back to: a previous holder's (taking over from a restore that
    held the engine, or our own marker after a restart), else the Deployment's, else the spec's.
    """
    if current.get("replicas") is not None and not current.get("database"):
        return int(current["replicas"])
    deployment = await run.api.get(_deployment_ref(run.namespace, run.engine_name))
    if deployment is not None:
        return int((deployment.get("spec") or {}).get("replicas", 1))
    return spec.autoscaling.minReplicas if spec.autoscaling.enabled else spec.replicas


# --- the steps ------------------------------------------------------------------------------
async def _mark(run: _Run, step: str | None, message: str | None = None) -> None:
    """Move our marker to `step` (or release it, with step None). Always conditional on the
    engine's resourceVersion; a marker that is no longer ours is taken back only from a holder
    that has ended (never by one restore from another that runs)."""
    for _ in range(LOCK_ATTEMPTS):
        engine = await run.api.get(_engine_ref(run.namespace, run.engine_name))
        if engine is None:
            return
        current = (engine.get("status") or {}).get("restore") or {}
        marker: dict[str, Any] | None = None
        if step is None:
            if not current or not _mine(run, current):
                return
        else:
            if (
                current
                and not _mine(run, current)
                and await _ended(run.api, run.namespace, current, takeover=True) is None
            ):
                run.progress(
                    "WaitingForRestore",
                    f"VulcanRestore '{current.get('name')}' holds VulcanEngine '{run.engine_name}'",
                )
                raise _Wait
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
            run.engine = await _write_marker(run.api, engine, marker)
            return
        except _Conflict:
            continue
    raise _Wait  # the engine kept changing: look again next time


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


def _result_recorded(run: _Run) -> bool:
    """Whether the restore Job's result is in the status already (its step record ended)."""
    steps = run.status.get("steps") or []
    return bool(steps) and steps[-1].get("name") == "Restore" and "finishedAt" in steps[-1]


async def _restore(run: _Run) -> None:
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
            await _no_backup_running(run, "restoring")
        spec = run.engine_spec()
        location, checksum = str(run.status["location"]), str(run.status.get("checksum") or "")
        job = _restore_job(run, spec, location, checksum)
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
        counts = safe_row_counts(result.get("rowCounts"))
        found = {
            "database": safe_database(result.get("database")),
            "databaseRevision": safe_revision(result.get("databaseRevision")),
        }
        run.status.update(rowCounts=counts, **{k: v for k, v in found.items() if v})
        into = found["database"] or "?"
        run.end("Succeeded", f"restored into '{into}' ({len(counts)} tables)")
    else:
        _, message = job_failure(result, state, "restore")
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
    raise _Wait


async def _after_restore(run: _Run) -> None:
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
            raise _Wait
        if run.restore.spec.migrate:
            version = _running_version(run)
            run.begin("Migrate", f"migrating the restored database with {version}")
        else:
            _begin_scale_up(run)
        return
    failure = run.status.get("failure") or {}
    message = str(failure.get("message") or steps[-1].get("message") or "the restore failed")
    await _failed(run, message, database_changed=failure.get("databaseChanged"))


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
            await _mark(run, None)
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
