"""Argo CD health checks (Lua) of our four kinds, run under a real Lua interpreter.

Layout as in Argo CD's own repository: for each kind,
`argocd/resource_customizations/vulcan-engine.com/<Kind>/health.lua`, `health_test.yaml`
listing `{healthStatus: {status, message}, inputPath}` cases, and `testdata/*.yaml` inputs.
Argo CD runs the scripts with gopher-lua (Lua 5.1) and hands them `obj` with every number as
a float64; lupa runs Lua 5.4+, so the inputs are given floats too (a number concatenated
without formatting would then read "3.0" and fail), and 5.2+ syntax is refused by a check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lupa
import pytest
import yaml

from tests.support.manifests import kustomize, validate_manifest

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations" / "vulcan-engine.com"
KINDS = ["VulcanEngine", "SchedulingProblem", "VulcanBackup", "VulcanRestore"]
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
REQUIRED = {
    "VulcanEngine": {"Healthy", "Progressing", "Degraded", "Suspended"},
    "SchedulingProblem": {"Healthy", "Progressing", "Degraded"},
    "VulcanBackup": {"Healthy", "Progressing", "Degraded"},
    "VulcanRestore": {"Healthy", "Progressing", "Degraded"},
}


def cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((CUSTOMIZATIONS / kind / "health_test.yaml").read_text())
        out += [(kind, case) for case in spec["tests"]]
    return out


def as_argo_json(value: Any) -> Any:
    """What Argo CD hands the script: JSON numbers as floats (gopher-lua's LNumber)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [as_argo_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_argo_json(v) for k, v in value.items()}
    raise TypeError(f"not JSON: {value!r}")


def run_health(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Run `<kind>/health.lua` with the global `obj`; return the table it returns."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True, register_eval=False)
    g = lua.globals()
    for unsafe in ("os", "io", "require", "dofile", "loadfile", "load", "package", "debug"):
        g[unsafe] = None  # Argo CD's sandbox has none of them; the scripts must not need them
    g.obj = lua.table_from(as_argo_json(obj), recursive=True)
    result = lua.execute((CUSTOMIZATIONS / kind / "health.lua").read_text())
    assert lupa.lua_type(result) == "table", f"{kind}: health.lua returned {result!r}"
    return {key: result[key] for key in result}


def test_every_kind_has_a_health_check() -> None:
    found = sorted(p.name for p in CUSTOMIZATIONS.iterdir() if p.is_dir())
    assert found == sorted(KINDS)
    for kind in KINDS:
        for name in ("health.lua", "health_test.yaml"):
            assert (CUSTOMIZATIONS / kind / name).is_file(), f"{kind}/{name}"


@pytest.mark.parametrize(
    ("kind", "case"), cases(), ids=[f"{k}:{c['inputPath']}" for k, c in cases()]
)
def test_health(kind: str, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CUSTOMIZATIONS / kind / case["inputPath"]).read_text())
    assert obj["kind"] == kind
    validate_manifest(obj)  # the inputs are objects the CRDs accept
    hs = run_health(kind, obj)
    assert set(hs) == {"status", "message"}
    assert hs["status"] in ARGO_STATUSES
    assert {"status": hs["status"], "message": hs["message"]} == case["healthStatus"]


@pytest.mark.parametrize("kind", KINDS)
def test_cases_cover_every_outcome_and_every_input(kind: str) -> None:
    spec = yaml.safe_load((CUSTOMIZATIONS / kind / "health_test.yaml").read_text())
    statuses = {c["healthStatus"]["status"] for c in spec["tests"]}
    assert statuses == REQUIRED[kind]
    used = {c["inputPath"] for c in spec["tests"]}
    present = {f"testdata/{p.name}" for p in (CUSTOMIZATIONS / kind / "testdata").glob("*.yaml")}
    assert used == present, "every testdata file is a case, every case has its file"


def test_a_wrong_expectation_fails() -> None:
    # The harness really runs the script: a different phase gives a different answer.
    obj = yaml.safe_load((CUSTOMIZATIONS / "VulcanBackup" / "testdata" / "failed.yaml").read_text())
    assert run_health("VulcanBackup", obj)["status"] == "Degraded"
    obj["status"]["phase"] = "Succeeded"
    assert run_health("VulcanBackup", obj)["status"] == "Healthy"


def _code_only(lua_source: str) -> str:
    """The script without comments and string literals."""
    text = re.sub(r"--\[\[.*?\]\]", "", lua_source, flags=re.S)
    text = re.sub(r"--[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\])*"' + r"|'(\\.|[^'\\])*'", '""', text)


@pytest.mark.parametrize("kind", KINDS)
def test_scripts_stay_within_lua_5_1(kind: str) -> None:
    code = _code_only((CUSTOMIZATIONS / kind / "health.lua").read_text())
    for pattern, what in [
        (r"//", "integer division (5.3)"),
        (r"\bgoto\b", "goto (5.2)"),
        (r"<\s*(const|close)\s*>", "attributes (5.4)"),
        (r"[&|]|~(?!=)|<<|>>", "bitwise operators (5.3)"),
        (
            r"\b(utf8|math\.type|math\.tointeger|table\.move|table\.unpack|string\.pack)\b",
            "5.3 library",
        ),
        (r"\b(os|io|require|load|loadstring|dofile|debug)\b", "not in Argo CD's sandbox"),
    ]:
        assert not re.search(pattern, code), f"{kind}/health.lua uses {what}"
    assert re.search(r"return hs\s*$", code)


def test_the_lint_above_catches_5_3_syntax() -> None:
    assert re.search(r"//", _code_only("local x = 7 // 2 -- a comment with // is fine"))
    assert not re.search(r"//", _code_only('local s = "a//b" -- http://x'))


def test_argocd_cm_snippet_in_the_readme_is_the_scripts() -> None:
    readme = (ARGOCD / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    configmaps = [
        doc
        for block in blocks
        for doc in yaml.safe_load_all(block)
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap"
    ]
    (cm,) = configmaps
    assert cm["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/part-of": "argocd"},
    }
    expected = {
        f"resource.customizations.health.vulcan-engine.com_{kind}": (
            CUSTOMIZATIONS / kind / "health.lua"
        ).read_text()
        for kind in KINDS
    }
    assert cm["data"] == expected, (
        "argocd/README.md's argocd-cm snippet differs from the health.lua files; paste them "
        "again (each under `resource.customizations.health.vulcan-engine.com_<Kind>: |`)"
    )


# --- the Application example ----------------------------------------------------------------
def test_application_example() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "argocd-application.yaml").open())]
    apps = {d["metadata"]["name"]: d for d in docs if d}
    assert set(apps) == {"vulcan-operator", "vulcan-prod"}
    for app in apps.values():
        assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
        assert app["metadata"]["namespace"] == "argocd"
        spec = app["spec"]
        assert set(spec) <= {"project", "source", "sources", "destination", "syncPolicy"}
        assert "ignoreDifferences" not in spec  # the operator writes status only
        options = spec["syncPolicy"]["syncOptions"]
        assert "ServerSideApply=true" in options
        assert "SkipDryRunOnMissingResource=true" in options
        assert spec["destination"]["server"] == "https://kubernetes.default.svc"
    operator = apps["vulcan-operator"]["spec"]
    assert [s["path"] for s in operator["sources"]] == ["manifests"]
    for source in operator["sources"]:
        assert (REPO / source["path"] / "kustomization.yaml").is_file()
    assert operator["destination"]["namespace"] == "vulcan-system"
    waves = {
        n: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for n, a in apps.items()
    }
    assert waves["vulcan-operator"] < waves["vulcan-prod"]


def test_the_install_has_no_custom_resource_of_its_own_crds() -> None:
    """One sync (and one `kubectl apply -k`): nothing in manifests/ needs a CRD that the same
    sync creates (the operator makes its peering object itself), so no sync wave is needed."""
    objs = kustomize(REPO / "manifests")
    groups = {o["spec"]["group"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    assert groups == {"vulcan-engine.com", "kopf.dev"}
    assert not [o for o in objs if o["apiVersion"].split("/")[0] in groups]
