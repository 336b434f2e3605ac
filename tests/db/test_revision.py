"""The database revision, read through the same code the operator uses (asyncpg), against a real
PostgreSQL: where it is read (a short Service name is the engine namespace's), and what a
malformed URL gives (InvalidDatabaseURL naming the Secret and key, never the URL)."""

from __future__ import annotations

import base64
import socket
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from tests.support.pg import PgDatabase
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.enginedb import (
    DatabaseUnavailable,
    InvalidDatabaseURL,
    asyncpg_url,
    engine_revision,
    read_revision,
)
from vulcan_operator.k8s import Ref


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


# --- where the operator reads it: a short Service name is the engine namespace's ------------


class Resolver:
    """Cluster DNS for one test: `<name>.<namespace>.svc` names resolve to the test server,
    nothing else that is not already resolvable does (as in the operator's own namespace)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, services: dict[str, str]) -> None:
        self.asked: list[str] = []
        self.services = services
        self.real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)

    def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.asked.append(name)
        if name in self.services:
            return self.real(self.services[name], *args, **kwargs)
        if name.endswith(".svc") or ("." not in name and name != "localhost"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.real(host, *args, **kwargs)


def with_host(pg: PgDatabase, host: str, scheme: str = "postgresql") -> str:
    return f"{scheme}://{pg.user}:{quote(pg.password, safe='')}@{host}:{pg.port}/{pg.dbname}"


async def set_revision(dsn: str, revision: str) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    await conn.execute("INSERT INTO alembic_version VALUES ($1)", revision)
    await conn.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
async def test_a_dotless_host_is_the_service_of_the_engine_namespace(
    pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """DATABASE_URL with host `postgres`, as the README's example: the engine's pods reach
    `postgres.<their namespace>.svc`; the operator, elsewhere, reads that same database."""
    await set_revision(pg_database.dsn, "ae1027a6acf")
    dns = Resolver(monkeypatch, {"postgres.plant-a.svc": pg_database.host})
    url = with_host(pg_database, "postgres", scheme)
    assert await read_revision(url, namespace="plant-a") == "ae1027a6acf"
    assert "postgres.plant-a.svc" in dns.asked and "postgres" not in dns.asked
    # The same URL in another namespace is another Service, which does not exist here.
    with pytest.raises(DatabaseUnavailable) as info:
        await read_revision(url, connect_seconds=2, namespace="plant-b")
    assert "postgres" not in str(info.value) and pg_database.password not in str(info.value)


async def test_the_engine_revision_reads_the_secret_and_qualifies_the_host(
    pg_database: PgDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    await set_revision(pg_database.dsn, "b2c3")
    Resolver(monkeypatch, {"db.plant-a.svc": pg_database.host})
    api = SecretsApi({"vulcan-db": {"url": with_host(pg_database, "db").encode()}})
    ref = SecretKeyRef(name="vulcan-db", key="url")
    assert await engine_revision(api, "plant-a", ref) == "b2c3"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "pg.example.test", "[::1]"],
    ids=["ip", "localhost", "dotted", "ipv6"],
)
def test_ip_addresses_and_hosts_with_dots_are_unchanged(host: str) -> None:
    url = f"postgresql://u:p@{host}:5432/db?sslmode=require"
    assert asyncpg_url(url, "plant-a") == url
    assert asyncpg_url(url.replace("postgresql://", "postgresql+psycopg2://"), "plant-a") == url


def test_each_host_of_a_multi_host_url_is_qualified_on_its_own() -> None:
    url = "postgres://u:p@primary:5432,standby.db:5433,[fe80::1]/db"
    want = "postgresql://u:p@primary.plant-a.svc:5432,standby.db:5433,[fe80::1]/db"
    assert asyncpg_url(url, "plant-a") == want
    assert asyncpg_url(url) == url.replace("postgres://", "postgresql://")  # no namespace


async def test_ip_hosts_still_connect_with_a_namespace(pg_dsn: str) -> None:
    await set_revision(pg_dsn, "c4")
    assert await read_revision(pg_dsn, namespace="plant-a") == "c4"


# --- a malformed URL: a clear error, never an exception of another type, never the URL ------

PASSWORD = "Pw-0f-the-t3st"


def malformed(pg: PgDatabase) -> dict[str, str]:
    """URLs a person could put in the Secret by mistake, around the real server."""
    at = f"{pg.user}:{PASSWORD}@{pg.host}"
    return {
        "http-scheme": f"http://{at}:{pg.port}/{pg.dbname}",
        "no-scheme": f"{at}:{pg.port}/{pg.dbname}",
        "port-not-a-number": f"postgresql://{at}:{pg.port}x/{pg.dbname}",
        "port-too-big": f"postgresql://{at}:99999/{pg.dbname}",
        "open-ipv6": f"postgresql://{pg.user}:{PASSWORD}@[::1:{pg.port}/{pg.dbname}",
        "bad-sslmode": f"postgresql://{at}:{pg.port}/{pg.dbname}?sslmode=sometimes",
        "empty": "",
        "jdbc": f"jdbc:postgresql://{pg.host}:{pg.port}/{pg.dbname}?password={PASSWORD}",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "http-scheme",
        "no-scheme",
        "port-not-a-number",
        "port-too-big",
        "open-ipv6",
        "bad-sslmode",
        "empty",
        "jdbc",
    ],
)
async def test_a_malformed_url_is_an_invalid_url_naming_the_secret(
    pg_database: PgDatabase, kind: str
) -> None:
    url = malformed(pg_database)[kind]
    with pytest.raises(InvalidDatabaseURL) as info:
        await read_revision(url, connect_seconds=2, namespace="plant-a")
    assert isinstance(info.value, DatabaseUnavailable)
    api = SecretsApi({"vulcan-db": {"database-url": url.encode()}})
    ref = SecretKeyRef(name="vulcan-db", key="database-url")
    with pytest.raises(InvalidDatabaseURL) as info:
        await engine_revision(api, "plant-a", ref, connect_seconds=2)  # type: ignore[arg-type]
    message = str(info.value)
    assert "Secret 'vulcan-db' key 'database-url' is not a valid PostgreSQL URL" in message
    for part in (PASSWORD, str(pg_database.port), pg_database.host, pg_database.dbname):
        assert part not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_a_url_that_is_not_utf8_names_the_secret(pg_database: PgDatabase) -> None:
    raw = pg_database.dsn.encode().replace(b"postgresql", b"postgr\xe9sql")
    api = SecretsApi({"vulcan-db": {"database-url": raw}})
    ref = SecretKeyRef(name="vulcan-db", key="database-url")
    with pytest.raises(InvalidDatabaseURL) as info:
        await engine_revision(api, "plant-a", ref)  # type: ignore[arg-type]
    assert str(info.value) == "Secret 'vulcan-db' key 'database-url' is not a valid PostgreSQL URL"


class SecretsApi:
    """The one call engine_revision makes: get a Secret (values as the API returns them)."""

    def __init__(self, secrets: dict[str, dict[str, bytes]]) -> None:
        self.secrets = secrets

    async def get(self, ref: Ref) -> dict[str, Any] | None:
        data = self.secrets.get(ref.name or "")
        if ref.kind != "Secret" or data is None:
            return None
        return {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
