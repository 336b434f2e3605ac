"""API discovery is cached (issue 19): `Api.has_kind` reads a group/version at most once per
`DISCOVERY_SECONDS`, answers every kind of it from that read, remembers "not served" too, and
sees a CRD installed later once the time has passed. The real client against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator import Emulator
from tests.support.crds import monitoring_crd
from vulcan_operator import API_VERSION
from vulcan_operator.k8s import Api, client

MONITORING = "monitoring.coreos.com/v1"


def discovery_reads(emulator: Emulator, since: int) -> list[str]:
    return [
        r.path
        for r in emulator.requests(since=since)
        if r.path.startswith("/apis/") and r.verb is None
    ]


async def test_discovery_is_read_once_per_period(
    emulator: Emulator, kube_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, mark = Api(), emulator.mark()
    assert await api.has_kind(API_VERSION, "VulcanEngine")
    assert await api.has_kind(API_VERSION, "SchedulingProblem")
    assert not await api.has_kind(API_VERSION, "Nothing")
    for _ in range(3):
        assert not await api.has_kind(MONITORING, "ServiceMonitor")  # 404, remembered
    assert discovery_reads(emulator, mark) == [f"/apis/{API_VERSION}", f"/apis/{MONITORING}"]

    emulator.create(monitoring_crd("servicemonitors", "ServiceMonitor"))
    assert not await api.has_kind(MONITORING, "ServiceMonitor")  # within the period
    monkeypatch.setattr(client, "DISCOVERY_SECONDS", 0.0)  # the period has passed
    assert await api.has_kind(MONITORING, "ServiceMonitor")
    assert discovery_reads(emulator, mark)[2:] == [f"/apis/{MONITORING}"]
