"""One VulcanBackup: an on-demand or pre-upgrade backup of an engine's database.

Pending (its engine does not exist yet) → Running (its Job exists) → Succeeded | Failed. The Job
is built by `builders.backup.build_backup_job` (owned by the VulcanBackup, name hashed from its
inputs) and found again by its owner's uid, so a retry or an operator restart never makes a
second one. The result comes from the pod's termination message (`parse_backup_result`):
location, size, checksum, database revision, start and end. A backup that has finished is never
run again: its status is its record. A VulcanBackup has no say in where the dump goes:
`spec.storage` is refused (Failed, InvalidSpec naming it) even when the CRD let it in, and the
Job writes to the engine's own store only. A backup waits (WaitingForRestore) while a restore
holds the engine's database, and (Pending, NameConflict naming it, one Warning Event) while an
object that is not its own has its Job's name: that object is never touched, and the backup
starts once the name is free. The `databaseRevision` the pod reports reaches the status only
when it looks like one (`reconcile.jobs.safe_revision`).

The engine's view of all of its backups (lastBackup, BackupHealthy) is `reconcile.engine_backups`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from vulcan_operator import API_VERSION, kinds, names
from vulcan_operator.api import errors
from vulcan_operator.api.backup import STORAGE_NOT_ALLOWED, VulcanBackup
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.jobs import build_backup_job
from vulcan_operator.builders.backup.pods import with_client_image
from vulcan_operator.builders.backup.storage import plan_storage
from vulcan_operator.builders.common import Owner
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, NotOurs, Ref, apply
from vulcan_operator.names import COMPONENT_BACKUP
from vulcan_operator.reconcile.engine_database import server_version
from vulcan_operator.reconcile.jobs import (
    failure,
    owned_jobs,
    parse_backup_result,
    read_job_object,
    safe_revision,
)
from vulcan_operator.status import (
    Outcome,
    event_if_changed,
    now,
    ready_progressing,
    set_conditions,
)

__all__ = ["KIND", "TERMINAL", "reconcile"]

KIND = kinds.BACKUP.kind
ENGINE_KIND = kinds.ENGINE.kind
TERMINAL = ("Succeeded", "Failed")


def _status(
    body: dict[str, Any],
    phase: str,
    reason: str,
    message: str,
    *,
    ready: bool = False,
    progressing: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """The status of `phase`: Ready and Progressing say `reason` and `message`."""
    gen = (body.get("metadata") or {}).get("generation")
    old = body.get("status") or {}
    conditions = ready_progressing(reason, message, gen, ready=ready, progressing=progressing)
    return {
        "observedGeneration": gen,
        "phase": phase,
        **fields,
        "conditions": set_conditions(old.get("conditions"), conditions),
    }


def _pending(body: dict[str, Any], reason: str, message: str) -> Outcome:
    kind = "Normal" if reason.startswith("Waiting") else "Warning"
    return Outcome(
        _status(body, "Pending", reason, message),
        event_if_changed(body.get("status"), kind, reason, message),
    )


def _failed(body: dict[str, Any], reason: str, message: str, fields: dict[str, Any]) -> Outcome:
    return Outcome(
        _status(body, "Failed", reason, message, **fields), [("Warning", "Failed", message)]
    )


async def reconcile(api: Api, body: dict[str, Any], settings: Settings) -> Outcome:
    """Move one VulcanBackup on: create its Job, follow it, record its result."""
    meta = body.get("metadata") or {}
    name, namespace, uid = meta["name"], meta["namespace"], meta.get("uid", "")
    old = body.get("status") or {}
    if old.get("phase") in TERMINAL:
        return Outcome(dict(old))  # a finished backup is a record: never run again
    # Where the engine's database goes is the engine's to say: even when the CRD let
    # spec.storage in (an older CRD, a dropped validation rule), it is refused here.
    backup = (
        [f"spec.storage is {STORAGE_NOT_ALLOWED}"]
        if (body.get("spec") or {}).get("storage") is not None
        else errors.parse(body, VulcanBackup)
    )
    if isinstance(backup, list):
        message = "; ".join(backup)
        return Outcome(
            _status(body, "Failed", "InvalidSpec", message), [("Warning", "InvalidSpec", message)]
        )
    engine_name = backup.spec.engineRef.name
    selector = names.selector(engine_name, COMPONENT_BACKUP)
    jobs = await owned_jobs(api, namespace, selector, uid)
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
        manifests = build_backup_job(
            Owner(kind=KIND, name=name, namespace=namespace, uid=uid),
            engine_name,
            spec,
            with_client_image(settings, spec.backup, server_version(engine)),
        )
        try:
            for manifest in manifests:
                await apply(api, manifest, create_only=True)
        except NotOurs as error:  # left alone: the backup starts once the name is free
            return _pending(body, "NameConflict", str(error))
        job_name = manifests[-1]["metadata"]["name"]
        where = plan_storage(engine_name, namespace, storage, on_demand=True).location
        message = f"backing up VulcanEngine '{engine_name}' to {where} (Job {job_name})"
        return Outcome(
            _status(
                body,
                "Running",
                "Running",
                message,
                progressing=True,
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
        status = _status(
            body,
            "Running",
            "Running",
            message,
            progressing=True,
            jobName=job_name,
            startedAt=started,
        )
        return Outcome(status)
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
            "parts": result.get("parts") or None,
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
        status = _status(
            body,
            "Succeeded",
            "Succeeded",
            message,
            ready=True,
            **{k: v for k, v in fields.items() if v is not None},
        )
        return Outcome(status, [("Normal", "Succeeded", message)])
    reason, message = failure(result, run)
    return _failed(body, reason, message, {"jobName": job_name, **times})
