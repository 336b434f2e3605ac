"""The engine's own database, as the operator sees it: where it is, its schema revision, and
the server's version and connection limit.

The operator reads the revision where the engine's pods would. A DATABASE_URL host without a
dot (`postgres`) is a Service name the engine's pods resolve through their namespace's DNS
search list (`postgres.<namespace>.svc.cluster.local`); the operator runs in another namespace
(vulcan-system), where the same short name is another Service or none at all. So a dotless host
is read as `<host>.<engine namespace>.svc`, exactly the Service the pods reach. Hosts with a dot
(`postgres.db`, `db.example.com`), IP addresses, `localhost` and socket paths are left as they
are: the pods' resolver would not rewrite them either (`postgres.db` already resolves through
the `svc.cluster.local` search entry of every pod, the operator's included).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.k8s import Api, Ref

NOT_A_URL = "is not a valid PostgreSQL URL"
_SCHEME = re.compile(r"^(postgres(?:ql)?)(\+[A-Za-z0-9_]+)?://", re.IGNORECASE)
_PORT = re.compile(r"^[0-9]{1,5}$")


class DatabaseUnavailable(Exception):
    """The database could not be asked; the message never holds the URL or its password."""


class InvalidDatabaseURL(DatabaseUnavailable):
    """The URL itself is wrong (not a PostgreSQL URL, a bad port, not UTF-8): no retry helps."""


async def database_url(api: Api, namespace: str, ref: SecretKeyRef) -> str:
    """The URL in the Secret; InvalidDatabaseURL (naming the Secret and key) when not text."""
    secret = await api.get(Ref("v1", "Secret", namespace, ref.name))
    data: dict[str, Any] = (secret or {}).get("data") or {}
    if ref.key not in data:
        raise DatabaseUnavailable(f"Secret '{ref.name}' has no key '{ref.key}'")
    try:
        return base64.b64decode(data[ref.key], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise InvalidDatabaseURL(f"Secret '{ref.name}' key '{ref.key}' {NOT_A_URL}") from None


def _qualify(host: str, namespace: str | None) -> str:
    if not namespace or not host or "." in host or host.startswith(("[", "/")):
        return host
    if host.lower() == "localhost":
        return host
    try:
        ipaddress.ip_address(host)  # an IPv6 address without brackets, in a query
    except ValueError:
        return f"{host}.{namespace}.svc"
    return host


def asyncpg_url(url: str, namespace: str | None = None) -> str:
    """DATABASE_URL as asyncpg takes it; the one place the operator rewrites a database URL.

    SQLAlchemy-style schemes (`postgresql+asyncpg://`, `postgres+psycopg2://`) lose the driver.
    With `namespace`, a dotless host (each one of a multi-host URL) becomes
    `<host>.<namespace>.svc` (see the module docstring). Raises ValueError (whose text never
    holds the URL) when the URL is not a PostgreSQL URL asyncpg could use.
    """
    url = url.strip()
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError("not a postgresql:// URL")
    body = url[match.end() :]
    end = min((i for i in map(body.find, "/?#") if i >= 0), default=len(body))
    netloc, tail = body[:end], body[end:]
    userinfo, at, hostlist = netloc.rpartition("@")
    hosts = []
    for entry in hostlist.split(","):
        if entry.startswith("["):  # [IPv6] or [IPv6]:port
            close = entry.find("]") + 1
            host, rest = entry[:close], entry[close:]
            if not close or (rest and not rest.startswith(":")):
                raise ValueError("a malformed IPv6 host")
            port = rest[1:]
        else:
            host, _, port = entry.partition(":")
        if port and not (_PORT.match(port) and 0 < int(port) < 65536):
            raise ValueError("a port that is not a number from 1 to 65535")
        hosts.append(_qualify(host, namespace) + (f":{port}" if port else ""))
    return f"postgresql://{userinfo}{at}{','.join(hosts)}{tail}"


async def _connect(url: str, namespace: str | None, seconds: float) -> asyncpg.Connection:
    """A connection to the database of `url` (see `asyncpg_url`), or InvalidDatabaseURL /
    DatabaseUnavailable, neither of whose messages holds the URL."""
    try:
        dsn = asyncpg_url(url, namespace)
    except ValueError as exc:
        raise InvalidDatabaseURL(f"{NOT_A_URL}: {exc}") from None
    try:
        return await asyncpg.connect(dsn, timeout=seconds)
    except (ValueError, OverflowError, TypeError) as exc:  # asyncpg's own parse of the URL
        raise InvalidDatabaseURL(f"{NOT_A_URL}: {type(exc).__name__}") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {type(exc).__name__}") from None


async def read_revision(
    url: str, connect_seconds: float = 5.0, *, namespace: str | None = None
) -> str | None:
    """The alembic revision of the database (heads joined by ','); None before any migration.

    `namespace` is the engine's: a dotless host is read as that namespace's Service. Raises
    InvalidDatabaseURL when the URL is malformed, DatabaseUnavailable when the server cannot
    be asked; neither message holds the URL.
    """
    conn = await _connect(url, namespace, connect_seconds)
    try:
        if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
            return None
        rows = await conn.fetch("SELECT version_num FROM alembic_version ORDER BY 1")
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(f"cannot read alembic_version: {exc.sqlstate}") from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot read alembic_version: {type(exc).__name__}") from None
    finally:
        await conn.close()
    return ",".join(r["version_num"] for r in rows) or None


@dataclass(frozen=True)
class ServerFacts:
    """What the operator needs to know of the engine's PostgreSQL server."""

    #: server_version_num, e.g. 170006 for 17.6 (150018 for 15.18).
    version_num: int
    #: max_connections (superuser_reserved_connections of them only for superusers).
    max_connections: int

    @property
    def major(self) -> int:
        return self.version_num // 10000

    @property
    def version(self) -> str:
        """'17.6' (PostgreSQL 10 and newer number their releases major.minor)."""
        return f"{self.major}.{self.version_num % 10000}"


_SERVER_SQL = (
    "SELECT current_setting('server_version_num')::int, current_setting('max_connections')::int"
)


async def read_server(
    url: str, connect_seconds: float = 5.0, *, namespace: str | None = None
) -> ServerFacts:
    """The server's version and connection limit (`SHOW server_version_num`,
    `SHOW max_connections`); errors as `read_revision`'s."""
    conn = await _connect(url, namespace, connect_seconds)
    try:
        row = await conn.fetchrow(_SERVER_SQL)
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(f"cannot read the server settings: {exc.sqlstate}") from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"cannot read the server settings: {type(exc).__name__}"
        ) from None
    finally:
        await conn.close()
    assert row is not None
    return ServerFacts(version_num=row[0], max_connections=row[1])


async def engine_server(
    api: Api, namespace: str, ref: SecretKeyRef, connect_seconds: float = 5.0
) -> ServerFacts:
    """The engine's server facts, read as its pods would reach it (see `engine_revision`)."""
    url = await database_url(api, namespace, ref)
    try:
        return await read_server(url, connect_seconds, namespace=namespace)
    except InvalidDatabaseURL as exc:
        raise InvalidDatabaseURL(f"Secret '{ref.name}' key '{ref.key}' {exc}") from None


async def engine_revision(
    api: Api, namespace: str, ref: SecretKeyRef, connect_seconds: float = 5.0
) -> str | None:
    """The revision of an engine's database, read as its pods would reach it (see above).

    A malformed URL is an InvalidDatabaseURL naming the Secret and key, never the URL.
    """
    url = await database_url(api, namespace, ref)
    try:
        return await read_revision(url, connect_seconds, namespace=namespace)
    except InvalidDatabaseURL as exc:
        raise InvalidDatabaseURL(f"Secret '{ref.name}' key '{ref.key}' {exc}") from None
