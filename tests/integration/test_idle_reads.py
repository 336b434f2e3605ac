"""An idle resync of a Ready engine (issue 19).

- `reconcile.engine.reconcile` with the plain client (no watches) against the emulator: no
  write, the Deployment read twice (its own read and the apply's, not a third time for the
  status: nothing wrote it), no API discovery (cached for a minute).
- The real operator: at most 2 requests per engine and resync, its two Secrets (its children
  and the engines come from Kopf's indexes; 21 requests on 1dbfa16), and a child edited or
  deleted is put back from its watch event, long before the next resync (on 1dbfa16 only the
  resync repaired it)."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest

from tests.emulator import Emulator
from tests.support.backups import db_secret, engine
from tests.support.crds import MONITORING_KINDS, monitoring_crd
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api
from vulcan_operator.reconcile import engine as engine_reconcile


async def test_an_idle_resync_reads_the_deployment_twice_and_no_discovery(
    emulator: Emulator, kube_config: Any
) -> None:
    emulator.create(db_secret())
    body = emulator.create(engine())
    api, settings = Api(), Settings.from_env()
    deadline = time.monotonic() + 60
    while True:  # the engine's reconciles, its status kept as Kopf would, until Ready
        outcome = await engine_reconcile.reconcile(api, body, settings)
        body = {**body, "status": outcome.status}
        if outcome.status.get("phase") == "Ready" and outcome.status.get("currentVersion"):
            break
        assert time.monotonic() < deadline, outcome.status
        await asyncio.sleep(0.2)

    mark = emulator.mark()
    outcome = await engine_reconcile.reconcile(api, body, settings)
    requests = emulator.requests(since=mark)
    assert outcome.status.get("phase") == "Ready"
    assert [r.path for r in requests if r.is_write] == []
    reads = collections.Counter((r.verb, r.resource) for r in requests)
    assert reads[("get", "deployments")] == 2, reads
    assert not [r.path for r in requests if r.path.startswith("/apis/") and r.verb is None]


# --- the real operator (issue 19): children from watches, drift repaired from watch events ---

ENGINES = "vulcanengines"
SECRETS = {("get", "secrets", "prod-database"), ("get", "secrets", "prod-keys")}


def ready(emulator: Emulator) -> bool:
    status = (emulator.get("vulcanengines", "default", "prod") or {}).get("status") or {}
    return status.get("phase") == "Ready" and bool(status.get("currentVersion"))


@pytest.mark.parametrize("monitoring", [False, True], ids=["plain", "prometheus-operator"])
async def test_an_idle_resync_reads_only_the_engines_secrets(
    emulator: Emulator, run_operator: Any, monkeypatch: pytest.MonkeyPatch, monitoring: bool
) -> None:
    """At most 2 requests per engine and resync: its database Secret and its keys Secret
    (Secrets are never watched); its children and the engines come from Kopf's indexes. With
    the Prometheus Operator's CRDs, its ServiceMonitor and PrometheusRule too (they were read
    from the server at every resync)."""
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    for plural, kind in MONITORING_KINDS if monitoring else ():
        emulator.create(monitoring_crd(plural, kind))
    await run_operator()
    emulator.create(db_secret())
    emulator.create(engine())
    await emulator.wait_for(lambda: ready(emulator))
    if monitoring:
        assert emulator.get("servicemonitors", "default", "prod") is not None
        assert emulator.get("prometheusrules", "default", "prod") is not None
    await asyncio.sleep(2)  # the resyncs after Ready settle

    mark = emulator.mark()
    await asyncio.sleep(5)  # about five resyncs
    requests = [r for r in emulator.requests(since=mark) if r.verb != "watch"]
    assert [r.path for r in requests if r.is_write] == []
    resyncs = sum(r.path.endswith("/secrets/prod-database") for r in requests)
    assert resyncs >= 3, requests  # the resync ran
    others = [(r.verb, r.path) for r in requests if (r.verb, r.resource, r.name) not in SECRETS]
    assert others == []
    assert len(requests) <= 2 * resyncs


async def test_a_childs_drift_is_repaired_from_its_watch_event(
    emulator: Emulator, run_operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a resync of ten minutes, an edited Deployment and PDB and a deleted Service and
    ConfigMap are put back within seconds: the watch event asks for the engine's reconcile.
    Then a PDB the repair patched is deleted: made again too (on 66450f0 the answer of the
    patch stood for it until it expired, 300 s)."""
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "600")
    await run_operator()
    emulator.create(db_secret())
    emulator.create(engine())
    await emulator.wait_for(lambda: ready(emulator))
    deployment = emulator.get("deployments", "default", "prod")
    config = emulator.get("configmaps", "default", "prod-config")
    assert deployment is not None and config is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    started = time.monotonic()
    patched = {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "evil"}]}}}}
    emulator.patch("deployments", "default", "prod", patched)
    emulator.patch("poddisruptionbudgets", "default", "prod", {"spec": {"maxUnavailable": 3}})
    emulator.delete("services", "default", "prod")
    emulator.delete("configmaps", "default", "prod-config")

    def repaired() -> bool:
        now = emulator.get("deployments", "default", "prod") or {}
        containers = now.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
        pdb = emulator.get("poddisruptionbudgets", "default", "prod") or {}
        cm = emulator.get("configmaps", "default", "prod-config") or {}
        return (
            [c.get("image") for c in containers or []] == [image]
            and pdb.get("spec", {}).get("maxUnavailable") == 1
            and emulator.get("services", "default", "prod") is not None
            and cm.get("data") == config.get("data")
        )

    await emulator.wait_for(repaired, timeout=60)
    assert time.monotonic() - started < 60  # long before the next resync (600 s)

    # A PDB the repair just patched, then deleted: made again (the answer of that patch, kept
    # until the watch showed it, must not stand for a PDB that is gone).
    await emulator.wait_for(lambda: ready(emulator))
    emulator.patch("poddisruptionbudgets", "default", "prod", {"spec": {"maxUnavailable": 3}})

    def pdb_repaired() -> bool:
        pdb = emulator.get("poddisruptionbudgets", "default", "prod") or {}
        return pdb.get("spec", {}).get("maxUnavailable") == 1

    await emulator.wait_for(pdb_repaired, timeout=60)
    await asyncio.sleep(1)
    emulator.delete("poddisruptionbudgets", "default", "prod")
    await emulator.wait_for(pdb_repaired, timeout=60)
