"""The database revision, read through the same code the operator uses (asyncpg)."""

from __future__ import annotations

import asyncpg
import pytest

from vulcan_operator.database import DatabaseUnavailable, read_revision


async def test_no_alembic_table_yet_is_none(pg_dsn: str) -> None:
    assert await read_revision(pg_dsn) is None


async def test_reads_the_revision(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    await conn.execute("INSERT INTO alembic_version VALUES ('ae1027a6acf')")
    await conn.close()
    assert await read_revision(pg_dsn) == "ae1027a6acf"


async def test_several_heads_are_joined_and_empty_table_is_none(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    assert await read_revision(pg_dsn) is None
    await conn.execute("INSERT INTO alembic_version VALUES ('b2'), ('a1')")
    await conn.close()
    assert await read_revision(pg_dsn) == "a1,b2"


@pytest.mark.parametrize("kind", ["wrong-password", "no-server"])
async def test_unreachable_database_never_shows_the_url(pg_dsn: str, kind: str) -> None:
    password = "n0t-the-real-pw"
    if kind == "wrong-password":
        user, rest = pg_dsn.removeprefix("postgresql://").split(":", 1)
        url = f"postgresql://{user}:{password}@{rest.split('@', 1)[1]}"
    else:
        url = f"postgresql://vulcan:{password}@127.0.0.1:1/vulcan"
    with pytest.raises(DatabaseUnavailable) as info:
        await read_revision(url, connect_seconds=2)
    assert password not in str(info.value) and "127.0.0.1" not in str(info.value)


async def test_sqlalchemy_style_urls_work(pg_dsn: str) -> None:
    url = pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    assert await read_revision(url) is None
