"""The start of a restore: one reconcile's context, and what must hold before anything is touched.

Pending until all hold; refusals first, they never wait (phase Failed, step Prepare):
- the source is the engine's own: backupRef names a VulcanBackup of the same engine that
  Succeeded, with its recorded location and checksum; or spec.location, a backup file of the
  engine's store, with spec.checksum (`builders.backup.restore_source_problem`);
- a side restore (spec.targetDatabase) does not name the engine's own database (read from its
  DATABASE_URL Secret; the restore program refuses it too);
- the engine exists, has been reconciled once, is valid and not paused;
- no upgrade is in flight (UpgradeInProgress: an upgrade ends by itself within its deadline, and
  a restore meanwhile would race its migrations; the upgrade's own restore, `rollbackStrategy:
  restore`, is exempt);
- no backup Job of the engine is running (WaitingForBackup);
- the lock: the engine's status.restore (`reconcile.engine_hold`), taken from no one or from a
  holder that has ended; otherwise WaitingForRestore, naming the holder.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pydantic import ValidationError

from vulcan_operator import API_VERSION, enginedb, kinds, names
from vulcan_operator.api import errors
from vulcan_operator.api.backup import CHECKSUM_REQUIRED, VulcanRestore
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.jobs import build_restore_job
from vulcan_operator.builders.backup.pods import with_client_image
from vulcan_operator.builders.backup.storage import BackupLocation, restore_source_problem
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.volumes import app_volumes
from vulcan_operator.checks import backup_of_another_engine
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, NotOurs, Ref
from vulcan_operator.names import COMPONENT_BACKUP
from vulcan_operator.reconcile import upgrade
from vulcan_operator.reconcile.engine_database import server_version
from vulcan_operator.reconcile.engine_hold import (
    LOCK_ATTEMPTS,
    MARKER_KEYS,
    Conflict,
    deployment_ref,
    engine_ref,
    holder_ended,
    write_marker,
)
from vulcan_operator.reconcile.jobs import running_jobs, safe_parts
from vulcan_operator.status import (
    Outcome,
    event_if_changed,
    now,
    parse_time,
    ready_progressing,
    set_conditions,
)

__all__ = ["KIND", "Run", "Wait", "database_name", "mine", "no_backup_running", "start"]

KIND = kinds.RESTORE.kind
BACKUP_KIND = kinds.BACKUP.kind
CHECKSUM = re.compile(r"^[0-9a-f]{64}$")


class Wait(Exception):
    """Stop here for now; the status so far is kept."""


@dataclass
class Run:
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
        self.conditions = ready_progressing(reason, message, self.gen, progressing=True)

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
        return parse_time(str(text) if text else None)

    def outcome(self) -> Outcome:
        old = self.body.get("status") or {}
        status = {
            **self.status,
            "observedGeneration": self.gen,
            "conditions": set_conditions(old.get("conditions"), self.conditions),
        }
        return Outcome(status, self.events)


def pending(run: Run, reason: str, message: str) -> NoReturn:
    """Wait before anything is touched, saying why (an Event only when the reason is new)."""
    run.events += event_if_changed(run.body.get("status"), "Normal", reason, message)
    run.status["phase"] = "Pending"
    run.conditions = ready_progressing(reason, message, run.gen)
    raise Wait


def name_conflict(run: Run, error: NotOurs) -> NoReturn:
    """Wait at this step: the name of a Job it makes is taken by an object that is not ours,
    which is left alone (Ready=False, NameConflict naming it; one Warning Event). The step goes
    on once the name is free."""
    message = f"{error}; the restore waits until then"
    run.events += event_if_changed(run.body.get("status"), "Warning", "NameConflict", message)
    run.status.setdefault("phase", "Pending")
    run.conditions = ready_progressing("NameConflict", message, run.gen)
    raise Wait


def taken(run: Run, desired: dict[str, Any], current: dict[str, Any] | None) -> None:
    """`name_conflict` when `current` (the object now at `desired`'s name) is not ours."""
    owners = (current or {}).get("metadata", {}).get("ownerReferences") or []
    if current is not None and not any(o.get("uid") == run.uid for o in owners):
        name_conflict(run, NotOurs(desired))


def fail_early(run: Run, message: str) -> NoReturn:
    """Fail before anything was touched."""
    run.status.update(
        phase="Failed",
        step="Prepare",
        finishedAt=now(),
        failure={"step": "Prepare", "message": message, "databaseChanged": False},
    )
    run.events.append(("Warning", "Failed", message))
    run.conditions = ready_progressing("PrepareFailed", message, run.gen)
    raise Wait


async def start(run: Run) -> None:
    """Check everything, take the lock, and begin the first step (ScaleDown; Restore for a
    side restore); or wait (Pending) or refuse (Failed), saying why."""
    engine, name = run.engine, run.engine_name
    if engine is None:
        pending(
            run,
            "EngineNotFound",
            f"waiting for VulcanEngine '{name}': not found in namespace '{run.namespace}'",
        )
    try:
        spec = run.engine_spec()
    except ValidationError as exc:
        problems = "; ".join(errors.describe(exc, VulcanEngineSpec))
        pending(run, "EngineInvalid", f"VulcanEngine '{name}' is invalid: {problems}")
    location, checksum, parts = await _source(run, spec)  # refusals first: they never wait
    try:
        where = BackupLocation.parse(location)
        restore_job(run, spec, location, checksum, parts)  # refuses what cannot be built
    except ValueError as exc:
        fail_early(run, str(exc))
    if run.side:
        await _own_database(run, spec)
    estatus = engine.get("status") or {}
    if estatus.get("observedGeneration") is None:
        pending(run, "EngineNotReconciled", f"waiting for VulcanEngine '{name}' to be set up")
    if spec.paused:
        pending(run, "EnginePaused", f"VulcanEngine '{name}' is paused (spec.paused)")
    up = estatus.get("upgrade") or {}
    if up and up.get("step") not in upgrade.TERMINAL and up.get("restore") != run.name:
        pending(
            run,
            "UpgradeInProgress",
            f"waiting for the upgrade of VulcanEngine '{name}' to {up.get('to')} to end "
            f"(step {up.get('step')}): a restore meanwhile would race its migrations",
        )
    if where.scheme == "pvc":
        claim = await run.api.get(Ref("v1", "PersistentVolumeClaim", run.namespace, where.root))
        if claim is None:
            fail_early(run, f"{location}: PersistentVolumeClaim '{where.root}' not found")
    # A Job of ours whose name is taken: wait before the engine is scaled down for nothing.
    job = restore_job(run, spec, location, checksum, parts)
    taken(run, job, await run.api.get(Ref.of(job)))
    if not run.side:
        await no_backup_running(run, "scaling it down")
    marker = await _lock(run, spec)
    database_ = run.restore.spec.targetDatabase or None
    run.status.update(
        phase="Running",
        startedAt=now(),
        location=location,
        checksum=checksum,
        **({"database": database_} if database_ else {}),
        **({"parts": parts} if parts else {}),
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


async def _source(run: Run, spec: VulcanEngineSpec) -> tuple[str, str, dict[str, dict[str, Any]]]:
    """(location, expected checksum, volume parts) of the backup to restore: a file of this
    engine's own store, with a checksum the operator recorded (backupRef) or the spec gives
    (location). The parts (data, uploads) come only with a backupRef, whose status recorded
    their checksums; a side restore takes none (the live files stay)."""
    storage, name = spec.backup.storage, run.engine_name
    ref, given = run.restore.spec.backupRef, run.restore.spec.checksum
    if ref is None:
        location = run.restore.spec.location
        if not CHECKSUM.fullmatch(given):
            fail_early(run, f"spec.checksum is {CHECKSUM_REQUIRED}")
        problem = restore_source_problem(name, run.namespace, storage, location)
        if problem:
            fail_early(run, problem)
        return location, given, {}
    backup = await run.api.get(Ref(API_VERSION, BACKUP_KIND, run.namespace, ref.name))
    if backup is None:
        pending(run, "BackupNotFound", f"waiting for VulcanBackup '{ref.name}': not found")
    foreign = backup_of_another_engine(ref.name, backup, name)
    if foreign:
        fail_early(run, foreign)
    status = backup.get("status") or {}
    if status.get("phase") == "Failed":
        fail_early(
            run, f"spec.backupRef: VulcanBackup '{ref.name}' failed: there is nothing to restore"
        )
    if status.get("phase") != "Succeeded":
        pending(
            run,
            "BackupNotReady",
            f"waiting for VulcanBackup '{ref.name}' to succeed "
            f"(it is {status.get('phase') or 'Pending'})",
        )
    checksum, location = str(status.get("checksum") or ""), str(status.get("location") or "")
    if not CHECKSUM.fullmatch(checksum) or not location:
        fail_early(
            run,
            f"spec.backupRef: VulcanBackup '{ref.name}' recorded no location and sha256 "
            "checksum: there is nothing to check the file against",
        )
    if given and given != checksum:
        fail_early(
            run,
            f"spec.checksum does not match the sha256 VulcanBackup '{ref.name}' recorded "
            "(status.checksum); leave it out, or give the same",
        )
    problem = restore_source_problem(name, run.namespace, storage, location)
    if problem:
        fail_early(
            run,
            f"spec.backupRef: VulcanBackup '{ref.name}' is not in VulcanEngine '{name}''s "
            f"backup storage: {problem}",
        )
    recorded = safe_parts(status.get("parts"))
    volumes = {v.part for v in app_volumes(name, spec)}
    parts = {} if run.side else {k: v for k, v in recorded.items() if k in volumes}
    return location, checksum, parts


def restore_job(
    run: Run,
    spec: VulcanEngineSpec,
    location: str,
    checksum: str,
    parts: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The restore Job of this VulcanRestore (ValueError for what cannot be built); `parts`:
    the volumes it puts back too (see `_source`)."""
    (job,) = build_restore_job(
        Owner(kind=KIND, name=run.name, namespace=run.namespace, uid=run.uid),
        run.engine_name,
        spec,
        with_client_image(run.settings, spec.backup, server_version(run.engine)),
        location=location,
        checksum=checksum,
        target_database=run.restore.spec.targetDatabase,
        parts=parts,
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


async def _own_database(run: Run, spec: VulcanEngineSpec) -> None:
    """Refuse a side restore into the engine's own database (it would replace the data under
    a serving engine). The name comes from the engine's DATABASE_URL Secret."""
    ref = spec.database_url_ref(run.engine_name)
    try:
        url = await enginedb.database_url(run.api, run.namespace, ref)
        enginedb.asyncpg_url(url)  # the same check as everywhere the operator reads it
        own = database_name(url)
    except (enginedb.InvalidDatabaseURL, ValueError):
        fail_early(
            run,
            f"the DATABASE_URL in Secret '{ref.name}' (key '{ref.key}') is not a valid "
            "postgresql:// URL: the engine's own database cannot be told from "
            "spec.targetDatabase, and the restore could not connect",
        )
    except enginedb.DatabaseUnavailable as exc:
        pending(run, "DatabaseUrlUnavailable", f"cannot read the engine's database name: {exc}")
    if own and own == run.restore.spec.targetDatabase:
        fail_early(
            run,
            f"spec.targetDatabase '{own}' is VulcanEngine '{run.engine_name}''s own database: a "
            "side restore goes into another database (to restore the engine's own, leave "
            "targetDatabase out: the engine is then scaled down first)",
        )


async def no_backup_running(run: Run, before: str) -> None:
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
            raise Wait
        pending(run, "WaitingForBackup", message)


def mine(run: Run, marker: dict[str, Any]) -> bool:
    """Whether the engine's restore marker is this VulcanRestore's."""
    return marker.get("name") == run.name and marker.get("uid") in (None, "", run.uid)


async def _lock(run: Run, spec: VulcanEngineSpec) -> dict[str, Any]:
    """Take the engine's restore lock (its status.restore, written with a resourceVersion
    precondition), from no one or from a restore that has ended; else wait, saying for whom."""
    name = run.engine_name
    for _ in range(LOCK_ATTEMPTS):
        engine = await run.api.get(engine_ref(run.namespace, name))
        if engine is None:
            pending(run, "EngineNotFound", f"waiting for VulcanEngine '{name}': not found")
        current = (engine.get("status") or {}).get("restore") or {}
        if (
            current
            and not mine(run, current)
            and await holder_ended(run.api, run.namespace, current, takeover=True) is None
        ):
            pending(
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
            run.engine = await write_marker(run.api, engine, marker)
        except Conflict:
            continue  # someone moved first: read again
        return marker
    pending(run, "WaitingForRestore", f"VulcanEngine '{name}' kept changing; trying again")


async def _replicas_before(run: Run, spec: VulcanEngineSpec, current: dict[str, Any]) -> int:
    """The replicas to scale back to: a previous holder's (taking over from a restore that
    held the engine, or our own marker after a restart), else the Deployment's, else the spec's.
    """
    if current.get("replicas") is not None and not current.get("database"):
        return int(current["replicas"])
    deployment = await run.api.get(deployment_ref(run.namespace, run.engine_name))
    if deployment is not None:
        return int((deployment.get("spec") or {}).get("replicas", 1))
    return spec.autoscaling.minReplicas if spec.autoscaling.enabled else spec.replicas
