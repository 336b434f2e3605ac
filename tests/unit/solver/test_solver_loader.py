"""Reading problem files: resources, ConfigMap references, bare problems, error paths."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from vulcan_operator.solver.loader import MAX_FILE_BYTES, ProblemFileError, load_file, load_text

RESOURCE = """
apiVersion: vulcan-engine.com/v1alpha1
kind: SchedulingProblem
metadata: {name: week-48, namespace: plant-a}
spec:
  engineRef: {name: prod}
  objective: {type: weightedTardiness}
  horizon: 1000
  machines: [{name: lathe-1, zone: hall-a, unavailable: [{start: 100, end: 160}]}]
  operators: [{name: alice, skills: [turning]}]
  jobs:
    - name: order-1
      priority: 3
      dueDate: 480
      tasks:
        - {name: cut, duration: 45, machines: [lathe-1], skill: turning}
        - {name: turn, duration: 30, machines: [lathe-1]}
  solver: {maxTimeSeconds: 60, numWorkers: 2, memoryLimitMB: 2048, seed: 7}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ProblemFileError) as caught:
        load_text(textwrap.dedent(text), "p.yaml")
    return caught.value.messages


def test_resource_with_inline_problem() -> None:
    loaded = load_text(RESOURCE)
    assert loaded.name == "week-48"
    assert loaded.problem.objective.type == "weightedTardiness"
    assert loaded.problem.jobs[0].tasks[0].skill == "turning"
    assert loaded.settings.numWorkers == 2
    assert loaded.settings.seed == 7
    assert loaded.settings.useLNS is True  # default


def test_bare_problem_mapping() -> None:
    loaded = load_text(
        "machines: [{name: m}]\njobs: [{name: a, tasks: [{name: x, duration: 1, machines: [m]}]}]",
        default_name="bare",
    )
    assert loaded.name == "bare"
    assert loaded.settings.maxTimeSeconds == 300  # SolverSettings default


def test_problem_ref_resolves_a_configmap_in_the_same_stream() -> None:
    text = """
    apiVersion: vulcan-engine.com/v1alpha1
    kind: SchedulingProblem
    metadata: {name: big}
    spec:
      objective: {type: makespan}
      problemRef: {configMapName: big-problem, key: problem.yaml}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: big-problem}
    data:
      problem.yaml: |
        objective: {type: weightedSum}
        machines: [{name: m}]
        jobs: [{name: a, tasks: [{name: x, duration: 2, machines: [m]}]}]
    """
    loaded = load_text(textwrap.dedent(text))
    assert loaded.problem.objective.type == "makespan"  # the spec's objective wins
    assert loaded.problem.jobs[0].tasks[0].duration == 2


def test_problem_ref_ignores_the_empty_inline_lists_an_api_server_fills_in() -> None:
    text = """
    apiVersion: vulcan-engine.com/v1alpha1
    kind: SchedulingProblem
    metadata: {name: big}
    spec:
      machines: []
      operators: []
      jobs: []
      problemRef: {configMapName: big-problem, key: problem.yaml}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: big-problem}
    data:
      problem.yaml: |
        machines: [{name: m}]
        jobs: [{name: a, tasks: [{name: x, duration: 2, machines: [m]}]}]
    """
    loaded = load_text(textwrap.dedent(text))
    assert [m.name for m in loaded.problem.machines] == ["m"]
    assert loaded.problem.jobs[0].name == "a"


def test_problem_ref_without_the_configmap_is_a_clear_error() -> None:
    (message,) = _errors("""
    apiVersion: vulcan-engine.com/v1alpha1
    kind: SchedulingProblem
    metadata: {name: big}
    spec:
      problemRef: {configMapName: big-problem, key: problem.yaml}
    """)
    assert message.startswith("spec.problemRef.configMapName: ConfigMap 'big-problem' is not in")


def test_problem_ref_with_a_missing_key() -> None:
    (message,) = _errors("""
    apiVersion: vulcan-engine.com/v1alpha1
    kind: SchedulingProblem
    metadata: {name: big}
    spec:
      problemRef: {configMapName: cm, key: problem.yaml}
    ---
    {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}, data: {other.yaml: "{}"}}
    """)
    assert (
        message == "spec.problemRef.key: ConfigMap 'cm' has no key 'problem.yaml' "
        "(keys: other.yaml)"
    )


def test_field_errors_name_the_path() -> None:
    messages = _errors(RESOURCE.replace("duration: 30", "duration: 0"))
    assert messages == [
        "spec.jobs[0].tasks[1].duration: Input should be greater than or equal to 1"
    ]


def test_unknown_machine_names_job_and_task() -> None:
    (message,) = _errors(
        RESOURCE.replace("duration: 30, machines: [lathe-1]", "duration: 30, machines: [lathe-9]")
    )
    assert message.startswith(
        "spec.jobs[0].tasks[1].machines[0]: unknown machine 'lathe-9' (job 'order-1', task 'turn')"
    )


def test_skill_nobody_has() -> None:
    (message,) = _errors(RESOURCE.replace("skill: turning", "skill: welding"))
    assert message.startswith(
        "spec.jobs[0].tasks[0].skill: no operator has skill 'welding' (job 'order-1', task 'cut')"
    )


def test_task_without_eligible_machines() -> None:
    (message,) = _errors(
        RESOURCE.replace("duration: 30, machines: [lathe-1]", "duration: 30, machines: []")
    )
    assert message.startswith("spec.jobs[0].tasks[1].machines: List should have at least 1 item")


def test_duplicate_names() -> None:
    messages = _errors(RESOURCE.replace("name: turn,", "name: cut,"))
    assert messages == ["spec.jobs[0].tasks: duplicate task name 'cut' in job 'order-1'"]


def test_unknown_spec_field_and_solver_setting() -> None:
    assert _errors(RESOURCE.replace("horizon: 1000", "horizn: 1000")) == [
        "spec.horizn: Extra inputs are not permitted"
    ]
    assert _errors(RESOURCE.replace("numWorkers: 2", "numWorkers: 0")) == [
        "spec.solver.numWorkers: Input should be greater than or equal to 1"
    ]


def test_not_yaml_wrong_api_and_missing_file(tmp_path: Path) -> None:
    assert _errors("jobs: [")[0].startswith("p.yaml: not valid YAML")
    assert _errors(RESOURCE.replace("v1alpha1", "v9"))[0].startswith("apiVersion: expected")
    assert _errors("kind: Deployment\n")[0].startswith("p.yaml: no SchedulingProblem found")
    with pytest.raises(ProblemFileError, match="cannot read"):
        load_file(tmp_path / "nope.yaml")


def test_examples_load() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    for name in ("plant.yaml", "ft06.yaml"):
        loaded = load_file(examples / name)
        assert loaded.problem.jobs


def test_problem_and_solver_errors_are_reported_together() -> None:
    messages = _errors(
        RESOURCE.replace("numWorkers: 2", "numWorkers: 0").replace("duration: 30", "duration: 0")
    )
    assert messages == [
        "spec.jobs[0].tasks[1].duration: Input should be greater than or equal to 1",
        "spec.solver.numWorkers: Input should be greater than or equal to 1",
    ]


# --- limits: aliases, size, JSON ------------------------------------------------------------


def test_aliases_are_refused_anchors_alone_are_not() -> None:
    aliased = RESOURCE.replace("machines: [lathe-1], skill", "machines: &m [lathe-1], skill")
    aliased = aliased.replace(
        "{name: turn, duration: 30, machines: [lathe-1]}",
        "{name: turn, duration: 30, machines: *m}",
    )
    (line,) = _errors(aliased)
    assert line.startswith("p.yaml: YAML aliases (*name) are not accepted") and "line 16" in line
    anchored = RESOURCE.replace("machines: [lathe-1], skill", "machines: &m [lathe-1], skill")
    assert load_text(anchored).problem == load_text(RESOURCE).problem
    merge = "a: &a {x: 1}\nb: {<<: *a}\n"
    assert "aliases" in _errors(merge)[0]


def test_a_json_problem_reads_as_its_yaml_twin() -> None:
    doc = yaml.safe_load(RESOURCE)
    assert load_text(json.dumps(doc)) == load_text(RESOURCE)
    # NaN is no JSON value: read as YAML (a string there), refused by the model as YAML says.
    assert "machines" in " ".join(_errors('{"machines": NaN, "jobs": []}'))


def test_oversize_files_and_huge_numbers_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ProblemFileError, match=f"more than the {MAX_FILE_BYTES} bytes"):
        load_file(big)
    with pytest.raises(ProblemFileError, match="more than the"):
        load_text("#" * (MAX_FILE_BYTES + 1))
    assert _errors("horizon: " + "9" * 5000 + "\n")[0].startswith("p.yaml: cannot be read")
    # libyaml's nesting limit (1000 levels).
    assert _errors("- " * 2000 + "x\n")[0].startswith("p.yaml: not valid YAML")
