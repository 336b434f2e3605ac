"""The engine's own database, as the operator sees it: where it is and its schema revision."""

from __future__ import annotations

import base64
import re
from typing import Any

import asyncpg

from vulcan_operator import names
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.k8s import Api, Ref


class DatabaseUnavailable(Exception):
    """The database could not be asked; the message never holds the URL or its password."""


def url_ref(engine: str, spec: VulcanEngineSpec) -> SecretKeyRef:
    """The Secret key holding DATABASE_URL: spec.database.urlSecretRef or the convention."""
    return spec.database.urlSecretRef or SecretKeyRef(
        name=names.default_database_secret(engine), key=names.DATABASE_URL_KEY
    )


async def database_url(api: Api, namespace: str, ref: SecretKeyRef) -> str:
    secret = await api.get(Ref("v1", "Secret", namespace, ref.name))
    data: dict[str, Any] = (secret or {}).get("data") or {}
    if ref.key not in data:
        raise DatabaseUnavailable(f"Secret '{ref.name}' has no key '{ref.key}'")
    return base64.b64decode(data[ref.key]).decode()


async def read_revision(url: str, connect_seconds: float = 5.0) -> str | None:
    """The alembic revision of the database (heads joined by ','); None before any migration.

    SQLAlchemy-style URLs (postgresql+asyncpg://, postgresql+psycopg2://) work too.
    """
    url = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)
    try:
        conn = await asyncpg.connect(url, timeout=connect_seconds)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {type(exc).__name__}") from None
    try:
        if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
            return None
        rows = await conn.fetch("SELECT version_num FROM alembic_version ORDER BY 1")
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(f"cannot read alembic_version: {exc.sqlstate}") from None
    finally:
        await conn.close()
    return ",".join(r["version_num"] for r in rows) or None
