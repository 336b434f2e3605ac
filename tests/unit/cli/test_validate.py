"""`vulcan-operator validate FILE...`: exit codes, one line per problem naming the resource and
the field, for every file in tests/data/invalid/ (each says what it expects in its first line),
every example and every file in tests/data/valid/. Also: which of those mistakes the CRDs
themselves refuse at `kubectl apply` time, and which only `validate` and the operator catch.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.crds import API_VERSION, EXAMPLES, KINDS, REPO, cel_errors, ids, schema_errors
from vulcan_operator import cli

INVALID_DIR = REPO / "tests" / "data" / "invalid"
INVALID = sorted(INVALID_DIR.glob("*.yaml"))
VALID = EXAMPLES  # examples/*.yaml and tests/data/valid/*.yaml
CONSOLE_SCRIPT = Path(sys.executable).parent / "vulcan-operator"

# '<file>: <Kind>/<name>: <field path>[ (where)]: <what is wrong or allowed>'
LINE = re.compile(
    r"^(?P<file>\S+): (?P<resource>[A-Za-z]+/\S+): "
    r"(?P<field>[A-Za-z][\w-]*(\[\d+\])*(\.[\w-]+(\[\d+\])*)*)( \([^)]*\))?: (?P<what>\S.*)$"
)
NOT_A_MAPPING = "not-a-mapping.yaml"


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first.removeprefix("# expect: ")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def check_lines(out: str, path: Path) -> list[re.Match[str]]:
    lines = out.splitlines()
    assert lines, "no problem reported"
    assert len(lines) == len(set(lines)), f"a problem reported twice:\n{out}"
    matches = []
    for line in lines:
        if path.name == NOT_A_MAPPING:
            assert line == f"{path}: ?: not a mapping (expected a Kubernetes resource)"
            continue
        match = LINE.match(line)
        assert match, f"not '<file>: <Kind>/<name>: <field path>: <what>': {line!r}"
        assert match["file"] == str(path)
        matches.append(match)
    return matches


# -- the invalid set -------------------------------------------------------------------------
def test_the_invalid_set_is_big_and_covers_every_kind() -> None:
    assert len(INVALID) >= 35
    kinds = set()
    for path in INVALID:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                kinds.add(doc.get("kind"))
    assert set(KINDS) <= kinds


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(path)], capsys)
    assert code == 1, out
    assert expectation(path) in out
    check_lines(out, path)


def test_invalid_files_through_the_console_script() -> None:
    # Proves the installed entry point; one process for the whole set keeps it fast.
    assert CONSOLE_SCRIPT.exists(), CONSOLE_SCRIPT
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "validate", "--quiet", *map(str, INVALID)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr == ""  # --quiet: problems only
    for path in INVALID:
        assert expectation(path) in done.stdout, path.name
        mentioned = [line for line in done.stdout.splitlines() if line.startswith(f"{path}: ")]
        assert mentioned, f"{path.name}: no line in a multi-file run"


def test_valid_files_through_the_console_script() -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "validate", *map(str, VALID)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stdout


# -- valid files -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", VALID, ids=ids(VALID))
def test_valid_file(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([str(path)], capsys)
    assert (code, out) == (0, ""), out
    assert ": valid" in err or "skipped" in err


def test_notes_go_to_stderr_and_quiet_drops_them(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "tests" / "data" / "valid" / "mixed-stream.yaml"
    code, out, err = run([str(path)], capsys)
    assert (code, out) == (0, "")
    assert f"{path}: Namespace/vulcan: skipped (not a vulcan-engine.com resource)" in err
    assert f"{path}: VulcanEngine/prod: valid" in err
    code, out, err = run(["--quiet", str(path)], capsys)
    assert (code, out, err) == (0, "", "")


def test_multi_file_call_reports_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    chosen = [
        INVALID_DIR / "ve-pool-size-4.yaml",
        REPO / "examples" / "vulcanengine.yaml",
        INVALID_DIR / "sp-unknown-machine.yaml",
        INVALID_DIR / "vr-location-scheme.yaml",
    ]
    code, out, _ = run([str(p) for p in chosen], capsys)
    assert code == 1
    files = {line.split(": ", 1)[0] for line in out.splitlines()}
    assert files == {str(chosen[0]), str(chosen[2]), str(chosen[3])}
    for path in (chosen[0], chosen[2], chosen[3]):
        assert expectation(path) in out


def test_every_problem_of_a_resource_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        f"apiVersion: {API_VERSION}\nkind: VulcanEngine\nmetadata: {{name: many}}\n"
        "spec: {version: '1', replicas: 0, jwt: {algorithm: none}, colour: red}\n"
    )
    code, out, _ = run([str(path)], capsys)
    assert code == 1
    fields = [m["field"] for m in check_lines(out, path)]
    assert sorted(fields) == ["spec.colour", "spec.jwt.algorithm", "spec.replicas"]


# -- files that are not resources ------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.yaml", "spec: [1, 2\nkind: }\n", "not valid YAML: line 2, column 5: "),
        ("tabs.yaml", "a:\n\tb: 1\n", "not valid YAML: line 2, column 1: "),
        ("binary.yaml", b"\xff\xfe\x00\x80garbage", "cannot read: 'utf-8' codec can't decode"),
    ],
)
def test_unreadable_yaml_gives_one_clear_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes,
    expected: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, out, err = run([str(path)], capsys)
    assert code == 1
    assert out.startswith(f"{path}: {expected}"), out
    assert out.count("\n") == 1, out
    assert "Traceback" not in err


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_missing_file_or_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    path = tmp_path / "nothing.yaml"
    if what == "directory":
        path.mkdir()
    code, out, _ = run([str(path), str(REPO / "examples" / "vulcanbackup.yaml")], capsys)
    assert code == 1
    assert out.startswith(f"{path}: cannot read: [Errno ")
    assert out.count("\n") == 1


def test_no_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["validate"])
    assert exc.value.code == 2
    assert "required: files" in capsys.readouterr().err


# -- what the CRDs refuse at apply time ------------------------------------------------------
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Mistakes the API server accepts (no CEL rule checks them), so only `vulcan-operator validate`
# and the operator's own validation (an InvalidSpec condition) catch them. docs/design.md wants
# "known task references" as CEL rules; that needs maxItems on the problem lists in
# solver/problem.py first, or the API server's CEL cost estimate refuses the CRD.
CRD_GAPS = {
    "sp-unknown-machine",
    "sp-skill-nobody-has",
    "sp-machine-durations-not-eligible",
    "sp-due-before-release",
    "sp-window-end-equals-start",
    # requests <= limits needs CEL's quantity() (Kubernetes 1.29+), which cel-python lacks.
    "ve-requests-above-limits",
    # The ConfigMap's content is not the SchedulingProblem's: no schema can see it.
    "sp-problem-ref-configmap-invalid",
    "sp-problem-ref-configmap-missing-key",
    "sp-problem-ref-configmap-bad-yaml",
}


def api_server_refusals(doc: Any) -> list[str]:
    """Why an API server with our CRDs installed would refuse `doc` ([]: it would accept it)."""
    if not isinstance(doc, dict):
        return ["not an object"]
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") not in KINDS:
        return ["no CRD serves this apiVersion and kind"]
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
        return [f"metadata.name: {name!r} is not a DNS subdomain"]
    return schema_errors(doc, doc["kind"]) or cel_errors(doc)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_crd_refuses_the_mistake_unless_a_known_gap(path: Path) -> None:
    docs = [
        d
        for d in yaml.safe_load_all(path.read_text())
        if d is not None and not (isinstance(d, dict) and d.get("apiVersion") == "v1")
    ]
    refused = any(api_server_refusals(doc) for doc in docs)
    if path.stem in CRD_GAPS:
        assert not refused, f"{path.stem} is refused by the CRD now: remove it from CRD_GAPS"
    else:
        assert refused, f"the CRD accepts {path.stem}; only `validate` would catch it"


@pytest.mark.parametrize("path", VALID, ids=ids(VALID))
def test_crd_accepts_the_valid_files(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and doc.get("apiVersion") == API_VERSION:
            assert api_server_refusals(doc) == []


def test_gaps_name_existing_files() -> None:
    assert CRD_GAPS.issubset(p.stem for p in INVALID)


# -- problemRef resolved against ConfigMaps given on the same command line --------------------
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata: {{name: big-problem, namespace: {namespace}}}
data:
  problem.yaml: |
    machines: [{{name: m1}}]
    jobs: [{{name: j1, tasks: [{{name: t1, duration: 1, machines: [{machine}]}}]}}]
"""
PROBLEM = f"""apiVersion: {API_VERSION}
kind: SchedulingProblem
metadata: {{name: big, namespace: plant-a}}
spec: {{engineRef: {{name: prod}}, problemRef: {{configMapName: big-problem}}}}
"""


@pytest.mark.parametrize(
    ("namespace", "machine", "expected"),
    [
        ("plant-a", "m2", "unknown machine 'm2'"),  # resolved from the other file: checked
        ("plant-a", "m1", None),
        ("plant-b", "m2", None),  # another namespace's ConfigMap is not the one referenced
    ],
)
def test_problem_ref_resolved_across_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    namespace: str,
    machine: str,
    expected: str | None,
) -> None:
    (tmp_path / "cm.yaml").write_text(CONFIGMAP.format(namespace=namespace, machine=machine))
    (tmp_path / "sp.yaml").write_text(PROBLEM)
    code, out, _ = run([str(tmp_path / "cm.yaml"), str(tmp_path / "sp.yaml")], capsys)
    if expected is None:
        assert (code, out) == (0, "")
    else:
        assert code == 1
        assert expected in out
        check_lines(out, tmp_path / "sp.yaml")


def test_a_files_own_configmap_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = CONFIGMAP.format(namespace="plant-a", machine="m1")
    bad = CONFIGMAP.format(namespace="plant-a", machine="m9")
    (tmp_path / "a.yaml").write_text(good + "---\n" + PROBLEM)
    (tmp_path / "b.yaml").write_text(bad + "---\n" + PROBLEM)
    code, out, _ = run([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")], capsys)
    assert code == 1
    assert [line.split(": ")[0] for line in out.splitlines()] == [str(tmp_path / "b.yaml")]
