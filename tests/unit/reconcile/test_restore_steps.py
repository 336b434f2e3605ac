"""Every transition of the restore step machine (`reconcile.restore`, `reconcile.restore_start`)
and of what it asks of the engine (`reconcile.engine_hold`), pure: an in-memory Api, with the
Jobs', pods' and Deployment's status set by the test."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.fake_api import FakeApi
from vulcan_operator import API_VERSION, names
from vulcan_operator.api.backup import VulcanRestore
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.migration import restore_migration_job
from vulcan_operator.config import Settings
from vulcan_operator.reconcile import engine_hold, restore, restore_start
from vulcan_operator.status import Outcome

ENGINE, NAMESPACE, RESTORE = "prod", "vulcan", "again"
CHECKSUM = "a" * 64
CLAIM = names.backup_pvc(ENGINE)
LOCATION = f"pvc://{CLAIM}/{NAMESPACE}/{ENGINE}/on-demand/vulcan_20260101_020000.dump"


def engine_object(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VulcanEngine",
        "metadata": {"name": ENGINE, "namespace": NAMESPACE, "generation": 1},
        "spec": {"version": "2.0.0", "image": "vulcan-engine", **spec},
        "status": {"observedGeneration": 1, "currentVersion": "2.0.0"},
    }


def deployment(replicas: int, running: int | None = None) -> dict[str, Any]:
    running = replicas if running is None else running
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": names.engine_deployment(ENGINE), "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
        "status": {"replicas": running, "readyReplicas": running},
    }


def vulcan_backup(phase: str = "Succeeded", engine: str = ENGINE, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VulcanBackup",
        "metadata": {"name": "nightly", "namespace": NAMESPACE},
        "spec": {"engineRef": {"name": engine}},
        "status": {"phase": phase, "location": LOCATION, "checksum": CHECKSUM, **status},
    }


def claim() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": NAMESPACE},
    }


def database_secret(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": names.default_database_secret(ENGINE), "namespace": NAMESPACE},
        "data": {names.DATABASE_URL_KEY: base64.b64encode(url.encode()).decode()},
    }


@dataclass
class Restore:
    """One VulcanRestore between reconciles, its status kept as the handler would write it."""

    api: FakeApi
    spec: dict[str, Any] = field(default_factory=lambda: {"backupRef": {"name": "nightly"}})
    name: str = RESTORE
    last: Outcome | None = None

    def __post_init__(self) -> None:
        self.api.put(
            {
                "apiVersion": API_VERSION,
                "kind": "VulcanRestore",
                "metadata": {"name": self.name, "namespace": NAMESPACE, "generation": 1},
                "spec": {"engineRef": {"name": ENGINE}, **self.spec},
            }
        )

    @property
    def body(self) -> dict[str, Any]:
        found = self.api.find(API_VERSION, "VulcanRestore", NAMESPACE, self.name)
        assert found is not None
        return found

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body.get("status") or {})

    async def reconcile(self) -> Outcome:
        outcome = await restore.reconcile(self.api, json.loads(json.dumps(self.body)), Settings())  # type: ignore[arg-type]
        self.body["status"] = outcome.status
        self.last = outcome
        return outcome

    def condition(self, type_: str = "Ready") -> dict[str, Any]:
        return next(c for c in self.status["conditions"] if c["type"] == type_)

    def events(self) -> list[tuple[str, str]]:
        assert self.last is not None
        return [(kind, reason) for kind, reason, _ in self.last.events]

    def steps(self) -> list[tuple[str, str | None]]:
        return [(s["name"], s.get("outcome")) for s in self.status.get("steps") or []]


def cluster(*extra: dict[str, Any], engine: dict[str, Any] | None = None) -> FakeApi:
    """An engine that runs 3 replicas, its backup claim and a VulcanBackup that succeeded."""
    return FakeApi(engine or engine_object(), deployment(3), claim(), vulcan_backup(), *extra)


def marker(api: FakeApi) -> dict[str, Any] | None:
    engine = api.find(API_VERSION, "VulcanEngine", NAMESPACE, ENGINE)
    assert engine is not None
    restore_marker: dict[str, Any] | None = (engine.get("status") or {}).get("restore")
    return restore_marker


def scale(api: FakeApi, replicas: int, running: int | None = None) -> None:
    api.put(deployment(replicas, running))


def job(api: FakeApi, component: str) -> dict[str, Any]:
    (found,) = [
        j
        for j in api.of_kind("Job")
        if j["metadata"]["labels"].get(names.LABEL_COMPONENT) == component
    ]
    return found


def finish(api: FakeApi, found: dict[str, Any], ok: bool, result: dict[str, Any] | None) -> None:
    """The Job ends; its pod says `result` (a program's result line) in its termination message."""
    kind = "Complete" if ok else "Failed"
    found["status"] = {"conditions": [{"type": kind, "status": "True"}]}
    name = found["metadata"]["name"]
    message = json.dumps(result) if result is not None else ""
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-pod",
                "namespace": NAMESPACE,
                "labels": {"job-name": name},
            },
            "status": {
                "containerStatuses": [
                    {
                        "name": "restore",
                        "state": {"terminated": {"exitCode": 0 if ok else 1, "message": message}},
                    }
                ]
            },
        }
    )


def restored(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "vulcan-restore",
        "outcome": "Succeeded",
        "database": "vulcan",
        "databaseRevision": "r1",
        "rowCounts": {"jobs": 12, "tasks": 40},
        **extra,
    }


def failed_at(step: str, exit_code: int = 1) -> dict[str, Any]:
    return {
        "kind": "vulcan-restore",
        "outcome": "Failed",
        "step": step,
        "message": "it went wrong",
        "exitCode": exit_code,
    }


async def at_restore(api: FakeApi, **spec: Any) -> Restore:
    """A restore past ScaleDown: its restore Job created and running."""
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, **spec})
    await run.reconcile()
    scale(api, 0)
    await run.reconcile()
    assert run.status["step"] == "Restore" and run.status["jobName"]
    return run


# --- the start -------------------------------------------------------------------------------
async def test_a_restore_takes_the_lock_and_begins_to_scale_down() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    status = run.status
    assert (status["phase"], status["step"], status["replicasBefore"]) == (
        "Running",
        "ScaleDown",
        3,
    )
    assert (status["location"], status["checksum"]) == (LOCATION, CHECKSUM)
    assert run.steps() == [("ScaleDown", None)]
    assert run.events() == [("Normal", "ScaleDown")]
    assert run.condition("Progressing")["status"] == "True"
    assert marker(api) == {
        "name": RESTORE,
        "uid": run.body["metadata"]["uid"],
        "step": "ScaleDown",
        "replicas": 3,
    }  # a merge patch stores no nulls


async def test_a_restore_waits_for_its_engine_and_says_so_once() -> None:
    api = FakeApi(vulcan_backup())
    run = Restore(api)
    await run.reconcile()
    assert (run.status["phase"], run.condition()["reason"]) == ("Pending", "EngineNotFound")
    assert run.events() == [("Normal", "EngineNotFound")]
    await run.reconcile()
    assert run.events() == []
    assert not api.writes()


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (
            lambda api: api.objects.pop(
                ("vulcan-engine.com/v1alpha1", "VulcanBackup", NAMESPACE, "nightly")
            ),
            "BackupNotFound",
        ),
        (lambda api: api.put(vulcan_backup("Running")), "BackupNotReady"),
        (lambda api: api.put({**engine_object(), "status": {}}), "EngineNotReconciled"),
        (lambda api: api.put(engine_object(paused=True)), "EnginePaused"),
        (lambda api: api.put(engine_object(replicas="many")), "EngineInvalid"),
    ],
)
async def test_a_restore_waits_before_anything_is_touched(arrange: Any, reason: str) -> None:
    api = cluster()
    arrange(api)
    run = Restore(api)
    await run.reconcile()
    assert (run.status["phase"], run.condition()["reason"]) == ("Pending", reason)
    assert marker(api) is None and not api.writes()


async def test_a_restore_waits_for_an_upgrade_in_flight_but_not_for_its_own() -> None:
    engine = engine_object()
    engine["status"]["upgrade"] = {"step": "Migrate", "to": "3.0.0"}
    api = cluster(engine=engine)
    run = Restore(api)
    await run.reconcile()
    assert run.condition()["reason"] == "UpgradeInProgress"
    engine["status"]["upgrade"]["restore"] = RESTORE  # rollbackStrategy: restore
    api.put(engine)
    await run.reconcile()
    assert run.status["step"] == "ScaleDown"


async def test_a_restore_waits_for_a_running_backup() -> None:
    running = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "prod-backup-1",
            "namespace": NAMESPACE,
            "labels": names.selector(ENGINE, names.COMPONENT_BACKUP),
        },
    }
    api = cluster(running)
    run = Restore(api)
    await run.reconcile()
    assert run.condition()["reason"] == "WaitingForBackup"
    assert "prod-backup-1" in run.condition()["message"]
    assert marker(api) is None


async def test_a_restore_waits_while_another_holds_the_engine_and_takes_over_when_it_ended() -> (
    None
):
    api = cluster()
    first = Restore(api, name="first")
    await first.reconcile()
    second = Restore(api)
    await second.reconcile()
    assert second.condition()["reason"] == "WaitingForRestore"
    assert "'first'" in second.condition()["message"]
    first.body["status"]["phase"] = "Succeeded"  # ended without releasing
    await second.reconcile()
    assert second.status["step"] == "ScaleDown"
    assert (marker(api) or {})["name"] == RESTORE


@pytest.mark.parametrize(
    ("arrange", "spec", "words"),
    [
        (
            lambda api: api.put(vulcan_backup(engine="other")),
            {},
            "is a backup of VulcanEngine 'other'",
        ),
        (lambda api: api.put(vulcan_backup("Failed")), {}, "there is nothing to restore"),
        (lambda api: api.put(vulcan_backup(checksum="")), {}, "recorded no location and sha256"),
        (lambda api: None, {"checksum": "b" * 64}, "spec.checksum does not match"),
        (
            lambda api: api.put(vulcan_backup(location="pvc://elsewhere/x/vulcan_1.dump")),
            {},
            "is not in VulcanEngine 'prod''s backup storage",
        ),
        (
            lambda api: api.objects.pop(("v1", "PersistentVolumeClaim", NAMESPACE, CLAIM)),
            {},
            f"PersistentVolumeClaim '{CLAIM}' not found",
        ),
    ],
)
async def test_a_restore_refuses_a_source_that_is_not_the_engines_own(
    arrange: Any, spec: dict[str, Any], words: str
) -> None:
    api = cluster()
    arrange(api)
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, **spec})
    await run.reconcile()
    status = run.status
    assert (status["phase"], status["step"]) == ("Failed", "Prepare")
    assert status["failure"]["databaseChanged"] is False
    assert words in status["failure"]["message"]
    assert run.condition()["reason"] == "PrepareFailed"
    assert run.events() == [("Warning", "Failed")]
    assert marker(api) is None and not api.writes()
    await run.reconcile()  # a finished restore is never looked at again
    assert run.last is not None and not run.last.events


async def test_a_restore_from_a_location_refuses_a_file_outside_the_store() -> None:
    api = cluster()
    spec = {"location": "pvc://elsewhere/x/vulcan_1.dump", "checksum": CHECKSUM}
    run = Restore(api, spec=spec)
    await run.reconcile()
    assert run.status["phase"] == "Failed"
    assert "spec.location" in run.status["failure"]["message"]


async def test_an_invalid_restore_is_refused() -> None:
    api = cluster()
    run = Restore(api, spec={})  # neither backupRef nor location
    await run.reconcile()
    assert (run.status["phase"], run.condition()["reason"]) == ("Failed", "InvalidSpec")
    assert run.events() == [("Warning", "InvalidSpec")]


# --- a side restore (spec.targetDatabase) ----------------------------------------------------
async def test_a_side_restore_refuses_the_engines_own_database() -> None:
    api = cluster(database_secret("postgresql://u:p@db:5432/vulcan"))
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, "targetDatabase": "vulcan"})
    await run.reconcile()
    assert run.status["phase"] == "Failed"
    assert "is VulcanEngine 'prod''s own database" in run.status["failure"]["message"]


async def test_a_side_restore_refuses_a_malformed_database_url_without_showing_it() -> None:
    api = cluster(database_secret("mysql://u:secret@db/vulcan"))
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, "targetDatabase": "copy"})
    await run.reconcile()
    assert run.status["phase"] == "Failed"
    assert "secret" not in run.status["failure"]["message"]
    assert "not a valid postgresql:// URL" in run.status["failure"]["message"]


async def test_a_side_restore_waits_for_the_database_secret() -> None:
    api = cluster()
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, "targetDatabase": "copy"})
    await run.reconcile()
    assert run.condition()["reason"] == "DatabaseUrlUnavailable"


async def test_a_side_restore_keeps_the_engine_serving_and_skips_the_migration() -> None:
    api = cluster(database_secret("postgresql://u:p@db:5432/vulcan"))
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, "targetDatabase": "copy"})
    await run.reconcile()
    assert (run.status["step"], run.status["database"]) == ("Restore", "copy")
    assert (marker(api) or {})["database"] == "copy"
    assert "replicasBefore" not in run.status
    await run.reconcile()  # the Job, with the status persisted first
    finish(api, job(api, names.COMPONENT_RESTORE), True, restored(database="copy"))
    await run.reconcile()  # the result recorded
    await run.reconcile()
    assert run.status["phase"] == "Succeeded" and run.status["step"] == "Done"
    assert ("Normal", "MigrateSkipped") in run.events()
    assert marker(api) is None
    assert api.find("apps/v1", "Deployment", NAMESPACE, ENGINE)["spec"]["replicas"] == 3  # type: ignore[index]


async def test_a_failed_side_restore_releases_the_engine() -> None:
    api = cluster(database_secret("postgresql://u:p@db:5432/vulcan"))
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, "targetDatabase": "copy"})
    await run.reconcile()
    await run.reconcile()
    finish(api, job(api, names.COMPONENT_RESTORE), False, failed_at("pg-restore"))
    await run.reconcile()
    assert run.status["failure"]["databaseChanged"] is False
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Failed", "Restore")
    assert marker(api) is None


# --- ScaleDown -------------------------------------------------------------------------------
async def test_scale_down_waits_for_zero_then_starts_the_restore_job() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    await run.reconcile()
    assert run.condition()["reason"] == "ScaleDown" and run.status["step"] == "ScaleDown"
    scale(api, 0, running=1)  # asked, not there yet
    await run.reconcile()
    assert run.status["step"] == "ScaleDown"
    scale(api, 0)
    await run.reconcile()  # ScaleDown → Restore in one pass
    assert run.steps() == [("ScaleDown", "Succeeded"), ("Restore", None)]
    assert (marker(api) or {})["step"] == "Restore"
    restore_job = job(api, names.COMPONENT_RESTORE)
    assert run.status["jobName"] == restore_job["metadata"]["name"]
    assert run.condition()["message"].endswith("created")


async def test_scale_down_past_its_deadline_scales_back_and_fails() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    run.body["status"]["steps"][-1]["startedAt"] = "2020-01-01T00:00:00Z"
    await run.reconcile()  # → ScaleUp, and the engine never left its 3 replicas: done
    assert run.steps() == [("ScaleDown", "Failed"), ("ScaleUp", "Succeeded")]
    assert run.status["failure"]["databaseChanged"] is False
    assert (run.status["phase"], run.status["step"]) == ("Failed", "ScaleDown")
    assert "did not scale to zero within 600 s" in run.condition()["message"]
    assert "was scaled back" in run.condition()["message"]
    assert marker(api) is None


async def test_an_engine_deleted_during_a_step_fails_the_restore() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    api.objects.pop((API_VERSION, "VulcanEngine", NAMESPACE, ENGINE))
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Failed", "ScaleDown")
    assert "was deleted during step ScaleDown" in run.status["failure"]["message"]


# --- Restore ---------------------------------------------------------------------------------
async def test_the_restore_job_result_is_recorded_then_the_job_deleted_and_migrate_begins() -> None:
    api = cluster()
    run = await at_restore(api)
    await run.reconcile()
    assert "is running" in run.condition()["message"]
    restore_job = job(api, names.COMPONENT_RESTORE)
    finish(api, restore_job, True, restored(rowCounts={"jobs": 12, "bad\u202ename": 1}))
    await run.reconcile()
    status = run.status
    assert status["rowCounts"] == {"jobs": 12, "other": 1}
    assert (status["database"], status["databaseRevision"]) == ("vulcan", "r1")
    assert run.steps()[-1] == ("Restore", "Succeeded")
    assert api.find("batch/v1", "Job", NAMESPACE, status["jobName"]) is not None
    await run.reconcile()  # Restore → Migrate in one pass: the migration Job runs
    assert api.find("batch/v1", "Job", NAMESPACE, status["jobName"]) is None
    assert run.steps()[-1] == ("Migrate", None)
    assert (marker(api) or {})["step"] == "Migrate"
    assert run.status["migrationJobName"]
    assert "is running" in run.condition()["message"]


async def test_a_migration_then_scale_up_ends_the_restore() -> None:
    api = cluster()
    run = await at_restore(api)
    finish(api, job(api, names.COMPONENT_RESTORE), True, restored())
    await run.reconcile()
    await run.reconcile()
    migration = api.find("batch/v1", "Job", NAMESPACE, run.status["migrationJobName"])
    assert migration is not None
    migration["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    await run.reconcile()  # Migrate → ScaleUp in one pass: the engine is not back yet
    assert run.steps()[-2:] == [("Migrate", "Succeeded"), ("ScaleUp", None)]
    assert (marker(api) or {})["step"] == "ScaleUp"
    assert run.condition()["reason"] == "ScaleUp"
    scale(api, 3)
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Succeeded", "Done")
    assert run.events() == [("Normal", "Succeeded")]
    assert "rows: jobs 12, tasks 40" in run.condition()["message"]
    assert run.condition()["status"] == "True"
    assert marker(api) is None


async def test_without_migrate_the_engine_scales_up_after_the_restore() -> None:
    api = cluster()
    run = await at_restore(api, migrate=False)
    finish(api, job(api, names.COMPONENT_RESTORE), True, restored())
    await run.reconcile()
    scale(api, 3)
    await run.reconcile()
    assert run.status["phase"] == "Succeeded"
    assert [name for name, _ in run.steps()] == ["ScaleDown", "Restore", "ScaleUp"]


async def test_a_restore_that_failed_before_touching_the_database_scales_back() -> None:
    api = cluster()
    run = await at_restore(api)
    finish(api, job(api, names.COMPONENT_RESTORE), False, failed_at("verify"))
    await run.reconcile()
    assert run.status["failure"] == {
        "step": "Restore",
        "message": "the restore failed at step 'verify': it went wrong (exit code 1); the "
        "database was not changed",
        "databaseChanged": False,
    }
    await run.reconcile()  # → ScaleUp
    assert run.steps()[-1] == ("ScaleUp", None)
    scale(api, 3)
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Failed", "Restore")
    assert run.events() == [("Warning", "Failed")]
    assert marker(api) is None


@pytest.mark.parametrize(
    "result", [failed_at("pg-restore-commit"), None], ids=["touched", "no result"]
)
async def test_a_restore_that_may_have_changed_the_database_holds_the_engine(
    result: dict[str, Any] | None,
) -> None:
    api = cluster()
    run = await at_restore(api)
    finish(api, job(api, names.COMPONENT_RESTORE), False, result)
    await run.reconcile()
    assert run.status["failure"]["databaseChanged"] is None
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Failed", "Restore")
    assert ("Warning", "EngineHeld") in run.events()
    held = marker(api) or {}
    assert held["step"] == "Hold" and "kept at zero replicas" in held["message"]


async def test_a_restore_job_that_vanished_before_its_result_holds_the_engine() -> None:
    api = cluster()
    run = await at_restore(api)
    api.objects.pop(("batch/v1", "Job", NAMESPACE, run.status["jobName"]))
    await run.reconcile()
    assert "disappeared before it reported a result" in run.status["failure"]["message"]
    assert (marker(api) or {})["step"] == "Hold"


async def test_a_failed_migration_holds_the_engine() -> None:
    api = cluster()
    run = await at_restore(api)
    finish(api, job(api, names.COMPONENT_RESTORE), True, restored())
    await run.reconcile()
    await run.reconcile()
    migration = api.find("batch/v1", "Job", NAMESPACE, run.status["migrationJobName"])
    assert migration is not None
    migration["status"] = {"conditions": [{"type": "Failed", "status": "True", "message": "x"}]}
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Failed", "Migrate")
    assert run.status["failure"]["databaseChanged"] is True
    assert (marker(api) or {})["step"] == "Hold"


async def test_a_restore_job_waits_for_a_backup_that_started_meanwhile() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    api.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "prod-backup-2",
                "namespace": NAMESPACE,
                "labels": names.selector(ENGINE, names.COMPONENT_BACKUP),
            },
        }
    )
    scale(api, 0)
    await run.reconcile()
    assert run.status["step"] == "Restore" and "jobName" not in run.status
    assert run.condition()["reason"] == "WaitingForBackup"
    assert run.condition("Progressing")["status"] == "True"


async def test_an_unknown_step_is_an_error() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    run.body["status"]["step"] = "Teleport"
    with pytest.raises(ValueError, match="Teleport"):
        await run.reconcile()


# --- what the engine is asked ----------------------------------------------------------------
async def hold(api: FakeApi, status: dict[str, Any] | None = None) -> engine_hold.EngineHold:
    return await engine_hold.engine_hold(api, NAMESPACE, ENGINE, status or {}, 1)  # type: ignore[arg-type]


async def test_no_marker_asks_nothing_of_the_engine() -> None:
    assert await hold(cluster()) == engine_hold.EngineHold()


async def test_a_running_restore_holds_the_engine_at_zero_then_at_its_replicas() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    held = await hold(api)
    assert (held.replicas, held.suspend, held.restoring, held.phase) == (0, True, True, "Restoring")
    assert [(c["type"], c["status"]) for c in held.conditions] == [
        ("Ready", "False"),
        ("Progressing", "True"),
    ]
    scale(api, 0)
    await run.reconcile()
    finish(api, job(api, names.COMPONENT_RESTORE), True, restored())
    await run.reconcile()
    run.body["spec"]["migrate"] = False
    await run.reconcile()  # ScaleUp
    held = await hold(api)
    assert (held.replicas, held.suspend, held.restoring) == (3, False, True)
    assert [c["type"] for c in held.conditions] == ["Progressing"]


async def test_a_held_engine_is_degraded_and_says_so_once() -> None:
    api = cluster()
    run = await at_restore(api)
    finish(api, job(api, names.COMPONENT_RESTORE), False, None)
    await run.reconcile()
    await run.reconcile()
    held = await hold(api)
    assert (held.replicas, held.phase) == (0, "Degraded")
    degraded = {c["type"]: c for c in held.conditions}["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "RestoreFailed")
    assert [reason for _, reason, _ in held.events] == ["RestoreFailed"]
    again = await hold(api, {"conditions": held.conditions})
    assert again.events == []  # the same words: no second Event
    assert marker(api) is not None  # a held engine stays held after its restore ended


async def test_a_marker_whose_restore_was_deleted_is_released() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    api.objects.pop((API_VERSION, "VulcanRestore", NAMESPACE, RESTORE))
    held = await hold(api)
    assert held.replicas == 3 and not held.restoring
    assert [reason for _, reason, _ in held.events] == ["RestoreReleased"]
    assert "was deleted: scaling back to 3 replicas" in held.events[0][2]
    assert marker(api) is None


async def test_a_side_restore_only_stops_version_changes() -> None:
    api = cluster(database_secret("postgresql://u:p@db:5432/vulcan"))
    run = Restore(api, spec={"backupRef": {"name": "nightly"}, "targetDatabase": "copy"})
    await run.reconcile()
    assert await hold(api) == engine_hold.EngineHold(restoring=True)


# --- name conflicts --------------------------------------------------------------------------
def users_job(name: str) -> dict[str, Any]:
    """A Job someone else made (no owner of ours): never patched, deleted or followed."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"someone": "else"},
    }


def conflict_said(run: Restore, name: str) -> None:
    condition = run.condition()
    assert (condition["status"], condition["reason"]) == ("False", "NameConflict")
    assert condition["message"].startswith(f"Job {name} already exists and does not belong")
    assert run.condition("Progressing")["status"] == "False"


async def test_a_restore_job_name_taken_before_the_start_waits_without_touching_anything() -> None:
    api = cluster()
    run = Restore(api)
    name = restore_job_name(run)
    theirs = api.put(users_job(name))
    await run.reconcile()
    assert run.status["phase"] == "Pending" and not run.status.get("step")
    conflict_said(run, name)
    assert run.events() == [("Warning", "NameConflict")]
    await run.reconcile()
    assert run.events() == []  # told once
    assert marker(api) is None and api.writes("patch") == []  # the engine was not touched
    assert api.find("batch/v1", "Job", NAMESPACE, name) == theirs
    api.objects.pop(("batch/v1", "Job", NAMESPACE, name))
    await run.reconcile()
    assert run.status["step"] == "ScaleDown"


async def test_a_restore_job_name_taken_during_scale_down_waits_at_the_restore_step() -> None:
    api = cluster()
    run = Restore(api)
    await run.reconcile()
    await run.reconcile()
    name = restore_job_name(run)
    theirs = api.put(users_job(name))
    scale(api, 0)
    await run.reconcile()
    assert (run.status["phase"], run.status["step"]) == ("Running", "Restore")
    conflict_said(run, name)
    assert run.events() == [("Normal", "Restore"), ("Warning", "NameConflict")]
    await run.reconcile()
    assert run.events() == []
    assert api.find("batch/v1", "Job", NAMESPACE, name) == theirs
    assert "jobName" not in run.status
    api.objects.pop(("batch/v1", "Job", NAMESPACE, name))
    await run.reconcile()
    assert run.status["jobName"] == name and run.condition()["reason"] == "Restore"
    assert job(api, names.COMPONENT_RESTORE)["metadata"]["ownerReferences"][0]["name"] == RESTORE


async def test_a_migration_job_name_taken_waits_at_the_migrate_step() -> None:
    api = cluster()
    run = await at_restore(api)
    finish(api, job(api, names.COMPONENT_RESTORE), True, restored())
    await run.reconcile()
    engine = api.find(API_VERSION, "VulcanEngine", NAMESPACE, ENGINE)
    assert engine is not None
    migration = restore_migration_job(
        EngineInputs.from_resource(engine, settings=Settings(), run_version="2.0.0"),
        "2.0.0",
        run.body["metadata"]["uid"],
    )
    name = migration["metadata"]["name"]
    theirs = api.put(users_job(name))
    await run.reconcile()
    assert run.status["step"] == "Migrate"
    conflict_said(run, name)
    assert api.find("batch/v1", "Job", NAMESPACE, name) == theirs
    assert (marker(api) or {})["step"] == "Migrate"  # the engine stays held meanwhile
    api.objects.pop(("batch/v1", "Job", NAMESPACE, name))
    await run.reconcile()
    assert run.status["migrationJobName"] == name
    assert "is running" in run.condition()["message"]


def restore_job_name(run: Restore) -> str:
    engine = run.api.find(API_VERSION, "VulcanEngine", NAMESPACE, ENGINE)
    assert engine is not None
    body = json.loads(json.dumps(run.body))
    restore_run = restore_start.Run(
        run.api,  # type: ignore[arg-type]
        Settings(),
        body,
        VulcanRestore.model_validate(body),
        engine,
        dict(run.status),
    )
    spec = restore_run.engine_spec()
    found = restore_start.restore_job(restore_run, spec, LOCATION, CHECKSUM)
    return str(found["metadata"]["name"])
