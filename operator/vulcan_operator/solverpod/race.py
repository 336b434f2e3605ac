"""Pods racing on one problem (spec.solver.parallelism): only a better schedule is stored.

Every member of an Indexed solver Job solves the same problem and ends with its own best. Each
writes it only when it is better than the one stored for the same generation, by
compare-and-swap: read the object, compare, write with the `resourceVersion` just read as a
precondition. A 409 means another member (or a progress patch) wrote in between: read and
compare again. So the order the members finish in does not matter: what stays is the best.

- The schedule ConfigMap gets `best.json` (`{generation, status, objective, foundBy}`, the
  comparison's input, also when the schedule is too large for the ConfigMap) beside
  `result.json`; the previous generation's result moves aside as with one pod (`store`).
- The problem's `status.result` (with `foundBy`), `progress` and `solutionRef` are written the
  same way, compared with the status's own result of a member (`foundBy` set); so is the live
  `status.progress` while they search (`write_best_progress`: the best objective so far
  across the members).
- The database rows: `store.write_schedule(..., better_only=True)`, compared under its lock.

Better (`rank`): a schedule before none, a lower objective first, OPTIMAL before FEASIBLE at
the same objective; without a schedule, a proof of infeasibility before nothing. A tie keeps the
stored one (the first to arrive).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.solverpod.store import CONFIGMAP_LIMIT, PREVIOUS_KEY, RESULT_KEY

__all__ = [
    "ATTEMPTS",
    "BEST_KEY",
    "better",
    "compare_and_swap",
    "rank",
    "stored_best",
    "write_best_configmap",
    "write_best_progress",
    "write_best_status",
]

BEST_KEY = "best.json"
#: Reads and writes before a member gives up (each conflict is another writer's success).
ATTEMPTS = 20
SCHEDULE_STATUSES = ("OPTIMAL", "FEASIBLE")

Rank = tuple[int, float, int]


def rank(summary: Mapping[str, Any]) -> Rank:
    """Lower is better (see the module's doc)."""
    status, objective = summary.get("status"), summary.get("objective")
    if status in SCHEDULE_STATUSES and isinstance(objective, (int, float)):
        return (0, float(objective), 0 if status == "OPTIMAL" else 1)
    if status == "INFEASIBLE":
        return (1, 0.0, 0)
    return (2, 0.0, 0)


def better(mine: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Whether `mine` replaces `stored` (None: nothing stored yet)."""
    return stored is None or rank(mine) < rank(stored)


def compare_and_swap(
    api: Api,
    ref: Ref,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    subresource: str | None = None,
) -> bool | None:
    """Read `ref`, ask `change(body)` for a merge patch (None: keep what is stored) and write
    it only if the object is still the one read. True: written; False: kept; None: the object
    is gone, or `ATTEMPTS` writers came in between. Other API errors are raised."""
    for _ in range(ATTEMPTS):
        body = asyncio.run(api.get(ref))
        if body is None:
            return None
        patch = change(body)
        if patch is None:
            return False
        version = body["metadata"]["resourceVersion"]
        patch = {**patch, "metadata": {"resourceVersion": version}}
        try:
            asyncio.run(api.patch(ref, patch, subresource=subresource))
            return True
        except ApiError as error:
            if error.status != 409:
                raise
    return None


def stored_best(data: Mapping[str, Any], generation: int) -> dict[str, Any] | None:
    """The stored best of `generation` in the ConfigMap's data (None: none of it yet)."""
    try:
        best = json.loads(str(data.get(BEST_KEY) or "null"))
    except ValueError:
        return None
    if not isinstance(best, dict) or best.get("generation") != generation:
        return None
    return best


def write_best_configmap(
    api: Api,
    namespace: str,
    name: str,
    generation: int,
    text: str,
    summary: Mapping[str, Any],
    member: int,
    notes: list[str],
) -> tuple[str | None, bool]:
    """Member `member`'s result JSON `text` into ConfigMap `name` when better than the stored
    one: (the ConfigMap's name when it holds this result, else None; whether this member's
    result is now the stored best). Why not, when not, is added to `notes`."""
    mine = {
        "generation": generation,
        "status": summary.get("status"),
        "objective": summary.get("objective"),
        "foundBy": member,
    }
    size = len(text.encode("utf-8"))
    fits = size <= CONFIGMAP_LIMIT
    kept: dict[str, Any] = {}

    def change(cm: dict[str, Any]) -> dict[str, Any] | None:
        data = cm.get("data") or {}
        stored = stored_best(data, generation)
        if not better(mine, stored):
            kept.update(stored or {})
            return None
        new: dict[str, Any] = {
            BEST_KEY: json.dumps(mine),
            "generation": str(generation),
            RESULT_KEY: text if fits else None,
        }
        previous = data.get(RESULT_KEY)
        if data.get("generation") not in (None, str(generation)) and previous:
            # The first member of a new generation keeps the one before beside it, as one
            # pod does (`store.write_configmap`), when both fit.
            both = fits and size + len(str(previous).encode("utf-8")) <= CONFIGMAP_LIMIT
            new[PREVIOUS_KEY] = previous if both else None
            new["previous-generation"] = data["generation"] if both else None
        return {"data": new}

    ref = Ref("v1", "ConfigMap", namespace, name)
    try:
        written = compare_and_swap(api, ref, change)
    except ApiError as error:
        notes.append(f"cannot write the schedule to ConfigMap {name}: {error}")
        return None, False
    if written is None:
        notes.append(f"cannot write the schedule to ConfigMap {name}: gone or too contended")
        return None, False
    if not written:
        notes.append(
            f"member {member}'s schedule (objective {mine['objective']}) is not better than "
            f"member {kept.get('foundBy')}'s (objective {kept.get('objective')}): not stored"
        )
        return None, False
    if not fits:
        notes.append(
            f"the schedule ({size} bytes) is larger than a ConfigMap can hold (1 MiB): not "
            f"written to ConfigMap {name}"
        )
    return (name if fits else None), True


def write_best_progress(api: Api, ref: Ref, generation: int, progress: dict[str, Any]) -> bool:
    """One member's live `status.progress`, when its objective is better (lower) than the one
    shown, or none is shown: the progress is the best across the members. False: not
    written (not better, the problem changed, or too contended)."""

    def change(problem: dict[str, Any]) -> dict[str, Any] | None:
        if problem["metadata"].get("generation") not in (None, generation):
            return None
        shown = ((problem.get("status") or {}).get("progress") or {}).get("objective")
        mine = progress.get("objective")
        if shown is not None and (mine is None or mine >= shown):
            return None
        return {"status": {"progress": progress}}

    return bool(compare_and_swap(api, ref, change, subresource="status"))


def write_best_status(
    api: Api, ref: Ref, generation: int, status: dict[str, Any], notes: list[str]
) -> bool:
    """`status` (progress, result with foundBy, solutionRef) into the problem's status when
    its result is better than the one a member stored there; False when not written."""

    def change(problem: dict[str, Any]) -> dict[str, Any] | None:
        if problem["metadata"].get("generation") not in (None, generation):
            return None  # replaced meanwhile: this result is nobody's
        stored = (problem.get("status") or {}).get("result") or {}
        if stored.get("foundBy") is not None and not better(status["result"], stored):
            return None
        return {"status": status}

    try:
        return bool(compare_and_swap(api, ref, change, subresource="status"))
    except ApiError as error:
        notes.append(f"cannot report the result in the status: {error}")
        return False
