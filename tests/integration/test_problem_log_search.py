"""spec.solver.logSearch end to end: the real operator builds the Job with --log-search, the
real solver pod (SolverPodBridge) writes CP-SAT's search log to its log (stderr), and its
stdout stays JSON lines; without the field there is no search log."""

from __future__ import annotations

import json

import pytest

from tests.emulator import Emulator
from tests.support.kopf_runner import OperatorRunner
from tests.support.solverpod_bridge import SolverPodBridge

API = "vulcan-engine.com/v1alpha1"
NS = "default"
PROBLEMS = "schedulingproblems"
ENGINE = {
    "apiVersion": API,
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": NS},
    "spec": {
        "version": "2.0.0",
        "solver": {"maxTimeSeconds": 2, "numWorkers": 1, "memoryLimitMB": 512},
    },
}


def problem(name: str, solver: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": API,
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "engineRef": {"name": "prod"},
            "solver": solver,
            "machines": [{"name": "m1"}, {"name": "m2"}],
            "jobs": [
                {
                    "name": "j1",
                    "tasks": [
                        {"name": "a", "duration": 3, "machines": ["m1"]},
                        {"name": "b", "duration": 2, "machines": ["m2"]},
                    ],
                }
            ],
        },
    }


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")


def phase(emulator: Emulator, name: str) -> str:
    return str(((emulator.get(PROBLEMS, NS, name) or {}).get("status") or {}).get("phase"))


@pytest.mark.parametrize("log_search", [True, False])
async def test_the_search_log_is_in_the_pod_log_only_when_asked(
    emulator: Emulator, bridge: SolverPodBridge, operator: OperatorRunner, log_search: bool
) -> None:
    emulator.create(ENGINE)
    emulator.create(problem("logged", {"logSearch": True} if log_search else {}))
    await emulator.wait_for(lambda: phase(emulator, "logged") in ("Succeeded", "Failed"), 30)
    assert phase(emulator, "logged") == "Succeeded"
    (run,) = bridge.runs
    assert ("--log-search" in run.argv) is log_search
    assert ("Starting CP-SAT solver" in run.stderr) is log_search
    assert ("dispatch rule " in run.stderr) is log_search
    events = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert events[-1]["event"] == "result"  # every stdout line is still JSON
