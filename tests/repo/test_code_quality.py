"""The tree stays as configured in pyproject.toml: ruff, mypy strict, import-linter layers;
shellcheck on every shell program the pods run and on the repository's own scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vulcan_operator.jobscripts import PROGRAMS, source

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        ["lint-imports"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "import-layers"],
)
def test_tool_is_clean(command: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_pod_program_passes_shellcheck(name: str, tmp_path: Path) -> None:
    """Each program as assembled from its parts, with their comments (a `# shellcheck
    disable=` says why where a warning is meant), as POSIX sh: the pods run dash or busybox."""
    parts, entry = PROGRAMS[name]
    path = tmp_path / f"{name}.sh"
    path.write_text("\n".join(source(part) for part in parts) + f'\n{entry} "$@"\n')
    done = subprocess.run(
        [str(BIN / "shellcheck"), "--shell=sh", "--format=gcc", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:]


@pytest.mark.parametrize("path", ["scripts/setup.sh", ".ci/run"])
def test_the_repository_scripts_pass_shellcheck(path: str) -> None:
    done = subprocess.run(
        [str(BIN / "shellcheck"), "--format=gcc", str(ROOT / path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:]
