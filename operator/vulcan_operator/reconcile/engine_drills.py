"""An engine's restore drills (`status.lastDrill`, the `RestoreVerified` condition) and
maintenance runs (`status.lastMaintenance`).

Read on every engine reconcile from the Jobs of the drill CronJob (`spec.backup.drill`, the
drill program: the newest backup restored into a scratch database, checked, dropped), as
`engine_backups` reads the backups. `lastDrill` is the newest finished drill and only moves
forward. RestoreVerified is True when it passed and is not older than twice the schedule's
interval; False when it failed (the reason names the check: RowCountMismatch,
RevisionMismatch, RestoreFailed, NoBackup, NoRowCounts, DownloadFailed, or how the Job died)
or is too old (DrillTooOld); Unknown before the first drill. No condition at all while drills
are off and none ever ran (most engines), so nothing changes for them.

`lastMaintenance` is the newest finished run of the maintenance CronJob (VACUUM ANALYZE):
outcome, whether it vacuumed and reindexed, the database's size, or why it failed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.reconcile.engine_backups import human_interval, schedule_interval
from vulcan_operator.reconcile.jobs import (
    JobRun,
    failure,
    finished_at,
    parse_result,
    plain_text,
    read_job_object,
    safe_row_counts,
)
from vulcan_operator.status import condition, parse_time

__all__ = [
    "DRILL_REASONS",
    "RESTORE_VERIFIED",
    "DrillView",
    "engine_drills",
    "engine_maintenance",
    "newest_run",
]

RESTORE_VERIFIED = "RestoreVerified"
#: The reasons the drill program gives (anything else becomes DrillFailed).
DRILL_REASONS = frozenset(
    {
        "RestoreFailed",
        "RowCountMismatch",
        "RevisionMismatch",
        "NoBackup",
        "NoRowCounts",
        "ScratchDatabaseTaken",
        "DownloadFailed",
    }
)


@dataclass
class DrillView:
    """What an engine's status says about its drills."""

    last: dict[str, Any] | None  # status.lastDrill
    condition: dict[str, Any] | None  # RestoreVerified (None: drills off, none ever ran)
    verified: bool | None  # for the metric: None while Unknown or off


def _last_drill(job: dict[str, Any], run: JobRun) -> dict[str, Any]:
    found = parse_result(run.termination, "vulcan-drill") or {}
    last: dict[str, Any] = {
        "time": run.finished_at or finished_at(job),
        "job": job["metadata"]["name"],
        "backup": plain_text(found.get("backup"), 300) if found.get("backup") else None,
    }
    duration = found.get("durationSeconds")
    if isinstance(duration, int) and not isinstance(duration, bool) and duration >= 0:
        last["durationSeconds"] = duration
    if run.state == "Succeeded" and found.get("outcome") == "Succeeded":
        last.update(outcome="Succeeded", rowCounts=safe_row_counts(found.get("rowCounts")))
    elif found.get("outcome") == "Failed":
        reason = str(found.get("reason") or "")
        last.update(
            outcome="Failed",
            reason=reason if reason in DRILL_REASONS else "DrillFailed",
            message=plain_text(found.get("message") or "no message"),
        )
    else:
        reason, message = failure({}, run, "drill")
        last.update(outcome="Failed", reason=reason, message=message)
    return {k: v for k, v in last.items() if v is not None}


async def newest_run(
    api: Api, namespace: str, engine: str, component: str, last: dict[str, Any] | None
) -> tuple[dict[str, Any], JobRun] | None:
    """The newest finished Job of the engine's `component` and its run, when it is newer than
    the one `last` (a status record with `job` and `time`) describes; else None."""
    jobs = await api.list(Ref("batch/v1", "Job", namespace), names.selector(engine, component))
    done = [(finished_at(j) or "", j["metadata"]["name"], j) for j in jobs if finished_at(j)]
    if not done:
        return None
    time, job_name, job = max(done, key=lambda d: (d[0], d[1]))
    if last is not None and (job_name == last.get("job") or time < (last.get("time") or "")):
        return None
    return job, await read_job_object(api, job)


def _last_maintenance(job: dict[str, Any], run: JobRun) -> dict[str, Any]:
    found = parse_result(run.termination, "vulcan-maintenance") or {}
    last: dict[str, Any] = {
        "time": run.finished_at or finished_at(job),
        "job": job["metadata"]["name"],
    }
    if run.state == "Succeeded" and found.get("outcome") == "Succeeded":
        size = found.get("databaseBytes")
        last.update(
            outcome="Succeeded",
            vacuumed=found.get("vacuumed") is True,
            reindexed=found.get("reindexed") is True,
            databaseBytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        )
    else:
        reason, message = failure(found, run, "maintenance")
        last.update(outcome="Failed", reason=reason, message=message)
    return {k: v for k, v in last.items() if v is not None}


async def engine_maintenance(
    api: Api, namespace: str, engine: str, spec: VulcanEngineSpec, status: dict[str, Any]
) -> dict[str, Any] | None:
    """status.lastMaintenance: the newest finished maintenance run (one Job list per resync
    while maintenance is on; kept as it was while it is off)."""
    last = dict(status.get("lastMaintenance") or {}) or None
    if not spec.maintenance.enabled:
        return last
    found = await newest_run(api, namespace, engine, names.COMPONENT_MAINTENANCE, last)
    return _last_maintenance(*found) if found else last


async def engine_drills(
    api: Api,
    namespace: str,
    engine: str,
    spec: VulcanEngineSpec,
    status: dict[str, Any],
    generation: int | None,
    when: datetime.datetime,
) -> DrillView:
    """The engine's lastDrill and RestoreVerified, from the Jobs of its drills (one Job list
    per resync while drills are on; a pod read only for a newly finished Job)."""
    drill = spec.backup.drill
    last = dict(status.get("lastDrill") or {}) or None
    if not drill.enabled:
        if last is None:
            return DrillView(None, None, None)
        message = "restore drills are off (spec.backup.drill.enabled is false)"
        return DrillView(
            last, condition(RESTORE_VERIFIED, None, "DrillsDisabled", message, generation), None
        )
    found = await newest_run(api, namespace, engine, names.COMPONENT_DRILL, last)
    if found:
        last = _last_drill(*found)
    gen = generation
    if last is None:
        message = f"no restore drill has run yet (schedule '{drill.schedule}')"
        return DrillView(None, condition(RESTORE_VERIFIED, None, "NoDrillYet", message, gen), None)
    if last.get("outcome") != "Succeeded":
        message = (
            f"the newest restore drill (Job {last.get('job')}, {last.get('time')}) failed: "
            f"{last.get('message') or 'no reason given'}"
        )
        reason = str(last.get("reason") or "DrillFailed")
        return DrillView(last, condition(RESTORE_VERIFIED, False, reason, message, gen), False)
    interval = schedule_interval(drill.schedule)
    finished = parse_time(last.get("time"))
    if finished is not None and interval is not None and when - finished > 2 * interval:
        message = (
            f"the newest good restore drill, of {last.get('time')}, is older than twice the "
            f"interval of the schedule '{drill.schedule}' (every {human_interval(interval)}): "
            "is the drill CronJob running?"
        )
        return DrillView(
            last, condition(RESTORE_VERIFIED, False, "DrillTooOld", message, gen), False
        )
    tables = len(last.get("rowCounts") or {})
    message = (
        f"{last.get('backup') or 'the newest backup'} restored on {last.get('time')} in "
        f"{last.get('durationSeconds', '?')} s: {tables} tables and the alembic revision as "
        "the backup recorded them"
    )
    return DrillView(last, condition(RESTORE_VERIFIED, True, "DrillSucceeded", message, gen), True)
