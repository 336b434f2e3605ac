"""Restores on the emulator: the runbook's steps in order, the engine at zero meanwhile and
back afterwards, failures that scale back or hold, restarts, waiting; and, with a real
PostgreSQL and the real programs, a backup followed by a restore that loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.backups import (
    BACKUPS,
    CHECKSUM,
    COMPONENT,
    RESTORES,
    LocalPods,
    backup_result,
    cond,
    custom,
    db_secret,
    engine,
    events_of,
    failure,
    installed,
    restore_result,
    status,
)
from tests.support.dbharness import SEED_REVISION, create_seeded_template, fingerprint, row_counts
from tests.support.kopf_runner import OperatorRunner
from tests.support.pg import PgServer

LOCATION = "pvc://prod-backups/default/prod/on-demand/vulcan_20261129_020000.dump"
ROWS = {"jobs": 500, "tasks": 2500}
STEPS = ["ScaleDown", "Restore", "Migrate", "ScaleUp"]


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


class Outcomes:
    """Job outcomes by component; a callable is asked with the Job."""

    def __init__(self, emulator: Emulator) -> None:
        self.by_component: dict[str, JobOutcome | Callable[[dict[str, Any]], JobOutcome]] = {}
        emulator.jobs.outcome_for = self

    def __call__(self, job: dict[str, Any]) -> JobOutcome | None:
        chosen = self.by_component.get((job["metadata"].get("labels") or {}).get(COMPONENT, ""))
        return chosen(job) if callable(chosen) else chosen


@pytest.fixture
def outcomes(emulator: Emulator) -> Outcomes:
    found = Outcomes(emulator)
    found.by_component["backup"] = JobOutcome.succeed(message=backup_result(LOCATION))
    found.by_component["restore"] = JobOutcome.succeed(message=restore_result(LOCATION, rows=ROWS))
    return found


def jobs(emulator: Emulator, component: str) -> list[dict[str, Any]]:
    return [
        j
        for j in emulator.list("jobs", "default")
        if j["metadata"]["labels"].get(COMPONENT) == component
    ]


def replicas(emulator: Emulator) -> int:
    return int(emulator.get("deployments", "default", "prod")["spec"]["replicas"])


def restore_status(emulator: Emulator, name: str = "r1") -> dict[str, Any]:
    return status(emulator, RESTORES, name)


async def finished(emulator: Emulator, name: str = "r1", within: float = 12) -> dict[str, Any]:
    found: dict[str, Any] = await emulator.wait_for(
        lambda: (
            restore_status(emulator, name)["phase"] in ("Succeeded", "Failed")
            and restore_status(emulator, name)
        ),
        timeout=within,
    )
    return found


async def backed_up(emulator: Emulator, name: str = "manual-1") -> dict[str, Any]:
    emulator.create(custom("VulcanBackup", name))
    found: dict[str, Any] = await emulator.wait_for(
        lambda: (
            status(emulator, BACKUPS, name)["phase"] == "Succeeded"
            and status(emulator, BACKUPS, name)
        )
    )
    return found


def env_of(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


async def test_a_restore_walks_its_steps_and_scales_the_engine_back(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    outcomes.by_component["restore"] = JobOutcome.running()
    await installed(emulator)  # autoscaling: the HPA owns the replica count
    emulator.patch("deployments", "default", "prod", {"spec": {"replicas": 4}})  # as the HPA would
    backup = await backed_up(emulator)
    emulator.create(custom("VulcanRestore", "r1", backupRef={"name": "manual-1"}))

    # While the restore Job runs: the engine at zero, no HPA, no scheduled backup or VACUUM.
    (job,) = await emulator.wait_for(lambda: jobs(emulator, "restore"))
    assert replicas(emulator) == 0  # scaled down before the Job was made
    # The engine's own reconcile shows the hold (its status, HPA and CronJobs) a moment later.
    engine = await emulator.wait_for(
        lambda: (
            status(emulator)["phase"] == "Restoring"
            and emulator.get("horizontalpodautoscalers", "default", "prod") is None
            and all(
                emulator.get("cronjobs", "default", name)["spec"]["suspend"] is True
                for name in ("prod-backup", "prod-maintenance")
            )
            and status(emulator)
        )
    )
    assert engine["restore"]["step"] == "Restore" and engine["restore"]["replicas"] == 4
    assert engine["phase"] == "Restoring" and cond(engine, "Ready")["reason"] == "Restoring"
    env = env_of(job)
    assert env["EXPECTED_SHA256"] == backup["checksum"]
    assert env["BACKUP_FILE"] == "/backups/default/prod/on-demand/vulcan_20261129_020000.dump"
    running = await emulator.wait_for(
        lambda: restore_status(emulator)["step"] == "Restore" and restore_status(emulator)
    )
    assert (running["phase"], running["step"], running["replicasBefore"]) == (
        "Running",
        "Restore",
        4,
    )
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("VulcanRestore", "r1")

    emulator.jobs.finish(
        "default", job["metadata"]["name"], JobOutcome.succeed(message=restore_result(LOCATION))
    )
    st = await finished(emulator)
    assert st["phase"] == "Succeeded" and st["step"] == "Done", st
    assert [s["name"] for s in st["steps"]] == STEPS
    assert {s["outcome"] for s in st["steps"]} == {"Succeeded"}
    assert all(s["startedAt"] <= s["finishedAt"] for s in st["steps"])
    assert st["rowCounts"] == {"jobs": 500, "tasks": 2500}
    assert (st["location"], st["checksum"]) == (LOCATION, backup["checksum"])
    assert st["databaseRevision"] == "4f2a9c1d7e3b" and st["startedAt"] <= st["finishedAt"]
    assert cond(st, "Ready")["status"] == "True"
    await emulator.wait_for(lambda: events_of(emulator, "r1") == [*STEPS, "Succeeded"])

    # The migration ran with the version the engine runs.
    (migration,) = [
        j for j in jobs(emulator, "migration") if j["metadata"]["name"] == st["migrationJobName"]
    ]
    (container,) = migration["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "vulcan-engine:2.0.0"
    assert container["command"] == ["alembic", "upgrade", "head"]

    # The engine as it was: 4 replicas, its HPA, its CronJobs, no restore marker.
    await emulator.wait_for(
        lambda: (
            emulator.get("horizontalpodautoscalers", "default", "prod") is not None
            and "restore" not in status(emulator)
            and status(emulator)["phase"] == "Ready"
        )
    )
    await emulator.wait_for(lambda: replicas(emulator) == 4)
    for name in ("prod-backup", "prod-maintenance"):
        assert emulator.get("cronjobs", "default", name)["spec"]["suspend"] is False


async def test_a_failed_restore_says_where_and_scales_the_engine_back(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    refused = (
        "backup refused, database untouched: checksum mismatch: the file's sha256 is 12ab, "
        "EXPECTED_SHA256 says 9f9f"
    )
    outcomes.by_component["restore"] = JobOutcome.fail(
        exit_code=3, message=failure("vulcan-restore", "verify", refused, exit_code=3)
    )
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    st = await finished(emulator)
    assert (st["phase"], st["step"]) == ("Failed", "Restore")
    assert st["failure"]["step"] == "Restore" and st["failure"]["databaseChanged"] is False
    ready = cond(st, "Ready")
    assert ready["reason"] == "RestoreFailed"
    assert "at step 'verify'" in ready["message"] and "checksum mismatch" in ready["message"]
    assert "scaled back" in ready["message"]
    assert [(s["name"], s["outcome"]) for s in st["steps"]] == [
        ("ScaleDown", "Succeeded"),
        ("Restore", "Failed"),
        ("ScaleUp", "Succeeded"),
    ]
    await emulator.wait_for(lambda: "restore" not in status(emulator))
    await emulator.wait_for(lambda: replicas(emulator) == 2)
    assert cond(status(emulator), "Degraded")["status"] == "False"
    assert len(jobs(emulator, "migration")) == 1  # the install's only
    await emulator.wait_for(lambda: events_of(emulator, "r1")[-1] == "Failed")


async def test_a_failed_migration_holds_the_engine_at_zero_and_says_so(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    outcomes.by_component["migration"] = JobOutcome.fail(message="alembic: Can't locate revision")
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    st = await finished(emulator)
    assert (st["phase"], st["step"]) == ("Failed", "Migrate")
    assert st["failure"]["databaseChanged"] is True
    assert "Can't locate revision" in st["failure"]["message"]
    assert "kept at zero replicas" in st["failure"]["message"]

    # Loudly, on the engine too: Degraded, with what to do.
    engine = await emulator.wait_for(
        lambda: status(emulator)["phase"] == "Degraded" and status(emulator)
    )
    degraded = cond(engine, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "RestoreFailed"
    assert "kubectl delete vulcanrestore r1" in degraded["message"]
    assert engine["restore"]["step"] == "Hold"
    assert replicas(emulator) == 0
    await emulator.wait_for(lambda: "RestoreFailed" in events_of(emulator, "prod"))
    await asyncio.sleep(1.2)  # resyncs keep it there
    assert replicas(emulator) == 0

    # A person deletes the restore: the engine serves again, as it is.
    emulator.delete(RESTORES, "default", "r1")
    await emulator.wait_for(lambda: "restore" not in status(emulator), timeout=60)
    await emulator.wait_for(lambda: replicas(emulator) == 2)
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Ready")
    await emulator.wait_for(lambda: "RestoreReleased" in events_of(emulator, "prod"))


async def test_an_operator_restart_mid_restore_resumes_without_a_second_job(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    made: list[str] = []

    def restore_jobs(job: dict[str, Any]) -> JobOutcome:
        made.append(job["metadata"]["name"])
        return JobOutcome.running()

    outcomes.by_component["restore"] = restore_jobs
    await installed(emulator, autoscaling={"enabled": False}, replicas=3)
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    (job,) = await emulator.wait_for(lambda: jobs(emulator, "restore"), timeout=60)
    await operator.restart()
    await asyncio.sleep(1.2)  # a poll or two of the new operator
    await operator.restart()
    assert len(jobs(emulator, "restore")) == 1 and replicas(emulator) == 0
    emulator.jobs.finish(
        "default", job["metadata"]["name"], JobOutcome.succeed(message=restore_result(LOCATION))
    )
    st = await finished(emulator)
    assert st["phase"] == "Succeeded" and [s["name"] for s in st["steps"]] == STEPS
    assert made == [job["metadata"]["name"]]
    assert jobs(emulator, "restore") == []  # its result recorded, the operator deleted it
    assert st["jobName"] == job["metadata"]["name"]
    assert len(jobs(emulator, "migration")) == 2  # the install's and the restore's
    await emulator.wait_for(lambda: "restore" not in status(emulator))
    await emulator.wait_for(lambda: replicas(emulator) == 3)


async def test_a_restore_waits_for_its_engine_and_for_an_upgrade_in_flight(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    started: list[str] = []

    def first_migration_runs(job: dict[str, Any]) -> JobOutcome:
        started.append(job["metadata"]["name"])
        return JobOutcome.running() if len(started) == 1 else JobOutcome.succeed()

    outcomes.by_component["migration"] = first_migration_runs
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    pending = await emulator.wait_for(
        lambda: (
            restore_status(emulator)["phase"] == "Pending"
            and cond(restore_status(emulator), "Ready")
        )
    )
    assert pending["reason"] == "EngineNotFound"

    emulator.create(db_secret())
    emulator.create(engine())
    waiting = await emulator.wait_for(
        lambda: (
            (c := cond(restore_status(emulator), "Ready"))["reason"] == "UpgradeInProgress" and c
        )
    )
    assert "to 2.0.0" in waiting["message"] and "step Install" in waiting["message"]
    assert jobs(emulator, "restore") == [] and "restore" not in status(emulator)

    emulator.jobs.finish("default", started[0])  # the install's migration ends
    st = await finished(emulator)
    assert st["phase"] == "Succeeded" and [s["name"] for s in st["steps"]] == STEPS
    reasons = await emulator.wait_for(
        lambda: {"UpgradeInProgress", "ScaleDown"} <= set(r := events_of(emulator, "r1")) and r
    )
    assert reasons.index("UpgradeInProgress") < reasons.index("ScaleDown")


async def test_a_restore_into_another_database_leaves_the_engine_serving(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    outcomes.by_component["restore"] = JobOutcome.running()
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    emulator.create(
        custom(
            "VulcanRestore",
            "r1",
            location=LOCATION,
            checksum=CHECKSUM,
            targetDatabase="vulcan_inspect",
        )
    )
    (job,) = await emulator.wait_for(lambda: jobs(emulator, "restore"), timeout=60)
    assert env_of(job)["TARGET_DATABASE"] == "vulcan_inspect"
    # It holds the engine's restore lock (one restore at a time), without scaling it down.
    marker = status(emulator)["restore"]
    assert (marker["name"], marker["step"], marker["database"]) == (
        "r1",
        "Restore",
        "vulcan_inspect",
    )
    assert marker.get("replicas") is None
    await asyncio.sleep(0.6)  # a resync or two of the engine
    assert replicas(emulator) == 2 and status(emulator)["phase"] == "Ready"
    for name in ("prod-backup", "prod-maintenance"):
        assert emulator.get("cronjobs", "default", name)["spec"]["suspend"] is False

    emulator.jobs.finish(
        "default",
        job["metadata"]["name"],
        JobOutcome.succeed(message=restore_result(LOCATION, database="vulcan_inspect")),
    )
    st = await finished(emulator)
    assert st["phase"] == "Succeeded" and [s["name"] for s in st["steps"]] == ["Restore"]
    assert st["database"] == "vulcan_inspect"
    await emulator.wait_for(lambda: "restore" not in status(emulator))
    assert replicas(emulator) == 2
    assert jobs(emulator, "restore") == []  # its result recorded, the operator deleted it
    assert len(jobs(emulator, "migration")) == 1  # not migrated: that would be the engine's
    await emulator.wait_for(lambda: "MigrateSkipped" in events_of(emulator, "r1"))


async def test_a_backup_waits_while_a_restore_holds_the_engine(
    emulator: Emulator, outcomes: Outcomes, operator: OperatorRunner
) -> None:
    outcomes.by_component["restore"] = JobOutcome.running()
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    (job,) = await emulator.wait_for(lambda: jobs(emulator, "restore"), timeout=60)
    emulator.create(custom("VulcanBackup", "during"))
    waiting = await emulator.wait_for(
        lambda: (
            (c := cond(status(emulator, BACKUPS, "during"), "Ready"))["reason"]
            == "WaitingForRestore"
            and c
        )
    )
    assert "VulcanRestore 'r1'" in waiting["message"]
    assert jobs(emulator, "backup") == []
    emulator.jobs.finish(
        "default", job["metadata"]["name"], JobOutcome.succeed(message=restore_result(LOCATION))
    )
    assert (await finished(emulator))["phase"] == "Succeeded"
    await emulator.wait_for(
        lambda: status(emulator, BACKUPS, "during")["phase"] == "Succeeded", timeout=60
    )


# --- the real programs against a real PostgreSQL --------------------------------------------
@pytest.fixture(scope="module")
def seed_template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_restores")
    yield name
    pg_server.drop_database(name)


async def test_a_backup_then_a_restore_loses_nothing(
    emulator: Emulator,
    operator: OperatorRunner,
    pg_server: PgServer,
    pg_bin_dir: Path,
    seed_template: str,
    tmp_path: Path,
) -> None:
    db = pg_server.create_database(label="restore_roundtrip", template=seed_template)
    try:
        pods = LocalPods(emulator, tmp_path, pg_bin_dir)
        emulator.jobs.outcome_for = pods.outcome_for
        await installed(emulator, url=db.dsn, autoscaling={"enabled": False}, replicas=2)
        backup = await backed_up(emulator, "before")
        assert backup["location"].startswith("pvc://prod-backups/default/prod/on-demand/vulcan_")
        assert len(backup["checksum"]) == 64 and backup["sizeBytes"] > 0
        assert backup["databaseRevision"] == SEED_REVISION
        expected, counts = fingerprint(db.dsn), row_counts(db.dsn)
        assert db.password not in str(emulator.get(BACKUPS, "default", "before"))

        await asyncio.to_thread(_mutate, db.dsn)
        assert fingerprint(db.dsn) != expected

        emulator.create(custom("VulcanRestore", "r1", backupRef={"name": "before"}))
        st = await finished(emulator, within=20)
        assert st["phase"] == "Succeeded", st
        assert fingerprint(db.dsn) == expected
        assert st["rowCounts"] == counts and st["databaseRevision"] == SEED_REVISION
        assert [name for name, code in pods.ran] == ["backup", "restore"]
        assert db.password not in str(emulator.get(RESTORES, "default", "r1"))
        await emulator.wait_for(lambda: "restore" not in status(emulator))
        await emulator.wait_for(lambda: replicas(emulator) == 2)
    finally:
        await operator.stop()
        pg_server.drop_database(db.dbname)


def _mutate(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version' ORDER BY 1"
        ).fetchall()
        assert tables
        conn.execute(f"TRUNCATE TABLE {', '.join(f'{t[0]!s}' for t in tables)} CASCADE")
