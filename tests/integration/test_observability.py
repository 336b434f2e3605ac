"""The operator observed from outside: /metrics while it works, /healthz when it stalls."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import aiohttp
import pytest

from tests.emulator import Emulator

ENGINE = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": "default"},
    "spec": {"version": "2.0.0"},
}
DB_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "prod-database", "namespace": "default"},
    "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reconciles(text: str) -> float:
    series = 'vulcan_operator_reconcile_total{kind="VulcanEngine",result="success"}'
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_LIVENESS_SECONDS", "3")


async def test_metrics_show_reconciles_moving(emulator: Emulator, run_operator: Any) -> None:
    from vulcan_operator import metrics

    port = free_port()
    server = metrics.start_metrics_server(port, addr="127.0.0.1")
    try:
        await run_operator()
        emulator.create(DB_SECRET)
        emulator.create(ENGINE)
        async with aiohttp.ClientSession() as http:

            async def scrape() -> str:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
                    return await response.text()

            first = 0.0
            while first == 0:
                first = reconciles(await scrape())
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.5)  # resyncs every second
            text = await scrape()
            assert reconciles(text) > first
            assert 'vulcan_engine_ready{engine="prod",namespace="default"}' in text
            assert "solver_problems_total" in text and "vulcan_operator_build_info" in text
    finally:
        server.shutdown()


GATE = threading.Event()
GATE.set()


class Stallable(Emulator):
    """Holds every non-watch API call while GATE is cleared: the operator stalls."""

    async def _intercept(self, raw: Any, record: Any) -> Any:
        if record.verb != "watch" and not GATE.is_set():
            await asyncio.to_thread(GATE.wait, 30)
        return None


@pytest.mark.emulator(cls=Stallable)
async def test_liveness_fails_when_processing_stalls(emulator: Emulator, run_operator: Any) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    await run_operator(liveness=url)
    emulator.create(DB_SECRET)
    emulator.create(ENGINE)
    await emulator.wait_for(lambda: emulator.get("deployments", "default", "prod"))
    async with aiohttp.ClientSession() as http:

        async def healthy() -> bool:
            async with http.get(url) as response:
                return response.status == 200

        assert await healthy()
        GATE.clear()  # stall every API call the handlers make
        try:
            deadline = asyncio.get_running_loop().time() + 15
            while await healthy():
                assert asyncio.get_running_loop().time() < deadline, "liveness never failed"
                await asyncio.sleep(0.5)
        finally:
            GATE.set()
        # Processing resumes: healthy again.
        deadline = asyncio.get_running_loop().time() + 15
        while not await healthy():
            assert asyncio.get_running_loop().time() < deadline, "liveness never recovered"
            await asyncio.sleep(0.5)
