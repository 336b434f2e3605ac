"""Attacks on the backup, restore and retention programs, run for real (issue 12).

Each test plays a hostile namespace user against the very program text a pod runs (the harness
in tests/data/db/harness.py), with a real PostgreSQL: a restore file that carries psql
meta-commands (`\\connect` to the live database, `\\!`, `\\getenv` + `\\gexec`), a side restore
aimed at the live database, a restore over a migrated schema, retention in a folder or prefix
two engines share, a backup racing another for one name, and a restore with no checksum or a
`.sha256` rewritten to match a tampered file.

Every test fails against the scripts of c37051b: run them with those scripts assembled instead,
`VULCAN_TEST_SCRIPTS_DIR=<folder of c37051b's scripts/*.sh> pytest tests/security/test_programs.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.dbharness import (
    Runner,
    create_seeded_template,
    dsn_for,
    fake_aws,
    fingerprint,
    shells,
)
from tests.support.pg import PgDatabase, PgServer

NAMESPACE = "shop"
IDENT = {"VULCAN_NAMESPACE": NAMESPACE, "VULCAN_ENGINE": "prod"}
DAY = 86400


def _sum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_attacks")
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def live(
    pg_server: PgServer, template: str, request: pytest.FixtureRequest
) -> Iterator[PgDatabase]:
    """The engine's own (live) database, seeded."""
    db = pg_server.create_database(label=request.node.name[:20], template=template)
    yield db
    pg_server.drop_database(db.dbname)


@pytest.fixture
def runner(pg_bin_dir: Path, tmp_path: Path) -> Runner:
    return Runner(pg_bin_dir, tmp_path / "run")


def _side_name(tag: str) -> str:
    return f"att{os.getpid()}_{tag}"


def _backup(runner: Runner, db: PgDatabase, folder: Path) -> tuple[Path, str]:
    run = runner("backup", IDENT, DATABASE_URL=db.dsn, BACKUP_DIR=str(folder))
    assert run.code == 0, run.explain()
    return folder / str(run.result["file"]), str(run.result["checksum"])


def _tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


# --- (a) a file that runs psql meta-commands ----------------------------------------------------
def _hostile_sql(live: str, side: str, marker: Path) -> bytes:
    """A plain dump as the issue describes it: `\\connect` to the live database and DROP TABLE,
    `\\!` a shell, `\\getenv` the password into a table name (it would show in rowCounts)."""
    return (
        "-- PostgreSQL database dump\n"
        f"\\connect {live}\n"
        "DROP TABLE jobs CASCADE;\n"
        f"\\! touch {marker}\n"
        f"\\connect {side}\n"
        "\\getenv pw PGPASSWORD\n"
        "SELECT format('CREATE TABLE %I (i int)', :'pw') \\gexec\n"
        "--\n-- PostgreSQL database dump complete\n--\n"
    ).encode()


@pytest.mark.parametrize("shell", shells())
@pytest.mark.parametrize("compressed", [True, False], ids=["sql.gz", "uncompressed"])
def test_a_plain_dump_with_meta_commands_is_refused_and_runs_nothing(
    pg_server: PgServer,
    live: PgDatabase,
    pg_bin_dir: Path,
    tmp_path: Path,
    shell: str,
    compressed: bool,
) -> None:
    side = _side_name(f"plain{int(compressed)}")
    marker = tmp_path / "shell-ran"
    text = _hostile_sql(live.dbname, side, marker)
    file = tmp_path / ("vulcan_20261129_020000.sql.gz" if compressed else "vulcan_x.dump")
    file.write_bytes(gzip.compress(text) if compressed else text)
    before = fingerprint(live.dsn)
    try:
        run = Runner(pg_bin_dir, tmp_path / "run", shell=shell)(
            "restore",
            DATABASE_URL=live.dsn,
            BACKUP_FILE=str(file),
            EXPECTED_SHA256=_sum(file),  # the attacker gives the checksum of their own file
            TARGET_DATABASE=side,
        )
        assert run.code == 3, run.explain()
        expected = "is a plain SQL dump" if compressed else "not a PostgreSQL custom-format"
        assert expected in run.result["message"]
        assert not marker.exists()
        assert fingerprint(live.dsn) == before
        assert live.password not in run.everything
        with pg_server.admin_connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (side,)
            ).fetchone() == (0,)
    finally:
        pg_server.drop_database(side)


def _patch_toc(data: bytes, placeholder: bytes, replacement: bytes) -> bytes:
    """Replace text inside the archive's (uncompressed) table of contents, same length."""
    assert len(replacement) <= len(placeholder)
    assert data.count(placeholder) == 1
    return data.replace(placeholder, replacement.ljust(len(placeholder), b" "))


@pytest.mark.parametrize("shell", shells())
def test_a_custom_archive_with_meta_commands_in_its_text_runs_nothing(
    pg_server: PgServer,
    live: PgDatabase,
    runner: Runner,
    pg_bin_dir: Path,
    tmp_path: Path,
    shell: str,
) -> None:
    marker = tmp_path / "shell-ran"
    placeholder = "Q" * 120
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        conn.execute(f"COMMENT ON TABLE machines IS '{placeholder}'")
        # A comment and a function body whose text has backslash lines (inside literals).
        conn.execute(f"COMMENT ON TABLE jobs IS E'x\\n\\\\! touch {marker}\\n'")
        conn.execute(
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS "
            f"$f$BEGIN /*\n\\connect {live.dbname}\n*/ RETURN 1; END$f$"
        )
    dump, _ = _backup(runner, live, tmp_path / "b")
    before = fingerprint(live.dsn)
    side = _side_name("custom")
    run_with = Runner(pg_bin_dir, tmp_path / "run", shell=shell)
    try:
        # 1. The archive as our backup wrote it: the backslash lines are inside literals.
        inside = run_with(
            "restore",
            DATABASE_URL=live.dsn,
            BACKUP_FILE=str(dump),
            EXPECTED_SHA256=_sum(dump),
            TARGET_DATABASE=side,
        )
        assert inside.code == 1, inside.explain()
        assert "meta-command" in inside.result["message"]
        # 2. A crafted archive: the table of contents patched so that a `\!` line stands
        #    outside any literal, as a hostile file would have it.
        crafted = tmp_path / "c" / dump.name
        crafted.parent.mkdir()
        crafted.write_bytes(
            _patch_toc(
                dump.read_bytes(),
                placeholder.encode(),
                f"x';\n\\! touch {marker}\n\\getenv pw PGPASSWORD\n--".encode(),
            )
        )
        listing = subprocess.run(
            [str(pg_bin_dir / "pg_restore"), "--list", str(crafted)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert listing.returncode == 0  # still a valid archive
        outside = run_with(
            "restore",
            DATABASE_URL=live.dsn,
            BACKUP_FILE=str(crafted),
            EXPECTED_SHA256=_sum(crafted),
            TARGET_DATABASE=side,
        )
        assert outside.code == 1, outside.explain()
        assert "meta-command" in outside.result["message"]
        for run in (inside, outside):
            assert "rolled back" in run.result["message"]
            assert live.password not in run.everything
        assert not marker.exists()
        assert fingerprint(live.dsn) == before
        with pg_server.admin_connect() as conn:  # the database this restore made is gone
            assert conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (side,)
            ).fetchone() == (0,)
        # Without our filter, psql's \restrict mode alone refuses the meta-command.
        pg_server.create_database(side)
        text = subprocess.run(
            [str(pg_bin_dir / "pg_restore"), "--restrict-key=k3y", "-f", "-", str(crafted)],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"\\! touch {marker}".encode() in text
        psql = subprocess.run(
            [str(pg_bin_dir / "psql"), "-X", "-q", "-d", dsn_for(live, side)],
            input=text,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert b"backslash commands are restricted" in psql.stderr
        assert not marker.exists()
    finally:
        pg_server.drop_database(side)


# --- (b) a side restore aimed at the live database ----------------------------------------------
def test_a_side_restore_into_the_live_database_is_refused(
    live: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    dump, checksum = _backup(runner, live, tmp_path / "b")
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO machines (name, zone) VALUES ('written-later', 'hall-z')")
    before = fingerprint(live.dsn)
    run = runner(
        "restore",
        DATABASE_URL=live.dsn,
        BACKUP_FILE=str(dump),
        EXPECTED_SHA256=checksum,
        TARGET_DATABASE=live.dbname,
    )
    assert run.code == 2, run.explain()
    message = run.result["message"]
    assert f"TARGET_DATABASE '{live.dbname}'" in message
    assert f"DATABASE_URL names '{live.dbname}'" in message
    assert fingerprint(live.dsn) == before


def test_a_side_restore_whose_url_leads_to_the_live_database_is_refused(
    live: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    # The database in the URL's path differs from the one it connects to (a `dbname`
    # parameter wins in libpq): the server's current_database() decides.
    dump, checksum = _backup(runner, live, tmp_path / "b")
    before = fingerprint(live.dsn)
    url = dsn_for(live, "something_else") + f"?dbname={live.dbname}"
    run = runner(
        "restore",
        DATABASE_URL=url,
        BACKUP_FILE=str(dump),
        EXPECTED_SHA256=checksum,
        TARGET_DATABASE=live.dbname,
    )
    assert run.code == 2, run.explain()
    assert "engine's own database" in run.result["message"]
    assert fingerprint(live.dsn) == before
    # Another target name, but the URL's parameter still leads the session to the live
    # database: the check inside the transaction stops it before anything is dropped.
    other = _side_name("other")
    try:
        again = runner(
            "restore",
            DATABASE_URL=url,
            BACKUP_FILE=str(dump),
            EXPECTED_SHA256=checksum,
            TARGET_DATABASE=other,
        )
        assert again.code == 1, again.explain()
        assert "connected to the wrong database" in again.result["message"]
        assert fingerprint(live.dsn) == before
    finally:
        with psycopg.connect(live.dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {other}")


# --- (c) restoring an older backup over a migrated schema ---------------------------------------
MIGRATIONS = {
    "referencing": [
        "CREATE TABLE job_notes (id serial PRIMARY KEY, job_id int NOT NULL REFERENCES jobs (id),"
        " note text)",
        "INSERT INTO job_notes (job_id, note) SELECT id, 'n' FROM jobs WHERE id <= 50",
        "ALTER TABLE jobs ADD COLUMN archived boolean NOT NULL DEFAULT false",
    ],
    "independent": [
        "CREATE TABLE audit_log (id serial PRIMARY KEY, message text)",
        "INSERT INTO audit_log (message) VALUES ('migrated')",
    ],
}


@pytest.mark.parametrize("migration", sorted(MIGRATIONS))
def test_restoring_an_older_backup_undoes_a_migration(
    live: PgDatabase, runner: Runner, tmp_path: Path, migration: str
) -> None:
    dump, checksum = _backup(runner, live, tmp_path / "b")
    backed_up = fingerprint(live.dsn)
    tables = _tables(live.dsn)
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        for statement in MIGRATIONS[migration]:
            conn.execute(statement)
        conn.execute("UPDATE alembic_version SET version_num = 'b2c3d4e5f6a7'")
    assert fingerprint(live.dsn) != backed_up
    run = runner("restore", DATABASE_URL=live.dsn, BACKUP_FILE=str(dump), EXPECTED_SHA256=checksum)
    assert run.code == 0, run.explain()
    assert _tables(live.dsn) == tables  # the new table is gone
    assert fingerprint(live.dsn) == backed_up  # same rows, constraints, indexes, sequences
    assert run.result["databaseRevision"] != "b2c3d4e5f6a7"


# --- (d) two engines sharing a folder or a prefix -----------------------------------------------
def _manifest(namespace: str, engine: str, name: str) -> str:
    fields = {"namespace": namespace, "engine": engine, "file": name}
    return json.dumps(fields, separators=(",", ":")) + "\n"


def _shared_folder(folder: Path) -> tuple[set[str], set[str]]:
    """Engine prod's and engine billing's old backups in one folder: (prod's expired names,
    every name of billing's). billing has backups with manifests, without, and old-style."""
    now = time.time()
    folder.mkdir(parents=True, exist_ok=True)
    prod: set[str] = set()
    billing: set[str] = set()

    def put(name: str, age: float, owner: str | None) -> list[str]:
        names = [name]
        (folder / name).write_bytes(b"dump")
        if owner is not None:
            (folder / f"{name}.json").write_text(_manifest(NAMESPACE, owner, name))
            (folder / f"{name}.sha256").write_text(f"{'0' * 64}  {name}\n")
            names += [f"{name}.json", f"{name}.sha256"]
        for each in names:
            os.utime(folder / each, (now - age * DAY,) * 2)
        return names

    for ext in (".dump", ".sql.gz"):
        prod |= set(put(f"vulcan_20250101_020000{ext}", 300, "prod"))
        put(f"vulcan_20260101_020000{ext}", 1, "prod")  # the newest: kept
        billing |= set(put(f"vulcan_20250102_020000{ext}", 300, "billing"))
        billing |= set(put(f"vulcan_20250103_020000{ext}", 300, None))
    # A backup of an engine with the same name in another namespace.
    (folder / "vulcan_20250104_020000.dump").write_bytes(b"dump")
    (folder / "vulcan_20250104_020000.dump.json").write_text(
        _manifest("other-ns", "prod", "vulcan_20250104_020000.dump")
    )
    for name in ("vulcan_20250104_020000.dump", "vulcan_20250104_020000.dump.json"):
        os.utime(folder / name, (now - 300 * DAY,) * 2)
        billing.add(name)
    prod_expired = {n for n in prod if n.startswith("vulcan_20250101_020000.dump")}
    return prod_expired, billing


@pytest.mark.parametrize("shell", shells())
def test_retention_of_one_engine_never_deletes_another_engines_files(
    pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    folder = tmp_path / "shared"
    prod_expired, billing = _shared_folder(folder)
    before = {p.name for p in folder.iterdir()}
    run = Runner(pg_bin_dir, tmp_path / "run", shell=shell)(
        "retention", IDENT, BACKUP_DIR=str(folder), RETENTION_DAYS="30"
    )
    assert run.code == 0, run.explain()
    after = {p.name for p in folder.iterdir()}
    assert billing <= after  # not one of the other engine's files
    assert after == before - prod_expired


def test_s3_retention_of_one_engine_never_deletes_another_engines_objects(
    pg_bin_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "s3"
    prefix = root / "vulcan-backups" / "database"
    prod_expired, billing = _shared_folder(prefix)
    before = {p.name for p in prefix.iterdir()}
    runner = Runner(pg_bin_dir, tmp_path / "run", extra_path=[fake_aws(tmp_path / "aws").parent])
    run = runner(
        "retention",
        IDENT,
        FAKE_S3_ROOT=str(root),
        S3_BUCKET="vulcan-backups",
        S3_PREFIX="database/",
        RETENTION_DAYS="30",
    )
    assert run.code == 0, run.explain()
    after = {p.name for p in prefix.iterdir()}
    assert billing <= after
    assert after == before - prod_expired


FAKE_DATE = """#!/bin/sh
# date, with the backup's name stamp frozen: every backup picks the same file name.
for arg in "$@"; do
    [ "$arg" = "+%Y%m%d_%H%M%S" ] && { echo 20261129_020000; exit 0; }
done
exec /bin/date "$@"
"""

# pg_dump that, before dumping, lets "another backup" finish under the name ours chose.
FAKE_PG_DUMP = """#!/bin/sh
for ext in dump sql.gz; do
    for side in "" .sha256 .json; do
        printf 'first backup\\n' >"$FIRST_DIR/vulcan_20261129_020000.$ext$side"
    done
done
exec "$REAL_PG_DUMP" "$@"
"""


def test_a_backup_never_replaces_another_written_in_the_same_second(
    live: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    for name, text in (("date", FAKE_DATE), ("pg_dump", FAKE_PG_DUMP)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    folder = tmp_path / "b"
    run = Runner(pg_bin_dir, tmp_path / "run", extra_path=[fake])(
        "backup",
        IDENT,
        DATABASE_URL=live.dsn,
        BACKUP_DIR=str(folder),
        FIRST_DIR=str(folder),
        REAL_PG_DUMP=str(pg_bin_dir / "pg_dump"),
    )
    assert run.code == 1, run.explain()
    assert "already exists" in run.result["message"]
    for path in folder.iterdir():  # the first backup's files, untouched; nothing else
        assert path.read_bytes() == b"first backup\n", path.name


# --- (e) the checksum the restore trusts -------------------------------------------------------
def test_a_restore_needs_the_recorded_checksum_not_the_sidecar(
    pg_server: PgServer, live: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    dump, recorded = _backup(runner, live, tmp_path / "b")
    # The attacker's database, backed up and put in place of the real backup, with its
    # `.sha256` sidecar rewritten to match.
    evil = pg_server.create_database(label="evil")
    try:
        with psycopg.connect(evil.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE jobs (id int)")
            conn.execute("CREATE TABLE planted (secret text)")
        tampered, tampered_sum = _backup(runner, evil, tmp_path / "evil")
    finally:
        pg_server.drop_database(evil.dbname)
    tampered.replace(dump)
    Path(f"{dump}.sha256").write_text(f"{tampered_sum}  {dump.name}\n")
    before = fingerprint(live.dsn)

    unchecked = runner("restore", DATABASE_URL=live.dsn, BACKUP_FILE=str(dump))
    assert unchecked.code == 2, unchecked.explain()
    assert "EXPECTED_SHA256 is not set" in unchecked.result["message"]
    checked = runner(
        "restore", DATABASE_URL=live.dsn, BACKUP_FILE=str(dump), EXPECTED_SHA256=recorded
    )
    assert checked.code == 3, checked.explain()
    assert "checksum mismatch" in checked.result["message"]
    assert fingerprint(live.dsn) == before
    assert "public.planted" not in _tables(live.dsn)


# --- result lines carry only filtered server strings --------------------------------------------
def test_table_names_and_revisions_from_the_server_are_filtered(
    live: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    with psycopg.connect(live.dsn, autocommit=True) as conn:
        conn.execute('CREATE TABLE "Evil Name {}"" <script>" (i int)')
        conn.execute('INSERT INTO "Evil Name {}"" <script>" VALUES (1), (2)')
        conn.execute("UPDATE alembic_version SET version_num = 'a\"b <x>'")
    dump, checksum = _backup(runner, live, tmp_path / "b")
    backup_line = json.loads(dump.with_name(dump.name + ".json").read_text())
    assert backup_line["databaseRevision"] == ""
    run = runner("restore", DATABASE_URL=live.dsn, BACKUP_FILE=str(dump), EXPECTED_SHA256=checksum)
    assert run.code == 0, run.explain()
    counts = run.result["rowCounts"]
    assert counts["other"] == 2
    assert all(
        key == "other" or key.replace("_", "a").replace(".", "a").isalnum() for key in counts
    )
    assert run.result["databaseRevision"] == ""
