"""Issue 12, item 6: a few KB of YAML must not take the operator down, and a problem may not
ask for more than its engine allows.

- An alias bomb (~6 KB of nested YAML aliases that validation would expand into ~10^8
  entries) in a problemRef ConfigMap is refused by the operator's check before anything is
  built: small memory, a message naming the ConfigMap and key. Every reader of a problem
  (the operator's check, the solver pod, `vulcan-operator solve`) refuses aliases and text
  over the size cap.
- The real operator on the emulator keeps its event loop free while a bomb and a large
  (~1 MB YAML) problem wait: the large one is read off the loop, once per ConfigMap version.
- Every list and map of the SchedulingProblem schema is bounded (maxItems / maxProperties),
  in the CRD and in `validate`; the bench shapes and a 20,000-task plant still fit.
- A problem asking for more workers or memory than its engine's caps fails InvalidSpec
  naming the field, the value and the cap; no Job is made.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.kopf_runner import OperatorRunner
from tests.support.problems import (
    HARMLESS_ALIAS,
    alias_bomb,
    big_yaml_problem,
    configmap,
    engine,
    plant,
    problem_body,
    ref_body,
    small_inline,
)
from tests.support.solverpod_bridge import SolverPodBridge
from vulcan_operator import crdgen
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.cli import main as cli
from vulcan_operator.reconcile import problem as problem_reconcile
from vulcan_operator.solver.loader import ProblemFileError, load_text
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solverpod.__main__ import problem_document

API = "vulcan-engine.com/v1alpha1"
NS = "default"
PROBLEMS = "schedulingproblems"

# The documented limits (README), written out: the test pins them.
MAX_PROBLEM_BYTES = 1_048_576  # a problemRef ConfigMap value
MAX_MACHINES = 1_000
MAX_OPERATORS = 2_000
MAX_SKILLS = 100  # of one operator
MAX_JOBS = 10_000
MAX_TASKS = 1_000  # of one job
MAX_ELIGIBLE = 1_000  # machines (and machineDurations) of one task
MAX_WINDOWS = 1_000  # unavailable windows of one machine


# --- documents ------------------------------------------------------------------------------


def parsed(body: dict[str, Any]) -> SchedulingProblem:
    result = problem_reconcile.parse(body)
    assert isinstance(result, SchedulingProblem), result
    return result


# --- the bomb, read by the operator's own check ---------------------------------------------

# Runs in a child process with its address space capped: the operator's check of the bomb
# ConfigMap, measured with tracemalloc (what was built) and a clock. Old code expands the
# bomb through validation and dies of MemoryError (or the timeout) instead of answering.
CHILD = textwrap.dedent(
    """
    import json, sys, time, tracemalloc
    from vulcan_operator.reconcile.problem import check_referenced, parse

    body, cm = json.loads(sys.stdin.read())
    problem = parse(body)
    tracemalloc.start()
    started = time.perf_counter()
    lines = check_referenced(problem, cm)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"lines": lines[:5], "peak": peak, "seconds": seconds}))
    """
)
CHILD_ADDRESS_SPACE = 3 * 1024**3


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def test_an_alias_bomb_configmap_is_refused_before_anything_is_built() -> None:
    bomb = alias_bomb()
    assert 5_000 < len(bomb) < 7_500, len(bomb)
    stdin = json.dumps([ref_body("bomb", "bomb"), configmap("bomb", bomb)])
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=_cap_memory,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    answer = json.loads(child.stdout)
    (line,) = answer["lines"]
    assert line.startswith("configmap/bomb[problem.yaml]: YAML aliases"), line
    # Refused from the composed nodes (a few thousand): nothing the size of the expansion.
    assert answer["peak"] < 2 * 1024**2, answer


def test_every_reader_of_a_problem_refuses_aliases(tmp_path: Path) -> None:
    text = HARMLESS_ALIAS
    # The operator's check of a problemRef ConfigMap.
    lines = problem_reconcile.check_referenced(
        parsed(ref_body("p", "with-alias")), configmap("with-alias", text)
    )
    assert len(lines) == 1 and lines[0].startswith("configmap/with-alias[problem.yaml]: YAML")
    assert "line 3" in lines[0]
    # The solver pod: its document is the resource plus the mounted ConfigMap key.
    mounted = tmp_path / "problem.yaml"
    mounted.write_text(text)
    document = problem_document(ref_body("p", "with-alias"), SolverSettings(), mounted)
    with pytest.raises(ProblemFileError) as refused:
        load_text(document)
    assert "configmap/with-alias[problem.yaml]: YAML aliases" in str(refused.value)
    # `vulcan-operator solve` on a bare problem file and on a resource file.
    bare = tmp_path / "bare.yaml"
    bare.write_text(text)
    resource_file = tmp_path / "resource.yaml"
    resource_file.write_text(
        "apiVersion: vulcan-engine.com/v1alpha1\nkind: SchedulingProblem\n"
        "metadata: {name: p}\nspec:\n  engineRef: {name: prod}\n" + textwrap.indent(text, "  ")
    )
    for path in (bare, resource_file):
        assert cli(["solve", str(path)]) == 1


def test_a_problem_over_the_size_cap_is_refused_naming_the_configmap_and_the_cap() -> None:
    text = json.dumps(small_inline())
    padded = text + " " * (MAX_PROBLEM_BYTES + 1 - len(text))  # valid, one byte too long
    lines = problem_reconcile.check_referenced(
        parsed(ref_body("big", "too-big")), configmap("too-big", padded)
    )
    assert lines == [
        f"configmap/too-big[problem.yaml]: {MAX_PROBLEM_BYTES + 1} bytes, more than the "
        f"{MAX_PROBLEM_BYTES} bytes a problem may have"
    ]
    assert (
        problem_reconcile.check_referenced(
            parsed(ref_body("fits", "fits")), configmap("fits", padded[:-1])
        )
        == []
    )


# --- bounded lists --------------------------------------------------------------------------


def _no_extensions(node: Any) -> Any:
    """A structural schema as plain JSON Schema (the x-kubernetes-* keys dropped)."""
    if isinstance(node, dict):
        return {k: _no_extensions(v) for k, v in node.items() if not k.startswith("x-kube")}
    return node


def _nodes(node: dict[str, Any], path: str = "spec") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


SPEC_SCHEMA = crdgen.openapi_schema(SchedulingProblem)["properties"]["spec"]


def test_every_list_map_and_string_of_the_problem_schema_is_bounded() -> None:
    unbounded = []
    for path, node in _nodes(SPEC_SCHEMA):
        kind = node.get("type")
        if kind == "array" and "maxItems" not in node:
            unbounded.append(f"{path}: no maxItems")
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(f"{path}: no maxProperties")
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(f"{path}: no maxLength")
    assert unbounded == []
    bounds = {
        path: node.get("maxItems", node.get("maxProperties")) for path, node in _nodes(SPEC_SCHEMA)
    }
    assert bounds["spec.machines"] == MAX_MACHINES
    assert bounds["spec.operators"] == MAX_OPERATORS
    assert bounds["spec.operators[].skills"] == MAX_SKILLS
    assert bounds["spec.jobs"] == MAX_JOBS
    assert bounds["spec.jobs[].tasks"] == MAX_TASKS
    assert bounds["spec.jobs[].tasks[].machines"] == MAX_ELIGIBLE
    assert bounds["spec.jobs[].tasks[].machineDurations"] == MAX_ELIGIBLE
    assert bounds["spec.machines[].unavailable"] == MAX_WINDOWS


def test_oversize_lists_are_refused_by_validate_the_crd_and_a_problemref(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {"engineRef": {"name": "prod"}, **plant(1, 1, MAX_MACHINES + 1, 0)}
    doc = problem_body("wide", **spec)
    path = tmp_path / "wide.yaml"
    path.write_text(json.dumps(doc))
    assert cli(["validate", str(path)]) == 1
    out = capsys.readouterr()
    assert f"spec.machines: List should have at most {MAX_MACHINES} items" in out.out + out.err
    # The CRD the operator installs refuses it at admission.
    validator = jsonschema.Draft4Validator(_no_extensions(SPEC_SCHEMA))
    errors = [(list(e.absolute_path), e.validator) for e in validator.iter_errors(spec)]
    assert (["machines"], "maxItems") in errors, errors
    # The same limits for a problem kept in a ConfigMap.
    lines = problem_reconcile.check_referenced(
        parsed(ref_body("wide", "wide")),
        configmap("wide", json.dumps(plant(1, 1, MAX_MACHINES + 1, 0))),
    )
    assert (
        f"configmap/wide[problem.yaml].machines: List should have at most {MAX_MACHINES}"
        in (lines[0])
    )


@pytest.mark.parametrize(
    ("jobs", "tasks", "machines", "operators"),
    [
        (100, 20, 20, 0),  # Taillard's largest (ta71-ta80)
        (20, 15, 15, 0),  # Brandimarte's largest (mk10)
        (2_000, 10, 200, 500),  # a 20,000-task plant
    ],
    ids=["taillard-100x20", "brandimarte-mk10", "plant-20000-tasks"],
)
def test_the_bench_shapes_and_a_big_plant_fit_the_limits(
    jobs: int, tasks: int, machines: int, operators: int
) -> None:
    data = plant(jobs, tasks, machines, operators)
    ProblemData.model_validate(data)
    validator = jsonschema.Draft4Validator(_no_extensions(SPEC_SCHEMA))
    assert list(validator.iter_errors({"engineRef": {"name": "prod"}, **data})) == []
    # In a ConfigMap too, as compact JSON (a ConfigMap holds 1 MiB: the 20,000-task plant,
    # ~1.15 MB of JSON, does not fit in one, whatever our limits).
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > MAX_PROBLEM_BYTES:
        assert jobs * tasks >= 20_000, len(text)
        return
    assert (
        problem_reconcile.check_referenced(
            parsed(ref_body("plant", "plant")), configmap("plant", text)
        )
        == []
    )


# --- the real operator on the emulator ------------------------------------------------------


def status(emulator: Emulator, name: str) -> dict[str, Any]:
    return (emulator.get(PROBLEMS, NS, name) or {}).get("status") or {}


def ready(emulator: Emulator, name: str) -> dict[str, Any]:
    conditions = status(emulator, name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def solver_jobs(emulator: Emulator) -> list[dict[str, Any]]:
    return emulator.list("jobs", NS, labels="app.kubernetes.io/component=solver")


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")


@pytest.fixture
async def counted_checks(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, int]]:
    """How often the operator read each problemRef ConfigMap; every read must happen off the
    event loop's thread (a read on the loop blocks every handler for its whole duration)."""
    counts: dict[str, int] = {}
    real = problem_reconcile.check_referenced
    loop_thread = threading.get_ident()

    def counting(problem: SchedulingProblem, cm: dict[str, Any]) -> list[str]:
        name = str((cm.get("metadata") or {}).get("name"))
        if threading.get_ident() == loop_thread:  # the test fails on it (an assert here would
            name = f"{name} (read on the event loop)"  # only make the operator retry)
        counts[name] = counts.get(name, 0) + 1
        return real(problem, cm)

    monkeypatch.setattr(problem_reconcile, "check_referenced", counting)
    yield counts


async def test_the_operator_keeps_reconciling_while_a_bomb_and_a_large_problem_wait(
    emulator: Emulator,
    bridge: SolverPodBridge,
    counted_checks: dict[str, int],
    operator: OperatorRunner,
) -> None:
    # Engine prod has one slot, held by a pod that keeps running: what comes next waits.
    emulator.jobs.by_prefix["busy-"] = JobOutcome.running()
    emulator.create(engine("prod", maxConcurrentJobs=1))
    emulator.create(problem_body("busy", **small_inline()))
    await emulator.wait_for(lambda: status(emulator, "busy").get("phase") == "Running", 20)

    emulator.create(configmap("big", big_yaml_problem()))
    emulator.create(ref_body("large", "big"))
    await emulator.wait_for(lambda: status(emulator, "large").get("phase") == "Queued", 30)
    emulator.create(configmap("bomb", alias_bomb()))
    emulator.create(ref_body("bomb", "bomb"))
    await emulator.wait_for(lambda: status(emulator, "bomb").get("phase") == "Failed", 20)
    refused = ready(emulator, "bomb")
    assert refused["reason"] == "InvalidSpec"
    assert "configmap/bomb[problem.yaml]: YAML aliases" in refused["message"]

    # Steady state: the large problem waits, polled every 3 s; another engine's problem
    # goes through from start to end meanwhile. Every read of a ConfigMap happened in a
    # worker thread (`counted_checks` asserts it; old code read on the loop at every
    # poll, seconds each time: bench/loop_lag.py measures the loop's worst delay).
    since = time.monotonic()
    emulator.create(engine("other"))
    emulator.create(problem_body("elsewhere", engine="other", **small_inline()))
    await emulator.wait_for(
        lambda: status(emulator, "elsewhere").get("phase") in ("Succeeded", "Failed"), 30
    )
    assert status(emulator, "elsewhere")["phase"] == "Succeeded"
    await asyncio.sleep(max(0.0, since + 7 - time.monotonic()))  # two polls of "large"

    assert status(emulator, "large")["phase"] == "Queued"
    assert set(counted_checks) == {"big", "bomb"}, counted_checks  # none read on the loop
    assert counted_checks.get("big") == 1, counted_checks  # once per ConfigMap version
    # A new version of the ConfigMap is read again.
    emulator.patch("configmaps", NS, "big", {"data": {"problem.yaml": json.dumps(small_inline())}})
    await emulator.wait_for(lambda: counted_checks.get("big") == 2, 20)
    names = [j["metadata"]["name"] for j in solver_jobs(emulator)]
    assert not [n for n in names if n.startswith(("bomb-", "large-"))], names


def finished(emulator: Emulator, name: str) -> bool:
    return status(emulator, name).get("phase") in ("Succeeded", "Failed")


async def test_a_problem_over_its_engines_caps_fails_naming_the_field_and_makes_no_job(
    emulator: Emulator, bridge: SolverPodBridge, operator: OperatorRunner
) -> None:
    # The default caps (16 workers, 32768 MiB), and an engine with its own.
    emulator.create(engine("prod"))
    emulator.create(problem_body("greedy", solver={"numWorkers": 32}, **small_inline()))
    emulator.create(problem_body("hungry", solver={"memoryLimitMB": 65_536}, **small_inline()))
    emulator.create(problem_body("modest", solver={"numWorkers": 2}, **small_inline()))

    def job_of(name: str) -> list[str]:
        names = [j["metadata"]["name"] for j in solver_jobs(emulator)]
        return [n for n in names if n.startswith(f"{name}-")]

    for name in ("greedy", "hungry", "modest"):
        await emulator.wait_for(lambda n=name: finished(emulator, n) or job_of(n), 30)
    assert job_of("greedy") == job_of("hungry") == []  # old code: Jobs of 32 CPUs, 64 GiB
    await emulator.wait_for(lambda: finished(emulator, "modest"), 30)
    greedy, hungry = ready(emulator, "greedy"), ready(emulator, "hungry")
    assert greedy["reason"] == hungry["reason"] == "InvalidSpec", (greedy, hungry)
    assert (
        "spec.solver.numWorkers: 32 is more than engine 'prod' allows (16, its "
        "spec.solver.maxWorkers)" in greedy["message"]
    )
    assert (
        "spec.solver.memoryLimitMB: 65536 is more than engine 'prod' allows (32768, its "
        "spec.solver.maxMemoryMB)" in hungry["message"]
    )
    assert status(emulator, "modest")["phase"] == "Succeeded"  # within the caps: solved

    emulator.create(engine("small", maxWorkers=4, maxMemoryMB=2048))
    emulator.create(
        problem_body("tight", engine="small", solver={"numWorkers": 8}, **small_inline())
    )
    await emulator.wait_for(lambda: finished(emulator, "tight"), 30)
    assert (
        "spec.solver.numWorkers: 8 is more than engine 'small' allows (4, its "
        in (ready(emulator, "tight")["message"])
    )
    jobs = [j["metadata"]["name"] for j in solver_jobs(emulator)]
    assert len(jobs) == 1 and jobs[0].startswith("modest-"), jobs


async def test_an_invalid_problem_explains_itself_in_bounded_space(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    # 400 tasks naming an unknown machine among 1,000 long names: old code wrote every line,
    # each listing every machine (~85 MB for one status). And a 100 KB field name.
    data = plant(40, 10, MAX_MACHINES, 0)
    for i, machine in enumerate(data["machines"]):
        machine["name"] = f"machine-{i:04d}-" + "x" * 200
    for job in data["jobs"]:
        for task in job["tasks"]:
            task["machines"] = ["nowhere"]
    emulator.create(engine("prod"))
    emulator.create(configmap("noisy", json.dumps(data)))
    emulator.create(ref_body("noisy", "noisy"))
    emulator.create(configmap("long-key", json.dumps({**small_inline(), "y" * 100_000: 1})))
    emulator.create(ref_body("long-key", "long-key"))
    for name in ("noisy", "long-key"):
        await emulator.wait_for(lambda n=name: finished(emulator, n), 30)
        assert ready(emulator, name)["reason"] == "InvalidSpec"
        st = status(emulator, name)
        assert len(json.dumps(st)) < 40_000
        assert all(len(line) <= 505 for line in st["result"]["explanation"])
    explanation = status(emulator, "noisy")["result"]["explanation"]
    assert len(explanation) == 21 and explanation[-1].startswith("... and "), explanation[-1]
    assert "unknown machine 'nowhere'" in explanation[0]


def test_validate_refuses_an_alias_bomb_in_a_resource_file_and_in_a_problem_ref(
    tmp_path: Path,
) -> None:
    """`vulcan-operator validate` runs in CI on pull requests: the same bomb, as a whole
    resource file and as the value of a problemRef ConfigMap beside its problem."""
    from vulcan_operator.cli.validate import validate_files

    bomb = "\n".join("  " + line for line in alias_bomb().splitlines())
    inline = tmp_path / "inline.yaml"
    inline.write_text(
        "apiVersion: vulcan-engine.com/v1alpha1\nkind: SchedulingProblem\n"
        f"metadata: {{name: big}}\nspec:\n  engineRef: {{name: prod}}\n{bomb}\n"
    )
    referenced = tmp_path / "referenced.yaml"
    referenced.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n"
        f"data:\n  problem.yaml: {json.dumps(alias_bomb())}\n---\n"
        "apiVersion: vulcan-engine.com/v1alpha1\nkind: SchedulingProblem\n"
        "metadata: {name: big}\nspec:\n  engineRef: {name: prod}\n"
        "  problemRef: {configMapName: bomb, key: problem.yaml}\n"
    )
    problems, _ = validate_files([inline, referenced])
    assert problems[0].startswith(f"{inline}: YAML aliases"), problems
    assert any(
        "spec.problemRef (ConfigMap bomb, key problem.yaml): YAML aliases" in line
        for line in problems
    ), problems


def test_render_shows_no_job_for_a_problem_over_its_engines_caps(tmp_path: Path) -> None:
    """`render` agrees with the operator: a problem asking for more than its engine allows
    gets no Job, and the message names the field and the cap."""
    problem = tmp_path / "sp.yaml"
    problem.write_text(
        "apiVersion: vulcan-engine.com/v1alpha1\nkind: SchedulingProblem\n"
        "metadata: {name: big, namespace: vulcan}\n"
        "spec:\n  engineRef: {name: prod}\n  solver: {numWorkers: 64, memoryLimitMB: 1048576}\n"
        "  machines: [{name: m}]\n"
        "  jobs: [{name: j, tasks: [{name: t, duration: 1, machines: [m]}]}]\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vulcan_operator.cli",
            "render",
            str(problem),
            "--engine",
            str(Path(__file__).parents[2] / "examples" / "vulcanengine.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    assert "SchedulingProblem/big: spec.solver.numWorkers: 64 is more than engine 'prod'" in (
        done.stderr
    )
    assert "spec.solver.memoryLimitMB: 1048576 is more than" in done.stderr
