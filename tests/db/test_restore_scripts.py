"""The restore program against a real PostgreSQL, run exactly as the restore Job runs it.

Backup → drop → restore loses nothing; restoring over a changed database brings it back to the
backup; a new target database works; a bad backup file is refused before the database is
touched; a failure half-way rolls everything back. Every restore names the checksum it expects
(EXPECTED_SHA256), as the operator's restore Jobs do.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.dbharness import (
    SEED_REVISION,
    Runner,
    create_seeded_template,
    dsn_for,
    fake_aws,
    fingerprint,
    row_counts,
    shells,
)
from tests.support.pg import PgDatabase, PgServer

IDENT = {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"}


def _db_name(tag: str) -> str:
    """A short, unique database name (test database names are near the 63-character limit)."""
    return f"vr{os.getpid()}_{tag}"


@pytest.fixture(scope="module")
def template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_restore")
    yield name
    pg_server.drop_database(name)


def _as_db(pg_server: PgServer, name: str) -> PgDatabase:
    return PgDatabase(
        pg_server.host,
        pg_server.port,
        pg_server.app_user,
        pg_server.app_password,
        name,
        pg_server.bin_dir,
    )


@pytest.fixture(scope="module")
def backup_file(
    pg_server: PgServer, template: str, pg_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One backup of the seed, made by the backup program; tests copy it."""
    folder = tmp_path_factory.mktemp("backup")
    run = Runner(pg_bin_dir, folder / "run")(
        "backup",
        IDENT,
        DATABASE_URL=_as_db(pg_server, template).dsn,
        BACKUP_DIR=str(folder / "files"),
    )
    assert run.code == 0, run.explain()
    return folder / "files" / str(run.result["file"])


@pytest.fixture(scope="module")
def expected(pg_server: PgServer, template: str) -> dict[str, object]:
    """The seed's fingerprint (row checksums, constraints, indexes, sequences)."""
    return fingerprint(_as_db(pg_server, template).dsn)


@pytest.fixture
def seeded(
    pg_server: PgServer, template: str, request: pytest.FixtureRequest
) -> Iterator[PgDatabase]:
    """A seeded database of this test's own, to restore into."""
    db = pg_server.create_database(label=request.node.name, template=template)
    yield db
    pg_server.drop_database(db.dbname)


@pytest.fixture(scope="module")
def changed(pg_server: PgServer, template: str) -> Iterator[tuple[PgDatabase, dict[str, object]]]:
    """A seeded database changed after the backup, and its fingerprint: shared by the tests
    whose restores must fail and leave it as it is."""
    db = pg_server.create_database(label="changed", template=template)
    _mutate(db.dsn)
    yield db, fingerprint(db.dsn)
    pg_server.drop_database(db.dbname)


@pytest.fixture
def runner(pg_bin_dir: Path, tmp_path: Path) -> Runner:
    return Runner(pg_bin_dir, tmp_path / "run")


def _copy(backup: Path, folder: Path, *, sidecar: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / backup.name
    shutil.copyfile(backup, target)
    if sidecar:
        shutil.copyfile(f"{backup}.sha256", f"{target}.sha256")
    return target


def _sum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mutate(dsn: str) -> None:
    """What may happen to a database after its backup: rows gone, changed, added; objects
    dropped and added; sequences moved."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM assignments WHERE id % 2 = 0")
        conn.execute("UPDATE jobs SET priority = 1, name = name || '-x'")
        conn.execute("INSERT INTO machines (name, zone) VALUES ('late-machine', 'hall-z')")
        conn.execute("DROP VIEW job_load")
        conn.execute("DROP INDEX idx_tasks_status")
        conn.execute("ALTER TABLE tasks DROP CONSTRAINT tasks_duration_check")
        conn.execute("SELECT setval('jobs_id_seq', 5000)")
        conn.execute("UPDATE alembic_version SET version_num = 'ffff00001111'")


@pytest.mark.parametrize("shell", shells())
def test_backup_drop_restore_loses_nothing(
    pg_server: PgServer,
    template: str,
    backup_file: Path,
    expected: dict[str, object],
    pg_bin_dir: Path,
    tmp_path: Path,
    shell: str,
) -> None:
    # The backup is of the seed; the database is then dropped and created again, empty.
    db = pg_server.create_database(label=f"dropped_{shell}")
    try:
        file = _copy(backup_file, tmp_path / "files")
        run = Runner(pg_bin_dir, tmp_path / "run", shell=shell)(
            "restore",
            DATABASE_URL=db.dsn,
            BACKUP_FILE=str(file),
            BACKUP_LOCATION="pvc://prod-backups/shop/prod/" + file.name,
            EXPECTED_SHA256=_sum(file),
        )
        assert run.code == 0, run.explain()
        assert db.password not in run.everything
        assert fingerprint(db.dsn) == expected
        result = run.result
        assert result["outcome"] == "Succeeded"
        assert result["database"] == db.dbname
        assert result["location"] == "pvc://prod-backups/shop/prod/" + file.name
        assert result["created"] is False
        assert result["databaseRevision"] == SEED_REVISION
        assert result["checksum"] == _sum(file)
        assert result["rowCounts"] == row_counts(db.dsn)
        assert result["rowCounts"]["tasks"] == 3000
    finally:
        pg_server.drop_database(db.dbname)


def test_restore_over_a_changed_database_brings_back_the_backup(
    seeded: PgDatabase,
    backup_file: Path,
    expected: dict[str, object],
    runner: Runner,
    tmp_path: Path,
) -> None:
    _mutate(seeded.dsn)
    assert fingerprint(seeded.dsn) != expected
    file = _copy(backup_file, tmp_path / "f")
    run = runner(
        "restore", DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=_sum(file)
    )
    assert run.code == 0, run.explain()
    assert fingerprint(seeded.dsn) == expected
    # Identity and serial columns go on from where the backup left them.
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO jobs (name, created_at) VALUES ('new', now()) RETURNING id"
        ).fetchone()
        assert row is not None and row[0] == 1001


def test_restore_into_a_new_target_database(
    pg_server: PgServer,
    seeded: PgDatabase,
    backup_file: Path,
    expected: dict[str, object],
    runner: Runner,
    tmp_path: Path,
) -> None:
    _mutate(seeded.dsn)
    changed = fingerprint(seeded.dsn)
    target = _db_name("restore")
    file = _copy(backup_file, tmp_path / "f")
    env = {"EXPECTED_SHA256": _sum(file), "TARGET_DATABASE": target}
    try:
        first = runner("restore", env, DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file))
        assert first.code == 0, first.explain()
        assert first.result["created"] is True
        assert first.result["database"] == target
        assert fingerprint(dsn_for(seeded, target)) == expected
        assert fingerprint(seeded.dsn) == changed  # the engine's database is left alone
        # Again, now that it exists: restored over, not created.
        _mutate(dsn_for(seeded, target))
        again = runner("restore", env, DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file))
        assert again.code == 0, again.explain()
        assert again.result["created"] is False
        assert fingerprint(dsn_for(seeded, target)) == expected
        assert fingerprint(seeded.dsn) == changed
    finally:
        pg_server.drop_database(target)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupted(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _emptied(path: Path) -> None:
    path.write_bytes(b"")


def _not_an_archive(path: Path) -> None:
    path.write_bytes(b"CREATE TABLE t (i int);\n")


def _plain_gzip(path: Path) -> None:
    path.write_bytes(gzip.compress(b"CREATE TABLE t (i int);\n"))


@pytest.mark.parametrize(
    ("damage", "own_checksum", "message"),
    [
        (_truncated, False, "checksum mismatch"),
        (_corrupted, False, "checksum mismatch"),
        (_emptied, True, "is empty"),
        (_header_only, True, "is not a complete archive"),
        (_not_an_archive, True, "is not a PostgreSQL custom-format archive"),
        (_plain_gzip, True, "is a plain SQL dump"),
    ],
    ids=["truncated", "corrupted", "empty", "header-only", "not-an-archive", "plain-gzip"],
)
def test_a_bad_backup_is_refused_and_the_database_untouched(
    pg_server: PgServer,
    changed: tuple[PgDatabase, dict[str, object]],
    backup_file: Path,
    runner: Runner,
    tmp_path: Path,
    damage: object,
    own_checksum: bool,
    message: str,
) -> None:
    seeded, before = changed
    file = _copy(backup_file, tmp_path / "f")
    recorded = _sum(file)
    damage(file)  # type: ignore[operator]
    checksum = _sum(file) if own_checksum else recorded
    target = _db_name("never")
    for env in ({}, {"TARGET_DATABASE": target}):
        run = runner(
            "restore", env, DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=checksum
        )
        assert run.code == 3, run.explain()
        result = run.result
        assert result["outcome"] == "Failed"
        assert result["step"] == "verify"
        assert message in result["message"]
        assert "backup refused, database untouched" in result["message"]
    assert fingerprint(seeded.dsn) == before
    with pg_server.admin_connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (target,)
        ).fetchone() == (0,)


def test_a_missing_file_and_a_wrong_expected_checksum_are_refused(
    seeded: PgDatabase,
    backup_file: Path,
    expected: dict[str, object],
    runner: Runner,
    tmp_path: Path,
) -> None:
    _mutate(seeded.dsn)
    missing = runner(
        "restore",
        DATABASE_URL=seeded.dsn,
        BACKUP_FILE=str(tmp_path / "vulcan_20200101_000000.dump"),
        EXPECTED_SHA256="0" * 64,
    )
    assert missing.code == 3, missing.explain()
    assert "does not exist" in missing.result["message"]
    file = _copy(backup_file, tmp_path / "f")
    wrong = runner(
        "restore", DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256="0" * 64
    )
    assert wrong.code == 3, wrong.explain()
    assert "checksum mismatch" in wrong.result["message"]
    assert "EXPECTED_SHA256" in wrong.result["message"]
    right = runner(
        "restore",
        DATABASE_URL=seeded.dsn,
        BACKUP_FILE=str(file),
        EXPECTED_SHA256=_sum(file).upper(),
    )
    assert right.code == 0, right.explain()
    assert fingerprint(seeded.dsn) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "EXPECTED_SHA256 is not set"),
        ({"EXPECTED_SHA256": "abc"}, "EXPECTED_SHA256 must be 64 hex digits"),
        ({"EXPECTED_SHA256": "g" * 64}, "EXPECTED_SHA256 must be 64 hex digits"),
        ({"EXPECTED_SHA256": "0" * 64, "TARGET_DATABASE": "Bad-Name"}, "TARGET_DATABASE must"),
    ],
)
def test_bad_settings_exit_2_and_touch_nothing(
    changed: tuple[PgDatabase, dict[str, object]],
    backup_file: Path,
    runner: Runner,
    tmp_path: Path,
    env: dict[str, str],
    message: str,
) -> None:
    seeded, before = changed
    file = _copy(backup_file, tmp_path / "f")
    run = runner("restore", env, DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file))
    assert run.code == 2, run.explain()
    assert message in run.result["message"]
    assert fingerprint(seeded.dsn) == before


def test_a_failure_half_way_rolls_everything_back(
    pg_server: PgServer,
    changed: tuple[PgDatabase, dict[str, object]],
    backup_file: Path,
    runner: Runner,
    tmp_path: Path,
) -> None:
    # A well-formed archive (its checksum given, its table of contents readable) whose data
    # ends half-way: the database was emptied and half loaded when pg_restore fails; it must
    # come out as it went in.
    seeded, before = changed
    file = tmp_path / backup_file.name
    data = backup_file.read_bytes()
    file.write_bytes(data[: len(data) * 3 // 4])
    run = runner(
        "restore", DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=_sum(file)
    )
    assert run.code == 1, run.explain()
    assert run.result["step"] == "restore"
    assert "rolled back" in run.result["message"]
    assert fingerprint(seeded.dsn) == before
    # Into a new database: the empty database the restore created is dropped again.
    target = _db_name("halfway")
    again = runner(
        "restore",
        DATABASE_URL=seeded.dsn,
        BACKUP_FILE=str(file),
        TARGET_DATABASE=target,
        EXPECTED_SHA256=_sum(file),
    )
    assert again.code == 1, again.explain()
    assert f"dropping the database '{target}'" in again.stderr
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (target,)
        ).fetchone() == (0,)


def test_an_sql_error_half_way_rolls_back_the_emptying_too(
    pg_server: PgServer,
    seeded: PgDatabase,
    backup_file: Path,
    runner: Runner,
    tmp_path: Path,
) -> None:
    # A table the engine's role does not own, with a name the archive creates: the emptying
    # leaves it, the archive's CREATE TABLE fails after everything else was dropped; the
    # whole transaction rolls back.
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE machines RENAME TO machines_old")
    with pg_server.admin_connect(seeded.dbname) as conn:
        conn.execute("CREATE TABLE public.machines (id int)")
    before = fingerprint(seeded.dsn)
    file = _copy(backup_file, tmp_path / "f")
    run = runner(
        "restore", DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=_sum(file)
    )
    assert run.code == 1, run.explain()
    assert "rolled back" in run.result["message"]
    assert "already exists" in run.result["message"]
    assert fingerprint(seeded.dsn) == before


def test_a_restore_removes_what_the_backup_did_not_have(
    seeded: PgDatabase,
    backup_file: Path,
    expected: dict[str, object],
    runner: Runner,
    tmp_path: Path,
) -> None:
    # Objects created after the backup (a schema, a table referencing an old one, a function,
    # a type) are gone after the restore: the database is exactly the backup.
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA reports")
        conn.execute("CREATE TABLE reports.daily (id int)")
        conn.execute("CREATE TABLE notes (id int, job_id int REFERENCES jobs (id))")
        conn.execute("CREATE FUNCTION twice(i int) RETURNS int LANGUAGE sql AS 'SELECT 2 * i'")
        conn.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        conn.execute("CREATE DOMAIN positive AS int CHECK (VALUE > 0)")
        conn.execute(
            "CREATE FUNCTION add2(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'"
        )
        conn.execute("CREATE AGGREGATE total(int) (sfunc = add2, stype = int)")
        conn.execute("CREATE MATERIALIZED VIEW busy AS SELECT count(*) AS n FROM jobs")
        conn.execute("CREATE TABLE events (at date, mood mood) PARTITION BY RANGE (at)")
        conn.execute(
            "CREATE TABLE events_2026 PARTITION OF events"
            " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
        )
        conn.execute("CREATE SEQUENCE loose_seq")
        conn.execute("SELECT lo_from_bytea(0, 'blob')")
    file = _copy(backup_file, tmp_path / "f")
    run = runner(
        "restore", DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=_sum(file)
    )
    assert run.code == 0, run.explain()
    assert fingerprint(seeded.dsn) == expected
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'reports'),"
            " (SELECT count(*) FROM pg_proc WHERE proname = 'twice'),"
            " (SELECT count(*) FROM pg_type WHERE typname IN ('mood', 'positive')),"
            " (SELECT count(*) FROM pg_proc WHERE proname IN ('add2', 'total')),"
            " (SELECT count(*) FROM pg_class WHERE relname IN ('busy', 'events', 'loose_seq')),"
            " (SELECT count(*) FROM pg_largeobject_metadata)"
        ).fetchone()
    assert left == (0, 0, 0, 0, 0, 0)


def test_restore_from_s3_downloads_then_restores(
    seeded: PgDatabase,
    backup_file: Path,
    expected: dict[str, object],
    pg_bin_dir: Path,
    tmp_path: Path,
) -> None:
    """The S3 restore pod: `s3-download` (aws CLI), then `restore` from the shared folder."""
    root = tmp_path / "s3"
    _copy(backup_file, root / "vulcan-backups" / "database" / "shop" / "prod")
    runner = Runner(pg_bin_dir, tmp_path / "run", extra_path=[fake_aws(tmp_path / "aws").parent])
    location = f"s3://vulcan-backups/database/shop/prod/{backup_file.name}"
    shared = tmp_path / "work"
    s3_env = {
        "FAKE_S3_ROOT": str(root),
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-key-do-not-print",
    }

    missing = runner("s3-download", s3_env, S3_LOCATION=location + ".nope", BACKUP_DIR=str(shared))
    assert missing.code == 3, missing.explain()
    assert "does not exist" in missing.result["message"]

    download = runner("s3-download", s3_env, S3_LOCATION=location, BACKUP_DIR=str(shared))
    assert download.code == 0, download.explain()
    assert download.result["file"] == str(shared / backup_file.name)
    assert sorted(p.name for p in shared.iterdir()) == [backup_file.name]
    _mutate(seeded.dsn)
    restore = runner(
        "restore",
        DATABASE_URL=seeded.dsn,
        BACKUP_FILE=download.result["file"],
        BACKUP_LOCATION=location,
        EXPECTED_SHA256=_sum(backup_file),
    )
    assert restore.code == 0, restore.explain()
    assert restore.result["location"] == location
    assert fingerprint(seeded.dsn) == expected
    for run in (missing, download, restore):
        assert "aws-s3cr3t-key-do-not-print" not in run.everything


def test_a_wrong_password_is_not_printed(
    changed: tuple[PgDatabase, dict[str, object]],
    backup_file: Path,
    runner: Runner,
    tmp_path: Path,
) -> None:
    seeded = changed[0]
    url = seeded.dsn.replace(f":{seeded.password}@", ":Wr0ng-Passw0rd-do-not-print@")
    file = _copy(backup_file, tmp_path / "f")
    run = runner(
        "restore",
        DATABASE_URL=url,
        BACKUP_FILE=str(file),
        TARGET_DATABASE="elsewhere",
        EXPECTED_SHA256=_sum(file),
    )
    assert run.code == 1, run.explain()
    assert "password authentication failed" in run.result["message"]
    assert "Wr0ng-Passw0rd-do-not-print" not in run.everything
    assert seeded.password not in run.everything


def test_large_objects_comments_and_schemas_round_trip(
    pg_database: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    # What a dump holds beyond tables and rows comes back too, through the restore's filter.
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA reports")
        conn.execute("CREATE TABLE reports.daily (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO reports.daily VALUES (1, E'a\\\\b\\nc'), (2, NULL)")
        conn.execute("COMMENT ON TABLE reports.daily IS 'one row a day'")
        # COPY data lines that start with a backslash: a NULL and a value starting with one.
        conn.execute("CREATE TABLE reports.notes (note text, n int)")
        conn.execute("INSERT INTO reports.notes VALUES (NULL, 1), (E'\\\\! id', 2), ('\\.', 3)")
        conn.execute("SELECT lo_from_bytea(0, decode(repeat('ab', 5000), 'hex'))")
    run = runner(
        "backup",
        {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"},
        DATABASE_URL=pg_database.dsn,
        BACKUP_DIR=str(tmp_path / "b"),
    )
    assert run.code == 0, run.explain()
    file = tmp_path / "b" / run.result["file"]
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        before = conn.execute(
            "SELECT (SELECT string_agg(body, '|' ORDER BY id) FROM reports.daily)"
            " || (SELECT string_agg(coalesce(note, 'NULL'), '|' ORDER BY n) FROM reports.notes),"
            " obj_description('reports.daily'::regclass),"
            " (SELECT md5(string_agg(lo_get(oid), '' ORDER BY oid))"
            "  FROM pg_largeobject_metadata)"
        ).fetchone()
        conn.execute("DROP SCHEMA reports CASCADE")
        conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
    restore = runner(
        "restore", DATABASE_URL=pg_database.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=_sum(file)
    )
    assert restore.code == 0, restore.explain()
    assert restore.result["rowCounts"] == {"reports.daily": 2, "reports.notes": 3}
    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        after = conn.execute(
            "SELECT (SELECT string_agg(body, '|' ORDER BY id) FROM reports.daily)"
            " || (SELECT string_agg(coalesce(note, 'NULL'), '|' ORDER BY n) FROM reports.notes),"
            " obj_description('reports.daily'::regclass),"
            " (SELECT md5(string_agg(lo_get(oid), '' ORDER BY oid))"
            "  FROM pg_largeobject_metadata)"
        ).fetchone()
    assert after == before and before is not None and before[2] is not None


def test_a_client_without_restrict_key_is_refused(
    changed: tuple[PgDatabase, dict[str, object]],
    backup_file: Path,
    pg_bin_dir: Path,
    tmp_path: Path,
) -> None:
    # A pg_restore older than 15.14 / 16.10 / 17.6 cannot make psql refuse meta-commands.
    seeded, before = changed
    fake = tmp_path / "old-client"
    fake.mkdir()
    (fake / "pg_restore").write_text(
        "#!/bin/sh\n"
        'case "$1" in --version) echo "pg_restore (PostgreSQL) 15.8";;'
        " *) echo '  -f, --file=FILENAME      output file name';; esac\n"
    )
    (fake / "pg_restore").chmod(0o755)
    file = _copy(backup_file, tmp_path / "f")
    run = Runner(pg_bin_dir, tmp_path / "run", extra_path=[fake])(
        "restore", DATABASE_URL=seeded.dsn, BACKUP_FILE=str(file), EXPECTED_SHA256=_sum(file)
    )
    assert run.code == 2, run.explain()
    assert "--restrict-key" in run.result["message"]
    assert "15.8" in run.result["message"]
    assert fingerprint(seeded.dsn) == before
