"""The emulator's pytest plugin (registered in tests/conftest.py): a fresh API server per test.

    async def test_something(emulator):
        emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        await emulator.wait_for(lambda: emulator.get("configmaps", "default", "x"))

Options per test: `@pytest.mark.emulator(controllers=False, crds=False, strict_namespaces=True)`.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.emulator.server import Emulator

REPO = pathlib.Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "emulator(controllers=True, crds=True, strict_namespaces=False, "
        "history_limit=1000, cls=Emulator): options of the Kubernetes API emulator",
    )


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """A fresh API server: our CRDs from `crds/`, namespace `default`, controllers on."""
    options: dict[str, object] = {}
    for marker in reversed(list(request.node.iter_markers("emulator"))):
        options.update(marker.kwargs)
    load_crds = options.pop("crds", True)
    cls: type[Emulator] = options.pop("cls", Emulator)  # type: ignore[assignment]
    async with cls(**options) as server:  # type: ignore[arg-type]
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        if load_crds:
            server.load_crds(REPO / "crds")
        yield server
        failures = list(server.failures)
    if failures:
        pytest.fail(f"the emulator failed internally: {failures!r}")


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session on the emulator's URL, for raw API requests."""
    async with aiohttp.ClientSession(emulator.url) as session:
        yield session
