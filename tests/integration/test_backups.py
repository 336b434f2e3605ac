"""Backups on the emulator: the engine's CronJobs and volume, VulcanBackups, BackupHealthy.

Jobs end with the result line the backup program prints (see tests/support/backups.py); the emulator
puts it in the pod's termination message, where the operator reads it.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.backups import (
    BACKUPS,
    ENGINES,
    FINISHED,
    STARTED,
    backup_result,
    component_is,
    cond,
    custom,
    db_secret,
    engine,
    events_of,
    failure,
    installed,
    run_cronjob,
    status,
)
from tests.support.kopf_runner import OperatorRunner
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.jobs import build_backup_job
from vulcan_operator.builders.common import Owner
from vulcan_operator.config import Settings

LOCATION = "pvc://prod-backups/default/prod/on-demand/vulcan_20261129_020000.dump"
SCHEDULED = "pvc://prod-backups/default/prod/vulcan_20261129_020000.dump"


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


def vulcan_backup(name: str, **spec: Any) -> dict[str, Any]:
    return custom("VulcanBackup", name, **spec)


def backup_gauge() -> float | None:
    from vulcan_operator.metrics import REGISTRY

    return REGISTRY.get_sample_value(
        "vulcan_engine_backup_healthy", {"namespace": "default", "engine": "prod"}
    )


async def healthy(emulator: Emulator, state: str, reason: str) -> dict[str, Any]:
    found: dict[str, Any] = await emulator.wait_for(
        lambda: (
            (c := cond(status(emulator), "BackupHealthy"))["status"] == state
            and c["reason"] == reason
            and c
        ),
        timeout=60,
    )
    return found


async def test_cronjobs_and_the_volume_follow_the_spec(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    await installed(emulator)
    pvc = emulator.get("persistentvolumeclaims", "default", "prod-backups")
    assert pvc is not None and "ownerReferences" not in pvc["metadata"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    backup = emulator.get("cronjobs", "default", "prod-backup")
    maintenance = emulator.get("cronjobs", "default", "prod-maintenance")
    assert backup is not None and maintenance is not None
    assert backup["spec"]["schedule"] == "0 2 * * *"
    assert maintenance["spec"]["schedule"] == "0 3 * * 0"
    assert backup["spec"]["concurrencyPolicy"] == "Forbid" and backup["spec"]["suspend"] is False
    assert backup["metadata"]["ownerReferences"][0]["kind"] == "VulcanEngine"
    no_backup = await healthy(emulator, "Unknown", "NoBackupYet")
    assert "first is due at" in no_backup["message"]
    assert backup_gauge() is None  # no series before the first backup: no alert

    # A schedule change patches the CronJob in place.
    emulator.patch(ENGINES, "default", "prod", {"spec": {"backup": {"schedule": "30 1 * * *"}}})
    await emulator.wait_for(
        lambda: (
            emulator.get("cronjobs", "default", "prod-backup")["spec"]["schedule"] == "30 1 * * *"
        )
    )
    assert (
        emulator.get("cronjobs", "default", "prod-backup")["metadata"]["uid"]
        == (backup["metadata"]["uid"])
    )

    # Paused: the operator changes nothing, the CronJobs keep running as they are.
    emulator.patch(
        ENGINES,
        "default",
        "prod",
        {"spec": {"paused": True, "maintenance": {"schedule": "0 4 * * 0"}}},
    )
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Paused")
    await asyncio.sleep(1.2)
    kept = emulator.get("cronjobs", "default", "prod-maintenance")
    assert kept["spec"]["schedule"] == "0 3 * * 0" and kept["spec"]["suspend"] is False
    emulator.patch(ENGINES, "default", "prod", {"spec": {"paused": False}})
    await emulator.wait_for(
        lambda: (
            emulator.get("cronjobs", "default", "prod-maintenance")["spec"]["schedule"]
            == "0 4 * * 0"
        )
    )

    # Turned off: the CronJobs go; the volume (the backups on it) stays.
    emulator.patch(
        ENGINES,
        "default",
        "prod",
        {"spec": {"backup": {"enabled": False}, "maintenance": {"enabled": False}}},
    )
    await emulator.wait_for(
        lambda: (
            emulator.get("cronjobs", "default", "prod-backup") is None
            and emulator.get("cronjobs", "default", "prod-maintenance") is None
        )
    )
    assert emulator.get("persistentvolumeclaims", "default", "prod-backups") is not None
    await healthy(emulator, "Unknown", "BackupsDisabled")

    # Idle (once the handler's last writes are in): resyncs read, and write nothing.
    mark = await emulator.quiet()
    await asyncio.sleep(2.2)
    assert emulator.writes(since=mark, events=False) == []


async def test_a_backup_completes_and_records_its_result(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    line = backup_result(LOCATION)
    emulator.jobs.outcome_for = component_is(
        "backup", JobOutcome.succeed(message=f"2026-11-29T02:00:07Z backup: done\n{line}")
    )
    await installed(emulator)
    emulator.create(vulcan_backup("manual-1"))
    st = await emulator.wait_for(
        lambda: (
            status(emulator, BACKUPS, "manual-1")["phase"] == "Succeeded"
            and status(emulator, BACKUPS, "manual-1")
        )
    )
    assert st["location"] == LOCATION
    assert st["sizeBytes"] == 123456 and st["checksum"] == "9f" * 32
    assert st["databaseRevision"] == "4f2a9c1d7e3b"
    assert (st["startedAt"], st["finishedAt"]) == (STARTED, FINISHED)
    ready = cond(st, "Ready")
    assert ready["status"] == "True" and LOCATION in ready["message"]
    assert cond(st, "Progressing")["status"] == "False"
    job = emulator.get("jobs", "default", st["jobName"])
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("VulcanBackup", "manual-1")
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"
    await emulator.wait_for(lambda: events_of(emulator, "manual-1") == ["Started", "Succeeded"])

    # The engine shows it as its newest backup, and its backups as healthy.
    last = await emulator.wait_for(
        lambda: (
            status(emulator)["lastBackup"]["location"] == LOCATION
            and status(emulator)["lastBackup"]
        )
    )
    assert last["outcome"] == "Succeeded" and last["job"] == st["jobName"] and last["time"]
    await healthy(emulator, "True", "BackupSucceeded")
    await emulator.wait_for(lambda: backup_gauge() == 1.0)

    # A finished backup never runs again: not when its Job is gone, not after a restart.
    emulator.delete("jobs", "default", st["jobName"])
    await operator.restart()
    await asyncio.sleep(1.5)
    assert [
        j for j in emulator.list("jobs", "default") if "manual-1" in j["metadata"]["name"]
    ] == []
    assert status(emulator, BACKUPS, "manual-1") == st


async def test_a_backup_waits_for_its_engine(emulator: Emulator, operator: OperatorRunner) -> None:
    emulator.jobs.outcome_for = component_is(
        "backup", JobOutcome.succeed(message=backup_result(LOCATION))
    )
    emulator.create(vulcan_backup("early"))
    pending = await emulator.wait_for(
        lambda: (
            status(emulator, BACKUPS, "early")["phase"] == "Pending"
            and cond(status(emulator, BACKUPS, "early"), "Ready")
        )
    )
    assert pending["reason"] == "EngineNotFound" and "'prod'" in pending["message"]
    assert emulator.list("jobs", "default") == []
    await installed(emulator)
    await emulator.wait_for(
        lambda: status(emulator, BACKUPS, "early")["phase"] == "Succeeded", timeout=60
    )


async def test_a_users_job_with_the_backup_jobs_name_is_left_alone(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.jobs.outcome_for = component_is(
        "backup", JobOutcome.succeed(message=backup_result(LOCATION))
    )
    emulator.create(vulcan_backup("taken"))
    await emulator.wait_for(lambda: status(emulator, BACKUPS, "taken")["phase"] == "Pending")
    # In one go (no await: the operator cannot act in between), the engine appears and a
    # user's Job takes the name the backup's Job will have.
    emulator.create(db_secret())
    spec = VulcanEngineSpec.model_validate(emulator.create(engine())["spec"])
    uid = emulator.get(BACKUPS, "default", "taken")["metadata"]["uid"]
    owner = Owner(kind="VulcanBackup", name="taken", namespace="default", uid=uid)
    name = build_backup_job(owner, "prod", spec, Settings.from_env())[-1]["metadata"]["name"]
    theirs = emulator.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "labels": {"team": "mine"}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "mine", "image": "busybox"}],
                    }
                }
            },
        }
    )
    ready = await emulator.wait_for(
        lambda: (
            (c := cond(status(emulator, BACKUPS, "taken"), "Ready"))["reason"] == "NameConflict"
            and c
        ),
        timeout=60,
    )
    assert ready["status"] == "False"
    assert ready["message"].startswith(f"Job {name} already exists and does not belong")
    assert status(emulator, BACKUPS, "taken")["phase"] == "Pending"
    await emulator.wait_for(lambda: "NameConflict" in events_of(emulator, "taken"))
    await asyncio.sleep(1.5)  # polls go on: the Job stays theirs, the Event is not repeated
    job = emulator.get("jobs", "default", name)
    assert job["metadata"].get("ownerReferences") is None
    assert job["metadata"]["labels"] == {"team": "mine"} and job["spec"] == theirs["spec"]
    assert events_of(emulator, "taken").count("NameConflict") == 1

    # Once the name is free, the backup runs.
    emulator.delete("jobs", "default", name)
    st = await emulator.wait_for(
        lambda: (
            status(emulator, BACKUPS, "taken")["phase"] == "Succeeded"
            and status(emulator, BACKUPS, "taken")
        ),
        timeout=60,
    )
    assert st["jobName"] == name and st["location"] == LOCATION


async def test_a_failed_backup_says_which_step_failed(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    message = "pg_dump failed (exit 1): connection to server at db:5432 refused"
    emulator.jobs.outcome_for = component_is(
        "backup",
        JobOutcome.fail(message=failure("vulcan-backup", "dump", message, location=LOCATION)),
    )
    await installed(emulator)
    emulator.create(vulcan_backup("broken"))
    st = await emulator.wait_for(
        lambda: (
            status(emulator, BACKUPS, "broken")["phase"] == "Failed"
            and status(emulator, BACKUPS, "broken")
        )
    )
    ready = cond(st, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "DumpFailed"
    assert "at step 'dump'" in ready["message"] and "connection to server" in ready["message"]
    assert "location" not in st
    await emulator.wait_for(lambda: events_of(emulator, "broken")[-1] == "Failed")
    unhealthy = await healthy(emulator, "False", "DumpFailed")
    assert "connection to server" in unhealthy["message"]


async def test_scheduled_backups_set_backup_healthy(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    results = {
        "prod-backup-1": JobOutcome.succeed(message=backup_result(SCHEDULED)),
        "prod-backup-2": JobOutcome.fail(
            message=failure("vulcan-backup", "store", "cannot rename the finished dump")
        ),
        "prod-backup-3": JobOutcome.oom_killed(),
    }
    emulator.jobs.by_prefix.update(results)
    await installed(emulator)

    run_cronjob(emulator, "prod-backup", "1")
    await healthy(emulator, "True", "BackupSucceeded")
    assert status(emulator)["lastBackup"]["location"] == SCHEDULED
    await emulator.wait_for(lambda: backup_gauge() == 1.0)

    run_cronjob(emulator, "prod-backup", "2")
    failed = await healthy(emulator, "False", "StoreFailed")
    assert "cannot rename the finished dump" in failed["message"]
    last = status(emulator)["lastBackup"]
    assert (last["outcome"], last["job"], last["reason"]) == (
        "Failed",
        "prod-backup-2",
        "StoreFailed",
    )
    assert "at step 'store'" in last["message"]
    assert "location" not in last
    await emulator.wait_for(lambda: backup_gauge() == 0.0)

    # Killed without a word: the pod's termination state says why.
    run_cronjob(emulator, "prod-backup", "3")
    oom = await healthy(emulator, "False", "OOMKilled")
    assert "too much memory" in oom["message"]


async def test_stale_or_missing_backups_set_backup_healthy_false(
    emulator: Emulator, operator: OperatorRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vulcan_operator.reconcile import engine_backups as backup

    await installed(emulator)  # daily at 02:00
    await healthy(emulator, "Unknown", "NoBackupYet")

    real = backup.clock
    later = datetime.timedelta()
    monkeypatch.setattr(backup, "clock", lambda: real() + later)

    later = datetime.timedelta(days=2, hours=1)  # no backup for more than two intervals
    missing = await healthy(emulator, "False", "NoBackup")
    assert "every 1 day" in missing["message"]

    later = datetime.timedelta()
    emulator.jobs.by_prefix["prod-backup-"] = JobOutcome.succeed(message=backup_result(SCHEDULED))
    run_cronjob(emulator, "prod-backup", "1")
    await healthy(emulator, "True", "BackupSucceeded")

    later = datetime.timedelta(days=1, hours=23)  # late, but within twice the interval
    await asyncio.sleep(1.2)
    assert cond(status(emulator), "BackupHealthy")["status"] == "True"
    later = datetime.timedelta(days=2, minutes=1)
    stale = await healthy(emulator, "False", "BackupTooOld")
    assert "older than twice the interval" in stale["message"]
    assert "'0 2 * * *' (every 1 day)" in stale["message"]
    await emulator.wait_for(lambda: backup_gauge() == 0.0)

    later = datetime.timedelta()  # a new backup puts it right
    run_cronjob(emulator, "prod-backup", "2")
    await healthy(emulator, "True", "BackupSucceeded")
    assert status(emulator)["lastBackup"]["job"] == "prod-backup-2"
