"""Problems of other namespaces (issue 15, defect 9): the README's scheduling example as
written (`examples/plant.yaml` in plant-a naming engine prod in vulcan, `examples/
vulcanengine.yaml`), run with real kubectl against the emulator, the real operator, real solver
pods (`SolverPodBridge`) and a real PostgreSQL as the engine's database; the engine's
`spec.solver.acceptFrom` (a list, a namespace selector, the default); one queue per engine
across namespaces; and a planner who tries to reach the engine's credentials.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.emulator import Emulator
from tests.support.kopf_runner import OperatorRunner
from tests.support.kubectl import KUBECTL, OpenApiEmulator, kubeconfig, shell_block
from tests.support.solverpod_bridge import SolverPodBridge

REPO = Path(__file__).resolve().parents[2]
PROBLEMS = "schedulingproblems"
ENGINE_NS = "vulcan"
SCHEDULING = "## Scheduling problems"
NOT_ACCEPTED = "NotAccepted"

pytestmark = pytest.mark.emulator(cls=OpenApiEmulator)


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text())
    return body


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def secret(ns: str, name: str, key: str, value: str) -> dict[str, Any]:
    data = {key: base64.b64encode(value.encode()).decode()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def small_problem(name: str, ns: str, engine_ns: str | None = ENGINE_NS) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": "prod"}
    if engine_ns is not None:
        ref["namespace"] = engine_ns
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "engineRef": ref,
            "solver": {"maxTimeSeconds": 5, "numWorkers": 1, "memoryLimitMB": 512},
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


def engine(accept: dict[str, Any] | None = None, **solver: Any) -> dict[str, Any]:
    """examples/vulcanengine.yaml, with another acceptFrom and solver settings when given."""
    body = copy.deepcopy(example("vulcanengine.yaml"))
    if accept is not None:
        body["spec"]["solver"]["acceptFrom"] = accept
    body["spec"]["solver"].update(solver)
    return body


def status(emulator: Emulator, ns: str, name: str) -> dict[str, Any]:
    return (emulator.get(PROBLEMS, ns, name) or {}).get("status") or {}


async def finished(emulator: Emulator, ns: str, name: str, within: float = 60) -> dict[str, Any]:
    await emulator.wait_for(
        lambda: status(emulator, ns, name).get("phase") in ("Succeeded", "Failed"), within
    )
    return status(emulator, ns, name)


def reason(st: dict[str, Any]) -> str:
    return str(next(c for c in st["conditions"] if c["type"] == "Ready")["reason"])


def children_in(emulator: Emulator, ns: str) -> dict[str, list[str]]:
    """What the operator made in a namespace (solver Jobs, their accounts, roles, bindings)."""
    return {
        kind: [o["metadata"]["name"] for o in emulator.list(kind, ns)]
        for kind in ("jobs", "serviceaccounts", "roles", "rolebindings", "configmaps")
    }


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")


@pytest.fixture
async def vulcan(
    emulator: Emulator, tmp_path: Path, operator: OperatorRunner, pg_dsn: str
) -> AsyncIterator[SolverPodBridge]:
    """Namespace vulcan with the engine's Secrets (a real PostgreSQL as its database), real
    solver pods, the operator running."""
    emulator.create(namespace(ENGINE_NS))
    emulator.create(secret(ENGINE_NS, "vulcan-db", "database-url", pg_dsn))
    emulator.create(secret(ENGINE_NS, "vulcan-redis", "redis-url", "redis://redis:6379/0"))
    bridge = SolverPodBridge(emulator, tmp_path / "pods")
    bridge.install()
    yield bridge


async def rows(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('vulcan_solver.schedules')") is None:
            return []
        return list(
            await conn.fetch(
                "SELECT s.id, s.namespace, s.problem, s.status, count(a.id) AS tasks "
                "FROM vulcan_solver.schedules s JOIN vulcan_solver.assignments a "
                "ON a.schedule_id = s.id GROUP BY s.id ORDER BY s.id"
            )
        )
    finally:
        await conn.close()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_the_readme_example_runs_as_written(
    emulator: Emulator, vulcan: SolverPodBridge, tmp_path: Path, pg_dsn: str
) -> None:
    emulator.create(example("vulcanengine.yaml"))
    # A planner of plant-a plants a Secret named like the engine's: it must reach no pod.
    config = kubeconfig(tmp_path / "kubeconfig", emulator.url)
    outputs = []
    for argv in shell_block((REPO / "README.md").read_text(), SCHEDULING):
        assert argv[0] == "kubectl", argv
        done = await asyncio.to_thread(
            subprocess.run,
            ["kubectl", "--kubeconfig", str(config), *argv[1:]],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        outputs.append(done.stdout)
        if argv[1:3] == ["create", "namespace"]:
            emulator.create(secret("plant-a", "vulcan-db", "database-url", "postgresql://x@evil/y"))

    st = status(emulator, "plant-a", "plant-week-48")
    assert st["phase"] == "Succeeded", st
    result = json.loads(outputs[-2])  # -o jsonpath='{.status.result}'
    assert result["status"] in ("OPTIMAL", "FEASIBLE") and result["makespan"] > 0
    schedule = json.loads(outputs[-1])  # the ConfigMap's result.json
    assert schedule["makespan"] == result["makespan"] and schedule["assignments"]

    # The solver pod ran in plant-a and never had the engine's credentials, not even a
    # reference to a Secret (the planted one stayed unread).
    (job,) = emulator.list("jobs", "plant-a")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "DATABASE_URL" not in {e["name"] for e in container["env"]}
    assert "secretKeyRef" not in json.dumps(job)
    assert emulator.list("jobs", ENGINE_NS, labels="app.kubernetes.io/component=solver") == []
    assert [r.job for r in vulcan.runs] == [job["metadata"]["name"]]

    # Nothing in plant-a, stored or logged, holds the engine's database URL or its password.
    password = pg_dsn.split("@")[0].rsplit(":", 1)[1]
    assert len(password) >= 8, "the scan needs a password to look for"
    kinds = ("schedulingproblems", "jobs", "pods", "configmaps", "events", "secrets", "roles")
    planners = [json.dumps(o) for kind in kinds for o in emulator.list(kind, "plant-a")]
    assert len(planners) > 5 and not any(password in text for text in planners)
    assert not any(password in r.stdout + r.stderr + r.termination for r in vulcan.runs)

    # The operator wrote the rows with the engine's credentials, read in vulcan.
    (row,) = await rows(pg_dsn)
    assert (row["namespace"], row["problem"], row["status"]) == (
        "plant-a",
        "plant-week-48",
        "active",
    )
    assert row["tasks"] == len(schedule["assignments"])
    assert st["solutionRef"] == {
        "configMapName": "plant-week-48-schedule",
        "scheduleId": str(row["id"]),
    }
    assert f"schedule {row['id']}" in next(
        c["message"] for c in st["conditions"] if c["type"] == "Ready"
    )


async def test_a_namespace_the_engine_does_not_accept_fails_naming_the_field(
    emulator: Emulator, vulcan: SolverPodBridge
) -> None:
    emulator.create(engine())  # accepts plant-a only
    emulator.create(namespace("plant-b"))
    before = children_in(emulator, "plant-b")
    emulator.create(small_problem("week-1", "plant-b"))
    st = await finished(emulator, "plant-b", "week-1")
    assert st["phase"] == "Failed" and reason(st) == NOT_ACCEPTED, st
    message = next(c["message"] for c in st["conditions"] if c["type"] == "Ready")
    assert "VulcanEngine 'prod' in namespace 'vulcan'" in message
    assert "spec.solver.acceptFrom.namespaces" in message and "'plant-b'" in message
    assert children_in(emulator, "plant-b") == before  # no Job, account, role or ConfigMap
    assert vulcan.runs == []
    await emulator.wait_for(
        lambda: any(
            e.get("reason") == NOT_ACCEPTED and e["involvedObject"]["name"] == "week-1"
            for e in emulator.list("events", "plant-b")
        )
    )
    # The same problem without a namespace names an engine of its own namespace: none there.
    emulator.create(small_problem("week-2", "plant-b", engine_ns=None))
    await emulator.wait_for(lambda: status(emulator, "plant-b", "week-2").get("phase"))
    assert reason(status(emulator, "plant-b", "week-2")) == "EngineNotFound"


async def test_a_namespace_selector_admits_labelled_namespaces_only(
    emulator: Emulator, vulcan: SolverPodBridge
) -> None:
    selector = {"matchLabels": {"vulcan-engine.com/planning": "true"}}
    emulator.create(engine({"namespaceSelector": selector}))
    emulator.create(namespace("plant-c", **{"vulcan-engine.com/planning": "true"}))
    emulator.create(namespace("plant-d", team="planning"))
    emulator.create(small_problem("week-1", "plant-c"))
    emulator.create(small_problem("week-1", "plant-d"))
    accepted = await finished(emulator, "plant-c", "week-1")
    refused = await finished(emulator, "plant-d", "week-1")
    assert accepted["phase"] == "Succeeded", accepted
    assert refused["phase"] == "Failed" and reason(refused) == NOT_ACCEPTED, refused
    message = next(c["message"] for c in refused["conditions"] if c["type"] == "Ready")
    assert "spec.solver.acceptFrom.namespaceSelector does not match" in message
    assert [r.job.split("-solve-")[0] for r in vulcan.runs] == ["week-1"]
    assert emulator.list("jobs", "plant-d") == []


async def test_one_queue_per_engine_across_namespaces(
    emulator: Emulator, vulcan: SolverPodBridge
) -> None:
    emulator.create(engine({"namespaces": ["plant-a", "plant-b"]}, maxConcurrentJobs=1))
    for ns in ("plant-a", "plant-b"):
        emulator.create(namespace(ns))
    emulator.create(small_problem("p1", "plant-a"))
    emulator.create(small_problem("p2", "plant-b"))
    emulator.create(small_problem("p3", ENGINE_NS, engine_ns=None))
    for ns, name in (("plant-a", "p1"), ("plant-b", "p2"), (ENGINE_NS, "p3")):
        st = await finished(emulator, ns, name)
        assert st["phase"] == "Succeeded", (ns, name, st)
    assert len(vulcan.runs) == 3
    assert vulcan.max_running == 1  # the engine's one slot, shared by three namespaces
