"""The backup program against a real PostgreSQL, run exactly as the CronJob runs it.

Seeded database (tests/data/db/seed.sql): several tables with foreign keys, unique and check
constraints, a few thousand rows and an alembic_version table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.dbharness import (
    SEED_REVISION,
    Runner,
    create_seeded_template,
    fake_aws,
    row_counts,
    shells,
    webhook,
)
from tests.support.pg import PgDatabase, PgServer
from vulcan_operator.jobscripts import source

NAME = re.compile(r"^vulcan_\d{8}_\d{6}\.dump$")
IDENT = {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"}


@pytest.fixture(scope="module")
def template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_backup")
    yield name
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def seeded(pg_server: PgServer, template: str) -> PgDatabase:
    """The seeded database the backups read (a backup never changes its database)."""
    return PgDatabase(
        pg_server.host,
        pg_server.port,
        pg_server.app_user,
        pg_server.app_password,
        template,
        pg_server.bin_dir,
    )


@pytest.fixture
def runner(pg_bin_dir: Path, tmp_path: Path) -> Runner:
    return Runner(pg_bin_dir, tmp_path / "run")


def _backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if NAME.match(p.name))


@pytest.mark.parametrize("shell", shells())
def test_backup_writes_a_verified_checksummed_dump(
    seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    folder = tmp_path / "backups" / "shop" / "prod"
    run = Runner(pg_bin_dir, tmp_path / "run", shell=shell)(
        "backup",
        IDENT,
        DATABASE_URL=seeded.dsn,
        BACKUP_DIR=str(folder),
        BACKUP_LOCATION="pvc://prod-backups/shop/prod",
        RETENTION_DAYS="30",
    )
    assert run.code == 0, run.explain()
    assert seeded.password not in run.everything

    (dump,) = _backups(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        dump.name,
        f"{dump.name}.json",
        f"{dump.name}.sha256",
    ]
    data = dump.read_bytes()
    assert data[:5] == b"PGDMP"  # custom format
    listing = subprocess.run(
        [str(pg_bin_dir / "pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "TABLE DATA public tasks" in listing
    digest = hashlib.sha256(data).hexdigest()
    assert (folder / f"{dump.name}.sha256").read_text() == f"{digest}  {dump.name}\n"

    result = run.result
    assert result == json.loads(run.termination)
    assert result["kind"] == "vulcan-backup"
    assert result["outcome"] == "Succeeded"
    assert result["location"] == f"pvc://prod-backups/shop/prod/{dump.name}"
    assert result["file"] == dump.name
    assert result["sizeBytes"] == len(data)
    assert result["checksum"] == digest
    assert result["databaseRevision"] == SEED_REVISION
    assert result["engine"] == "prod"
    assert result["namespace"] == "shop"
    assert result["format"] == "custom"
    assert result["retention"] == {"days": 30, "deleted": [], "kept": 1}
    for key in ("startedAt", "finishedAt"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result[key])
    manifest = json.loads((folder / f"{dump.name}.json").read_text())
    # The manifest also records every table's rows (for restore drills; the result line
    # leaves them out: the termination message holds 4 KiB).
    assert manifest.pop("rowCounts") == row_counts(seeded.dsn)
    assert manifest == {k: v for k, v in result.items() if k != "retention"}


def test_a_database_without_alembic_has_an_empty_revision(
    pg_database: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    import psycopg

    with psycopg.connect(pg_database.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE things (id int PRIMARY KEY)")
    run = runner("backup", IDENT, DATABASE_URL=pg_database.dsn, BACKUP_DIR=str(tmp_path / "b"))
    assert run.code == 0, run.explain()
    assert run.result["databaseRevision"] == ""
    assert "retention" not in run.result


def test_sqlalchemy_style_urls_are_accepted(
    seeded: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    url = seeded.dsn.replace("postgresql://", "postgresql+asyncpg://")
    run = runner("backup", IDENT, DATABASE_URL=url, BACKUP_DIR=str(tmp_path / "b"))
    assert run.code == 0, run.explain()
    assert run.result["database"] == seeded.dbname


def test_a_pg_dump_failure_mid_stream_is_caught_and_leaves_no_file(
    seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    # pg_dump writes part of a dump, then dies: gzip still succeeds, so only pg_dump's own exit
    # status (POSIX sh has no pipefail) can tell.
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    fake = fake_bin / "pg_dump"
    fake.write_text(
        "#!/bin/sh\nprintf -- '-- PostgreSQL database dump\\nCREATE TABLE t (i int);\\n'\n"
        "echo 'pg_dump: error: query failed: server closed the connection' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    folder = tmp_path / "b"
    run = Runner(pg_bin_dir, tmp_path / "run", extra_path=[fake_bin])(
        "backup", IDENT, DATABASE_URL=seeded.dsn, BACKUP_DIR=str(folder), RETENTION_DAYS="30"
    )
    assert run.code == 1, run.explain()
    result = run.result
    assert result["outcome"] == "Failed"
    assert result["step"] == "dump"
    assert "pg_dump failed" in result["message"]
    assert "server closed the connection" in result["message"]
    assert list(folder.iterdir()) == []  # neither a final file nor a .partial
    assert json.loads(run.termination) == result


def test_wrong_password_fails_cleanly_without_printing_it(
    seeded: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    wrong = "Wr0ng-Passw0rd-do-not-print"
    url = seeded.dsn.replace(f":{quote(seeded.password, safe='')}@", f":{wrong}@")
    assert wrong in url
    folder = tmp_path / "b"
    run = runner("backup", IDENT, DATABASE_URL=url, BACKUP_DIR=str(folder))
    assert run.code == 1, run.explain()
    assert "password authentication failed" in run.result["message"]
    assert wrong not in run.everything
    assert _backups(folder) == []


SPECIAL_PASSWORD = "p@ss:w/rd%2F \"q\" 'x' $HOME \\ ünï"


@pytest.fixture
def special_role_db(pg_server: PgServer, template: str) -> Iterator[PgDatabase]:
    """A seeded database owned by a role whose password needs URL escaping."""
    from psycopg import sql

    role = f"special_{os.getpid()}"
    with pg_server.admin_connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(SPECIAL_PASSWORD)
            )
        )
    db = pg_server.create_database(label="special", owner=role, template=template)
    with pg_server.admin_connect() as conn:  # the seed's tables belong to `vulcan`
        conn.execute(sql.SQL("GRANT vulcan TO {}").format(sql.Identifier(role)))
    special = PgDatabase(db.host, db.port, role, SPECIAL_PASSWORD, db.dbname, db.bin_dir)
    try:
        yield special
    finally:
        pg_server.drop_database(db.dbname)
        pg_server.drop_database(f"sp{os.getpid()}_copy")
        with pg_server.admin_connect() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_passwords_needing_url_escapes_work_and_are_never_printed(
    special_role_db: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    db = special_role_db
    encoded = quote(SPECIAL_PASSWORD, safe="")
    assert db.dsn.count(encoded) == 1
    folder = tmp_path / "b"
    good = runner("backup", IDENT, DATABASE_URL=db.dsn, BACKUP_DIR=str(folder))
    assert good.code == 0, good.explain()
    restore = runner(
        "restore",
        DATABASE_URL=db.dsn,
        BACKUP_FILE=str(_backups(folder)[0]),
        TARGET_DATABASE=f"sp{os.getpid()}_copy",
        EXPECTED_SHA256=good.result["checksum"],
    )
    assert restore.code == 0, restore.explain()
    # Failures: a database that does not exist, a server that is not there.
    missing_db = runner(
        "backup",
        IDENT,
        DATABASE_URL=db.dsn.rsplit("/", 1)[0] + "/no_such_db",
        BACKUP_DIR=str(folder),
    )
    assert missing_db.code == 1
    assert "no_such_db" in missing_db.result["message"]
    no_server = runner(
        "backup",
        IDENT,
        DATABASE_URL=db.dsn.replace(f":{db.port}/", ":1/"),
        BACKUP_DIR=str(folder),
        PGCONNECT_TIMEOUT="3",
    )
    assert no_server.code == 1
    for run in (good, restore, missing_db, no_server):
        for secret in (SPECIAL_PASSWORD, encoded, db.dsn):
            assert secret not in run.everything, run.explain()


def test_scrub_hides_every_form_of_the_secrets(pg_bin_dir: Path, tmp_path: Path) -> None:
    # lib.sh's scrub, fed text that contains the URL, the raw and the decoded password.
    url = f"postgresql://app:{quote(SPECIAL_PASSWORD, safe='')}@db:5432/vulcan"
    text = (
        source("lib.sh")
        + '\ndb_setup\nprintf "%s\\n" "url=$DATABASE_URL raw=$VULCAN_DB_PASSWORD_RAW '
        + 'decoded=$PGPASSWORD hook=$NOTIFY_WEBHOOK_URL" | scrub\n'
    )
    hook = "https://hooks.example.invalid/services/T0/B0/s3cr3t"
    proc = __import__("subprocess").run(
        ["sh", "-c", text, "scrub-test"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "NOTIFY_WEBHOOK_URL": hook},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "url=*** raw=*** decoded=*** hook=***\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BACKUP_DIR": "/tmp/x"}, "DATABASE_URL is not set"),
        (
            {"DATABASE_URL": "postgresql://u:hunter2-secret@db/x", "BACKUP_DIR": "/tmp/x"},
            "VULCAN_NAMESPACE is not set",
        ),
        (
            {
                "DATABASE_URL": "postgresql://u:hunter2-secret@db/x",
                "BACKUP_DIR": "/tmp/x",
                "VULCAN_NAMESPACE": "shop",
                "VULCAN_ENGINE": "../prod",
            },
            "not a DNS name",
        ),
        (
            {**IDENT, "DATABASE_URL": "host=db password=hunter2-secret", "BACKUP_DIR": "/tmp/x"},
            "is not a postgresql:// URL",
        ),
        (
            {**IDENT, "DATABASE_URL": "mysql://u:hunter2-secret@db/x", "BACKUP_DIR": "/tmp/x"},
            "not a",
        ),
        ({"DATABASE_URL": "postgresql://u:hunter2-secret@db/x"}, "BACKUP_DIR is not set"),
        (
            {
                **IDENT,
                "DATABASE_URL": "postgresql://u:hunter2-secret@db/x",
                "BACKUP_DIR": "/tmp/x",
                "RETENTION_DAYS": "thirty",
            },
            "RETENTION_DAYS",
        ),
    ],
)
def test_bad_settings_exit_2_without_echoing_the_url(
    runner: Runner, env: dict[str, str], message: str
) -> None:
    run = runner("backup", env)
    assert run.code == 2, run.explain()
    assert message in run.result["message"]
    assert "hunter2-secret" not in run.everything


@pytest.mark.parametrize("shell", shells())  # curl with dash here; busybox wget as in alpine
def test_the_webhook_hears_of_success_and_failure(
    seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    runner = Runner(pg_bin_dir, tmp_path / "run", shell=shell)
    with webhook() as (url, bodies):
        ok = runner(
            "backup",
            IDENT,
            DATABASE_URL=seeded.dsn,
            BACKUP_DIR=str(tmp_path / "b"),
            NOTIFY_WEBHOOK_URL=url,
        )
        bad = runner(
            "backup",
            IDENT,
            DATABASE_URL=seeded.dsn.rsplit("/", 1)[0] + "/missing_db",
            BACKUP_DIR=str(tmp_path / "b"),
            NOTIFY_WEBHOOK_URL=url,
        )
    assert ok.code == 0, ok.explain()
    assert bad.code == 1, bad.explain()
    assert [b["outcome"] for b in bodies] == ["Succeeded", "Failed"]
    assert "prod" in bodies[0]["text"] and ok.result["location"] in bodies[0]["text"]
    assert bodies[0]["location"] == ok.result["location"]
    assert "missing_db" in bodies[1]["text"]
    assert bodies[1]["step"] == "revision"
    for run in (ok, bad):
        assert "T0KEN-s3cr3t-path" not in run.everything


def test_an_unreachable_webhook_does_not_fail_the_backup(
    seeded: PgDatabase, runner: Runner, tmp_path: Path
) -> None:
    run = runner(
        "backup",
        IDENT,
        DATABASE_URL=seeded.dsn,
        BACKUP_DIR=str(tmp_path / "b"),
        NOTIFY_WEBHOOK_URL="http://127.0.0.1:1/hooks/T0KEN-s3cr3t-path",
    )
    assert run.code == 0, run.explain()
    assert "webhook notification failed" in run.stderr
    assert "T0KEN-s3cr3t-path" not in run.everything


@pytest.mark.parametrize("shell", shells())
def test_stale_partial_files_are_cleared_and_fresh_ones_kept(
    seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    runner = Runner(pg_bin_dir, tmp_path / "run", shell=shell)
    folder = tmp_path / "b"
    folder.mkdir()
    stale = folder / "vulcan_20240101_020000.dump.partial"
    fresh = folder / "vulcan_20240102_020000.dump.partial"  # another backup's, running now
    other = folder / "something.partial"
    for path in (stale, fresh, other):
        path.write_bytes(b"half")
    old = time.time() - 2 * 86400
    for path in (stale, other):
        os.utime(path, (old, old))
    run = runner("backup", IDENT, DATABASE_URL=seeded.dsn, BACKUP_DIR=str(folder))
    assert run.code == 0, run.explain()
    assert not stale.exists()
    assert fresh.exists() and other.exists()


def _stored(folder: Path, name: str, age_days: float, manifest: dict[str, str] | None) -> None:
    """A backup (and, with `manifest`, its sidecars) `age_days` old in a fake bucket folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name]
    paths[0].write_bytes(b"old")
    if manifest is not None:
        (folder / f"{name}.json").write_text(json.dumps({**manifest, "file": name}) + "\n")
        (folder / f"{name}.sha256").write_text(f"{'0' * 64}  {name}\n")
        paths += [folder / f"{name}.json", folder / f"{name}.sha256"]
    stamp = time.time() - age_days * 86400
    for path in paths:
        os.utime(path, (stamp, stamp))


def test_backup_to_s3_through_the_upload_container(
    seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    """The S3 pod: `backup` (postgres image) into a shared folder, then `s3-upload` (aws CLI).
    The key is exactly S3_PREFIX (the builder's `<prefix><namespace>/<engine>/`) + the name."""
    root = tmp_path / "s3"
    shared = tmp_path / "work"
    runner = Runner(pg_bin_dir, tmp_path / "run", extra_path=[fake_aws(tmp_path / "aws").parent])
    stored = root / "vulcan-backups" / "database" / "shop" / "prod"
    ours = {"namespace": "shop", "engine": "prod"}
    _stored(stored, "vulcan_20200101_020000.dump", 90, ours)  # expired
    _stored(stored, "vulcan_20200102_020000.dump", 10, ours)  # not expired
    _stored(stored, "vulcan_20200103_020000.dump", 88, None)  # no manifest: not ours
    _stored(stored, "vulcan_20200104_020000.dump", 87, {"namespace": "shop", "engine": "other"})
    before = {p.name for p in stored.iterdir()}

    with webhook() as (url, bodies):
        dump = runner(
            "backup",
            IDENT,
            DATABASE_URL=seeded.dsn,
            BACKUP_DIR=str(shared),
            BACKUP_LOCATION="s3://vulcan-backups/database/shop/prod",
            NOTIFY_ON_SUCCESS="false",
            NOTIFY_WEBHOOK_URL=url,
        )
        assert dump.code == 0, dump.explain()
        upload_env = {
            **IDENT,
            "BACKUP_DIR": str(shared),
            "S3_BUCKET": "vulcan-backups",
            "S3_PREFIX": "database/shop/prod/",
            "S3_ENDPOINT_URL": "http://minio.invalid:9000",
            "RETENTION_DAYS": "30",
            "FAKE_S3_ROOT": str(root),
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-key-do-not-print",
            "NOTIFY_WEBHOOK_URL": url,
        }
        upload = runner("s3-upload", upload_env)
        assert upload.code == 0, upload.explain()
        # The same upload again: every key exists now; nothing is overwritten.
        name = dump.result["file"]
        (stored / name).write_bytes(b"already there")
        again = runner("s3-upload", upload_env)
    assert again.code == 1, again.explain()
    assert "already exists; not overwriting it" in again.result["message"]
    assert (stored / name).read_bytes() == b"already there"
    (stored / name).write_bytes((shared / name).read_bytes())
    assert {p.name for p in stored.iterdir()} == before - {
        "vulcan_20200101_020000.dump",
        "vulcan_20200101_020000.dump.json",
        "vulcan_20200101_020000.dump.sha256",
    } | {name, f"{name}.sha256", f"{name}.json"}
    result = upload.result
    assert result["location"] == f"s3://vulcan-backups/database/shop/prod/{name}"
    assert dump.result["location"] == result["location"]
    for key in ("sizeBytes", "checksum", "databaseRevision", "startedAt", "database"):
        assert result[key] == dump.result[key]
    assert result["namespace"] == "shop" and result["engine"] == "prod"
    assert result["format"] == "custom"
    assert result["retention"] == {
        "days": 30,
        "deleted": ["vulcan_20200101_020000.dump"],
        "kept": 2,
    }
    assert [b["outcome"] for b in bodies] == ["Succeeded", "Failed"]  # from the uploads
    calls = (root / "calls.log").read_text()
    assert "--endpoint-url http://minio.invalid:9000 s3 cp" in calls
    assert "--endpoint-url http://minio.invalid:9000 s3api head-object" in calls
    assert "aws-s3cr3t-key-do-not-print" not in calls + upload.everything + again.everything
    assert "AWS_SECRET_ACCESS_KEY" in calls  # the CLI got the key through its environment
