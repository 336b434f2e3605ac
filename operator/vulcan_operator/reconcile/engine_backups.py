"""An engine's view of all of its backups: `status.lastBackup` and the `BackupHealthy` condition.

Computed on every engine reconcile, from the Jobs labelled as the engine's backups: the CronJob's
runs and the VulcanBackups' Jobs alike. `lastBackup` is the newest finished one (it only moves
forward, so it survives the Jobs' history limits and TTLs); `BackupHealthy` is False when it
failed, or when the newest successful backup is older than twice the schedule's interval,
Unknown before the first backup (until that is overdue too) and while scheduled backups are off,
True otherwise. Scheduled results are therefore learned within one engine resync (60 s by
default), with no watch on Jobs; an idle resync reads one Job list and writes nothing.
"""

from __future__ import annotations

import datetime
import functools
import itertools
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.names import COMPONENT_BACKUP
from vulcan_operator.reconcile.jobs import (
    JobRun,
    failure,
    finished_at,
    parse_backup_result,
    read_job_object,
)
from vulcan_operator.status import condition, parse_time

__all__ = [
    "BACKUP_HEALTHY",
    "BackupView",
    "clock",
    "engine_backups",
    "human_interval",
    "schedule_interval",
]

BACKUP_HEALTHY = "BackupHealthy"

#: Fire times are counted from here when measuring a schedule's interval (a fixed start keeps
#: the interval, and so the condition's message, the same from one resync to the next).
_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_MAX_FIRES = 2000
_WINDOW = datetime.timedelta(days=35)


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
        since = parse_time(since_text)
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
    finished = parse_time(last.get("time"))
    if finished is not None and interval is not None and when - finished > 2 * interval:
        message = (
            f"the newest successful backup, of {last.get('time')}, is older than twice the "
            f"interval of the schedule {every}: is the CronJob running?"
        )
        return condition(BACKUP_HEALTHY, False, "BackupTooOld", message, gen), False
    message = f"the newest backup, of {last.get('time')}, succeeded: {last.get('location') or '?'}"
    return condition(BACKUP_HEALTHY, True, "BackupSucceeded", message, gen), True
