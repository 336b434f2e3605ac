"""An idle resync of a Ready engine (issue 19): no write, the Deployment read twice (its own
read and the apply's, not a third time for the status: nothing wrote it), no API discovery (cached
for a minute). `reconcile.engine.reconcile` with the real client against the emulator."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from tests.emulator import Emulator
from tests.support.backups import db_secret, engine
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
