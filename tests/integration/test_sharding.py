"""Two shards of the real operator (`run --shard 0/2` and `1/2`) on one emulator (issue 19).

Both run in this process, each as its own Kopf operator with its own registry, and each talks
to the emulator under its own host name (127.0.0.1 and localhost, the same server), so the
emulator's request log says which shard made every request (RequestRecord.host): Kopf's client
gets the shard's URL from its login handler, the operator's own client from the default
configuration at the time its registry was made.

Checked: every engine reaches Ready; every request about a namespace comes from the shard that
owns it (no object read, written, finalized or annotated by the other); and the two shards'
writes add up to one unsharded operator's on the same objects (the same objects created, and
the same writes per engine give or take the timing of a rollout's status writes).
The 200-engine run is bench/scale.py --shards 2 (see README, "The operator at scale").
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import kubernetes
import pytest

from tests.emulator import Emulator, RequestRecord
from tests.support.backups import db_secret, engine
from tests.support.crds import CRD_DIR
from tests.support.kopf_runner import OperatorRunner, kube_configuration
from vulcan_operator.config import Settings
from vulcan_operator.main import make_registry
from vulcan_operator.sharding import Shard, shard_of

NAMESPACES = [f"team-{i:02d}" for i in range(12)]
PER_NAMESPACE = 3  # 36 engines
ENGINES = [(ns, f"e{i}") for ns in NAMESPACES for i in range(PER_NAMESPACE)]


def ready(emulator: Emulator) -> bool:
    for namespace, name in ENGINES:
        status = (emulator.get("vulcanengines", namespace, name) or {}).get("status") or {}
        if status.get("phase") != "Ready" or not status.get("currentVersion"):
            return False
    return True


@pytest.fixture
async def start_shards(
    emulator: Emulator, kube_config: kubernetes.client.Configuration
) -> AsyncIterator[Callable[..., Any]]:
    """`await start_shards((url, shard), ...)`: one operator per shard, each on its own URL."""
    runners: list[OperatorRunner] = []

    async def start(*shards: tuple[str, Shard]) -> list[OperatorRunner]:
        for url, shard in shards:
            settings = dataclasses.replace(Settings.from_env(), shard=shard)
            previous = kubernetes.client.Configuration.get_default_copy()
            kubernetes.client.Configuration.set_default(kube_configuration(url))
            try:  # the operator's own clients are made with the registry
                registry = make_registry(settings)
            finally:
                kubernetes.client.Configuration.set_default(previous)
            runners.append(OperatorRunner(url, registry))
        for runner in runners:
            await runner.start(ready_within=30)
        return runners

    yield start
    for runner in runners:
        await runner.stop()


async def converge(emulator: Emulator) -> None:
    for namespace in NAMESPACES:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for namespace, name in ENGINES:
        emulator.create(db_secret(engine=name, namespace=namespace))
        emulator.create(engine(name, namespace))
    await emulator.wait_for(lambda: ready(emulator), timeout=240, interval=0.5)


def namespaced(requests: list[RequestRecord]) -> list[RequestRecord]:
    """The operator's requests about one namespace's objects (not the emulator's own
    controllers, which write through no HTTP, nor cluster-wide watches)."""
    return [r for r in requests if r.namespace in NAMESPACES]


def writes_per_object(requests: list[RequestRecord]) -> collections.Counter[tuple[str, ...]]:
    """Successful writes (Events apart) by (namespace, resource, object, verb)."""
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    for r in namespaced(requests):
        if r.is_write and r.resource != "events" and r.status is not None and r.status < 300:
            name = r.name or ((r.body or {}).get("metadata") or {}).get("name") or ""
            name = re.sub(r"-[0-9a-f]{8}$", "", name)  # a Job's suffix from the engine's uid
            counts[(str(r.namespace), str(r.resource), name, str(r.verb))] += 1
    return counts


async def test_two_shards_split_the_engines_and_write_what_one_operator_writes(
    emulator: Emulator, start_shards: Callable[..., Any]
) -> None:
    port = emulator.url.rsplit(":", 1)[1]
    hosts = {0: f"127.0.0.1:{port}", 1: f"localhost:{port}"}
    owners = {ns: shard_of(ns, 2) for ns in NAMESPACES}
    assert set(owners.values()) == {0, 1}, "both shards must own some namespaces"

    mark = emulator.mark()
    await start_shards(*((f"http://{hosts[k]}", Shard(k, 2)) for k in (0, 1)))
    await converge(emulator)
    sharded = emulator.requests(since=mark)

    # Exactly one shard per namespace, and the right one.
    seen = collections.defaultdict(set)
    for r in namespaced(sharded):
        seen[r.namespace].add(r.host)
    assert {ns: seen[ns] for ns in NAMESPACES} == {ns: {hosts[owners[ns]]} for ns in NAMESPACES}
    # Each shard wrote the status of its own engines only.
    status_writers = {
        (r.namespace, r.name): r.host
        for r in sharded
        if r.resource == "vulcanengines" and r.subresource == "status" and r.is_write
    }
    assert status_writers == {(ns, n): hosts[owners[ns]] for ns, n in ENGINES}

    for namespace, name in ENGINES:  # no shard's finalizer (handlers.without_finalizers)
        meta = (emulator.get("vulcanengines", namespace, name) or {}).get("metadata") or {}
        assert not meta.get("finalizers"), meta

    # One unsharded operator, the same objects, a fresh emulator.
    async with Emulator() as alone:
        alone.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        alone.load_crds(CRD_DIR)
        previous = kubernetes.client.Configuration.get_default_copy()
        kubernetes.client.Configuration.set_default(kube_configuration(alone.url))
        try:
            runner = OperatorRunner(alone.url, make_registry(Settings.from_env()))
            await runner.start(ready_within=30)
            try:
                await converge(alone)
            finally:
                await runner.stop()
        finally:
            kubernetes.client.Configuration.set_default(previous)
        single = alone.requests()

    two, one = writes_per_object(sharded), writes_per_object(single)
    creates = {k for k in two if k[3] == "create"}
    assert creates == {k for k in one if k[3] == "create"}  # the same objects made
    assert all(two[k] == 1 for k in creates)  # each made once
    per_engine_two, per_engine_one = sum(two.values()), sum(one.values())
    # Status writes during a rollout depend on when the Deployment's status moves; the
    # rest is the same. The totals agree to within one write per engine.
    assert abs(per_engine_two - per_engine_one) <= len(ENGINES), (per_engine_two, per_engine_one)
