"""The schedule rows of a problem whose engine is in another namespace, written by the operator
(`reconcile.schedulerows`) with the engine's DATABASE_URL, into a real PostgreSQL; and what it
refuses of the ConfigMap the pod wrote (anyone who may edit the problem's namespace may have
changed it)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any, cast

import psycopg
import pytest

from tests.support.fake_api import FakeApi
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile.schedulerows import (
    MAX_ASSIGNMENTS,
    ForeignSolve,
    checked_result,
    write_rows,
)
from vulcan_operator.solverpod.store import SCHEMA, ScheduleKey


def fake(*objs: dict[str, Any]) -> Api:
    """The in-memory API, typed as the one it stands in for."""
    return cast(Api, FakeApi(*objs))


KEY = ScheduleKey("plant-a", "week-1", "uid-1", 2, "week-1-solve-abc")
RESULT: dict[str, Any] = {
    "status": "OPTIMAL",
    "objective": 7,
    "bound": 7,
    "makespan": 7,
    "wallSeconds": 0.1,
    "assignments": [
        {"job": "j1", "task": "a", "machine": "m1", "operator": None, "start": 0, "end": 3},
        {"job": "j1", "task": "b", "machine": "m2", "operator": "ann", "start": 3, "end": 7},
    ],
}


def objects(dsn: str, result: Any = RESULT, generation: str = "2") -> list[dict[str, Any]]:
    text = result if isinstance(result, str) else json.dumps(result)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "week-1-schedule", "namespace": "plant-a"},
            "data": {"result.json": text, "generation": generation},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vulcan-db", "namespace": "vulcan"},
            "data": {"database-url": base64.b64encode(dsn.encode()).decode()},
        },
    ]


SOLVE = ForeignSolve(
    KEY, "week-1-schedule", "vulcan", SecretKeyRef(name="vulcan-db", key="database-url")
)


def rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schedules",)).fetchone()
        if exists is None or exists[0] is None:
            return []
        return conn.execute(
            f"SELECT s.namespace, s.problem, s.generation, a.job, a.task, a.operator, "
            f"a.planned_start, a.planned_end FROM {SCHEMA}.schedules s "
            f"JOIN {SCHEMA}.assignments a ON a.schedule_id = s.id ORDER BY a.task"
        ).fetchall()


async def test_the_operator_writes_the_rows_with_the_engines_url(pg_dsn: str) -> None:
    schedule_id, note = await write_rows(fake(*objects(pg_dsn)), SOLVE)
    assert note is None and schedule_id is not None
    assert rows(pg_dsn) == [
        ("plant-a", "week-1", 2, "j1", "a", None, 0, 3),
        ("plant-a", "week-1", 2, "j1", "b", "ann", 3, 7),
    ]
    # Again (an operator restart before the status was written): the same rows, same id.
    assert await write_rows(fake(*objects(pg_dsn)), SOLVE) == (schedule_id, None)
    assert len(rows(pg_dsn)) == 2


async def test_nothing_for_another_generation_or_an_empty_schedule(pg_dsn: str) -> None:
    assert await write_rows(fake(*objects(pg_dsn, generation="1")), SOLVE) == (None, None)
    empty = {**RESULT, "status": "INFEASIBLE", "assignments": []}
    assert await write_rows(fake(*objects(pg_dsn, empty)), SOLVE) == (None, None)
    assert rows(pg_dsn) == []


async def test_the_url_never_reaches_the_note(pg_dsn: str) -> None:
    broken = pg_dsn.replace("127.0.0.1", "127.0.0.1:1")  # a second port: not a URL asyncpg takes
    schedule_id, note = await write_rows(fake(*objects(broken)), SOLVE)
    assert schedule_id is None and note is not None
    assert "cannot write the schedule to the engine's database" in note
    password = pg_dsn.split(":")[2].split("@")[0]
    assert password not in note and "127.0.0.1" not in note
    api = fake(objects(pg_dsn)[0])  # no Secret at all
    assert await write_rows(api, SOLVE) == (
        None,
        "cannot write the schedule to the engine's database: its URL cannot be read",
    )


def tampered(**change: Any) -> dict[str, Any]:
    result = copy.deepcopy(RESULT)
    assignment = result["assignments"][0]
    for key, value in change.items():
        if key in assignment:
            assignment[key] = value
        else:
            result[key] = value
    return result


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ("not json", "not JSON"),
        ([1, 2], "no solver status"),
        (tampered(status="DROP TABLE"), "no solver status"),
        (tampered(makespan="7"), "makespan is not an integer"),
        (tampered(objective=True), "objective is not an integer"),
        (tampered(wallSeconds=-1), "wallSeconds"),
        (tampered(assignments="x"), "not a list"),
        (tampered(assignments=[RESULT["assignments"][0]] * (MAX_ASSIGNMENTS + 1)), "at most"),
        (tampered(start=3, end=3), "start < end"),
        (tampered(start=-1), "start < end"),
        (tampered(end=2**63), "start < end"),
        (tampered(job=""), "an assignment"),
        (tampered(task="t" * 254), "an assignment"),
        (tampered(machine=["m1"]), "an assignment"),
        (tampered(operator={"name": "x"}), "an assignment"),
    ],
)
async def test_a_tampered_schedule_is_refused_and_nothing_is_written(
    result: Any, why: str, pg_dsn: str
) -> None:
    text = result if isinstance(result, str) else json.dumps(result)
    assert why in str(checked_result(text))
    schedule_id, note = await write_rows(fake(*objects(pg_dsn, result)), SOLVE)
    assert schedule_id is None and note is not None and why in note
    assert rows(pg_dsn) == []
