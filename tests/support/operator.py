"""The real Kopf operator against the emulator (a pytest plugin, registered in tests/conftest.py).

    async def test_something(emulator, operator):
        emulator.create(engine)
        await emulator.wait_for(lambda: emulator.get("deployments", "default", "prod"))

Every API request made while the operator runs is checked against manifests/rbac.yaml and the
Helm chart's ClusterRole (and, in a test confined to one namespace, against the namespaced
install's Role), and recorded for the measurement of unused grants (`VULCAN_RBAC_USAGE=<file>`,
see tests/support/rbac.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import kopf
import kubernetes
import pytest

from tests.emulator import Emulator
from tests.support import admission_policy, chart, rbac
from tests.support.kopf_runner import OperatorRunner, kube_configuration

RunOperator = Callable[..., Awaitable[OperatorRunner]]


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
    usage = emulator.api_usage(since=mark)
    rbac.RECORDED.update(usage)
    refused = rbac.denied(usage)
    assert not refused, f"requests the operator's ClusterRole does not allow: {refused}"
    # ...and by the Helm chart's ClusterRole, as `helm install` renders it (cluster-wide).
    refused = rbac.denied(usage, chart.cluster_role_rules())
    assert not refused, f"requests the Helm chart's ClusterRole does not allow: {refused}"
    # Every Secret, Role, RoleBinding and Job it created passes manifests/admission-policy/.
    policy = admission_policy.refused_creates(emulator.requests(since=mark))
    assert not policy, f"objects the admission policy refuses the operator: {policy}"
    # In one namespace, the namespaced install's Role (and ClusterRole) must allow them too.
    if len({request[4] for request in rbac.ours(usage) if request[4]}) <= 1:
        refused = rbac.denied_in_a_namespace(usage)
        assert not refused, f"requests a namespaced install does not allow: {refused}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With VULCAN_RBAC_USAGE=<file>: add the requests of this session to that file."""
    target = os.environ.get("VULCAN_RBAC_USAGE")
    if target and rbac.RECORDED:
        path = Path(target)
        rbac.save(rbac.RECORDED | (rbac.load(path) if path.exists() else set()), path)


@pytest.fixture
async def operator(run_operator: RunOperator) -> OperatorRunner:
    """The real operator with the project's handlers, already running."""
    return await run_operator()
