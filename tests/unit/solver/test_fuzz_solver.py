"""Bad input, property-based, for the solver: `vulcan-operator solve` (in-process) on small
generated problems (tests/support/fuzzdocs.py), bare and as SchedulingProblem resources.

- valid: exit 0, a result JSON whose schedule passes the independent checker, within the time
  limit plus the guard's grace;
- mutated (wrong types, out-of-range numbers, unknown fields, bad enums, broken references,
  missing fields, wrong nesting): exit 1, 'error: invalid problem file' then one line per
  problem naming the job/task/field, never a traceback.

Derandomized; the counts are printed at the end of the module (and appended to
$VULCAN_FUZZ_SUMMARY as JSON when set).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import ValidationError

from tests.support.fuzzdocs import Broken, invalid_solver_problem, report, solver_problem, valid_doc
from vulcan_operator import cli
from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.guard import GRACE_SECONDS
from vulcan_operator.solver.problem import ProblemData
from vulcan_operator.solver.result import Assignment, Status

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("VULCAN_FUZZ_SHRINK") else []),
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


TIME_LIMIT = 1.0
# '  <path>: <what>' where the path names a job/task/field (jobs[0].tasks[1].duration,
# spec.machines, configmap/x[key]...)
MESSAGE = re.compile(r"^  (?P<path>[A-Za-z][\w/-]*(\[[^\]]+\])*(\.[\w-]+(\[\d+\])*)*): \S")

TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    hows = sorted((k[4:], n) for k, n in TALLY.items() if k.startswith("how:"))
    line = (
        f"fuzz solve: {TALLY['solved']} valid problems solved ({TALLY['optimal']} optimal, "
        f"slowest {TALLY['slowest-ms'] / 1000:.2f} s); refused {TALLY['refused']}/"
        f"{TALLY['invalid']} invalid ({', '.join(f'{h} {n}' for h, n in hows)}); "
        f"coerced (lax types) {TALLY['coerced']}"
    )
    report(request.config, [line])


def run_solve(document: Any, *extra: str) -> tuple[int, str, str, dict[str, Any] | None]:
    """`vulcan-operator solve FILE --time-limit 1 --workers 1 --quiet --output RESULT`."""
    with tempfile.TemporaryDirectory() as folder:
        path, output = Path(folder) / "problem.yaml", Path(folder) / "result.json"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        out, err = io.StringIO(), io.StringIO()
        args = ["solve", str(path), "--time-limit", str(TIME_LIMIT), "--workers", "1", "--quiet"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([*args, "--output", str(output), *extra])
        result = json.loads(output.read_text()) if output.exists() else None
        return code, out.getvalue(), err.getvalue(), result


def check_result(problem: dict[str, Any], result: dict[str, Any] | None, wall: float) -> None:
    assert result is not None
    assert result["status"] in (Status.OPTIMAL, Status.FEASIBLE), result
    data = ProblemData.model_validate(problem)
    tasks = sum(len(j.tasks) for j in data.jobs)
    assert len(result["assignments"]) == tasks
    schedule = [Assignment(**a) for a in result["assignments"]]
    assert check_schedule(data, schedule) == []
    assert result["makespan"] == max(a.end for a in schedule)
    assert result["wallSeconds"] <= TIME_LIMIT + GRACE_SECONDS
    TALLY["solved"] += 1
    TALLY["optimal"] += result["status"] == Status.OPTIMAL
    TALLY["slowest-ms"] = max(TALLY["slowest-ms"], int(wall * 1000))


@fuzz(25)
@given(problem=solver_problem())
def test_solve_a_valid_bare_problem(problem: dict[str, Any]) -> None:
    started = time.monotonic()
    code, out, err, result = run_solve(problem)
    wall = time.monotonic() - started
    assert code == 0, err
    assert "Traceback" not in out + err and "internal error" not in err, err
    check_result(problem, result, wall)


@fuzz(15)
@given(doc=valid_doc("SchedulingProblem"))
def test_solve_a_valid_resource(doc: dict[str, Any]) -> None:
    started = time.monotonic()
    code, out, err, result = run_solve(doc)
    assert code == 0, err
    assert "Traceback" not in out + err
    problem = {k: v for k, v in doc["spec"].items() if k not in ("engineRef", "solver")}
    check_result(problem, result, time.monotonic() - started)


def related(path: str, broken: str) -> bool:
    """`path` (spec-relative or not) names the broken field, an ancestor or a descendant."""
    path, broken = path.removeprefix("spec."), broken.removeprefix("spec.")
    if path in ("spec", "(top level)") or path == broken:
        return True
    return any(
        b.startswith(a + ".") or b.startswith(a + "[") for a, b in ((path, broken), (broken, path))
    )


def lax_accepts(broken: Broken) -> bool:
    """The problem models without strict types take it ('45' for 45, 'true' for True)."""
    spec = {k: v for k, v in broken.doc["spec"].items() if k not in ("engineRef", "solver")}
    try:
        ProblemData.model_validate(spec)
    except ValidationError:
        return False
    try:
        ProblemData.model_validate(spec, strict=True)
    except ValidationError:
        return True
    return False


@fuzz(100)
@given(broken=invalid_solver_problem())
def test_solve_refuses_a_mutated_problem(broken: Broken) -> None:
    TALLY["invalid"] += 1
    TALLY[f"how:{broken.how}"] += 1
    code, out, err, result = run_solve(broken.doc)
    assert "Traceback" not in out + err, err
    if code == 0 and broken.how == "wrong-type" and lax_accepts(broken):
        # `solve` reads problems leniently, as the operator does (a quoted number is taken as
        # the number); `validate` and the CRD refuse these (tests/unit/api/test_fuzz_resources.py).
        TALLY["coerced"] += 1
        return
    assert code == 1, f"{broken.how} at {broken.path}: exit {code}\n{out}\n{err}"
    assert result is None, "a result was written for an invalid problem"
    lines = err.splitlines()
    assert lines[0].startswith("error: invalid problem file "), err
    messages = lines[1:]
    assert messages, err
    paths = []
    for message in messages:
        match = MESSAGE.match(message)
        assert match, f"not '  <job/task/field path>: <what>': {message!r}"
        paths.append(match["path"])
    assert any(related(p, broken.path) for p in paths), f"no line names {broken.path}:\n{err}"
    TALLY["refused"] += 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "---\n",
        "[1, 2",
        "machines: {a: 1}\njobs: 3\n",
        "kind: SchedulingProblem\nspec: 3\n",
        "kind: SchedulingProblem\napiVersion: vulcan-engine.com/v1alpha1\nspec:\n  problemRef: 3\n",
        "\x00\x01binary",
        "a: &x [*x]\n",
    ],
)
def test_solve_on_garbage_says_what_is_wrong(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "problem.yaml"
        path.write_text(text)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["solve", str(path), "--time-limit", "1"])
    assert code == 1, out.getvalue()
    assert "Traceback" not in err.getvalue()
    assert err.getvalue().startswith("error: invalid problem file"), err.getvalue()
