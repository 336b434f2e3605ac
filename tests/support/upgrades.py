"""The upgrade tests' scaffolding: alembic stood in for inside migration Jobs (on a real
PostgreSQL), backup and restore Jobs with chosen outcomes, and the engine `prod` to upgrade."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import asyncpg
import pytest

from tests.emulator import Emulator, JobOutcome, RolloutOutcome
from tests.support.backups import backup_result, failure, restore_result

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
    await emulator.wait_for(lambda: status(emulator)["currentVersion"] == version, timeout=60)


async def settled(emulator: Emulator, step: str) -> dict[str, Any]:
    up: dict[str, Any] = await emulator.wait_for(
        lambda: status(emulator)["upgrade"]["step"] == step and status(emulator)["upgrade"],
        timeout=60,
    )
    return up


def serve_restores(emulator: Emulator, migrations: Migrations) -> list[str]:
    """Restore Jobs succeed and bring the pre-upgrade revision (rev-2.0.0) back; the other
    Jobs keep their outcomes. Returns the names of the restore Jobs run, in order."""
    others = emulator.jobs.outcome_for
    assert others is not None
    restored: list[str] = []

    async def run_restore(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        await migrations.set_revision("rev-2.0.0")  # the backup's revision comes back
        restored.append(job["metadata"]["name"])
        location = "pvc://prod-backups/default/prod/on-demand/vulcan.dump"
        return JobOutcome.succeed(message=restore_result(location, revision="rev-2.0.0"))

    def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
        if job["metadata"]["labels"].get("app.kubernetes.io/component") == "restore":
            return JobOutcome.run(run_restore)
        return others(job)

    emulator.jobs.outcome_for = outcome_for
    # Pods of a failing version go away too when it is scaled to zero.
    emulator.deployments.outcome_for = lambda d: (
        RolloutOutcome.ready() if d["spec"].get("replicas") == 0 else None
    )
    return restored
