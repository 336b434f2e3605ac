"""`checks`, the checks `validate`, the admission webhook and the reconcile share: the image
allow-list, the checks against the objects a resource names, and the warnings."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from vulcan_operator import API_VERSION, checks
from vulcan_operator.api import errors
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.checks import Named, image_allowed, image_problems

ENGINE: dict[str, Any] = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": "vulcan"},
    "spec": {"version": "2.0.0", "solver": {"maxWorkers": 8}},
}
PROBLEM: dict[str, Any] = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "SchedulingProblem",
    "metadata": {"name": "p", "namespace": "vulcan"},
    "spec": {
        "engineRef": {"name": "prod"},
        "machines": [{"name": "m1"}],
        "jobs": [{"name": "j1", "tasks": [{"name": "t1", "duration": 5, "machines": ["m1"]}]}],
        "solver": {"numWorkers": 12},
    },
}


@pytest.mark.parametrize(
    ("image", "allowed", "ok"),
    [
        ("anything/at:all", (), True),
        ("registry.example.com/team/engine", ("registry.example.com",), True),
        ("registry.example.com:5000/engine", ("registry.example.com:5000",), True),
        ("registry.example.com.evil.io/engine", ("registry.example.com",), False),
        ("localhost:5000/engine", ("localhost:5000",), True),
        ("ghcr.io/acme/engine", ("ghcr.io/acme",), True),
        ("ghcr.io/acme/engine", ("ghcr.io/acme/",), True),
        ("ghcr.io/acme", ("ghcr.io/acme",), True),
        ("ghcr.io/acme-evil/engine", ("ghcr.io/acme",), False),
        ("ghcr.io/acmeengine", ("ghcr.io/acme",), False),
        # Docker Hub names are read in full, as the container runtime reads them.
        ("vulcan-engine", ("docker.io/library/vulcan-engine",), True),
        ("vulcan-engine", ("docker.io",), True),
        ("docker.io/library/postgres:16-alpine", ("postgres",), True),
        ("postgres:16-alpine", ("postgres",), True),
        ("postgresx:16", ("postgres",), False),
        ("evil/postgres", ("postgres",), False),
        ("evil/postgres", ("docker.io/evil",), True),
        ("vulcan-engine", ("ghcr.io",), False),
        ("ghcr.io/acme/engine", ("quay.io", "ghcr.io/acme"), True),
    ],
)
def test_image_allowed(image: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert image_allowed(image, allowed) is ok


def test_every_image_field_of_the_engine_is_checked() -> None:
    spec = VulcanEngineSpec.model_validate(
        {
            "version": "2.0.0",
            "image": "ghcr.io/acme/engine",
            "backup": {"clientImage": "docker.io/evil/pg_dump:16"},
        }
    )
    assert image_problems(spec, ("ghcr.io/acme",)) == [
        "spec.backup.clientImage: image 'docker.io/evil/pg_dump:16' is not allowed by this "
        "operator (VULCAN_ALLOWED_IMAGES); allowed: images under ghcr.io/acme"
    ]
    assert image_problems(spec, ()) == []
    # The default client image (empty) is the operator's own setting: not checked here.
    plain = VulcanEngineSpec.model_validate({"version": "2.0.0", "image": "ghcr.io/acme/e"})
    assert image_problems(plain, ("ghcr.io/acme",)) == []


def test_a_problem_is_checked_against_its_engines_caps_when_known() -> None:
    assert checks.check(PROBLEM) == []
    named = Named(engines={("vulcan", "prod"): ENGINE})
    assert checks.check(PROBLEM, named) == [
        "spec.solver.numWorkers: 12 is more than engine 'prod' allows (8, its "
        "spec.solver.maxWorkers)"
    ]
    # Another namespace's engine of that name is not this problem's.
    assert checks.check(PROBLEM, Named(engines={("other", "prod"): ENGINE})) == []
    # An invalid engine is its own problem: the problem is not judged by it.
    broken = copy.deepcopy(ENGINE)
    broken["spec"]["replicas"] = "three"
    assert checks.check(PROBLEM, Named(engines={("vulcan", "prod"): broken})) == []


def test_the_status_is_not_checked() -> None:
    # The status is the operator's; an admission request of an update carries it.
    engine = {**ENGINE, "status": {"phase": "Ready", "whatever": {"the": "operator wrote"}}}
    assert checks.check(engine) == []


def test_warnings_only_for_valid_resources() -> None:
    engine = copy.deepcopy(ENGINE)
    engine["spec"]["ingress"] = {"enabled": True}  # nginx: its namespace is admitted by default
    assert checks.warnings(engine) == []
    engine["spec"]["ingress"]["className"] = "traefik"
    (warning,) = checks.warnings(engine)
    assert "spec.networkPolicy.ingressController admits only the namespace ingress-nginx" in (
        warning
    )
    engine["spec"]["networkPolicy"] = {
        "ingressController": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}
        }
    }
    assert checks.warnings(engine) == []
    engine["spec"]["networkPolicy"] = {"enabled": False}
    assert checks.warnings(engine) == []
    engine["spec"]["replicas"] = 0  # invalid: refused, so nothing to warn about
    engine["spec"]["networkPolicy"] = {"enabled": True}
    assert checks.warnings(engine) == []


def test_a_problem_ref_near_the_size_cap_is_warned_about() -> None:
    problem = copy.deepcopy(PROBLEM)
    spec = problem["spec"]
    for key in ("machines", "jobs"):
        del spec[key]
    spec["problemRef"] = {"configMapName": "big"}
    text = "machines: [{name: m1}]\n" + "#" * int(0.8 * 1_048_576)
    configmap = {"data": {"problem.yaml": text}}
    (warning,) = checks.warnings(problem, Named(configmaps={"big": configmap}))
    assert warning.startswith("spec.problemRef (ConfigMap big, key problem.yaml) bytes: ")
    assert checks.warnings(problem) == []


def test_an_engine_may_not_share_an_earlier_engines_store() -> None:
    older = copy.deepcopy(ENGINE)
    older["metadata"].update(name="first", creationTimestamp="2026-01-01T00:00:00Z")
    claim = {"backup": {"storage": {"pvc": {"claimName": "shared"}}}}
    older["spec"].update(claim)
    newer = copy.deepcopy(ENGINE)
    newer["spec"].update(copy.deepcopy(claim))
    engines = Named(engines={("vulcan", "first"): older})
    assert checks.check(newer, engines) == [
        "spec.backup.storage: claim 'shared' is already the backup store of VulcanEngine "
        "'first' (created earlier): give each engine its own claim"
    ]
    # The earlier one keeps its store; an engine on a claim of its own is fine.
    stored = {
        **newer,
        "metadata": {**newer["metadata"], "creationTimestamp": "2026-02-01T00:00:00Z"},
    }
    assert checks.check(older, Named(engines={("vulcan", "prod"): stored})) == []
    newer["spec"]["backup"]["storage"]["pvc"]["claimName"] = "mine"
    assert checks.check(newer, engines) == []


TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
INVALID = sorted(
    (Path(__file__).resolve().parents[2] / "tests" / "data" / "invalid").glob("*.yaml")
)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_the_reconcile_reads_a_resource_as_validate_and_the_webhook_do(path: Path) -> None:
    # The reconcile's parse (api.errors.parse) and checks.parse give the same lines for every
    # document the API server could hold (our group and kind; unknown top-level fields are
    # pruned by the server, so only validate sees them).
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict) or doc.get("kind") not in checks.MODELS:
            continue
        if doc.get("apiVersion") != API_VERSION or set(doc) - set(TOP_LEVEL):
            continue
        ours, reconcile = checks.parse(doc), errors.parse(doc, checks.MODELS[doc["kind"]])
        assert isinstance(ours, list) == isinstance(reconcile, list), path.name
        if isinstance(ours, list):
            assert ours == reconcile
