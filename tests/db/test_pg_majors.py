"""Backups against PostgreSQL 15, 16, 17 and 18: real servers, real clients of each major.

The client the operator picks follows the server (`client_image`); with it, the backup program
dumps, verifies and the restore program brings back identical tables. An older pg_dump against
a newer server fails at step "version" with both versions in its result line, and the
reconcile turns that line into a condition naming both (`reconcile.jobs.failure`, read by the
engine's BackupHealthy and a VulcanBackup's status alike).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.dbharness import Runner, fingerprint, seed
from tests.support.fake_api import FakeApi
from tests.support.pg import PgDatabase
from tests.support.pgversions import MAJORS, PgServers
from vulcan_operator import enginedb, names
from vulcan_operator.api.engine import Backup, VulcanEngineSpec
from vulcan_operator.builders.backup.pods import client_image
from vulcan_operator.reconcile import engine_backups

IDENT = {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"}


def _seeded(servers: PgServers, major: int, label: str) -> PgDatabase:
    db = servers[major].create_database(label=f"{label}_{major}")
    seed(db.dsn)
    return db


def _backup(runner: Runner, db: PgDatabase, folder: Path) -> Any:
    return runner(
        "backup",
        IDENT,
        DATABASE_URL=db.dsn,
        BACKUP_DIR=str(folder),
        BACKUP_LOCATION="pvc://prod-backups/shop/prod",
    )


@pytest.mark.parametrize("major", MAJORS)
def test_the_matching_client_dumps_verifies_and_restores_identical_tables(
    pg_servers: PgServers, pg_bin_dirs: dict[int, Path], tmp_path: Path, major: int
) -> None:
    server = pg_servers[major]
    db = _seeded(pg_servers, major, "major")
    runner = Runner(pg_bin_dirs[major], tmp_path / "run")
    # What the operator reads, and the client image it then picks.
    facts = asyncio.run(enginedb.read_server(db.dsn))
    assert facts.major == major
    assert client_image(Backup(), "postgres:15-alpine", facts.version) == (
        f"postgres:{major}-alpine"
    )

    run = _backup(runner, db, tmp_path / "backups")
    assert run.code == 0, run.explain()
    result = run.result
    assert result["outcome"] == "Succeeded"
    assert result["serverVersion"] == facts.version
    assert result["clientVersion"].split(".")[0] == str(major)
    dump = tmp_path / "backups" / result["file"]
    assert json.loads((dump.parent / (dump.name + ".json")).read_text())["serverVersion"] == (
        facts.version
    )

    target = server.create_database(label=f"restored_{major}")
    try:
        restored = runner(
            "restore",
            DATABASE_URL=target.dsn,
            BACKUP_FILE=str(dump),
            EXPECTED_SHA256=result["checksum"],
        )
        assert restored.code == 0, restored.explain()
        assert fingerprint(target.dsn) == fingerprint(db.dsn)
        assert fingerprint(target.dsn)  # the seed's tables are there
    finally:
        server.drop_database(target.dbname)
        server.drop_database(db.dbname)


@pytest.mark.parametrize("major", [m for m in MAJORS if m > 15])
def test_an_older_pg_dump_fails_with_a_condition_naming_both_versions(
    pg_servers: PgServers, pg_bin_dirs: dict[int, Path], tmp_path: Path, major: int
) -> None:
    db = _seeded(pg_servers, major, "mismatch")
    try:
        run = _backup(Runner(pg_bin_dirs[15], tmp_path / "run"), db, tmp_path / "backups")
    finally:
        pg_servers[major].drop_database(db.dbname)
    assert run.code == 2, run.explain()  # bad settings: the Job fails at once, no retry
    result = run.result
    server, client = result["serverVersion"], result["clientVersion"]
    assert server.startswith(f"{major}.") and client.startswith("15.")
    assert result["step"] == "version"
    assert not any((tmp_path / "backups").iterdir())  # nothing left behind

    # The reconcile reads the same line from the pod's termination message.
    condition = _backup_healthy_after(run.termination)
    assert condition["status"] == "False"
    assert condition["reason"] == "ClientVersionMismatch"
    assert f"pg_dump {client}" in condition["message"]
    assert f"PostgreSQL {server}" in condition["message"]
    assert "spec.backup.clientImage" in condition["message"]


def _backup_healthy_after(termination: str) -> dict[str, Any]:
    """The engine's BackupHealthy once its CronJob's Job failed with `termination`."""
    labels = names.labels("prod", names.COMPONENT_BACKUP)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "prod-backup-1", "namespace": "shop", "labels": labels},
        "status": {
            "conditions": [
                {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T02:00:09Z"}
            ]
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "prod-backup-1-x",
            "namespace": "shop",
            "labels": {"job-name": "prod-backup-1"},
        },
        "status": {
            "containerStatuses": [
                {"name": "backup", "state": {"terminated": {"exitCode": 2, "message": termination}}}
            ]
        },
    }
    api = FakeApi(job, pod)
    spec = VulcanEngineSpec(version="1.0")
    view = asyncio.run(
        engine_backups.engine_backups(
            api,  # type: ignore[arg-type]
            "shop",
            "prod",
            spec,
            {},
            1,
            when=datetime.datetime(2026, 1, 1, 3, tzinfo=datetime.UTC),
        )
    )
    return view.condition
