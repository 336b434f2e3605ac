"""Fixtures: the Kubernetes API emulator and the real Kopf operator running against it.

    async def test_something(emulator, operator):
        emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
        await emulator.wait_for(lambda: emulator.get("configmaps", "default", "x"))

Options per test: `@pytest.mark.emulator(controllers=False, crds=False, strict_namespaces=True)`.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import kopf
import kubernetes
import pytest

from tests.emulator import Emulator
from tests.emulator.kopf_runner import OperatorRunner, kube_configuration
from tests.rbac import denied

REPO = pathlib.Path(__file__).resolve().parents[2]

RunOperator = Callable[..., Awaitable[OperatorRunner]]


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


@pytest.fixture
def kube_config(emulator: Emulator) -> Iterator[kubernetes.client.Configuration]:
    """The official client's default configuration, pointing at the emulator.

    NB: the client is synchronous: call it in a thread (`asyncio.to_thread`), as sync Kopf
    handlers are; the emulator serves from its own thread, so nothing deadlocks either way.
    """
    previous = kubernetes.client.Configuration._default
    config = kube_configuration(emulator.url)
    kubernetes.client.Configuration.set_default(config)
    yield config
    kubernetes.client.Configuration.set_default(previous)


@pytest.fixture
async def run_operator(
    emulator: Emulator, kube_config: kubernetes.client.Configuration
) -> AsyncIterator[RunOperator]:
    """Start the real operator: `runner = await run_operator(registry=None)`.

    The registry defaults to a fresh `vulcan_operator.main.make_registry()`; add handlers to
    it before starting. `await runner.restart()` restarts it; all are stopped at the end.
    """
    from vulcan_operator.main import make_registry

    runners: list[OperatorRunner] = []

    async def start(
        registry: kopf.OperatorRegistry | None = None, liveness: str | None = None
    ) -> OperatorRunner:
        runner = OperatorRunner(emulator.url, registry or make_registry(), liveness=liveness)
        runners.append(runner)
        await runner.start()
        return runner

    mark = emulator.mark()
    yield start
    for runner in runners:
        await runner.stop()
    # Every API call made while the operator ran (its own, and the solver pods' scoped calls,
    # which are a subset of what it holds) must be allowed by manifests/rbac.yaml.
    refused = denied(emulator.api_usage(since=mark))
    assert not refused, f"requests the operator's ClusterRole does not allow: {refused}"


@pytest.fixture
async def operator(run_operator: RunOperator) -> OperatorRunner:
    """The real operator with the project's handlers, already running."""
    return await run_operator()
