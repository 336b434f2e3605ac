"""Schedule rows in the engine's PostgreSQL: written by the real solver pod (run locally by the
emulator's Job controller), read back with psycopg, compared with the result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.emulator import Emulator
from tests.support.kopf_runner import OperatorRunner
from tests.support.solverpod_bridge import SolverPodBridge
from vulcan_operator.solverpod.store import SCHEMA, ScheduleKey, write_schedule

NS = "default"
PROBLEMS = "schedulingproblems"


def status(emulator: Emulator, name: str) -> dict[str, Any]:
    return (emulator.get(PROBLEMS, NS, name) or {}).get("status") or {}


def problem(name: str, durations: tuple[int, int] = (3, 4)) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "SchedulingProblem",
        "metadata": {"name": name},
        "spec": {
            "engineRef": {"name": "prod"},
            "machines": [{"name": "lathe"}, {"name": "mill"}],
            "operators": [{"name": "alice", "skills": ["welding"]}],
            "jobs": [
                {
                    "name": "order-1",
                    "priority": 2,
                    "tasks": [
                        {"name": "cut", "duration": durations[0], "machines": ["lathe"]},
                        {
                            "name": "weld",
                            "duration": 2,
                            "machines": ["mill"],
                            "skill": "welding",
                        },
                    ],
                },
                {
                    "name": "order-2",
                    "tasks": [
                        {"name": "cut", "duration": durations[1], "machines": ["lathe", "mill"]}
                    ],
                },
            ],
        },
    }


def rows(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def assignments_of(dsn: str, schedule_id: str) -> list[dict[str, Any]]:
    found = rows(
        dsn,
        f"SELECT job, task, machine, operator, planned_start, planned_end "
        f"FROM {SCHEMA}.assignments WHERE schedule_id = %s ORDER BY job, task",
        int(schedule_id),
    )
    keys = ("job", "task", "machine", "operator", "start", "end")
    return [dict(zip(keys, row, strict=True)) for row in found]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")


async def solved(emulator: Emulator, name: str, generation: int = 1) -> dict[str, Any]:
    def done() -> bool:
        st = status(emulator, name)
        return st.get("observedGeneration") == generation and st.get("phase") in (
            "Succeeded",
            "Failed",
        )

    await emulator.wait_for(done, timeout=60)
    return status(emulator, name)


async def test_the_schedule_rows_land_in_the_engine_database_and_match_the_result(
    emulator: Emulator, operator: OperatorRunner, pg_dsn: str, tmp_path: Path
) -> None:
    bridge = SolverPodBridge(emulator, tmp_path / "pods")
    bridge.install()
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vulcan-db"},
            # The SQLAlchemy form the backend uses works too.
            "stringData": {"url": pg_dsn.replace("postgresql://", "postgresql+asyncpg://")},
        }
    )
    emulator.create(
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanEngine",
            "metadata": {"name": "prod"},
            "spec": {
                "version": "2.0.0",
                "database": {"urlSecretRef": {"name": "vulcan-db", "key": "url"}},
                "solver": {"maxTimeSeconds": 5, "numWorkers": 1, "memoryLimitMB": 512},
            },
        }
    )
    emulator.create(problem("week-48"))
    first = await solved(emulator, "week-48")
    assert first["phase"] == "Succeeded", first
    schedule_id = first["solutionRef"]["scheduleId"]
    configmap = emulator.get("configmaps", NS, first["solutionRef"]["configMapName"])
    assert configmap is not None
    result = json.loads(configmap["data"]["result.json"])

    (schedule,) = rows(
        pg_dsn,
        f"SELECT id, namespace, problem, generation, job_name, status, solver_status, "
        f"objective, makespan FROM {SCHEMA}.schedules",
    )
    assert schedule == (
        int(schedule_id),
        NS,
        "week-48",
        1,
        first["jobName"],
        "active",
        first["result"]["status"],
        first["result"]["objective"],
        first["result"]["makespan"],
    )
    expected = sorted(result["assignments"], key=lambda a: (a["job"], a["task"]))
    assert assignments_of(pg_dsn, schedule_id) == expected
    weld = next(a for a in expected if a["task"] == "weld")
    assert weld["operator"] == "alice"

    # A spec edit solves again: a new active schedule; the previous one is archived.
    emulator.patch(PROBLEMS, NS, "week-48", {"spec": problem("week-48", (5, 4))["spec"]})
    second = await solved(emulator, "week-48", generation=2)
    assert second["phase"] == "Succeeded", second
    assert second["solutionRef"]["scheduleId"] != schedule_id
    by_id = dict(rows(pg_dsn, f"SELECT id, status FROM {SCHEMA}.schedules"))
    assert by_id == {
        int(schedule_id): "archived",
        int(second["solutionRef"]["scheduleId"]): "active",
    }
    assert assignments_of(pg_dsn, second["solutionRef"]["scheduleId"])[0]["end"] in (5, 9)
    assert len(bridge.runs) == 2 and all(run.code == 0 for run in bridge.runs)


async def test_writing_the_same_solve_twice_replaces_its_rows(pg_dsn: str) -> None:
    key = ScheduleKey("plant-a", "week-48", "uid-1", 3, "week-48-solve-abc")
    result: dict[str, Any] = {
        "status": "FEASIBLE",
        "objective": 12,
        "bound": 10,
        "makespan": 12,
        "wallSeconds": 2.0,
        "assignments": [
            {"job": "j", "task": "a", "machine": "m", "operator": None, "start": 0, "end": 5},
            {"job": "j", "task": "b", "machine": "m", "operator": "bo", "start": 5, "end": 12},
        ],
    }
    first, second = await asyncio.gather(
        write_schedule(pg_dsn, key, result), write_schedule(pg_dsn, key, result)
    )
    assert first == second
    assert rows(pg_dsn, f"SELECT count(*) FROM {SCHEMA}.assignments") == [(2,)]
    assert rows(pg_dsn, f"SELECT status, bound FROM {SCHEMA}.schedules") == [("active", 10)]


async def test_a_sqlalchemy_url_is_written_to(pg_dsn: str) -> None:
    """The engine's DATABASE_URL names its driver (`postgresql+asyncpg://`); the pod drops it
    (enginedb.asyncpg_url, tested in test_revision.py)."""
    key = ScheduleKey("plant-a", "week-49", "uid-2", 1, "week-49-solve-abc")
    result: dict[str, Any] = {"status": "OPTIMAL", "objective": 1, "makespan": 1, "assignments": []}
    url = pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    assert url != pg_dsn
    schedule_id = await write_schedule(url, key, result)
    assert rows(pg_dsn, f"SELECT problem FROM {SCHEMA}.schedules WHERE id = %s", schedule_id) == [
        ("week-49",)
    ]
