"""The engine reconcile against a real PostgreSQL: status.database, the client image of its
backup pods, and the connection budget (issue 15, defects 2 and 6)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_api import FakeApi
from tests.support.pg import PgServer
from tests.support.pgversions import PgServers
from vulcan_operator import API_VERSION, enginedb, names
from vulcan_operator.config import Settings
from vulcan_operator.reconcile import engine


def _engine(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VulcanEngine",
        "metadata": {
            "name": "prod",
            "namespace": "shop",
            "uid": f"uid-{id(spec)}",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"version": "1.0", **spec},
    }


def _secret(dsn: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": names.default_database_secret("prod"), "namespace": "shop"},
        "data": {names.DATABASE_URL_KEY: base64.b64encode(dsn.encode()).decode()},
    }


def _reconcile(server: PgServer, body: dict[str, Any]) -> tuple[dict[str, Any], FakeApi]:
    db = server.create_database(label="engine_db")
    api = FakeApi(body, _secret(db.dsn))
    try:
        outcome = asyncio.run(engine.reconcile(api, body, Settings()))  # type: ignore[arg-type]
    finally:
        server.drop_database(db.dbname)
    return outcome.status, api


def _degraded(status: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == "Degraded")
    return found


def _backup_images(api: FakeApi) -> set[str]:
    cronjob = api.find("batch/v1", "CronJob", "shop", names.backup_cronjob("prod"))
    assert cronjob is not None
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return {c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]}


def test_the_budget_of_the_guides_defaults_is_over_the_servers_limit(pg_server: PgServer) -> None:
    facts = asyncio.run(enginedb.read_server(pg_server.admin_dsn()))
    assert facts.max_connections == 100  # the test server's setting (tests/support/pg.py)

    status, api = _reconcile(pg_server, _engine())

    assert status["database"] == {"serverVersion": facts.version, "maxConnections": 100}
    degraded = _degraded(status)
    assert degraded["status"] == "True"
    assert degraded["reason"] == "ConnectionBudget"
    assert status["phase"] != "Degraded"  # a warning: the engine serves until the load comes
    # 20 + 40 per pod, 10 pods (the HPA's maxReplicas), against 100.
    for number in ("600", "60 per pod", "poolSize 20", "maxOverflow 40", "10 pods", "100"):
        assert number in degraded["message"]
    assert _backup_images(api) == {"postgres:15-alpine"}


def test_a_budget_within_the_limit_is_not_degraded(pg_server: PgServer) -> None:
    spec = {
        "database": {"poolSize": 10, "maxOverflow": 5},
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
    }
    status, _ = _reconcile(pg_server, _engine(**spec))
    assert status["database"]["maxConnections"] == 100
    assert _degraded(status)["reason"] != "ConnectionBudget"  # 15 x 6 = 90 <= 100
    status, _ = _reconcile(
        pg_server, _engine(**{**spec, "autoscaling": {"enabled": False}, "replicas": 7})
    )
    assert _degraded(status)["reason"] == "ConnectionBudget"  # 15 x 7 = 105 > 100
    assert "105" in _degraded(status)["message"]


@pytest.mark.parametrize("major", [17, 18])
def test_the_backup_client_follows_the_server_unless_the_spec_names_one(
    pg_servers: PgServers, pg_bin_dirs: dict[int, Path], major: int
) -> None:
    status, api = _reconcile(pg_servers[major], _engine())
    assert status["database"]["serverVersion"].startswith(f"{major}.")
    assert _backup_images(api) == {f"postgres:{major}-alpine"}

    chosen = "registry.example/pg-client:17.6"
    _, api = _reconcile(pg_servers[major], _engine(backup={"clientImage": chosen}))
    assert _backup_images(api) == {chosen}


def test_an_unreachable_server_keeps_the_last_values() -> None:
    body = _engine()
    body["status"] = {
        "observedGeneration": 1,
        "database": {"serverVersion": "16.4", "maxConnections": 500},
    }
    api = FakeApi(body, _secret("postgresql://u:p@127.0.0.1:1/x"))
    status = asyncio.run(engine.reconcile(api, body, Settings())).status  # type: ignore[arg-type]
    assert status["database"] == {"serverVersion": "16.4", "maxConnections": 500}
    assert _degraded(status)["reason"] == "ConnectionBudget"  # 600 > 500
    assert _backup_images(api) == {"postgres:16-alpine"}
