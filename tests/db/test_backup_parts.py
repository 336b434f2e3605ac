"""The guide's backup set: the database dump, the /app/data and /app/uploads volumes and a
Redis snapshot (issue 15, defect 3), with the real programs on real directories, a real
PostgreSQL and a real redis-server.

The volumes become tar.gz archives beside the dump, verified like it (read back, sha256 in the
.sha256 file and the manifest); the Redis snapshot is `redis-cli --rdb` with its own result
line. A restore checks every part before the database is touched and swaps the volumes only
after the database's COMMIT; retention deletes the set as one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.dbharness import (
    Runner,
    create_seeded_template,
    fake_aws,
    fingerprint,
    shells,
)
from tests.support.pg import PgDatabase, PgServer
from tests.support.redisserver import RedisServer

IDENT = {"VULCAN_NAMESPACE": "shop", "VULCAN_ENGINE": "prod"}


@pytest.fixture(scope="module")
def template(pg_server: PgServer) -> Iterator[str]:
    name = create_seeded_template(pg_server, "seed_parts")
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def database(pg_server: PgServer, template: str) -> Iterator[PgDatabase]:
    db = pg_server.create_database(label="parts", template=template)
    yield db
    pg_server.drop_database(db.dbname)


def _runner(pg_bin_dir: Path, work: Path, shell: str) -> Runner:
    tools = work / "tools"  # redis-cli, as the redis image has it
    tools.mkdir(parents=True, exist_ok=True)
    redis_cli = shutil.which("redis-cli")
    assert redis_cli, "redis-cli is not installed: run `bash scripts/setup.sh`"
    if not (tools / "redis-cli").exists():
        (tools / "redis-cli").symlink_to(redis_cli)
    return Runner(pg_bin_dir, work / "run", shell=shell, extra_path=[tools])


def _tree(root: Path) -> dict[str, Any]:
    """Every file, folder and symlink under root: (kind, content or target)."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(".vulcan-restore"):
            found[rel] = "LEFT BEHIND"
        elif path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            found[rel] = ("dir", None)
        else:
            found[rel] = ("file", path.read_bytes())
    return found


def _fill(data: Path, uploads: Path) -> None:
    (data / "models" / "v2").mkdir(parents=True)
    (data / "models" / "v2" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (data / ".hidden").write_text("dotfiles count too\n")
    (data / "empty-dir").mkdir()
    (data / "latest").symlink_to("models/v2/weights.bin")
    (uploads / "plant a.csv").write_text("job,machine\n1,M1\n")
    (uploads / "2026" / "01").mkdir(parents=True)
    (uploads / "2026" / "01" / "gantt.svg").write_text("<svg/>")


def _snapshot(runner: Runner, redis: RedisServer, target: Path) -> Any:
    return runner("redis-snapshot", REDIS_URL=redis.url, REDIS_SNAPSHOT_FILE=str(target))


@pytest.mark.parametrize("shell", shells())
def test_a_redis_snapshot_holds_the_servers_keys(
    redis_server: RedisServer, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    redis_server.cli("SET", "vulcan:cache:plant-a", "schedule-42")
    redis_server.cli("DEL", "vulcan:queue")
    redis_server.cli("RPUSH", "vulcan:queue", "solve-1", "solve-2")
    rdb = tmp_path / "work" / "redis.rdb"
    rdb.parent.mkdir()

    run = _snapshot(_runner(pg_bin_dir, tmp_path, shell), redis_server, rdb)

    assert run.code == 0, run.explain()
    assert redis_server.password not in run.everything
    result = run.result
    assert result["kind"] == "vulcan-redis-snapshot" and result["outcome"] == "Succeeded"
    assert result["sizeBytes"] == rdb.stat().st_size
    assert result["checksum"] == hashlib.sha256(rdb.read_bytes()).hexdigest()
    loaded = RedisServer.start_from(rdb)  # what the snapshot holds, read by Redis itself
    try:
        assert loaded.cli("GET", "vulcan:cache:plant-a") == "schedule-42"
        assert loaded.cli("LRANGE", "vulcan:queue", "0", "-1").split() == ["solve-1", "solve-2"]
    finally:
        loaded.stop()


def test_a_wrong_redis_password_fails_without_showing_it(
    redis_server: RedisServer, pg_bin_dir: Path, tmp_path: Path
) -> None:
    wrong = "not-the-pa55word"
    url = f"redis://:{wrong}@127.0.0.1:{redis_server.port}/0"
    rdb = tmp_path / "redis.rdb"
    run = _runner(pg_bin_dir, tmp_path, "dash")(
        "redis-snapshot", REDIS_URL=url, REDIS_SNAPSHOT_FILE=str(rdb)
    )
    assert run.code == 1, run.explain()
    assert run.result["outcome"] == "Failed" and run.result["step"] == "snapshot"
    assert wrong not in run.everything
    assert not rdb.exists() and not rdb.with_name("redis.rdb.partial").exists()


def _backup_set(
    runner: Runner, db: PgDatabase, folder: Path, data: Path, uploads: Path, rdb: Path | None
) -> Any:
    return runner(
        "backup",
        IDENT,
        DATABASE_URL=db.dsn,
        BACKUP_DIR=str(folder),
        BACKUP_LOCATION="pvc://prod-backups/shop/prod",
        PART_DATA_DIR=str(data),
        PART_UPLOADS_DIR=str(uploads),
        **({"PART_REDIS_FILE": str(rdb)} if rdb else {}),
    )


def _restore(
    runner: Runner, db: PgDatabase, folder: Path, result: dict[str, Any], **dirs: Path
) -> Any:
    parts = result["parts"]
    env: dict[str, str] = {}
    for part, target in dirs.items():
        env[f"PART_{part.upper()}_ARCHIVE"] = str(folder / parts[part]["file"])
        env[f"PART_{part.upper()}_SHA256"] = parts[part]["checksum"]
        env[f"PART_{part.upper()}_DIR"] = str(target)
    return runner(
        "restore",
        env,
        DATABASE_URL=db.dsn,
        BACKUP_FILE=str(folder / result["file"]),
        EXPECTED_SHA256=result["checksum"],
    )


@pytest.mark.parametrize("shell", shells())
def test_the_volumes_and_redis_join_the_backup_set_and_restore_exactly(
    database: PgDatabase, redis_server: RedisServer, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    runner = _runner(pg_bin_dir, tmp_path, shell)
    data, uploads, folder = tmp_path / "data", tmp_path / "uploads", tmp_path / "backups"
    for path in (data, uploads):
        path.mkdir()
    _fill(data, uploads)
    rdb = tmp_path / "work" / "redis.rdb"
    rdb.parent.mkdir()
    assert _snapshot(runner, redis_server, rdb).code == 0
    before = {"data": _tree(data), "uploads": _tree(uploads), "db": fingerprint(database.dsn)}

    run = _backup_set(runner, database, folder, data, uploads, rdb)

    assert run.code == 0, run.explain()
    result = run.result
    base = result["file"].removesuffix(".dump")
    assert set(result["parts"]) == {"data", "uploads", "redis"}
    for part, suffix in (
        ("data", "data.tar.gz"),
        ("uploads", "uploads.tar.gz"),
        ("redis", "redis.rdb"),
    ):
        recorded = result["parts"][part]
        assert recorded["file"] == f"{base}.{suffix}"
        content = (folder / recorded["file"]).read_bytes()
        assert recorded["sizeBytes"] == len(content)
        assert recorded["checksum"] == hashlib.sha256(content).hexdigest()
    assert (folder / result["parts"]["redis"]["file"]).read_bytes() == rdb.read_bytes()
    manifest = json.loads((folder / f"{result['file']}.json").read_text())
    assert manifest["parts"] == result["parts"]
    check = subprocess.run(  # the .sha256 file covers the whole set
        ["sha256sum", "-c", f"{result['file']}.sha256"], cwd=folder, capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.count(": OK") == 4, check.stdout
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]

    # Time passes: the volumes and the database change.
    (data / "models" / "v2" / "weights.bin").write_bytes(b"retrained")
    (data / "new-model.bin").write_bytes(b"made after the backup")
    shutil.rmtree(uploads / "2026")
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM alembic_version")

    restored = _restore(runner, database, folder, result, data=data, uploads=uploads)

    assert restored.code == 0, restored.explain()
    assert restored.result["parts"] == ["database", "data", "uploads"]
    assert _tree(data) == before["data"]
    assert _tree(uploads) == before["uploads"]
    assert fingerprint(database.dsn) == before["db"]


def test_a_tampered_part_is_refused_before_anything_changes(
    database: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    runner = _runner(pg_bin_dir, tmp_path, "dash")
    data, uploads, folder = tmp_path / "data", tmp_path / "uploads", tmp_path / "backups"
    for path in (data, uploads):
        path.mkdir()
    _fill(data, uploads)
    run = _backup_set(runner, database, folder, data, uploads, None)
    assert run.code == 0, run.explain()
    (data / "after.txt").write_text("written after the backup")
    archive = folder / run.result["parts"]["uploads"]["file"]
    archive.write_bytes(archive.read_bytes()[:-7] + b"tamper!")
    before = {"data": _tree(data), "uploads": _tree(uploads), "db": fingerprint(database.dsn)}

    restored = _restore(runner, database, folder, run.result, data=data, uploads=uploads)

    assert restored.code == 3, restored.explain()
    assert "checksum mismatch of the uploads archive" in restored.result["message"]
    assert {
        "data": _tree(data),
        "uploads": _tree(uploads),
        "db": fingerprint(database.dsn),
    } == before


def test_an_archive_reaching_outside_its_volume_is_refused(
    database: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    runner = _runner(pg_bin_dir, tmp_path, "dash")
    data, uploads, folder = tmp_path / "data", tmp_path / "uploads", tmp_path / "backups"
    for path in (data, uploads):
        path.mkdir()
    run = _backup_set(runner, database, folder, data, uploads, None)
    assert run.code == 0, run.explain()
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tar:
        member = tarfile.TarInfo("./../../escaped.txt")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"pwn"))
    archive = folder / run.result["parts"]["data"]["file"]
    archive.write_bytes(evil.getvalue())
    result = dict(run.result)
    result["parts"] = {
        **result["parts"],
        "data": {
            **result["parts"]["data"],
            "checksum": hashlib.sha256(evil.getvalue()).hexdigest(),
        },
    }

    restored = _restore(runner, database, folder, result, data=data)

    assert restored.code == 3, restored.explain()
    assert "outside its folder" in restored.result["message"]
    assert (
        not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    )


def test_a_side_restore_never_touches_the_volumes(
    database: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    runner = _runner(pg_bin_dir, tmp_path, "dash")
    data, uploads, folder = tmp_path / "data", tmp_path / "uploads", tmp_path / "backups"
    for path in (data, uploads):
        path.mkdir()
    run = _backup_set(runner, database, folder, data, uploads, None)
    assert run.code == 0, run.explain()
    restored = runner(
        "restore",
        DATABASE_URL=database.dsn,
        BACKUP_FILE=str(folder / run.result["file"]),
        EXPECTED_SHA256=run.result["checksum"],
        TARGET_DATABASE="side_copy",
        PART_DATA_ARCHIVE=str(folder / run.result["parts"]["data"]["file"]),
        PART_DATA_SHA256=run.result["parts"]["data"]["checksum"],
        PART_DATA_DIR=str(data),
    )
    assert restored.code == 2, restored.explain()
    assert "restores the database only" in restored.result["message"]


@pytest.mark.parametrize("shell", shells())
def test_retention_deletes_the_backup_set_as_one(
    database: PgDatabase, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    runner = _runner(pg_bin_dir, tmp_path, shell)
    data, uploads, folder = tmp_path / "data", tmp_path / "uploads", tmp_path / "backups"
    for path in (data, uploads):
        path.mkdir()
    _fill(data, uploads)
    first = _backup_set(runner, database, folder, data, uploads, None)
    assert first.code == 0, first.explain()
    old = [p for p in folder.iterdir()]
    assert len(old) == 5  # dump, .sha256, .json, data, uploads
    for path in old:  # 40 days old
        os.utime(path, (path.stat().st_atime - 40 * 86400, path.stat().st_mtime - 40 * 86400))
    second = runner(
        "backup",
        IDENT,
        DATABASE_URL=database.dsn,
        BACKUP_DIR=str(folder),
        PART_DATA_DIR=str(data),
        PART_UPLOADS_DIR=str(uploads),
        RETENTION_DAYS="30",
    )
    assert second.code == 0, second.explain()
    assert second.result["retention"]["deleted"] == [first.result["file"]]
    left = sorted(p.name for p in folder.iterdir())
    assert not [
        name for name in left if name.startswith(first.result["file"].removesuffix(".dump"))
    ]
    assert len(left) == 5


def test_the_set_goes_to_s3_and_comes_back_whole(
    database: PgDatabase, pg_bin_dir: Path, tmp_path: Path
) -> None:
    """The S3 pod: the dump container writes the set into the shared folder, s3-upload puts
    every part beside the dump (checked against the .sha256 file, never over a key), retention
    removes the set as one, and s3-download brings the parts a restore asks for."""
    root = tmp_path / "s3"
    (root / "vulcan-backups").mkdir(parents=True)
    runner = _runner(pg_bin_dir, tmp_path, "dash")
    runner.extra_path.append(fake_aws(tmp_path / "aws").parent)
    data, uploads, shared = tmp_path / "data", tmp_path / "uploads", tmp_path / "work"
    for path in (data, uploads):
        path.mkdir()
    _fill(data, uploads)
    aws = {
        **IDENT,
        "BACKUP_DIR": str(shared),
        "S3_BUCKET": "vulcan-backups",
        "S3_PREFIX": "database/shop/prod/",
        "FAKE_S3_ROOT": str(root),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-key-do-not-print",
    }
    dump = _backup_set(runner, database, shared, data, uploads, None)
    assert dump.code == 0, dump.explain()

    upload = runner("s3-upload", aws)

    assert upload.code == 0, upload.explain()
    stored = root / "vulcan-backups" / "database" / "shop" / "prod"
    base = dump.result["file"].removesuffix(".dump")
    sidecars = [f"{dump.result['file']}.sha256", f"{dump.result['file']}.json"]
    parts = [f"{base}.data.tar.gz", f"{base}.uploads.tar.gz"]
    assert sorted(p.name for p in stored.iterdir()) == sorted(
        [dump.result["file"], *sidecars, *parts]
    )
    assert upload.result["parts"] == dump.result["parts"]
    assert upload.result["serverVersion"] == dump.result["serverVersion"]

    fetched = tmp_path / "fetched"
    download = runner(
        "s3-download",
        aws,
        BACKUP_DIR=str(fetched),
        S3_LOCATION=upload.result["location"],
        S3_PARTS=f"{base}.data.tar.gz {base}.uploads.tar.gz",
    )
    assert download.code == 0, download.explain()
    for part in ("data", "uploads"):
        name = dump.result["parts"][part]["file"]
        assert (fetched / name).read_bytes() == (shared / name).read_bytes()

    for path in stored.iterdir():  # 40 days old; a newer backup keeps the set from being last
        os.utime(path, (path.stat().st_atime - 40 * 86400, path.stat().st_mtime - 40 * 86400))
    newer = stored / "vulcan_29990101_000000.dump"
    newer.write_bytes(b"x")
    newer.with_name(newer.name + ".json").write_text(
        json.dumps({"namespace": "shop", "engine": "prod", "file": newer.name})
    )
    retention = runner("retention", aws, RETENTION_DAYS="30")
    assert retention.code == 0, retention.explain()
    assert not [p.name for p in stored.iterdir() if p.name.startswith(base)]
