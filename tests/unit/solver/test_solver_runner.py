"""The pod entrypoint: JSON lines, result and termination-log files, exit codes, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.solver_testkit import REPO, random_job_shop
from vulcan_operator.solver import runner
from vulcan_operator.solver.progress import Progress


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_runner_writes_progress_result_and_termination_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, log = tmp_path / "result.json", tmp_path / "termination-log"
    seen: list[Progress] = []
    code = runner.main(
        [
            "--problem",
            str(REPO / "examples" / "ft06.yaml"),
            "--output",
            str(out),
            "--time-limit",
            "5",
            "--workers",
            "2",
            "--termination-log",
            str(log),
        ],
        progress_callbacks=[seen.append],
    )
    assert code == 0
    events = _events(capsys.readouterr().out)
    assert events[0]["event"] == "start" and events[0]["tasks"] == 36
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and set(progress[0]) == {
        "event",
        "objective",
        "bound",
        "gap",
        "elapsedSeconds",
        "solutions",
    }
    assert len(seen) == len(progress)
    assert events[-1]["event"] == "result" and events[-1]["status"] == "OPTIMAL"
    result = json.loads(out.read_text())
    assert result["makespan"] == 55 and len(result["assignments"]) == 36
    summary = json.loads(log.read_text())
    assert summary["status"] == "OPTIMAL" and summary["makespan"] == 55
    assert len(log.read_bytes()) < 4096


def test_runner_invalid_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad, log = tmp_path / "bad.yaml", tmp_path / "log"
    bad.write_text(
        "machines: [{name: m}]\njobs: [{name: a, tasks: [{name: x, duration: 1, machines: [q]}]}]\n"
    )
    code = runner.main(
        ["--problem", str(bad), "--output", str(tmp_path / "r.json"), "--termination-log", str(log)]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert "jobs[0].tasks[0].machines[0]: unknown machine 'q'" in captured.err
    assert _events(captured.out)[-1]["event"] == "invalid"
    assert json.loads(log.read_text())["error"] == "InvalidProblem"
    assert not (tmp_path / "r.json").exists()


def test_termination_log_stays_under_4_kib(tmp_path: Path) -> None:
    log = tmp_path / "log"
    runner.write_termination_log(log, {"status": "INFEASIBLE", "explanation": ["x" * 3000] * 9})
    assert len(log.read_bytes()) < 4096
    assert json.loads(log.read_text())["status"] == "INFEASIBLE"


def _write_hard_problem(path: Path) -> None:
    problem = random_job_shop(5, n_jobs=15, n_machines=10)  # not proven optimal in 60 s
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "vulcan-engine.com/v1alpha1",
                "kind": "SchedulingProblem",
                "metadata": {"name": "hard"},
                "spec": problem.model_dump(),
            }
        )
    )


def _wait_for_progress(process: subprocess.Popen[str], timeout: float = 30) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if '"progress"' in line or line.startswith("#"):
            return line
        assert line or process.poll() is None, "process ended before any progress"
    raise AssertionError("no progress line")


@pytest.mark.parametrize("entry", ["runner", "cli"])
def test_sigterm_writes_the_best_schedule_and_exits_0(tmp_path: Path, entry: str) -> None:
    problem, out = tmp_path / "hard.yaml", tmp_path / "result.json"
    _write_hard_problem(problem)
    if entry == "runner":
        argv = [
            sys.executable,
            "-m",
            "vulcan_operator.solver.runner",
            "--problem",
            str(problem),
            "--output",
            str(out),
            "--time-limit",
            "60",
            "--workers",
            "2",
            "--termination-log",
            str(tmp_path / "log"),
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "vulcan_operator.cli",
            "solve",
            str(problem),
            "--output",
            str(out),
            "--time-limit",
            "60",
            "--workers",
            "2",
        ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_for_progress(process)
        time.sleep(1.0)  # let CP-SAT search for a while
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert time.monotonic() - sent < 30
    result = json.loads(out.read_text())
    assert result["status"] in ("FEASIBLE", "OPTIMAL")
    assert result["stopReason"] == "interrupted"
    assert len(result["assignments"]) == sum(
        len(j["tasks"]) for j in yaml.safe_load(problem.read_text())["spec"]["jobs"]
    )
