"""The schedule rows of a problem solved for an engine of another namespace.

A solver pod in its engine's own namespace writes the rows itself (DATABASE_URL by Secret
reference, `solverpod.store`). A pod in another namespace never gets the engine's credentials:
a Secret reference reads the pod's own namespace, and the planners who may read that namespace
must never read the engine's database URL. So for such a problem the operator writes the rows:
when its Job has finished, it reads the result the pod wrote into the problem's schedule
ConfigMap, checks it as untrusted input (anyone who may edit ConfigMaps in the problem's
namespace may have changed it), and writes it with the engine's DATABASE_URL, read in the
engine's namespace, through the same `store.write_schedule` as the pod. The rows are keyed by
the problem's namespace, name, uid and generation (chosen here, not read from the ConfigMap),
so a planner can only ever write the rows of their own problem, and only as data.

Nothing here fails the problem: what could not be stored, and why (never the URL), is a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.enginedb import DatabaseUnavailable, asyncpg_url, database_url
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.solverpod import store

__all__ = ["ForeignSolve", "checked_result", "write_rows"]

STATUSES = ("OPTIMAL", "FEASIBLE", "INFEASIBLE", "UNKNOWN", "MODEL_INVALID")
NAME_CHARS = 253
#: A ConfigMap holds at most 1 MiB, and an assignment takes more than 50 bytes of it.
MAX_ASSIGNMENTS = 25_000
BIG = 2**62


@dataclass(frozen=True)
class ForeignSolve:
    """Which solve, and whose database (the engine's namespace and DATABASE_URL reference)."""

    key: store.ScheduleKey
    configmap: str
    engine_namespace: str
    database: SecretKeyRef


def _integer(value: Any, low: int = -BIG) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < BIG


def checked_result(text: str) -> dict[str, Any] | str:
    """The result JSON a pod wrote, as `store.write_schedule` takes it, or what is wrong."""
    try:
        data = json.loads(text)
    except ValueError:
        return "it is not JSON"
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        return "it has no solver status"
    for field in ("objective", "bound", "makespan"):
        if data.get(field) is not None and not _integer(data[field]):
            return f"its {field} is not an integer"
    wall = data.get("wallSeconds")
    if wall is not None and not (isinstance(wall, (int, float)) and 0 <= wall < BIG):
        return "its wallSeconds is not a number of seconds"
    assignments = data.get("assignments") or []
    if not isinstance(assignments, list) or len(assignments) > MAX_ASSIGNMENTS:
        return f"its assignments are not a list of at most {MAX_ASSIGNMENTS}"
    for a in assignments:
        if not (
            isinstance(a, dict)
            and all(
                isinstance(a.get(k), str) and 0 < len(a[k]) <= NAME_CHARS
                for k in ("job", "task", "machine")
            )
            and (a.get("operator") is None or isinstance(a["operator"], str))
            and len(str(a.get("operator") or "")) <= NAME_CHARS
            and _integer(a.get("start"), 0)
            and _integer(a.get("end"), 0)
            and a["end"] > a["start"]
        ):
            return "an assignment is not {job, task, machine, operator, start < end}"
    return {
        "status": data["status"],
        **{k: data.get(k) for k in ("objective", "bound", "makespan", "wallSeconds")},
        "assignments": assignments,
    }


async def write_rows(api: Api, solve: ForeignSolve) -> tuple[str | None, str | None]:
    """Store the solve's schedule in the engine's database: (schedule id, None), or (None, a
    note saying why not), or (None, None) when there is nothing to store."""
    key = solve.key
    cm = await api.get(Ref("v1", "ConfigMap", key.namespace, solve.configmap))
    data = (cm or {}).get("data") or {}
    if data.get("generation") != str(key.generation) or store.RESULT_KEY not in data:
        return None, None  # the pod wrote no schedule (too large, or it failed): nothing
    result = checked_result(str(data[store.RESULT_KEY]))
    if isinstance(result, str):
        return None, (
            f"the schedule in ConfigMap {solve.configmap} was not written to the engine's "
            f"database: {result}"
        )
    if not result["assignments"]:
        return None, None
    try:
        url = await database_url(api, solve.engine_namespace, solve.database)
        dsn = asyncpg_url(url, solve.engine_namespace)
        return str(await store.write_schedule(dsn, key, result)), None
    except DatabaseUnavailable:
        return None, "cannot write the schedule to the engine's database: its URL cannot be read"
    except Exception as error:  # the ConfigMap still has the schedule
        return None, store.database_note(error)
