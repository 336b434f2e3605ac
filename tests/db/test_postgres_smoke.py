"""Smoke tests of the throwaway PostgreSQL test bed (fixtures in tests/pg.py)."""

import subprocess

import asyncpg
import pytest

from tests.support.pg import PgDatabase, PgServer

_seen_databases: set[str] = set()


async def test_asyncpg_round_trip(pg_dsn: str, pg_database: PgDatabase) -> None:
    conn = await asyncpg.connect(pg_dsn, timeout=10)
    try:
        await conn.execute("CREATE TABLE smoke_items (id serial PRIMARY KEY, name text NOT NULL)")
        await conn.executemany(
            "INSERT INTO smoke_items (name) VALUES ($1)", [("alpha",), ("beta",)]
        )
        rows = await conn.fetch("SELECT id, name FROM smoke_items ORDER BY id")
        assert [(r["id"], r["name"]) for r in rows] == [(1, "alpha"), (2, "beta")]
        who = await conn.fetchrow("SELECT current_user, current_database()")
        assert tuple(who) == (pg_database.user, pg_database.dbname)
    finally:
        await conn.close()


async def test_wrong_password_is_rejected(pg_database: PgDatabase) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=pg_database.host,
            port=pg_database.port,
            user=pg_database.user,
            password="not-the-password",
            database=pg_database.dbname,
            timeout=10,
        )


@pytest.mark.parametrize("round_", [1, 2])
async def test_each_test_gets_a_fresh_database(pg_database: PgDatabase, round_: int) -> None:
    # Whichever round runs second would see the first round's table if databases were shared.
    assert pg_database.dbname not in _seen_databases
    _seen_databases.add(pg_database.dbname)
    conn = await asyncpg.connect(pg_database.dsn, timeout=10)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == []
        await conn.execute("CREATE TABLE isolation_marker (round int)")
        await conn.execute("INSERT INTO isolation_marker VALUES ($1)", round_)
    finally:
        await conn.close()


def test_pg_dump_and_psql_restore(pg_database: PgDatabase, pg_server: PgServer) -> None:
    import psycopg

    with psycopg.connect(pg_database.dsn, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE dumped_items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO dumped_items VALUES (1, 'kept-in-dump')")

    # pg_dump from the same bin dir, run as the test process's user, with the DSN.
    dump = subprocess.run(
        [pg_database.bin("pg_dump"), "--no-password", "--no-owner", "--dbname", pg_database.dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert "CREATE TABLE public.dumped_items" in dump
    assert "kept-in-dump" in dump

    # Restore into a second database with psql, connecting through the PG* variables.
    target = pg_server.create_database(label="restore_target")
    try:
        subprocess.run(
            [target.bin("psql"), "--no-psqlrc", "--no-password", "-v", "ON_ERROR_STOP=1", "-q"],
            input=dump,
            env=target.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        with psycopg.connect(target.dsn, connect_timeout=10) as conn:
            row = conn.execute("SELECT name FROM dumped_items WHERE id = 1").fetchone()
        assert row == ("kept-in-dump",)
    finally:
        pg_server.drop_database(target.dbname)
