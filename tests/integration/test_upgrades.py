"""Upgrades and rollbacks: the real operator on the emulator, the revision in a real PostgreSQL.

Migration Jobs run "alembic" for real in the sense that matters here: the Job simulation moves
the database's alembic_version the way `alembic upgrade head` (to `rev-<version>`) or
`alembic downgrade <rev>` would, so the operator reads true revisions through asyncpg.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg
import pytest

from tests.emulator import Emulator, JobOutcome, RolloutOutcome
from tests.support.backups import backup_result, failure, restore_result
from tests.support.kopf_runner import OperatorRunner

ENGINES = "vulcanengines"


class Migrations:
    """Stands in for alembic inside migration Jobs; records every command it ran."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.ran: list[tuple[str, list[str]]] = []
        self.fail: set[str] = set()  # versions whose migration fails
        self.released = threading.Event()  # cleared: Jobs keep running until it is set
        self.released.set()

    async def revision(self) -> str | None:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval("SELECT version_num FROM alembic_version")  # type: ignore[no-any-return]
        finally:
            await conn.close()

    async def set_revision(self, rev: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) PRIMARY KEY)"
            )
            await conn.execute("DELETE FROM alembic_version")
            await conn.execute("INSERT INTO alembic_version VALUES ($1)", rev)
        finally:
            await conn.close()

    async def run(self, job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        (container,) = pod["spec"]["containers"]
        version = container["image"].rsplit(":", 1)[1]
        command = container["command"]
        await asyncio.to_thread(self.released.wait)  # runs on the emulator's own loop
        self.ran.append((version, command))
        if version in self.fail:
            return JobOutcome.fail(message="alembic: Can't locate revision")
        await self.set_revision(f"rev-{version}" if command[1] == "upgrade" else command[-1])
        return JobOutcome.succeed()

    def outcome_for(self, job: dict[str, Any]) -> JobOutcome | None:
        component = job["metadata"]["labels"].get("app.kubernetes.io/component")
        return JobOutcome.run(self.run) if component == "migration" else None


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


@pytest.fixture
async def migrations(emulator: Emulator, pg_dsn: str) -> Migrations:
    m = Migrations(pg_dsn)
    emulator.jobs.outcome_for = m.outcome_for
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prod-database", "namespace": "default"},
            "stringData": {"database-url": pg_dsn},
        }
    )
    return m


@pytest.fixture
def backups(emulator: Emulator, migrations: Migrations) -> dict[str, str]:
    """Outcomes of the backup Jobs the real VulcanBackup controller makes, by VulcanBackup name
    ('*' for any): "Succeeded" (the backup program's result line in the termination message)
    or "Failed" (its failure line)."""
    outcomes: dict[str, str] = {}

    def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
        if job["metadata"]["labels"].get("app.kubernetes.io/component") != "backup":
            return migrations.outcome_for(job)
        (owner,) = job["metadata"]["ownerReferences"]
        name = owner["name"]
        location = f"pvc://prod-backups/default/prod/on-demand/vulcan_20261129_020000_{name}.dump"
        if outcomes.get(name, outcomes.get("*", "Succeeded")) == "Succeeded":
            return JobOutcome.succeed(message=backup_result(location))
        return JobOutcome.fail(
            message=failure("vulcan-backup", "dump", "pg_dump failed (exit 1): disk full")
        )

    emulator.jobs.outcome_for = outcome_for
    return outcomes


def engine(version: str, **upgrade: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": "default"},
        "spec": {"version": version, "upgrade": upgrade},
    }


def status(emulator: Emulator) -> dict[str, Any]:
    return emulator.get(ENGINES, "default", "prod")["status"]  # type: ignore[no-any-return,index]


def image(emulator: Emulator) -> str:
    dep = emulator.get("deployments", "default", "prod")
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def set_version(emulator: Emulator, version: str) -> None:
    emulator.patch(ENGINES, "default", "prod", {"spec": {"version": version}})


def migrate_jobs(emulator: Emulator) -> list[str]:
    return sorted(
        j["metadata"]["name"]
        for j in emulator.list("jobs", "default")
        if j["metadata"]["labels"].get("app.kubernetes.io/component") == "migration"
    )


async def installed(emulator: Emulator, version: str = "2.0.0") -> None:
    await emulator.wait_for(lambda: status(emulator)["currentVersion"] == version, timeout=15)


async def settled(emulator: Emulator, step: str) -> dict[str, Any]:
    up: dict[str, Any] = await emulator.wait_for(
        lambda: status(emulator)["upgrade"]["step"] == step and status(emulator)["upgrade"],
        timeout=15,
    )
    return up


async def test_install_migrates_and_records_the_revision(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0"))
    await installed(emulator)
    st = status(emulator)
    assert st["databaseRevision"] == "rev-2.0.0"
    (entry,) = st["history"]
    assert entry["version"] == "2.0.0" and entry["outcome"] == "Succeeded"
    assert entry["databaseRevision"] == "rev-2.0.0"
    assert migrations.ran == [("2.0.0", ["alembic", "upgrade", "head"])]


async def test_upgrade_happy_path(
    emulator: Emulator, migrations: Migrations, backups: dict[str, str], operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0"))
    await installed(emulator)
    set_version(emulator, "2.1.0")
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Upgrading")
    await installed(emulator, "2.1.0")
    st = status(emulator)
    assert image(emulator) == "vulcan-engine:2.1.0"
    assert await migrations.revision() == "rev-2.1.0"
    last = st["history"][-1]
    assert last["version"] == "2.1.0" and last["outcome"] == "Succeeded"
    assert last["databaseRevision"] == "rev-2.1.0"
    assert last["backup"].startswith("prod-pre-") and last["backup"].endswith("2-1-0")
    backup = emulator.get("vulcanbackups", "default", last["backup"])
    assert backup["status"]["phase"] == "Succeeded"
    assert backup["status"]["location"].endswith(f"_{last['backup']}.dump")
    assert st["upgrade"]["revisionBefore"] == "rev-2.0.0"
    assert st["phase"] == "Ready" and "failedVersion" not in st


async def test_backup_failure_stops_before_anything_changes(
    emulator: Emulator, migrations: Migrations, backups: dict[str, str], operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0"))
    await installed(emulator)
    jobs = migrate_jobs(emulator)
    backups["*"] = "Failed"
    set_version(emulator, "2.1.0")
    up = await settled(emulator, "Failed")
    assert up["failedStep"] == "Backup"
    backup = emulator.get("vulcanbackups", "default", up["backup"])
    assert backup["status"]["phase"] == "Failed"
    assert "disk full" in backup["status"]["conditions"][0]["message"]
    assert image(emulator) == "vulcan-engine:2.0.0"
    assert migrate_jobs(emulator) == jobs
    st = status(emulator)
    assert st["failedVersion"] == "2.1.0" and st["currentVersion"] == "2.0.0"
    assert st["phase"] == "Degraded"


async def test_migration_failure_keeps_the_old_version_serving(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    migrations.fail.add("2.1.0")
    set_version(emulator, "2.1.0")
    up = await settled(emulator, "Failed")
    assert up["failedStep"] == "Migrate" and "Can't locate revision" in up["reason"]
    assert image(emulator) == "vulcan-engine:2.0.0"
    assert await migrations.revision() == "rev-2.0.0"
    degraded = next(c for c in status(emulator)["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and "2.1.0" in degraded["message"]


async def test_failed_rollout_rolls_back_by_itself_and_is_not_retried(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    emulator.deployments.by_image["vulcan-engine:2.1.0"] = RolloutOutcome.fail()
    set_version(emulator, "2.1.0")
    await emulator.wait_for(lambda: status(emulator)["phase"] == "RollingBack", timeout=15)
    up = await settled(emulator, "RolledBack")
    assert image(emulator) == "vulcan-engine:2.0.0"
    assert await migrations.revision() == "rev-2.0.0"
    assert ("2.1.0", ["alembic", "downgrade", "rev-2.0.0"]) in migrations.ran
    st = status(emulator)
    assert st["failedVersion"] == "2.1.0" and st["currentVersion"] == "2.0.0"
    assert st["history"][-1]["outcome"] == "RolledBack"
    assert up["revisionBefore"] == "rev-2.0.0" and up["revisionAfter"] == "rev-2.1.0"
    ran = len(migrations.ran)
    await asyncio.sleep(3)  # several resyncs while spec.version still names 2.1.0
    assert len(migrations.ran) == ran and image(emulator) == "vulcan-engine:2.0.0"

    # A person asks for a retry (the rollout now works): a new attempt, new Jobs.
    emulator.deployments.by_image.pop("vulcan-engine:2.1.0")
    emulator.patch(
        ENGINES,
        "default",
        "prod",
        {"metadata": {"annotations": {"vulcan-engine.com/retry-upgrade": "1"}}},
    )
    await installed(emulator, "2.1.0")
    assert "failedVersion" not in status(emulator)


async def test_failed_rollout_with_the_restore_strategy_restores_the_pre_upgrade_backup(
    emulator: Emulator, migrations: Migrations, backups: dict[str, str], operator: OperatorRunner
) -> None:
    """rollbackStrategy: restore: the real VulcanRestore controller brings back the backup taken
    before the upgrade (scaling the engine to zero and back), without migrating it again."""
    backup_jobs = emulator.jobs.outcome_for
    assert backup_jobs is not None
    restored: list[str] = []

    async def run_restore(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        await migrations.set_revision("rev-2.0.0")  # the backup's revision comes back
        restored.append(job["metadata"]["name"])
        location = "pvc://prod-backups/default/prod/on-demand/vulcan.dump"
        return JobOutcome.succeed(message=restore_result(location, revision="rev-2.0.0"))

    def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
        if job["metadata"]["labels"].get("app.kubernetes.io/component") == "restore":
            return JobOutcome.run(run_restore)
        return backup_jobs(job)

    emulator.jobs.outcome_for = outcome_for
    # Pods of a failing version go away too when it is scaled to zero.
    emulator.deployments.outcome_for = lambda d: (
        RolloutOutcome.ready() if d["spec"].get("replicas") == 0 else None
    )
    emulator.create(engine("2.0.0", rollbackStrategy="restore"))
    await installed(emulator)
    emulator.deployments.by_image["vulcan-engine:2.1.0"] = RolloutOutcome.fail()
    set_version(emulator, "2.1.0")
    up = await settled(emulator, "RolledBack")
    assert image(emulator) == "vulcan-engine:2.0.0"
    assert await migrations.revision() == "rev-2.0.0"
    assert len(restored) == 1
    assert not [c for v, c in migrations.ran if c[1] == "downgrade"]  # restored, not downgraded
    restore = emulator.get("vulcanrestores", "default", up["restore"])
    assert restore["spec"]["backupRef"]["name"] == up["backup"]
    st = restore["status"]
    assert st["phase"] == "Succeeded"
    assert [s["name"] for s in st["steps"]] == ["ScaleDown", "Restore", "ScaleUp"]
    assert "restore" not in status(emulator)


async def test_failed_rollout_without_auto_rollback_stays_degraded(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False, autoRollback=False))
    await installed(emulator)
    emulator.deployments.by_image["vulcan-engine:2.1.0"] = RolloutOutcome.fail()
    set_version(emulator, "2.1.0")
    up = await settled(emulator, "Failed")
    assert up["failedStep"] == "Rollout"
    assert image(emulator) == "vulcan-engine:2.1.0"
    degraded = next(c for c in status(emulator)["conditions"] if c["type"] == "Degraded")
    assert "kubectl patch vulcanengine prod" in degraded["message"]
    assert '"version":"2.0.0"' in degraded["message"]


async def test_git_revert_is_a_rollback_with_downgrade(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    set_version(emulator, "2.1.0")
    await installed(emulator, "2.1.0")
    set_version(emulator, "2.0.0")  # git revert
    await installed(emulator, "2.0.0")
    assert image(emulator) == "vulcan-engine:2.0.0"
    assert await migrations.revision() == "rev-2.0.0"
    # The downgrade ran with the newer image, which knows the way back.
    assert migrations.ran[-1] == ("2.1.0", ["alembic", "downgrade", "rev-2.0.0"])
    assert [h["version"] for h in status(emulator)["history"]] == ["2.0.0", "2.1.0", "2.0.0"]


async def test_rollback_is_refused_when_the_revision_is_unknown(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    set_version(emulator, "2.1.0")
    await installed(emulator, "2.1.0")
    # Forget the revision 2.0.0 ran with, as if it had been installed by an older operator.
    history = status(emulator)["history"]
    history[0].pop("databaseRevision")
    emulator.patch(
        ENGINES, "default", "prod", {"status": {"history": history}}, subresource="status"
    )
    set_version(emulator, "2.0.0")
    up = await settled(emulator, "Refused")
    assert "not recorded" in up["reason"]
    assert image(emulator) == "vulcan-engine:2.1.0"
    assert await migrations.revision() == "rev-2.1.0"


async def test_operator_restart_mid_migration_resumes_without_duplicates(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    migrations.released.clear()
    set_version(emulator, "2.1.0")
    await emulator.wait_for(lambda: len(migrate_jobs(emulator)) == 2)
    await operator.restart()
    await asyncio.sleep(1.5)
    await operator.restart()
    migrations.released.set()
    await installed(emulator, "2.1.0")
    assert len(migrate_jobs(emulator)) == 2
    assert [v for v, _ in migrations.ran] == ["2.0.0", "2.1.0"]


async def test_version_change_during_an_upgrade_waits_for_it(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    migrations.released.clear()
    set_version(emulator, "2.1.0")
    await emulator.wait_for(lambda: len(migrate_jobs(emulator)) == 2)
    set_version(emulator, "2.2.0")
    await asyncio.sleep(1.5)
    assert status(emulator)["upgrade"]["to"] == "2.1.0"
    migrations.released.set()
    await installed(emulator, "2.2.0")
    versions = [h["version"] for h in status(emulator)["history"]]
    assert versions == ["2.0.0", "2.1.0", "2.2.0"]
    assert await migrations.revision() == "rev-2.2.0"
