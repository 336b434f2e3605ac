"""Backups: one VulcanBackup (an on-demand or pre-upgrade backup), and an engine's view of all
of its backups (`status.lastBackup`, the `BackupHealthy` condition).

VulcanBackup: Pending (its engine does not exist yet) → Running (its Job exists) →
Succeeded | Failed. The Job is built by `builders.backup.jobs.build_backup_job` (owned by the
VulcanBackup, name hashed from its inputs) and found again by its owner's uid, so a retry or an
operator restart never makes a second one. The result comes from the pod's termination message
(`parse_backup_result`): location, size, checksum, database revision, start and end. A backup
that has finished is never run again: its status is its record. A VulcanBackup has no say in
where the dump goes: `spec.storage` is refused (Failed, InvalidSpec naming it) even when the CRD
let it in, and the Job writes to the engine's own store only. A backup waits
(WaitingForRestore) while a restore holds the engine's database; the `databaseRevision` the pod
reports reaches the status only when it looks like one (`reconcile.jobs.safe_revision`).

The engine's view is computed on every engine reconcile, from the Jobs labelled as the engine's
backups: the CronJob's runs and the VulcanBackups' Jobs alike. `lastBackup` is the newest
finished one (it only moves forward, so it survives the Jobs' history limits and TTLs);
`BackupHealthy` is False when it failed, or when the newest successful backup is older than twice
the schedule's interval, Unknown before the first backup (until that is overdue too) and while
scheduled backups are off, True otherwise. Scheduled results are therefore learned within one
engine resync (60 s by default), with no watch on Jobs; an idle resync reads one Job list and
writes nothing.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import re
from dataclasses import dataclass
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from vulcan_operator import API_VERSION, kinds, names
from vulcan_operator.api import errors
from vulcan_operator.api.backup import STORAGE_NOT_ALLOWED, VulcanBackup
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.jobs import build_vulcan_backup_job
from vulcan_operator.builders.backup.storage import plan_storage
from vulcan_operator.builders.common import Owner
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, Ref, apply
from vulcan_operator.names import COMPONENT_BACKUP
from vulcan_operator.reconcile.jobs import (
    JobRun,
    finished_at,
    owned_jobs,
    parse_backup_result,
    plain_text,
    read_job_object,
    safe_revision,
)
from vulcan_operator.status import Outcome, condition, get_condition, now, set_conditions

__all__ = [
    "BACKUP_HEALTHY",
    "KIND",
    "TERMINAL",
    "BackupView",
    "clock",
    "engine_backups",
    "failure",
    "human_interval",
    "reconcile",
    "schedule_interval",
]

KIND = kinds.BACKUP.kind
ENGINE_KIND = kinds.ENGINE.kind
TERMINAL = ("Succeeded", "Failed")
BACKUP_HEALTHY = "BackupHealthy"

#: Fire times are counted from here when measuring a schedule's interval (a fixed start keeps
#: the interval, and so the condition's message, the same from one resync to the next).
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_MAX_FIRES = 2000
_WINDOW = datetime.timedelta(days=35)


# --- results in plain words ---------------------------------------------------------------
#: A program's step name (it becomes part of a condition reason).
STEP = re.compile(r"[a-z][a-z_-]{0,40}")


def _camel(step: str) -> str:
    return "".join(part.capitalize() for part in step.replace("_", "-").split("-") if part)


def failure(result: dict[str, Any], run: JobRun, what: str = "backup") -> tuple[str, str]:
    """(reason, message) of a failed backup or restore Job: which step failed and why, from
    the program's result line, else from the Job and its pod (OOM, deadline, eviction...)."""
    if result.get("outcome") == "Failed":
        step = str(result.get("step") or "?")
        step = step if STEP.fullmatch(step) else "?"
        said = plain_text(result.get("message") or "no message")
        message = f"the {what} failed at step '{step}': {said}"
        if result.get("exitCode") is not None:
            message += f" (exit code {result['exitCode']})"
        return f"{_camel(step)}Failed" if step != "?" else f"{_camel(what)}Failed", message
    if run.reason == "OOMKilled":
        return "OOMKilled", (
            f"the {what} was killed for using too much memory (OOMKilled) before it reported "
            "a result"
        )
    detail = plain_text(run.message or "no reason given")
    if "deadline" in detail.lower():
        return "DeadlineExceeded", f"the {what} ran out of time ({detail})"
    return f"{_camel(what)}Failed", f"the {what} Job failed without reporting a result: {detail}"


# --- VulcanBackup -------------------------------------------------------------------------
def _parse(body: dict[str, Any]) -> VulcanBackup | list[str]:
    """The VulcanBackup as a typed model, or the list of problems with its spec."""
    return errors.parse(body, VulcanBackup)


def _status(
    body: dict[str, Any], phase: str, *conds: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    gen = (body.get("metadata") or {}).get("generation")
    old = body.get("status") or {}
    return {
        "observedGeneration": gen,
        "phase": phase,
        **fields,
        "conditions": set_conditions(old.get("conditions"), list(conds)),
    }


def _pending(body: dict[str, Any], reason: str, message: str) -> Outcome:
    gen = (body.get("metadata") or {}).get("generation")
    old = get_condition(body.get("status"), "Ready") or {}
    news = old.get("reason") != reason or old.get("message") != message
    return Outcome(
        _status(
            body,
            "Pending",
            condition("Ready", False, reason, message, gen),
            condition("Progressing", False, reason, message, gen),
        ),
        [("Normal" if reason.startswith("Waiting") else "Warning", reason, message)]
        if news
        else [],
    )


async def reconcile(api: Api, body: dict[str, Any], settings: Settings) -> Outcome:
    """Move one VulcanBackup on: create its Job, follow it, record its result."""
    meta = body.get("metadata") or {}
    name, namespace, uid, gen = (
        meta["name"],
        meta["namespace"],
        meta.get("uid", ""),
        meta.get("generation"),
    )
    old = body.get("status") or {}
    if old.get("phase") in TERMINAL:
        return Outcome(dict(old))  # a finished backup is a record: never run again
    # Where the engine's database goes is the engine's to say: even when the CRD let
    # spec.storage in (an older CRD, a dropped validation rule), it is refused here.
    backup = (
        [f"spec.storage is {STORAGE_NOT_ALLOWED}"]
        if (body.get("spec") or {}).get("storage") is not None
        else _parse(body)
    )
    if isinstance(backup, list):
        message = "; ".join(backup)
        return Outcome(
            _status(
                body,
                "Failed",
                condition("Ready", False, "InvalidSpec", message, gen),
                condition("Progressing", False, "InvalidSpec", message, gen),
            ),
            [("Warning", "InvalidSpec", message)],
        )
    engine_name = backup.spec.engineRef.name
    selector = names.selector(engine_name, COMPONENT_BACKUP)
    jobs = await owned_jobs(api, namespace, selector, uid)
    events: list[tuple[str, str, str]] = []
    if not jobs:
        if old.get("jobName"):
            message = f"the backup Job {old['jobName']} disappeared before it reported a result"
            return _failed(body, "JobMissing", message, {})
        engine = await api.get(Ref(API_VERSION, ENGINE_KIND, namespace, engine_name))
        if engine is None:
            return _pending(
                body,
                "EngineNotFound",
                f"waiting for VulcanEngine '{engine_name}': not found in namespace '{namespace}'",
            )
        try:
            spec = VulcanEngineSpec.model_validate(engine.get("spec") or {})
        except ValidationError as exc:
            problems = "; ".join(errors.describe(exc, VulcanEngineSpec))
            return _pending(
                body, "EngineInvalid", f"VulcanEngine '{engine_name}' is invalid: {problems}"
            )
        held = (engine.get("status") or {}).get("restore") or {}
        if held and not held.get("database"):  # a side restore leaves the database alone
            return _pending(
                body,
                "WaitingForRestore",
                f"waiting for VulcanRestore '{held.get('name')}', which is restoring the "
                f"database of VulcanEngine '{engine_name}'",
            )
        storage = spec.backup.storage  # the engine's: a VulcanBackup has none of its own
        manifests = build_vulcan_backup_job(
            Owner(kind=KIND, name=name, namespace=namespace, uid=uid),
            engine_name,
            spec,
            settings,
        )
        for manifest in manifests:
            await apply(api, manifest, create_only=True)
        job_name = manifests[-1]["metadata"]["name"]
        where = plan_storage(engine_name, namespace, storage, on_demand=True).location
        message = f"backing up VulcanEngine '{engine_name}' to {where} (Job {job_name})"
        return Outcome(
            _status(
                body,
                "Running",
                condition("Ready", False, "Running", message, gen),
                condition("Progressing", True, "Running", message, gen),
                jobName=job_name,
                startedAt=now(),
            ),
            [("Normal", "Started", message)],
        )

    job = jobs[-1]
    job_name = job["metadata"]["name"]
    run = await read_job_object(api, job)
    started = old.get("startedAt") or run.started_at or now()
    if run.state == "Running":
        message = f"backup Job {job_name} is running"
        if run.message:
            message += f"; waiting: {run.message}"
        return Outcome(
            _status(
                body,
                "Running",
                condition("Ready", False, "Running", message, gen),
                condition("Progressing", True, "Running", message, gen),
                jobName=job_name,
                startedAt=started,
            ),
            events,
        )
    result = parse_backup_result(run.termination)
    times = {
        "startedAt": result.get("startedAt") or started,
        "finishedAt": result.get("finishedAt") or run.finished_at or now(),
    }
    if run.state == "Succeeded":
        fields = {
            "jobName": job_name,
            "location": result.get("location"),
            "sizeBytes": result.get("sizeBytes"),
            "checksum": result.get("checksum"),
            "databaseRevision": safe_revision(result.get("databaseRevision")),
            **times,
        }
        if result.get("location"):
            message = f"backed up to {result['location']}"
            if result.get("sizeBytes") is not None:
                message += f" ({result['sizeBytes']} bytes, sha256 {result.get('checksum')})"
        else:
            message = (
                f"the backup Job {job_name} succeeded but reported no result (location unknown)"
            )
        return Outcome(
            _status(
                body,
                "Succeeded",
                condition("Ready", True, "Succeeded", message, gen),
                condition("Progressing", False, "Succeeded", message, gen),
                **{k: v for k, v in fields.items() if v is not None},
            ),
            [("Normal", "Succeeded", message)],
        )
    reason, message = failure(result, run)
    return _failed(body, reason, message, {"jobName": job_name, **times})


def _failed(body: dict[str, Any], reason: str, message: str, fields: dict[str, Any]) -> Outcome:
    gen = (body.get("metadata") or {}).get("generation")
    return Outcome(
        _status(
            body,
            "Failed",
            condition("Ready", False, reason, message, gen),
            condition("Progressing", False, reason, message, gen),
            **fields,
        ),
        [("Warning", "Failed", message)],
    )


# --- the engine's view --------------------------------------------------------------------
def clock() -> datetime.datetime:
    """Now (UTC); the one place the engine's backup view reads the time."""
    return datetime.datetime.now(datetime.UTC)


@functools.cache
def schedule_interval(schedule: str) -> datetime.timedelta | None:
    """The longest gap between two runs of a cron schedule (UTC, as the CronJob runs it), or
    None when it cannot be worked out. Irregular schedules (weekdays only) give their longest
    gap, so a weekend is not taken for an overdue backup."""
    try:
        fires: list[datetime.datetime] = [croniter(schedule, _EPOCH).get_next(datetime.datetime)]
        it = croniter(schedule, fires[0])
        while len(fires) < _MAX_FIRES:
            fires.append(it.get_next(datetime.datetime))
            if len(fires) >= 3 and fires[-1] - _EPOCH >= _WINDOW:
                break
    except Exception:  # croniter raises several kinds for schedules that never fire
        return None
    return max(b - a for a, b in itertools.pairwise(fires))


def human_interval(delta: datetime.timedelta) -> str:
    """'1 day', '7 days', '12 hours', '30 minutes', '90 seconds'."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class BackupView:
    """What an engine's status says about its backups."""

    last: dict[str, Any] | None  # status.lastBackup
    condition: dict[str, Any]  # BackupHealthy
    healthy: bool | None  # for the metric: None while Unknown


def _last_backup(job: dict[str, Any], run: JobRun) -> dict[str, Any]:
    result = parse_backup_result(run.termination)
    last: dict[str, Any] = {
        "time": run.finished_at or finished_at(job),
        "job": job["metadata"]["name"],
    }
    if run.state == "Succeeded":
        last.update(outcome="Succeeded", location=result.get("location"))
    else:
        reason, message = failure(result, run)
        last.update(outcome="Failed", reason=reason, message=message)
    return {k: v for k, v in last.items() if v is not None}


async def engine_backups(
    api: Api,
    namespace: str,
    engine: str,
    spec: VulcanEngineSpec,
    status: dict[str, Any],
    generation: int | None,
    *,
    created: str | None = None,
    when: datetime.datetime | None = None,
) -> BackupView:
    """The engine's lastBackup and BackupHealthy, from the Jobs of its backups.

    Reads the Job list; reads a pod only for a newly finished Job; reads the backup CronJob
    only before the first backup (when scheduled backups began). `created` is the engine's
    creationTimestamp (a fallback for that); `when` is now.
    """
    when = when or clock()
    jobs = await api.list(
        Ref("batch/v1", "Job", namespace), names.selector(engine, COMPONENT_BACKUP)
    )
    last = dict(status.get("lastBackup") or {}) or None
    done = [(finished_at(j) or "", j["metadata"]["name"], j) for j in jobs if finished_at(j)]
    if done:
        time, job_name, job = max(done, key=lambda d: (d[0], d[1]))
        if last is None or (job_name != last.get("job") and time >= (last.get("time") or "")):
            last = _last_backup(job, await read_job_object(api, job))
    return BackupView(
        last, *await _health(api, namespace, engine, spec, last, generation, created, when)
    )


async def _health(
    api: Api,
    namespace: str,
    engine: str,
    spec: VulcanEngineSpec,
    last: dict[str, Any] | None,
    gen: int | None,
    created: str | None,
    when: datetime.datetime,
) -> tuple[dict[str, Any], bool | None]:
    backup = spec.backup
    if not backup.enabled:
        message = "scheduled backups are off (spec.backup.enabled is false)"
        return condition(BACKUP_HEALTHY, None, "BackupsDisabled", message, gen), None
    interval = schedule_interval(backup.schedule)
    every = f"'{backup.schedule}' (every {human_interval(interval)})" if interval else "schedule"
    if last is None:
        cronjob = await api.get(Ref("batch/v1", "CronJob", namespace, names.backup_cronjob(engine)))
        since_text = (cronjob or {}).get("metadata", {}).get("creationTimestamp") or created
        since = _time(since_text)
        if since is not None and interval is not None and when - since > 2 * interval:
            message = (
                f"no backup has finished since scheduled backups began at {since_text}, "
                f"although the schedule {every} should have run by now: is the CronJob "
                "running (suspended, failing to start)?"
            )
            return condition(BACKUP_HEALTHY, False, "NoBackup", message, gen), False
        due = ""
        if since is not None:
            first = croniter(backup.schedule, since).get_next(datetime.datetime)
            due = f"; the first is due at {first.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        message = f"no backup has run yet{due}"
        return condition(BACKUP_HEALTHY, None, "NoBackupYet", message, gen), None
    if last.get("outcome") != "Succeeded":
        reason = last.get("reason") or "BackupFailed"
        message = (
            f"the newest backup (Job {last.get('job')}, {last.get('time')}) failed: "
            f"{last.get('message') or 'no reason given'}"
        )
        return condition(BACKUP_HEALTHY, False, reason, message, gen), False
    finished = _time(last.get("time"))
    if finished is not None and interval is not None and when - finished > 2 * interval:
        message = (
            f"the newest successful backup, of {last.get('time')}, is older than twice the "
            f"interval of the schedule {every}: is the CronJob running?"
        )
        return condition(BACKUP_HEALTHY, False, "BackupTooOld", message, gen), False
    message = f"the newest backup, of {last.get('time')}, succeeded: {last.get('location') or '?'}"
    return condition(BACKUP_HEALTHY, True, "BackupSucceeded", message, gen), True
