"""Schedule rows of pods racing on one problem (spec.solver.parallelism): in real PostgreSQL,
a member's rows replace the stored ones only when its schedule is better (compared under the
writers' lock), whatever order the members finish in."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from vulcan_operator.solverpod import race
from vulcan_operator.solverpod.store import SCHEMA, ScheduleKey, write_schedule


def result(objective: int, member: int) -> dict[str, Any]:
    return {
        "status": "FEASIBLE",
        "objective": objective,
        "makespan": objective,
        "foundBy": member,
        "assignments": [
            {"job": "j", "task": "a", "machine": "m", "operator": None, "start": 0, "end": 5},
            {
                "job": "j",
                "task": "b",
                "machine": f"m{member}",
                "operator": None,
                "start": 5,
                "end": objective,
            },
        ],
    }


def rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


async def test_only_a_better_members_rows_replace_the_stored_ones(pg_dsn: str) -> None:
    key = ScheduleKey("plant-a", "week-48", "uid-1", 1, "week-48-solve-abc")
    ids = await asyncio.gather(
        *(
            write_schedule(pg_dsn, key, result(objective, member), race.better)
            for member, objective in enumerate((30, 20, 25, 20))
        )
    )
    assert len(set(ids)) == 1
    assert rows(pg_dsn, f"SELECT objective, status FROM {SCHEMA}.schedules") == [(20, "active")]
    # Member 1 or 3 (both 20, whichever came first); never a worse one's rows.
    machines = rows(pg_dsn, f"SELECT machine FROM {SCHEMA}.assignments WHERE task = 'b'")
    assert machines in ([("m1",)], [("m3",)])
    # Later and worse: nothing changes.
    await write_schedule(pg_dsn, key, result(40, 2), race.better)
    assert rows(pg_dsn, f"SELECT machine FROM {SCHEMA}.assignments WHERE task = 'b'") == machines
