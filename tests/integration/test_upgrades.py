"""Upgrades and rollbacks: the real operator on the emulator, the revision in a real PostgreSQL.

Migration Jobs run "alembic" for real in the sense that matters here: the Job simulation moves
the database's alembic_version the way `alembic upgrade head` (to `rev-<version>`) or
`alembic downgrade <rev>` would, so the operator reads true revisions through asyncpg.
"""

from __future__ import annotations

import asyncio

from tests.emulator import Emulator, RolloutOutcome
from tests.support.kopf_runner import OperatorRunner
from tests.support.upgrades import (
    ENGINES,
    Migrations,
    backups,
    engine,
    fast,
    image,
    installed,
    migrate_jobs,
    migrations,
    serve_restores,
    set_version,
    settled,
    status,
)

FIXTURES = (backups, fast, migrations)  # tests/support/upgrades.py's, used here by name


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
    await emulator.wait_for(lambda: status(emulator)["phase"] == "RollingBack", timeout=60)
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
    restored = serve_restores(emulator, migrations)
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
