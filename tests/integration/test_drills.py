"""Restore drills end to end: the real operator on the emulator makes the drill CronJob; its
runs (made from the CronJob's template, as the CronJob controller would) run the real drill
program against a real PostgreSQL, on the backups the real backup program wrote; the engine's
status.lastDrill, RestoreVerified, the metric and `kubectl vulcan status` follow. With S3
storage the backups and the drills go through the project's fake `aws` over a folder."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.emulator import JobOutcome
from tests.support.backups import (
    BACKUPS,
    ENGINES,
    LocalPods,
    cond,
    custom,
    installed,
    run_cronjob,
    status,
)
from tests.support.dbharness import create_seeded_template, fake_aws, row_counts
from tests.support.kopf_runner import OperatorRunner
from tests.support.pg import PgServer
from tests.support.plugin import LogEmulator, Plugin, kubeconfig

pytestmark = pytest.mark.emulator(cls=LogEmulator)
DRILL = {"drill": {"enabled": True, "schedule": "0 4 * * *"}}


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


@pytest.fixture(scope="module")
def seed_template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_drills")
    yield name
    pg_server.drop_database(name)


def verified_gauge() -> float | None:
    from vulcan_operator.metrics import REGISTRY

    return REGISTRY.get_sample_value(
        "vulcan_engine_restore_verified", {"namespace": "default", "engine": "prod"}
    )


def databases(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


async def test_drills_prove_the_backups_restore(
    emulator: LogEmulator,
    operator: OperatorRunner,
    pg_server: PgServer,
    pg_bin_dir: Path,
    seed_template: str,
    tmp_path: Path,
) -> None:
    db = pg_server.create_database(label="drills", template=seed_template)
    try:
        pods = LocalPods(emulator, tmp_path, pg_bin_dir)

        def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
            labels = job["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") in ("backup", "drill"):
                return JobOutcome.run(pods.run)
            return None

        emulator.jobs.outcome_for = outcome_for
        await installed(emulator, url=db.dsn, backup=DRILL)
        cronjob = emulator.get("cronjobs", "default", "prod-drill")
        assert cronjob["spec"]["schedule"] == "0 4 * * *"
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["volumes"][-1]["persistentVolumeClaim"] == {
            "claimName": "prod-backups",
            "readOnly": True,
        }
        before = await emulator.wait_for(
            lambda: cond(status(emulator), "RestoreVerified")["reason"] == "NoDrillYet"
        )
        assert before and verified_gauge() is None

        # A backup by the real program, then a drill of it.
        emulator.create(custom("VulcanBackup", "b1"))
        await emulator.wait_for(
            lambda: status(emulator, BACKUPS, "b1")["phase"] == "Succeeded", timeout=60
        )
        run_cronjob(emulator, "prod-drill", "1")
        ok = await emulator.wait_for(
            lambda: (c := cond(status(emulator), "RestoreVerified"))["status"] == "True" and c,
            timeout=60,
        )
        last = status(emulator)["lastDrill"]
        assert last["outcome"] == "Succeeded" and last["job"] == "prod-drill-1", last
        assert last["rowCounts"] == row_counts(db.dsn)
        assert last["backup"] == status(emulator, BACKUPS, "b1")["location"]
        assert isinstance(last["durationSeconds"], int) and last["time"]
        assert ok["reason"] == "DrillSucceeded" and str(len(last["rowCounts"])) in ok["message"]
        assert f"{db.dbname}_drill" not in databases(db.dsn)
        await emulator.wait_for(lambda: verified_gauge() == 1.0)
        assert db.password not in json.dumps(emulator.get(ENGINES, "default", "prod"))

        # The backup's recorded counts no longer match what it restores to: the drill fails.
        [manifest] = pods.claim("prod-backups").glob("default/prod/on-demand/vulcan_*.dump.json")
        data = json.loads(manifest.read_text())
        data["rowCounts"]["jobs"] += 1
        manifest.write_text(json.dumps(data, separators=(",", ":")) + "\n")  # as backup.sh
        run_cronjob(emulator, "prod-drill", "2")
        bad = await emulator.wait_for(
            lambda: (c := cond(status(emulator), "RestoreVerified"))["status"] == "False" and c,
            timeout=60,
        )
        assert bad["reason"] == "RowCountMismatch" and "jobs: recorded" in bad["message"], bad
        assert status(emulator)["lastDrill"]["outcome"] == "Failed"
        await emulator.wait_for(lambda: verified_gauge() == 0.0)

        plugin = Plugin(kubeconfig(tmp_path / "config", emulator.url))
        emulator.pod_logs, emulator.by_user = {}, []
        done = await plugin("status", "prod")
        assert done.returncode == 0, done.stderr
        assert "Drill:      Failed" in done.stdout and "RowCountMismatch" in done.stdout

        # Off: the CronJob goes, the condition says so, the series is dropped.
        emulator.patch(
            ENGINES, "default", "prod", {"spec": {"backup": {"drill": {"enabled": False}}}}
        )
        await emulator.wait_for(lambda: emulator.get("cronjobs", "default", "prod-drill") is None)
        await emulator.wait_for(
            lambda: cond(status(emulator), "RestoreVerified")["reason"] == "DrillsDisabled"
        )
        await emulator.wait_for(lambda: verified_gauge() is None)
        assert [name for name, _ in pods.ran].count("drill") == 2
    finally:
        await operator.stop()
        pg_server.drop_database(db.dbname)


async def test_maintenance_results_reach_the_status(
    emulator: LogEmulator,
    operator: OperatorRunner,
    pg_server: PgServer,
    pg_bin_dir: Path,
    seed_template: str,
    tmp_path: Path,
) -> None:
    db = pg_server.create_database(label="vacuum", template=seed_template)
    try:
        pods = LocalPods(emulator, tmp_path, pg_bin_dir)

        def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
            labels = job["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") == "maintenance":
                return JobOutcome.run(pods.run)
            return None

        emulator.jobs.outcome_for = outcome_for
        await installed(emulator, url=db.dsn)
        run_cronjob(emulator, "prod-maintenance", "1")
        last = await emulator.wait_for(lambda: status(emulator)["lastMaintenance"], timeout=60)
        assert last["outcome"] == "Succeeded" and last["vacuumed"] is True, last
        assert last["reindexed"] is False and last["job"] == "prod-maintenance-1"
        assert last["databaseBytes"] > 1_000_000  # the seed's tables and indexes
        done = await Plugin(kubeconfig(tmp_path / "config", emulator.url))("status", "prod")
        assert "Vacuum:     Succeeded" in done.stdout, done.stdout + done.stderr
    finally:
        await operator.stop()
        pg_server.drop_database(db.dbname)


S3 = {"bucket": "vulcan-backups", "prefix": "database/", "credentialsSecretRef": {"name": "s3"}}
S3_SECRET = "aws-s3cr3t-key-do-not-print"


async def test_drills_of_s3_backups_read_the_engines_folder(
    emulator: LogEmulator,
    operator: OperatorRunner,
    pg_server: PgServer,
    pg_bin_dir: Path,
    seed_template: str,
    tmp_path: Path,
) -> None:
    db = pg_server.create_database(label="s3drills", template=seed_template)
    try:
        pods = LocalPods(emulator, tmp_path, pg_bin_dir)
        pods.extra_path.append(fake_aws(tmp_path / "aws").parent)
        (tmp_path / "s3").mkdir()
        pods.extra_env["FAKE_S3_ROOT"] = str(tmp_path / "s3")

        def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
            labels = job["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") in ("backup", "drill"):
                return JobOutcome.run(pods.run)
            return None

        emulator.jobs.outcome_for = outcome_for
        keys = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": S3_SECRET}
        emulator.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s3", "namespace": "default"},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
            }
        )
        await installed(emulator, url=db.dsn, backup={"storage": {"s3": S3}, **DRILL})

        # Nothing in the engine's folder yet: the download container says so.
        run_cronjob(emulator, "prod-drill", "1")
        none = await emulator.wait_for(
            lambda: (c := cond(status(emulator), "RestoreVerified"))["status"] == "False" and c,
            timeout=60,
        )
        assert none["reason"] == "NoBackup", none
        assert "s3://vulcan-backups/database/default/prod/" in none["message"]

        # A backup by the real programs into the bucket, then a drill of it.
        emulator.create(custom("VulcanBackup", "b1"))
        await emulator.wait_for(
            lambda: status(emulator, BACKUPS, "b1")["phase"] == "Succeeded", timeout=60
        )
        location = status(emulator, BACKUPS, "b1")["location"]
        assert location.startswith("s3://vulcan-backups/database/default/prod/on-demand/")
        run_cronjob(emulator, "prod-drill", "2")
        ok = await emulator.wait_for(
            lambda: (c := cond(status(emulator), "RestoreVerified"))["status"] == "True" and c,
            timeout=60,
        )
        last = status(emulator)["lastDrill"]
        assert last["outcome"] == "Succeeded" and last["job"] == "prod-drill-2", last
        assert last["backup"] == location
        assert last["rowCounts"] == row_counts(db.dsn)
        assert ok["reason"] == "DrillSucceeded"
        assert f"{db.dbname}_drill" not in databases(db.dsn)
        assert [name for name, _ in pods.ran].count("download") == 2
        engine = json.dumps(emulator.get(ENGINES, "default", "prod"))
        assert db.password not in engine and S3_SECRET not in engine
    finally:
        await operator.stop()
        pg_server.drop_database(db.dbname)
