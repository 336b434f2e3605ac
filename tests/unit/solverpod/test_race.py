"""solverpod.race: members of a portfolio store their schedule only when it is better than the
stored one, by compare-and-swap on the resourceVersion, against the emulator's real conflict
checks. Another member's write is made to land between a member's read and its write (in the
emulator's request hook, just before the member's PATCH is served): the member's write then
conflicts for real, and it must read and compare again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import attrs
import kubernetes
import pytest
from aiohttp import web

from tests.emulator import Emulator
from tests.emulator.server import RequestRecord
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.solverpod import race
from vulcan_operator.solverpod.__main__ import member_index

NS = "default"
CM = "week-48-schedule"
API = "vulcan-engine.com/v1alpha1"


@attrs.define(kw_only=True, eq=False, repr=False)
class InterleavingEmulator(Emulator):
    """Runs `before_patch` once, on the server, just before the next PATCH is served."""

    before_patch: Callable[[Emulator, RequestRecord], None] | None = None
    conflicts: int = 0

    async def _intercept(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        if record.verb == "patch" and self.before_patch is not None:
            step, self.before_patch = self.before_patch, None
            step(self, record)
        return None


def other_member(objective: int, member: int) -> Callable[[Emulator, RequestRecord], None]:
    """Another member storing its best (objective, member) in the ConfigMap, as race does."""

    def write(emulator: Emulator, record: RequestRecord) -> None:
        best = {"generation": 1, "status": "FEASIBLE", "objective": objective, "foundBy": member}
        emulator._update(
            emulator.resource("configmaps"),
            NS,
            CM,
            lambda cm: {
                **cm,
                "data": {
                    **(cm.get("data") or {}),
                    "generation": "1",
                    race.BEST_KEY: json.dumps(best),
                    "result.json": json.dumps({"objective": objective, "foundBy": member}),
                },
            },
        )

    return write


def result(objective: int, member: int) -> tuple[str, dict[str, Any]]:
    summary = {"status": "FEASIBLE", "objective": objective, "foundBy": member}
    return json.dumps({**summary, "assignments": []}), summary


async def write(objective: int, member: int, notes: list[str]) -> tuple[str | None, bool]:
    text, summary = result(objective, member)
    api = Api(kubernetes.client.ApiClient())
    return await asyncio.to_thread(
        race.write_best_configmap, api, NS, CM, 1, text, summary, member, notes
    )


def stored(emulator: Emulator) -> dict[str, Any]:
    cm = emulator.get("configmaps", NS, CM)
    assert cm is not None
    return dict(cm.get("data") or {})


@pytest.fixture
def schedule_configmap(emulator: Emulator, kube_config: Any) -> None:
    emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM}})


def patches(emulator: Emulator, since: int) -> list[int | None]:
    return [r.status for r in emulator.requests(since) if r.verb == "patch"]


@pytest.mark.emulator(cls=InterleavingEmulator)
async def test_a_better_concurrent_writer_wins_and_the_worse_member_stores_nothing(
    emulator: InterleavingEmulator, schedule_configmap: None
) -> None:
    assert await write(100, 0, []) == (CM, True)  # the first result is stored
    mark = emulator.mark()
    emulator.before_patch = other_member(90, 2)  # member 2 stores 90 after member 1 read 100
    notes: list[str] = []
    assert await write(95, 1, notes) == (None, False)
    assert patches(emulator, mark) == [409]  # its write conflicted; it read again, kept 90
    data = stored(emulator)
    assert json.loads(data[race.BEST_KEY])["foundBy"] == 2
    assert json.loads(data["result.json"]) == {"objective": 90, "foundBy": 2}
    assert notes == [
        "member 1's schedule (objective 95) is not better than member 2's (objective 90): "
        "not stored"
    ]


@pytest.mark.emulator(cls=InterleavingEmulator)
async def test_a_worse_concurrent_writer_is_replaced_after_the_conflict(
    emulator: InterleavingEmulator, schedule_configmap: None
) -> None:
    assert await write(100, 0, []) == (CM, True)
    mark = emulator.mark()
    emulator.before_patch = other_member(97, 2)  # better than 100, worse than member 1's 95
    assert await write(95, 1, []) == (CM, True)
    assert patches(emulator, mark) == [409, 200]
    data = stored(emulator)
    assert json.loads(data[race.BEST_KEY]) == {
        "generation": 1,
        "status": "FEASIBLE",
        "objective": 95,
        "foundBy": 1,
    }
    assert json.loads(data["result.json"])["foundBy"] == 1


@pytest.mark.emulator(cls=InterleavingEmulator)
async def test_a_tie_keeps_the_first_and_a_new_generation_moves_the_old_one_aside(
    emulator: InterleavingEmulator, schedule_configmap: None
) -> None:
    emulator.patch("configmaps", NS, CM, {"data": {"generation": "0", "result.json": "old"}})
    assert await write(100, 0, []) == (CM, True)
    assert await write(100, 1, []) == (None, False)
    data = stored(emulator)
    assert json.loads(data[race.BEST_KEY])["foundBy"] == 0
    assert (data["previous-result.json"], data["previous-generation"]) == ("old", "0")


def test_better_ranks_schedules_then_proofs_then_nothing() -> None:
    feasible = {"status": "FEASIBLE", "objective": 10}
    optimal = {"status": "OPTIMAL", "objective": 10}
    assert race.better(feasible, None)
    assert race.better({"status": "FEASIBLE", "objective": 9}, feasible)
    assert race.better(optimal, feasible) and not race.better(feasible, optimal)
    assert not race.better(feasible, feasible)  # a tie keeps the stored one
    assert race.better(feasible, {"status": "UNKNOWN"})
    assert race.better({"status": "INFEASIBLE"}, {"status": "UNKNOWN"})
    assert not race.better({"status": "UNKNOWN"}, {"status": "INFEASIBLE"})


def one_problem(emulator: Emulator) -> tuple[Api, Ref]:
    """A one-task SchedulingProblem `week-48`, and an Api to race on it."""
    emulator.create(
        {
            "apiVersion": API,
            "kind": "SchedulingProblem",
            "metadata": {"name": "week-48"},
            "spec": {
                "engineRef": {"name": "prod"},
                "machines": [{"name": "m"}],
                "jobs": [{"name": "j", "tasks": [{"name": "t", "duration": 1, "machines": ["m"]}]}],
            },
        }
    )
    return Api(kubernetes.client.ApiClient()), Ref(API, "SchedulingProblem", NS, "week-48")


async def test_the_status_gets_only_a_better_result(emulator: Emulator, kube_config: Any) -> None:
    api, ref = one_problem(emulator)

    def status(objective: int, member: int) -> dict[str, Any]:
        return {
            "result": {"status": "FEASIBLE", "objective": objective, "foundBy": member},
            "solutionRef": {"configMapName": CM},
        }

    for objective, member, written in ((100, 0, True), (120, 1, False), (90, 2, True)):
        got = await asyncio.to_thread(
            race.write_best_status, api, ref, 1, status(objective, member), []
        )
        assert got is written, (objective, member)
    problem = emulator.get("schedulingproblems", NS, "week-48")
    assert problem is not None
    kept = problem["status"]["result"]
    assert (kept["objective"], kept["foundBy"]) == (90, 2)


def test_the_member_is_the_pods_completion_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")
    assert member_index(1) == 0  # one pod is member 0, whatever the environment says
    assert member_index(3) == 2
    for bad in ("3", "", "-1", "x"):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", bad)
        with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX must be 0 to 2"):
            member_index(3)
    with pytest.raises(ValueError, match="--parallelism must be 1 to 8"):
        member_index(9)


async def test_live_progress_shows_the_best_across_members(
    emulator: Emulator, kube_config: Any
) -> None:
    api, ref = one_problem(emulator)

    async def report(objective: int | None, generation: int = 1) -> bool:
        progress = {"objective": objective, "elapsedSeconds": 1.0, "solutions": 1}
        return await asyncio.to_thread(race.write_best_progress, api, ref, generation, progress)

    assert await report(None)  # nothing shown yet: the pod runs
    assert await report(50)
    assert not await report(None) and not await report(60) and not await report(50)
    assert await report(45)
    assert not await report(10, generation=2)  # the problem is not at that generation
    problem = emulator.get("schedulingproblems", NS, "week-48")
    assert problem is not None and problem["status"]["progress"]["objective"] == 45
