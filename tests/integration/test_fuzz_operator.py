"""Bad input against the emulator: generated engines (tests/support/fuzzdocs.py) through the engine
reconcile with a real API client, and invalid ones through the real operator.

- `reconcile.engine.reconcile` with `k8s.Api()` (no Kopf): an invalid spec gives phase Failed,
  Ready=False InvalidSpec naming the field, and writes nothing; a valid one (its Secrets
  present) creates children the emulator admits as a real API server would (names, labels,
  container fields) and never raises.
- The real operator, with a VulcanEngine CRD that validates nothing (as if applied without
  our schema, or an older one): each invalid engine ends Failed/InvalidSpec with the field
  in the message and an InvalidSpec Event, no child is created, and nothing is retried.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import kubernetes
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings

from tests.emulator import Emulator, make_crd
from tests.support.fuzzdocs import Broken, fields_named, invalid_doc, related, valid_doc
from tests.support.kopf_runner import OperatorRunner
from tests.support.manifests import REPO_ROOT as REPO
from vulcan_operator import names
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile import engine as engine_reconcile

ENGINES = "vulcanengines"


def draw(strategy: Any, count: int) -> list[Any]:
    """`count` examples of a strategy, the same on every run."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found[:count]


def reaches_the_operator(broken: Broken) -> bool:
    """Mutations an API server without our schema would store (it still needs a name, and
    no document can change its own kind or apiVersion)."""
    doc = broken.doc
    return (
        broken.how not in ("top-level", "wrong-type")  # structural types are always checked
        and isinstance(doc, dict)
        and isinstance(doc.get("metadata"), dict)
        and bool(doc["metadata"].get("name"))
        and isinstance(doc.get("spec"), dict)
        and not broken.path.startswith("metadata")
    )


def invalid_engines(count: int) -> list[Broken]:
    chosen, seen = [], set()
    for broken in draw(invalid_doc("VulcanEngine", namespace="default"), count * 3):
        if reaches_the_operator(broken) and broken.path not in seen:
            seen.add(broken.path)
            chosen.append(broken)
    return chosen[:count]


def secrets_for(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Secret (with its key) the engine refers to, so its reconcile goes all the way."""
    spec = engine_reconcile.parse(doc)
    assert not isinstance(spec, list), spec
    wanted: dict[str, dict[str, str]] = {}
    for _, secret, key in engine_reconcile.secret_refs(doc["metadata"]["name"], spec.spec):
        wanted.setdefault(secret, {})[key] = base64.b64encode(b"postgresql://u:p@db/x").decode()
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "data": data,
        }
        for name, data in wanted.items()
    ]


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


# --- the reconcile function with a real client ------------------------------------------------
async def test_reconcile_with_a_real_client_reports_invalid_specs(
    emulator: Emulator, kube_config: kubernetes.client.Configuration
) -> None:
    api, settings_ = Api(), Settings()
    cases = invalid_engines(12)
    assert len(cases) >= 8
    mark = emulator.mark()
    for broken in cases:
        body = {**broken.doc, "metadata": {**broken.doc["metadata"], "generation": 2}}
        outcome = await engine_reconcile.reconcile(api, body, settings_)
        status = outcome.status
        assert status["phase"] == "Failed", (broken, status)
        ready = ready_condition(status)
        assert ready["reason"] == "InvalidSpec"
        named = fields_named(ready["message"])
        assert any(related(f, broken.path) for f in named), (broken, ready["message"])
    assert emulator.writes(since=mark) == []


async def test_reconcile_of_valid_generated_engines_never_raises(
    emulator: Emulator, kube_config: kubernetes.client.Configuration
) -> None:
    api, settings_ = Api(), Settings()
    engines = draw(valid_doc("VulcanEngine", namespace="default"), 8)
    made = 0
    for i, doc in enumerate(engines):
        doc["metadata"]["name"] = f"e{i}-{doc['metadata']['name']}"[:40].rstrip("-")
        created = emulator.create(doc)
        for secret in secrets_for(created):
            if emulator.get("secrets", "default", secret["metadata"]["name"]) is None:
                emulator.create(secret)
        outcome = await engine_reconcile.reconcile(api, created, settings_)
        assert outcome.status["phase"] in ("Progressing", "Ready", "Paused", "Degraded"), (
            doc,
            outcome.status,
        )
        if not created["spec"].get("paused"):
            deployment = names.engine_deployment(created["metadata"]["name"])
            assert emulator.get("deployments", "default", deployment) is not None
            made += 1
    assert made >= 4


# --- the real operator --------------------------------------------------------------------------
def install_crds_without_engine_validation(emulator: Emulator) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        if not path.name.startswith("vulcanengines."):
            emulator.apply_yaml(path.read_text())
    (version,) = yaml.safe_load(
        (REPO / "crds" / "vulcanengines.vulcan-engine.com.yaml").read_text()
    )["spec"]["versions"]
    emulator.create(
        make_crd(
            "vulcan-engine.com",
            "VulcanEngine",
            plural="vulcanengines",
            versions=(version["name"],),
            short_names=("ve",),
        )
    )


@pytest.fixture(autouse=True)
def fast_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")


@pytest.mark.emulator(crds=False)
async def test_the_operator_reports_invalid_engines_that_got_past_the_crd(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    install_crds_without_engine_validation(emulator)
    cases = invalid_engines(6)
    for i, broken in enumerate(cases):
        broken.doc["metadata"]["name"] = f"bad-{i}"
        emulator.create(broken.doc)

    def failed(i: int) -> bool:
        status = emulator.get(ENGINES, "default", f"bad-{i}")["status"]
        return bool(
            status["phase"] == "Failed" and ready_condition(status)["reason"] == "InvalidSpec"
        )

    for i in range(len(cases)):
        await emulator.wait_for(lambda i=i: failed(i), timeout=60)

    def posted(i: int) -> bool:  # Kopf posts Events from a queue, after the status patch
        return any(
            e.get("involvedObject", {}).get("name") == f"bad-{i}"
            and e.get("reason") == "InvalidSpec"
            for e in emulator.list("events", "default")
        )

    for i, broken in enumerate(cases):
        message = ready_condition(emulator.get(ENGINES, "default", f"bad-{i}")["status"])["message"]
        assert any(related(f, broken.path) for f in fields_named(message)), (broken, message)
        await emulator.wait_for(lambda i=i: posted(i), timeout=60)
    mark = await emulator.quiet(1.5)  # a resync: it must not retry or write anything new
    await asyncio.sleep(2)
    assert [w.path for w in emulator.writes(since=mark, events=False)] == []
    assert emulator.list("deployments", "default") == []
