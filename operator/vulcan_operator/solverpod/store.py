"""Where the solver pod stores a schedule: the schedule ConfigMap and the engine's PostgreSQL.

The ConfigMap (`write_configmap`) gets the full result JSON when it fits in 1 MiB. The
database (`write_database`, when the pod has a DATABASE_URL) gets rows, through asyncpg. The
guide's data model has `schedules` (id, status draft|active|archived, makespan, solved_at)
and `assignments` (schedule_id, task, machine, operator, planned_start, planned_end). The
engine's own tables belong to its Alembic migrations and key tasks and machines by database
ids a SchedulingProblem does not have, so the operator keeps its own pair of tables of that
shape in the schema `vulcan_solver` (created when missing), keyed by names:

    vulcan_solver.schedules    one row per solve of a problem generation; the newest of a
                               problem is `active`, the ones before it `archived`
    vulcan_solver.assignments  one row per task: job, task, machine, operator, planned_start,
                               planned_end

Writing is idempotent: the same problem uid and generation written twice (a retried pod)
replaces its rows. Creating the tables takes a transaction-level advisory lock, so pods that
finish together do not trip over each other.

Neither write fails the pod: what could not be stored, and why, is added to `notes` (the pod
reports them in its termination message).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from vulcan_operator.enginedb import asyncpg_url
from vulcan_operator.k8s import Api, ApiError, Ref

__all__ = [
    "CONFIGMAP_LIMIT",
    "PREVIOUS_KEY",
    "RESULT_KEY",
    "SCHEMA",
    "ScheduleKey",
    "database_note",
    "ensure_tables",
    "write_configmap",
    "write_database",
    "write_schedule",
]

#: A ConfigMap holds at most 1 MiB; keep room for its metadata.
CONFIGMAP_LIMIT = 1_000_000
RESULT_KEY = "result.json"
#: The result of the problem's generation before, kept beside the latest by write_configmap.
PREVIOUS_KEY = "previous-result.json"

SCHEMA = "vulcan_solver"
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
#: pg_advisory_xact_lock key of the table creation and the archiving of older schedules.
LOCK_KEY = 0x56554C43414E  # "VULCAN"

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""
    CREATE TABLE IF NOT EXISTS {SCHEMA}.schedules (
        id bigserial PRIMARY KEY,
        namespace text NOT NULL,
        problem text NOT NULL,
        problem_uid text NOT NULL,
        generation bigint NOT NULL,
        job_name text NOT NULL,
        status text NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
        solver_status text NOT NULL,
        objective bigint,
        bound bigint,
        makespan bigint,
        wall_seconds double precision,
        solved_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (problem_uid, generation)
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {SCHEMA}.assignments (
        id bigserial PRIMARY KEY,
        schedule_id bigint NOT NULL REFERENCES {SCHEMA}.schedules (id) ON DELETE CASCADE,
        job text NOT NULL,
        task text NOT NULL,
        machine text NOT NULL,
        operator text,
        planned_start bigint NOT NULL,
        planned_end bigint NOT NULL,
        CHECK (planned_end > planned_start),
        UNIQUE (schedule_id, job, task)
    )
    """,
    # The guide's indexes, for these tables.
    f"CREATE INDEX IF NOT EXISTS idx_assignments_schedule_id ON {SCHEMA}.assignments (schedule_id)",
    f"CREATE INDEX IF NOT EXISTS idx_task_schedule ON {SCHEMA}.assignments "
    "(schedule_id, job, task, planned_start)",
    f"CREATE INDEX IF NOT EXISTS idx_active_schedules ON {SCHEMA}.schedules (id) "
    "WHERE status = 'active'",
    f"CREATE INDEX IF NOT EXISTS idx_schedules_problem ON {SCHEMA}.schedules (namespace, problem)",
)


@dataclass(frozen=True)
class ScheduleKey:
    """Which solve the rows belong to."""

    namespace: str
    problem: str
    problem_uid: str
    generation: int
    job_name: str


async def ensure_tables(conn: Any) -> None:
    """Create the schema, tables and indexes when missing (needs CREATE on the database then)."""
    present = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
        f"{SCHEMA}.schedules",
        f"{SCHEMA}.assignments",
    )
    if present:
        return
    for statement in DDL:
        await conn.execute(statement)


def _records(assignments: Iterable[Mapping[str, Any]], schedule_id: int) -> list[tuple[Any, ...]]:
    return [
        (
            schedule_id,
            str(a["job"]),
            str(a["task"]),
            str(a["machine"]),
            None if a.get("operator") is None else str(a["operator"]),
            int(a["start"]),
            int(a["end"]),
        )
        for a in assignments
    ]


async def write_schedule(
    dsn: str,
    key: ScheduleKey,
    result: Mapping[str, Any],
    better: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
) -> int:
    """Store `result` (the solver's result JSON) as one active schedule; returns its id.

    The problem's earlier active schedules become `archived`. With `better` (pods racing on
    one problem): the rows of this problem generation are replaced only when
    `better(result, stored)` (`stored`: the row's status and objective), compared under the
    lock; else the stored schedule's id is returned and nothing is written.
    """
    conn = await asyncpg.connect(
        asyncpg_url(dsn), timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
    )
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            await ensure_tables(conn)
            if better is not None:
                row = await conn.fetchrow(
                    f"SELECT id, solver_status, objective FROM {SCHEMA}.schedules "
                    "WHERE problem_uid = $1 AND generation = $2",
                    key.problem_uid,
                    key.generation,
                )
                if row is not None and not better(result, {"status": row[1], "objective": row[2]}):
                    return int(row[0])
            await conn.execute(
                f"UPDATE {SCHEMA}.schedules SET status = 'archived' "
                "WHERE namespace = $1 AND problem = $2 AND status = 'active' "
                "AND NOT (problem_uid = $3 AND generation = $4)",
                key.namespace,
                key.problem,
                key.problem_uid,
                key.generation,
            )
            schedule_id: int = await conn.fetchval(
                f"""
                INSERT INTO {SCHEMA}.schedules (namespace, problem, problem_uid, generation,
                    job_name, status, solver_status, objective, bound, makespan, wall_seconds)
                VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10)
                ON CONFLICT (problem_uid, generation) DO UPDATE SET
                    job_name = EXCLUDED.job_name, status = 'active',
                    solver_status = EXCLUDED.solver_status, objective = EXCLUDED.objective,
                    bound = EXCLUDED.bound, makespan = EXCLUDED.makespan,
                    wall_seconds = EXCLUDED.wall_seconds, solved_at = now()
                RETURNING id
                """,
                key.namespace,
                key.problem,
                key.problem_uid,
                key.generation,
                key.job_name,
                str(result["status"]),
                result.get("objective"),
                result.get("bound"),
                result.get("makespan"),
                result.get("wallSeconds"),
            )
            await conn.execute(
                f"DELETE FROM {SCHEMA}.assignments WHERE schedule_id = $1", schedule_id
            )
            records = _records(result.get("assignments") or [], schedule_id)
            if records:
                await conn.copy_records_to_table(
                    "assignments",
                    schema_name=SCHEMA,
                    columns=[
                        "schedule_id",
                        "job",
                        "task",
                        "machine",
                        "operator",
                        "planned_start",
                        "planned_end",
                    ],
                    records=records,
                )
        return schedule_id
    finally:
        await conn.close()


def _pointer(key: str) -> str:
    """`key` as a JSON-pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


def write_configmap(
    api: Api, namespace: str, name: str, generation: int, text: str, notes: list[str]
) -> str | None:
    """The result JSON into ConfigMap `name`; its name, or None (and a note) when not."""
    if len(text.encode("utf-8")) > CONFIGMAP_LIMIT:
        notes.append(
            f"the schedule ({len(text.encode('utf-8'))} bytes) is larger than a ConfigMap "
            f"can hold (1 MiB): not written to ConfigMap {name}"
        )
        return None
    ref = Ref("v1", "ConfigMap", namespace, name)
    gen = str(generation)
    result = {"op": "add", "path": f"/data/{_pointer(RESULT_KEY)}", "value": text}
    # The result of the generation before stays beside the new one, for `kubectl vulcan
    # compare` (tasks moved): moved on the server, as this pod may not read the ConfigMap. A
    # second write of the same generation only replaces the result; when there is no earlier
    # result, or both do not fit in one ConfigMap, the new one is written alone.
    same_generation = [{"op": "test", "path": "/data/generation", "value": gen}, result]
    keep_previous = [
        {
            "op": "move",
            "from": f"/data/{_pointer(RESULT_KEY)}",
            "path": f"/data/{_pointer(PREVIOUS_KEY)}",
        },
        {"op": "move", "from": "/data/generation", "path": "/data/previous-generation"},
        result,
        {"op": "add", "path": "/data/generation", "value": gen},
    ]
    for ops in (same_generation, keep_previous):
        try:
            asyncio.run(api.json_patch(ref, ops))
            return name
        except ApiError as error:
            if error.status not in (409, 413, 422):  # 422: not this shape, try the next
                notes.append(f"cannot write the schedule to ConfigMap {name}: {error}")
                return None
    alone = {RESULT_KEY: text, "generation": gen, PREVIOUS_KEY: None, "previous-generation": None}
    try:
        asyncio.run(api.patch(ref, {"data": alone}))
    except ApiError as error:
        notes.append(f"cannot write the schedule to ConfigMap {name}: {error}")
        return None
    return name


def write_database(
    url: str,
    key: ScheduleKey,
    result: Mapping[str, Any],
    notes: list[str],
    better: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
) -> str | None:
    """The schedule as rows (see above); the schedule's id, or None (and a note) when not."""
    try:
        schedule_id = asyncio.run(write_schedule(url, key, result, better))
        return str(schedule_id)
    except Exception as error:  # the ConfigMap still has the schedule
        notes.append(database_note(error))
        return None


def database_note(error: BaseException) -> str:
    """Why the rows were not written: only the kind of error and PostgreSQL's own SQLSTATE (a
    driver's message may quote a fragment of a malformed URL, password included)."""
    sqlstate = getattr(error, "sqlstate", None)
    return "cannot write the schedule to the engine's database: " + (
        f"{type(error).__name__}" + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
    )
