"""An engine's PostgreSQL server: `status.database` and the connection budget.

The operator reads the server's version (`server_version_num`) and `max_connections` where
the engine's pods would reach it (`enginedb.engine_server`): when the status has none yet,
when the spec changed, and otherwise at most every REFRESH_SECONDS per engine and operator
process (no status write while nothing changes). A server it cannot reach keeps the last
values; nothing else waits for them.

- The version picks the PostgreSQL client of the engine's backup, restore and maintenance pods
  (`builders.backup.pods.client_image`): pg_dump refuses a server of a newer major.
- The connection budget: every backend pod may open `poolSize + maxOverflow` connections
  (SQLAlchemy's pool), and there may be `autoscaling.maxReplicas` pods (`replicas` without an
  HPA). More than `max_connections` makes `Degraded=True`, reason `ConnectionBudget`, with the
  numbers: the pods would hit "too many clients" under load, before any alert of ours. Degraded
  rather than Progressing: nothing is under way that would end it; a person must change the
  spec or the server. Ready is unaffected (the engine serves until the load comes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vulcan_operator import enginedb
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.k8s import Api
from vulcan_operator.status import condition

__all__ = [
    "CONNECTION_BUDGET",
    "REFRESH_SECONDS",
    "DatabaseView",
    "budget",
    "engine_database",
    "server_version",
]

CONNECTION_BUDGET = "ConnectionBudget"
REFRESH_SECONDS = 300.0

#: (namespace, name, uid) -> when this process last read the engine's server (monotonic).
_read_at: dict[tuple[str, str, str], float] = {}


@dataclass
class DatabaseView:
    """What the engine's status says about its server."""

    database: dict[str, Any] | None  # status.database
    conditions: list[dict[str, Any]] = field(default_factory=list)  # Degraded ConnectionBudget


def server_version(engine: dict[str, Any] | None) -> str | None:
    """The server version an engine's status records (status.database.serverVersion)."""
    database = ((engine or {}).get("status") or {}).get("database") or {}
    version = database.get("serverVersion")
    return version if isinstance(version, str) else None


def budget(spec: VulcanEngineSpec, max_connections: int) -> str | None:
    """Why the engine's pods may open more connections than the server allows, or None."""
    per_pod = spec.database.poolSize + spec.database.maxOverflow
    if spec.autoscaling.enabled:
        pods, where = spec.autoscaling.maxReplicas, "autoscaling.maxReplicas"
    else:
        pods, where = spec.replicas, "replicas"
    peak = per_pod * pods
    if peak <= max_connections:
        return None
    return (
        f"the backend pods may open {peak} database connections ({per_pod} per pod: "
        f"database.poolSize {spec.database.poolSize} + database.maxOverflow "
        f"{spec.database.maxOverflow}, times {pods} pods: {where}) but the PostgreSQL server "
        f"allows {max_connections} (max_connections, a few of them reserved for superusers): "
        "lower spec.database.poolSize, maxOverflow or the replicas, or raise max_connections "
        "(or put a pooler such as PgBouncer in front)"
    )


async def engine_database(
    api: Api,
    namespace: str,
    name: str,
    uid: str,
    spec: VulcanEngineSpec,
    status: dict[str, Any],
    generation: int | None,
    *,
    clock: Any = time.monotonic,
) -> DatabaseView:
    """status.database (read again when due; the last values when the server cannot be read)
    and the ConnectionBudget condition, when the budget is exceeded."""
    database = dict(status.get("database") or {}) or None
    key = (namespace, name, uid)
    due = (
        database is None
        or generation != status.get("observedGeneration")
        or clock() - _read_at.get(key, float("-inf")) >= REFRESH_SECONDS
    )
    if due:
        try:
            facts = await enginedb.engine_server(api, namespace, spec.database_url_ref(name))
        except enginedb.DatabaseUnavailable:
            pass  # the last values stay; the upgrade flow reports an unreadable database
        else:
            _read_at[key] = clock()
            database = {"serverVersion": facts.version, "maxConnections": facts.max_connections}
    limit = (database or {}).get("maxConnections")
    problem = budget(spec, limit) if isinstance(limit, int) else None
    if problem is None:
        return DatabaseView(database)
    return DatabaseView(
        database, [condition("Degraded", True, CONNECTION_BUDGET, problem, generation)]
    )
