"""What the fault and kill/restart tests run, and how they compare end states.

- `Cluster`: a fresh `FaultyEmulator` with our CRDs, the official client's default
  configuration pointing at it, and an `OperatorRunner` of the real operator: the same as
  the `emulator` + `run_operator` fixtures, but usable more than once per test (a fault-free
  baseline run, then the run under test).
- The scenario: one engine (with its database Secret), N tiny SchedulingProblems, optionally
  one VulcanBackup; the backup Job ends with a real backup result line; the solver Jobs either
  run the real solver pod (`SolverPodBridge`) or end at once with the termination message the
  solver pod writes for that problem (`solved_message`).
- `end_state(emulator)`: a normalised snapshot (kinds and names of every object, phases,
  condition statuses/reasons, results, Jobs ever created per owner). Names that carry a hash
  of a uid (solver Jobs and their pods) are written as their owner's; times and uids are left
  out. Two runs converged to the same end state when their snapshots are equal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes

from tests.emulator import FaultPolicy, FaultyEmulator, JobOutcome
from tests.support.backups import backup_result
from tests.support.kopf_runner import OperatorRunner, kube_configuration
from tests.support.solverpod_bridge import SolverPodBridge

REPO = pathlib.Path(__file__).resolve().parents[2]
API = "vulcan-engine.com/v1alpha1"
NS = "default"
COMPONENT = "app.kubernetes.io/component"
BACKUP_LOCATION = "pvc://prod-backups/default/prod/on-demand/vulcan_20261129_020000.dump"
ENV = {
    "VULCAN_RESYNC_SECONDS": "1",
    "VULCAN_POLL_SECONDS": "0.25",
    "VULCAN_PROBLEM_POLL_SECONDS": "1",
}


# --- the resources ----------------------------------------------------------------------------


def db_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "prod-database", "namespace": NS},
        "stringData": {"database-url": "postgresql://vulcan:pw@db:5432/vulcan"},
    }


def engine(max_concurrent: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": NS},
        "spec": {
            "version": "2.0.0",
            "solver": {
                "maxTimeSeconds": 2,
                "numWorkers": 1,
                "memoryLimitMB": 512,
                "maxConcurrentJobs": max_concurrent,
            },
        },
    }


def problem(name: str, size: int) -> dict[str, Any]:
    """Two machines, two jobs; task durations grow with `size`: optimal at once."""
    return {
        "apiVersion": API,
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "engineRef": {"name": "prod"},
            "machines": [{"name": "m1"}, {"name": "m2"}],
            "jobs": [
                {
                    "name": "j1",
                    "tasks": [
                        {"name": "a", "duration": 3 + size, "machines": ["m1"]},
                        {"name": "b", "duration": 2, "machines": ["m2"]},
                    ],
                },
                {
                    "name": "j2",
                    "priority": 3,
                    "tasks": [
                        {"name": "a", "duration": 2, "machines": ["m2"]},
                        {"name": "b", "duration": 4, "machines": ["m1"]},
                    ],
                },
            ],
        },
    }


def optimum(size: int) -> int:
    """The optimal makespan of `problem(_, size)`: j1's first task, then j2's second, on m1."""
    return 7 + size


def vulcan_backup(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanBackup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"engineRef": {"name": "prod"}},
    }


def solved_message(problem_name: str, makespan: int) -> str:
    """The termination message the solver pod writes for an optimal result (solverpod.main)."""
    return json.dumps(
        {
            "status": "OPTIMAL",
            "objective": makespan,
            "bound": makespan,
            "makespan": makespan,
            "wallSeconds": 0.02,
            "explanation": [],
            "finishedAt": "2026-11-29T02:00:07Z",
            "configMap": f"{problem_name}-schedule",
            "scheduleId": None,
            "jobsByPriority": {"1": 1, "3": 1},
            "notes": [],
        }
    )


def fake_solver(sizes: dict[str, int]) -> Callable[[dict[str, Any]], JobOutcome | None]:
    """Solver Jobs end at once with what the real pod would have said."""

    def outcome(job: dict[str, Any]) -> JobOutcome | None:
        labels = job["metadata"].get("labels") or {}
        owner = labels.get("vulcan-engine.com/problem")
        if labels.get(COMPONENT) != "solver" or owner not in sizes:
            return None
        return JobOutcome.succeed(message=solved_message(owner, optimum(sizes[owner])))

    return outcome


def backup_outcome(job: dict[str, Any]) -> JobOutcome | None:
    labels = job["metadata"].get("labels") or {}
    if labels.get(COMPONENT) != "backup":
        return None
    return JobOutcome.succeed(message=backup_result(BACKUP_LOCATION))


# --- a cluster with the operator ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def cluster(
    faults: FaultPolicy | None = None,
    *,
    bridge_dir: pathlib.Path | None = None,
    registry: Callable[[], kopf.OperatorRegistry] | None = None,
) -> AsyncIterator[tuple[FaultyEmulator, OperatorRunner, SolverPodBridge | None]]:
    """A fresh emulator with `faults`, and a runner (not started) of `registry()` (default:
    the operator's `make_registry()`)."""
    from vulcan_operator.main import make_registry

    async with FaultyEmulator(faults=faults) as emulator:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        emulator.load_crds(REPO / "crds")
        bridge = SolverPodBridge(emulator, bridge_dir) if bridge_dir is not None else None
        previous = kubernetes.client.Configuration._default
        kubernetes.client.Configuration.set_default(kube_configuration(emulator.url))
        runner = OperatorRunner(emulator.url, (registry or make_registry)())
        try:
            yield emulator, runner, bridge
        finally:
            await runner.stop(grace=0)
            kubernetes.client.Configuration.set_default(previous)
        failures = list(emulator.failures)
    assert not failures, f"the emulator failed internally: {failures!r}"


# --- the end state ----------------------------------------------------------------------------


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c.get("status", ""), c.get("reason", ""))
        for c in status.get("conditions") or []
    }


def _owner(obj: dict[str, Any]) -> str:
    refs = obj["metadata"].get("ownerReferences") or []
    return ",".join(f"{r.get('kind')}/{r.get('name')}" for r in refs) or "-"


def _job_label(job: dict[str, Any]) -> str:
    """A Job by what it is for, not by its (uid-hashed) name."""
    labels = job["metadata"].get("labels") or {}
    return f"Job[{labels.get(COMPONENT, '?')} of {_owner(job)}]"


def jobs_created(emulator: FaultyEmulator) -> Counter[str]:
    """Every Job ever stored (deleted ones too), counted by what it is for."""
    found: Counter[str] = Counter()
    for (res, namespace, _), item in list(emulator.objects.items()):
        if res.plural != "jobs" or namespace != NS:
            continue
        uids: dict[str, dict[str, Any]] = {}
        for version in item.history:
            if version is not None:
                uids[version["metadata"]["uid"]] = dict(version)
        for job in uids.values():
            found[_job_label(job)] += 1
    return found


def job_creations(emulator: FaultyEmulator) -> Counter[str]:
    """Successful Job create requests (201), by Job name."""
    return Counter(
        (r.body or {}).get("metadata", {}).get("name", "?")
        for r in emulator.log
        if r.verb == "create" and r.resource == "jobs" and r.status == 201
    )


def _objects(emulator: FaultyEmulator) -> list[str]:
    names: set[str] = set()
    jobs = {j["metadata"]["name"]: j for j in emulator.list("jobs", NS)}
    for kind in (
        "configmaps",
        "secrets",
        "serviceaccounts",
        "services",
        "deployments",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
        "networkpolicies",
        "ingresses",
        "cronjobs",
        "persistentvolumeclaims",
        "roles",
        "rolebindings",
        "vulcanengines",
        "schedulingproblems",
        "vulcanbackups",
        "vulcanrestores",
    ):
        for obj in emulator.list(kind, NS):
            names.add(f"{obj['kind']}/{obj['metadata']['name']}")
    for job in jobs.values():
        names.add(_job_label(job))
    for pod in emulator.list("pods", NS):
        owner = jobs.get((pod["metadata"].get("labels") or {}).get("job-name", ""))
        names.add(f"Pod of {_job_label(owner) if owner else '?'}")
    return sorted(names)


def end_state(emulator: FaultyEmulator) -> dict[str, Any]:
    """The normalised end state (see the module's docstring)."""
    engines = {}
    for obj in emulator.list("vulcanengines", NS):
        st = obj.get("status") or {}
        last = st.get("lastBackup") or {}
        engines[obj["metadata"]["name"]] = {
            "phase": st.get("phase"),
            "currentVersion": st.get("currentVersion"),
            "targetVersion": st.get("targetVersion"),
            "observedGeneration": st.get("observedGeneration"),
            "conditions": _conditions(st),
            "lastBackup": {k: last.get(k) for k in ("outcome", "location")},
            "history": [(h.get("version"), h.get("outcome")) for h in st.get("history") or []],
        }
    problems = {}
    for obj in emulator.list("schedulingproblems", NS):
        st = obj.get("status") or {}
        result = st.get("result") or {}
        problems[obj["metadata"]["name"]] = {
            "phase": st.get("phase"),
            "observedGeneration": st.get("observedGeneration"),
            "conditions": _conditions(st),
            "result": {
                k: result.get(k)
                for k in ("status", "objective", "bound", "makespan", "explanation")
            },
            "resultComplete": all(result.get(k) is not None for k in ("wallSeconds", "finishedAt")),
            "solutionRef": (st.get("solutionRef") or {}).get("configMapName"),
            "hasJobName": bool(st.get("jobName")),
            "queuePosition": st.get("queuePosition"),
        }
    backups = {}
    for obj in emulator.list("vulcanbackups", NS):
        st = obj.get("status") or {}
        backups[obj["metadata"]["name"]] = {
            "phase": st.get("phase"),
            "conditions": _conditions(st),
            **{
                k: st.get(k)
                for k in (
                    "location",
                    "sizeBytes",
                    "checksum",
                    "databaseRevision",
                    "startedAt",
                    "finishedAt",
                )
            },
            "hasJobName": bool(st.get("jobName")),
        }
    return {
        "objects": _objects(emulator),
        "engines": engines,
        "problems": problems,
        "backups": backups,
        "jobsCreated": dict(sorted(jobs_created(emulator).items())),
    }


def differences(got: dict[str, Any], want: dict[str, Any], path: str = "") -> list[str]:
    """Field-by-field differences of two end states, as readable lines."""
    if isinstance(got, dict) and isinstance(want, dict):
        lines = []
        for key in sorted(set(got) | set(want), key=str):
            if key not in got:
                lines.append(f"{path}/{key}: missing (want {want[key]!r})")
            elif key not in want:
                lines.append(f"{path}/{key}: unexpected {got[key]!r}")
            else:
                lines += differences(got[key], want[key], f"{path}/{key}")
        return lines
    if isinstance(got, list) and isinstance(want, list) and got != want:
        extra = sorted(set(map(str, got)) - set(map(str, want)))
        missing = sorted(set(map(str, want)) - set(map(str, got)))
        if extra or missing:
            return [f"{path}: extra {extra}, missing {missing}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


# --- running a scenario -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What a run creates: tiny problems (name → size), maybe a VulcanBackup."""

    problems: tuple[tuple[str, int], ...]
    backup: bool = True
    real_solver: bool = False  # the solver pod's real command (SolverPodBridge), else fake Jobs
    max_concurrent: int = 4

    @classmethod
    def of(cls, count: int, **options: Any) -> Scenario:
        return cls(tuple((f"p{i:02d}", i % 3) for i in range(count)), **options)


@dataclass
class Run:
    """What a run ended with."""

    state: dict[str, Any]
    seconds: float
    job_creations: Counter[str]
    faults: FaultPolicy | None = None
    starts: int = 1
    #: The operator's requests until the state was reached (when `faults` counted them).
    requests: int = 0


Chaos = Callable[[FaultyEmulator, OperatorRunner], Awaitable[None]]


def settled(state: dict[str, Any], scenario: Scenario) -> bool:
    """Everything finished: the engine installed and quiet, every problem and backup done."""
    engine_st = state["engines"].get("prod") or {}
    return (
        engine_st.get("phase") == "Ready"
        and engine_st.get("currentVersion") == "2.0.0"
        and engine_st["conditions"].get("Progressing", ("",))[0] == "False"
        and (not scenario.backup or engine_st["lastBackup"].get("outcome") == "Succeeded")
        and len(state["problems"]) == len(scenario.problems)
        and all(p["phase"] in ("Succeeded", "Failed") for p in state["problems"].values())
        and all(b["phase"] in ("Succeeded", "Failed") for b in state["backups"].values())
    )


async def quiet(
    emulator: FaultyEmulator,
    seconds: float,
    timeout: float,  # noqa: ASYNC109 (a poller's deadline, by design)
) -> dict[str, Any]:
    """The end state once it has not changed for `seconds` (polled; fails after `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = end_state(emulator), loop.time()
    while loop.time() - since < seconds:
        if loop.time() > deadline:
            raise TimeoutError(f"the end state kept changing for {timeout}s")
        await asyncio.sleep(0.1)
        now = end_state(emulator)
        if now != last:
            last, since = now, loop.time()
    return last


async def run_scenario(
    scenario: Scenario,
    *,
    faults: FaultPolicy | None = None,
    want: dict[str, Any] | None = None,
    chaos: Chaos | None = None,
    pods_dir: pathlib.Path | None = None,
    registry: Callable[[], kopf.OperatorRegistry] | None = None,
    timeout: float = 120.0,  # noqa: ASYNC109 (a poller's deadline, by design)
) -> Run:
    """Run the operator on the scenario until it settles (no `want`) or reaches `want`;
    `chaos(emulator, runner)` runs meanwhile (e.g. kills and restarts the operator)."""
    if scenario.real_solver and pods_dir is None:
        raise ValueError("the real solver needs a folder for its pods")
    pods = pods_dir if scenario.real_solver else None
    async with cluster(faults, bridge_dir=pods, registry=registry) as (emulator, runner, bridge):
        sizes = dict(scenario.problems)
        solve = bridge.outcome() if bridge is not None else None
        fake = fake_solver(sizes)

        def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
            labels = job["metadata"].get("labels") or {}
            if solve is not None and labels.get(COMPONENT) == "solver":
                return solve
            return fake(job) or backup_outcome(job)

        emulator.jobs.outcome_for = outcome_for
        started = time.monotonic()
        await runner.start()
        emulator.create(db_secret())
        emulator.create(engine(scenario.max_concurrent))
        for name, size in scenario.problems:
            emulator.create(problem(name, size))
        if scenario.backup:
            emulator.create(vulcan_backup("manual-1"))
        if chaos is not None:
            await chaos(emulator, runner)
            if not runner.running:
                await runner.start()

        def reached() -> bool:
            state = end_state(emulator)
            return settled(state, scenario) if want is None else state == want

        try:
            await emulator.wait_for(reached, timeout=timeout, interval=0.05)
        except TimeoutError:
            if want is None:
                raise
            lines = differences(end_state(emulator), want)
            raise AssertionError(f"not converged in {timeout}s:\n" + "\n".join(lines)) from None
        requests = faults.seen if faults is not None else 0
        state = await quiet(emulator, 1.0, timeout=60)
        return Run(
            state=state,
            seconds=time.monotonic() - started,
            job_creations=job_creations(emulator),
            faults=faults,
            starts=runner.starts,
            requests=requests,
        )
