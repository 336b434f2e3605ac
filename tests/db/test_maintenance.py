"""The maintenance program (VACUUM ANALYZE, REINDEX on request) against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.dbharness import Runner, fingerprint, seed, shells
from tests.support.pg import PgDatabase, PgServer


@pytest.fixture(scope="module")
def seeded(pg_server: PgServer) -> Iterator[PgDatabase]:
    db = pg_server.create_database(label="maintenance")
    seed(db.dsn)
    yield db
    pg_server.drop_database(db.dbname)


@pytest.mark.parametrize("shell", shells())
def test_vacuum_analyze_and_a_size_summary(
    seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path, shell: str
) -> None:
    before = fingerprint(seeded.dsn)
    run = Runner(pg_bin_dir, tmp_path / "run", shell=shell)("maintenance", DATABASE_URL=seeded.dsn)
    assert run.code == 0, run.explain()
    result = run.result
    assert result["kind"] == "vulcan-maintenance"
    assert result["outcome"] == "Succeeded"
    assert result["vacuumed"] is True
    assert result["reindexed"] is False
    assert result["database"] == seeded.dbname
    tables = result["tables"]
    assert {t["table"] for t in tables} >= {"public.tasks", "public.jobs", "public.assignments"}
    sizes = [t["bytes"] for t in tables]
    assert sizes == sorted(sizes, reverse=True)
    assert all(t["size"] for t in tables)
    assert result["databaseBytes"] >= sum(sizes)
    # The summary is in the log for people too; the superuser-only catalogs are one line.
    assert "public.tasks" in run.stderr
    assert "only superuser can vacuum it" not in run.stderr
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_stat_user_tables "
            "WHERE last_vacuum IS NULL OR last_analyze IS NULL"
        ).fetchall()
    assert rows == []
    assert fingerprint(seeded.dsn) == before


def test_reindex_on_request(seeded: PgDatabase, pg_bin_dir: Path, tmp_path: Path) -> None:
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        old: dict[str, int] = dict(
            conn.execute(
                "SELECT indexrelid::regclass::text, pg_relation_filenode(indexrelid) "
                "FROM pg_index WHERE indrelid = 'tasks'::regclass"
            ).fetchall()
        )
    run = Runner(pg_bin_dir, tmp_path / "run")(
        "maintenance", DATABASE_URL=seeded.dsn, MAINTENANCE_REINDEX="true", MAINTENANCE_TOP="3"
    )
    assert run.code == 0, run.explain()
    assert run.result["reindexed"] is True
    assert len(run.result["tables"]) == 3
    with psycopg.connect(seeded.dsn, autocommit=True) as conn:
        new: dict[str, int] = dict(
            conn.execute(
                "SELECT indexrelid::regclass::text, pg_relation_filenode(indexrelid) "
                "FROM pg_index WHERE indrelid = 'tasks'::regclass"
            ).fetchall()
        )
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()
    assert new.keys() == old.keys()
    assert all(new[name] != old[name] for name in old)  # rebuilt: new files
    assert invalid == (0,)


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ({"MAINTENANCE_REINDEX": "yes"}, 2, "MAINTENANCE_REINDEX must be true or false"),
        ({"MAINTENANCE_TOP": "all"}, 2, "MAINTENANCE_TOP"),
        ({"DB": "missing_db"}, 1, "missing_db"),
    ],
)
def test_failures_are_reported_without_the_password(
    seeded: PgDatabase,
    pg_bin_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    env = dict(env)
    url = seeded.dsn
    if "DB" in env:
        url = url.rsplit("/", 1)[0] + "/" + env.pop("DB")
    run = Runner(pg_bin_dir, tmp_path / "run")("maintenance", env, DATABASE_URL=url)
    assert run.code == code, run.explain()
    assert run.result["outcome"] == "Failed"
    assert message in run.result["message"]
    assert seeded.password not in run.everything
