"""solverpod: the pod-side pieces that need no cluster (the whole pod runs in the integration
tests, through the emulator)."""

from __future__ import annotations

import time
from typing import Any

from vulcan_operator.k8s import Ref
from vulcan_operator.solver.loader import load_text
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.progress import Progress
from vulcan_operator.solverpod.__main__ import problem_document
from vulcan_operator.solverpod.reporter import StatusReporter
from vulcan_operator.solverpod.status import final_progress, progress_status, result_status

SETTINGS = SolverSettings(maxTimeSeconds=7, numWorkers=3, memoryLimitMB=1024, useLNS=False, seed=5)


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "SchedulingProblem",
        "metadata": {"name": "week-48", "namespace": "plant-a", "generation": 2},
        "spec": {"engineRef": {"name": "prod"}, "solver": {"numWorkers": 9}, **spec},
    }


def test_an_inline_problem_is_solved_with_the_settings_of_the_job() -> None:
    doc = problem_document(
        body(
            machines=[{"name": "m"}],
            jobs=[{"name": "j", "tasks": [{"name": "t", "duration": 2, "machines": ["m"]}]}],
        ),
        SETTINGS,
        None,
    )
    loaded = load_text(doc)
    assert loaded.name == "week-48" and loaded.problem.jobs[0].name == "j"
    assert loaded.settings == SETTINGS  # the Job's settings, not the spec's overrides


def test_a_problem_ref_comes_from_the_mounted_file(tmp_path: Any) -> None:
    mounted = tmp_path / "problem.yaml"
    mounted.write_text(
        "machines: [{name: m}]\njobs: [{name: j, tasks: [{name: t, duration: 1, machines: [m]}]}]\n"
    )
    doc = problem_document(
        body(
            machines=[],
            operators=[],
            jobs=[],  # what the API server fills in
            objective={"type": "makespan"},
            problemRef={"configMapName": "big", "key": "week.yaml"},
        ),
        SETTINGS,
        mounted,
    )
    loaded = load_text(doc)
    assert [m.name for m in loaded.problem.machines] == ["m"]


def test_status_shapes_have_no_nulls_in_the_result() -> None:
    summary = {
        "status": "INFEASIBLE",
        "objective": None,
        "bound": None,
        "gap": None,
        "makespan": None,
        "wallSeconds": 0.2,
        "solutions": 0,
        "explanation": ["no way"],
    }
    assert result_status(summary, "2026-11-29T02:00:00Z") == {
        "status": "INFEASIBLE",
        "wallSeconds": 0.2,
        "explanation": ["no way"],
        "finishedAt": "2026-11-29T02:00:00Z",
    }
    assert final_progress(summary)["elapsedSeconds"] == 0.2  # nulls remove fields (merge)
    event = progress_status(Progress(40, 35, 0.125, 1.23456, 3))
    assert event == {
        "objective": 40,
        "bound": 35,
        "gap": 0.125,
        "elapsedSeconds": 1.235,
        "solutions": 3,
    }


class FakeApi:
    def __init__(self) -> None:
        self.patches: list[tuple[float, dict[str, Any]]] = []

    async def patch(
        self, ref: Ref, body: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        assert subresource == "status" and ref.name == "week-48"
        self.patches.append((time.monotonic(), body["status"]["progress"]))
        return {}


def test_progress_is_throttled_and_the_last_one_always_arrives() -> None:
    api = FakeApi()
    reporter = StatusReporter(api, Ref("v", "SchedulingProblem", "ns", "week-48"), 0.2)  # type: ignore[arg-type]
    reporter.start()
    started = time.monotonic()
    for i in range(100):
        reporter.report(Progress(1000 - i, 10, None, i / 100, i + 1))
        time.sleep(0.005)
    reporter.close()
    elapsed = time.monotonic() - started
    assert 2 <= len(api.patches) <= elapsed / 0.2 + 2, len(api.patches)
    assert api.patches[-1][1]["solutions"] == 100  # the newest, sent on close
    gaps = [b[0] - a[0] for a, b in zip(api.patches, api.patches[1:-1], strict=False)]
    assert all(gap >= 0.18 for gap in gaps), gaps
