"""Restore drills against a real PostgreSQL, run exactly as a drill Job runs them.

A good backup passes (restored in one transaction into a scratch database, every table's rows
and the alembic revision as the backup recorded them, the scratch database dropped, the live
one untouched). A truncated file, a backup whose recorded row counts do not match, and a dump
whose revision is not the one recorded each fail, with a reason naming it. With S3 storage the
pod runs two containers, as here: `s3-drill-download` (aws CLI; the project's fake `aws` over a
folder) puts the newest backup of the engine's folder and its manifest into a shared folder,
then `drill` runs on it. With `spec.backup.drill.serverUrlSecretRef` the drill's DATABASE_URL
is that other server's: the scratch database is made there, never on the engine's server.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.dbharness import (
    SEED_REVISION,
    Runner,
    create_seeded_template,
    fake_aws,
    fingerprint,
    row_counts,
)
from tests.support.pg import PgDatabase, PgServer, PgSetupError

IDENT = {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"}
MARK = "vulcan-operator restore drill scratch database"


@pytest.fixture(scope="module")
def template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_drill")
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def live(pg_server: PgServer, template: str) -> Iterator[PgDatabase]:
    """The engine's database: a copy of the seed."""
    db = pg_server.create_database(label=f"dl{os.getpid()}", template=template)
    yield db
    pg_server.drop_database(db.dbname)


@pytest.fixture
def store(live: PgDatabase, pg_bin_dir: Path, tmp_path: Path) -> Path:
    """The engine's backup folder with one backup of `live`, made by the backup program."""
    run = Runner(pg_bin_dir, tmp_path / "backup")(
        "backup", IDENT, DATABASE_URL=live.dsn, BACKUP_DIR=str(tmp_path / "files")
    )
    assert run.code == 0, run.explain()
    return tmp_path / "files"


def drill(live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path) -> dict[str, object]:
    run = Runner(pg_bin_dir, tmp_path / "drill")(
        "drill",
        DATABASE_URL=live.dsn,
        BACKUP_DIR=str(store),
        DRILL_LOCATION_PREFIX="pvc://prod-backups/shop/prod",
    )
    result = run.result
    assert run.code == (0 if result["outcome"] == "Succeeded" else 1), run.explain()
    assert json.loads(run.termination) == result
    assert live.dsn.split("@")[0].split(":")[-1] not in run.everything  # no password
    return result


def databases(live: PgDatabase) -> set[str]:
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def manifest(store: Path) -> Path:
    [found] = store.glob("vulcan_*.dump.json")
    return found


def edit_manifest(store: Path, **changes: object) -> None:
    path = manifest(store)
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def test_the_backup_records_the_rows_of_every_table(live: PgDatabase, store: Path) -> None:
    recorded = json.loads(manifest(store).read_text())["rowCounts"]
    assert recorded == row_counts(live.dsn)
    assert sum(recorded.values()) > 0 and "alembic_version" in recorded


def test_a_good_backup_passes(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    before = fingerprint(live.dsn)
    # A scratch database left by a drill killed half-way is replaced, not an error.
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{live.dbname}_drill"')
        conn.execute(f"COMMENT ON DATABASE \"{live.dbname}_drill\" IS '{MARK}'")
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Succeeded", result
    assert result["rowCounts"] == row_counts(live.dsn)
    assert result["databaseRevision"] == SEED_REVISION
    assert result["database"] == f"{live.dbname}_drill"
    assert str(result["backup"]).startswith("pvc://prod-backups/shop/prod/vulcan_")
    assert isinstance(result["durationSeconds"], int)
    assert f"{live.dbname}_drill" not in databases(live)  # dropped
    assert fingerprint(live.dsn) == before  # the live database untouched


def test_the_newest_backup_is_drilled_on_demand_ones_included(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    newest = store / "on-demand" / "vulcan_29991231_235959.dump"
    newest.parent.mkdir()
    old = next(store.glob("vulcan_*.dump"))
    for suffix in ("", ".sha256", ".json"):
        Path(f"{newest}{suffix}").write_bytes(Path(f"{old}{suffix}").read_bytes())
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Succeeded", result
    assert str(result["backup"]).endswith("on-demand/vulcan_29991231_235959.dump")


def test_a_truncated_file_fails_naming_the_checksum(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    dump = next(store.glob("vulcan_*.dump"))
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Failed" and result["reason"] == "RestoreFailed", result
    assert "checksum mismatch" in str(result["message"]), result
    assert f"{live.dbname}_drill" not in databases(live)


def test_a_truncated_file_recorded_as_such_fails_as_unreadable(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    dump = next(store.glob("vulcan_*.dump"))
    data = dump.read_bytes()[:-200]
    dump.write_bytes(data)
    edit_manifest(store, checksum=hashlib.sha256(data).hexdigest())
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Failed" and result["reason"] == "RestoreFailed", result
    assert "ended early" in str(result["message"]) and "rolled back" in str(result["message"])
    assert f"{live.dbname}_drill" not in databases(live)


def test_row_counts_that_do_not_match_fail_naming_the_table(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    counts = json.loads(manifest(store).read_text())["rowCounts"]
    table = next(t for t, n in sorted(counts.items()) if n > 0 and t != "alembic_version")
    edit_manifest(store, rowCounts={**counts, table: counts[table] + 7})
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Failed" and result["reason"] == "RowCountMismatch", result
    assert f"{table}: recorded {counts[table] + 7}, restored {counts[table]}" in str(
        result["message"]
    )
    assert f"{live.dbname}_drill" not in databases(live)


def test_a_dump_of_another_revision_fails_naming_both(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    edit_manifest(store, databaseRevision="0000aaaa1111")
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Failed" and result["reason"] == "RevisionMismatch", result
    assert SEED_REVISION in str(result["message"]) and "0000aaaa1111" in str(result["message"])
    assert f"{live.dbname}_drill" not in databases(live)


def test_no_backup_and_old_backups_fail_saying_so(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    path = manifest(store)
    data = json.loads(path.read_text())
    del data["rowCounts"]
    path.write_text(json.dumps(data) + "\n")
    result = drill(live, store, pg_bin_dir, tmp_path)
    assert result["reason"] == "NoRowCounts" and "take a new backup" in str(result["message"])
    empty = tmp_path / "empty"
    empty.mkdir()
    result = drill(live, empty, pg_bin_dir, tmp_path / "again")
    assert result["reason"] == "NoBackup"


def test_a_database_of_the_scratch_name_that_is_not_a_drills_is_left_alone(
    live: PgDatabase, store: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{live.dbname}_drill"')
    try:
        result = drill(live, store, pg_bin_dir, tmp_path)
        assert result["reason"] == "ScratchDatabaseTaken", result
        assert f"{live.dbname}_drill" in databases(live)  # not dropped
    finally:
        with psycopg.connect(live.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{live.dbname}_drill"')


# --- drills of S3 backups -------------------------------------------------------------------
S3_SECRET = "aws-s3cr3t-key-do-not-print"
FOLDER = "s3://vulcan-backups/database/shop/prod/"


@pytest.fixture
def bucket(store: Path, pg_bin_dir: Path, tmp_path: Path) -> Path:
    """The engine's S3 folder (a fake `aws` over tmp_path/s3) holding the backup of `store`,
    uploaded by the real upload program."""
    runner = Runner(pg_bin_dir, tmp_path / "up", extra_path=[fake_aws(tmp_path / "aws").parent])
    (tmp_path / "s3").mkdir()
    run = runner("s3-upload", {**s3_env(tmp_path), **IDENT}, BACKUP_DIR=str(store))
    assert run.code == 0, run.explain()
    return tmp_path / "s3" / "vulcan-backups" / "database" / "shop" / "prod"


def s3_env(tmp_path: Path) -> dict[str, str]:
    return {
        "FAKE_S3_ROOT": str(tmp_path / "s3"),
        "S3_BUCKET": "vulcan-backups",
        "S3_PREFIX": "database/shop/prod/",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    }


def s3_drill(
    live: PgDatabase, pg_bin_dir: Path, tmp_path: Path, pod: str = "pod"
) -> dict[str, object]:
    """The S3 drill pod: the download container, then (when it succeeded) the drill."""
    work = tmp_path / pod / "work"
    runner = Runner(pg_bin_dir, tmp_path / pod, extra_path=[fake_aws(tmp_path / "aws").parent])
    download = runner("s3-drill-download", {**s3_env(tmp_path), **IDENT}, BACKUP_DIR=str(work))
    assert S3_SECRET not in download.everything
    if download.code != 0:
        assert json.loads(download.termination) == download.result
        return download.result
    assert download.result["kind"] == "vulcan-drill-download", download.explain()
    run = runner(
        "drill",
        DATABASE_URL=live.dsn,
        BACKUP_DIR=str(work),
        DRILL_LOCATION_PREFIX=FOLDER.rstrip("/"),
    )
    assert run.code == (0 if run.result["outcome"] == "Succeeded" else 1), run.explain()
    assert live.dsn.split("@")[0].split(":")[-1] not in run.everything
    return run.result


def test_a_good_s3_backup_passes_the_newest_on_demand_one_included(
    live: PgDatabase, bucket: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    before = fingerprint(live.dsn)
    [dump] = bucket.glob("vulcan_*.dump")
    result = s3_drill(live, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Succeeded", result
    assert result["backup"] == FOLDER + dump.name
    assert result["rowCounts"] == row_counts(live.dsn)
    assert result["databaseRevision"] == SEED_REVISION
    assert f"{live.dbname}_drill" not in databases(live)
    assert fingerprint(live.dsn) == before

    # A newer on-demand backup is the one drilled; a dump without its manifest is not.
    (bucket / "on-demand").mkdir()
    for suffix in ("", ".json"):
        newest = bucket / "on-demand" / f"vulcan_29991231_235959.dump{suffix}"
        newest.write_bytes(Path(f"{dump}{suffix}").read_bytes())
    (bucket / "vulcan_30000101_000000.dump").write_bytes(dump.read_bytes())
    result = s3_drill(live, pg_bin_dir, tmp_path, "again")
    assert result["outcome"] == "Succeeded", result
    assert result["backup"] == FOLDER + "on-demand/vulcan_29991231_235959.dump"


def test_a_truncated_s3_object_fails_naming_it(
    live: PgDatabase, bucket: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    [dump] = bucket.glob("vulcan_*.dump")
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])
    result = s3_drill(live, pg_bin_dir, tmp_path)
    assert result["outcome"] == "Failed" and result["reason"] == "RestoreFailed", result
    assert result["backup"] == FOLDER + dump.name
    assert FOLDER + dump.name in str(result["message"]), result
    assert "checksum mismatch" in str(result["message"]), result
    assert f"{live.dbname}_drill" not in databases(live)


def test_an_empty_s3_folder_fails_as_no_backup(
    live: PgDatabase, bucket: Path, pg_bin_dir: Path, tmp_path: Path
) -> None:
    for manifest_file in bucket.glob("vulcan_*.dump.json"):
        manifest_file.unlink()  # a dump without its manifest is not a backup to drill
    result = s3_drill(live, pg_bin_dir, tmp_path)
    assert result["kind"] == "vulcan-drill" and result["reason"] == "NoBackup", result
    assert FOLDER in str(result["message"])


# --- a drill into another server ------------------------------------------------------------
@pytest.fixture(scope="module")
def other_server(pg_bin_dir: Path) -> Iterator[PgServer]:
    """A second PostgreSQL server, logging every DDL statement."""
    server = PgServer(bin_dir=pg_bin_dir)
    try:
        server.start()
    except PgSetupError as exc:
        pytest.fail(f"could not start a second PostgreSQL server: {exc}", pytrace=False)
    try:
        with server.admin_connect() as conn:
            conn.execute("ALTER SYSTEM SET log_statement = 'ddl'")
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.stop()


def test_a_drill_into_another_server_makes_its_scratch_database_there(
    live: PgDatabase,
    store: Path,
    other_server: PgServer,
    pg_server: PgServer,
    pg_bin_dir: Path,
    tmp_path: Path,
) -> None:
    # The same database name on both servers, so both would take the same scratch name; on
    # the engine's server a scratch database a killed drill left (marked) waits: a drill
    # there would replace and drop it.
    target = other_server.create_database(name=live.dbname)
    scratch = f"{live.dbname}_drill"
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
        conn.execute(f"COMMENT ON DATABASE \"{scratch}\" IS '{MARK}'")
    try:
        before = fingerprint(live.dsn)
        result = drill(target, store, pg_bin_dir, tmp_path)  # DATABASE_URL: the other server
        assert result["outcome"] == "Succeeded", result
        assert result["database"] == scratch
        assert result["rowCounts"] == row_counts(live.dsn)
        log = other_server.log_file.read_text(errors="replace")
        assert (
            f'CREATE DATABASE "{scratch}"' in log and f'DROP DATABASE IF EXISTS "{scratch}"' in log
        )
        assert scratch not in databases(target)  # dropped there
        assert scratch in databases(live)  # the engine's server untouched
        assert fingerprint(live.dsn) == before
    finally:
        pg_server.drop_database(scratch)
        other_server.drop_database(target.dbname)
