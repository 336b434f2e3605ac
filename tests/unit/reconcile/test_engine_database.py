"""When the engine reconcile asks its server again (`reconcile.engine_database`): with no
status.database yet, on a spec change, and otherwise once per REFRESH_SECONDS; a server that
cannot be read keeps the last values. (The values themselves come from a real PostgreSQL in
tests/db/test_engine_database.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from vulcan_operator import enginedb
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.reconcile import engine_database
from vulcan_operator.reconcile.engine_database import REFRESH_SECONDS, budget


class Server:
    """Stands in for `enginedb.engine_server`: counts the reads, can be down."""

    def __init__(self) -> None:
        self.reads = 0
        self.down = False

    async def __call__(self, *args: Any) -> enginedb.ServerFacts:
        self.reads += 1
        if self.down:
            raise enginedb.DatabaseUnavailable("cannot connect to the database: OSError")
        return enginedb.ServerFacts(version_num=170006, max_connections=700)


async def test_the_server_is_read_when_due_and_its_last_values_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Server()
    monkeypatch.setattr(enginedb, "engine_server", server)
    now = [1000.0]
    spec = VulcanEngineSpec(version="1")

    async def view(status: dict[str, Any], generation: int = 1) -> engine_database.DatabaseView:
        return await engine_database.engine_database(
            None,  # type: ignore[arg-type]
            "shop",
            "prod",
            "uid-refresh",
            spec,
            status,
            generation,
            clock=lambda: now[0],
        )

    first = await view({})
    assert first.database == {"serverVersion": "17.6", "maxConnections": 700}
    assert first.conditions == []  # 600 <= 700
    status = {"observedGeneration": 1, "database": first.database}
    await view(status)
    now[0] += REFRESH_SECONDS - 1
    await view(status)
    assert server.reads == 1  # an idle resync asks nobody
    await view(status, generation=2)
    assert server.reads == 2  # the spec changed
    now[0] += REFRESH_SECONDS
    server.down = True
    kept = await view(status)
    assert server.reads == 3
    assert kept.database == first.database


def test_the_budget_counts_the_most_pods_the_engine_may_run() -> None:
    hpa = VulcanEngineSpec(version="1")  # 20 + 40, HPA up to 10
    assert budget(hpa, 600) is None
    assert "600 database connections" in (budget(hpa, 599) or "")
    fixed = VulcanEngineSpec(version="1", autoscaling={"enabled": False}, replicas=2)  # type: ignore[arg-type]
    assert budget(fixed, 120) is None
    assert "2 pods: replicas" in (budget(fixed, 119) or "")
