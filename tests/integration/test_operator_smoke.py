"""The real Kopf operator, in-process, against the emulator: start, react, patch, stop.

A test CRD (`widgets.smoke.example.com`) keeps these independent of our own CRDs; the
handlers are added to a fresh `vulcan_operator.main.make_registry()`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
import kubernetes
import pytest

from tests.emulator import Emulator, make_crd
from tests.support.operator import RunOperator

pytestmark = pytest.mark.emulator(controllers=False)


def widget(name: str, size: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "smoke.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"size": size},
    }


def smoke_registry(calls: list[str]) -> kopf.OperatorRegistry:
    from vulcan_operator.main import make_registry

    registry = make_registry()

    @kopf.on.create("smoke.example.com", "v1", "widgets", registry=registry)
    def created(name: str, spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> None:
        calls.append(f"create {name}")
        patch.status["seen"] = spec["size"] * 2

    @kopf.on.update("smoke.example.com", "v1", "widgets", field="spec", registry=registry)
    def updated(name: str, spec: dict[str, Any], patch: kopf.Patch, **_: Any) -> None:
        calls.append(f"update {name}")
        patch.status["seen"] = spec["size"] * 2

    @kopf.on.delete("smoke.example.com", "v1", "widgets", registry=registry)
    def deleted(name: str, **_: Any) -> None:
        calls.append(f"delete {name}")

    return registry


def seen(emulator: Emulator, name: str) -> Any:
    return emulator.get("widgets", "default", name)["status"]["seen"]  # type: ignore[index]


@pytest.fixture(autouse=True)
def widgets(emulator: Emulator) -> None:
    emulator.create(make_crd("smoke.example.com", "Widget"))


async def test_operator_reacts_patches_and_finalizes(
    emulator: Emulator, run_operator: RunOperator
) -> None:
    calls: list[str] = []
    runner = await run_operator(smoke_registry(calls))
    emulator.create(widget("w1"))
    await emulator.wait_for(lambda: seen(emulator, "w1") == 6)
    obj = emulator.get("widgets", "default", "w1")
    assert obj is not None and obj["metadata"]["finalizers"] == ["vulcan-engine.com/finalizer"]
    emulator.delete("widgets", "default", "w1")
    await emulator.wait_for(lambda: emulator.get("widgets", "default", "w1") is None)
    assert calls == ["create w1", "delete w1"]
    started = time.monotonic()
    await runner.stop()
    assert time.monotonic() - started < 1 and not runner.running


async def test_object_created_before_the_operator_started(
    emulator: Emulator, run_operator: RunOperator
) -> None:
    calls: list[str] = []
    emulator.create(widget("early"))
    await run_operator(smoke_registry(calls))
    await emulator.wait_for(lambda: seen(emulator, "early") == 6)
    emulator.patch("widgets", "default", "early", {"spec": {"size": 5}})
    await emulator.wait_for(lambda: seen(emulator, "early") == 10)
    assert calls == ["create early", "update early"]


async def test_restart_in_the_middle(emulator: Emulator, run_operator: RunOperator) -> None:
    calls: list[str] = []
    runner = await run_operator(smoke_registry(calls))
    emulator.create(widget("w"))
    await emulator.wait_for(lambda: seen(emulator, "w") == 6)
    await runner.stop()
    emulator.patch("widgets", "default", "w", {"spec": {"size": 4}})  # while it is down
    await runner.start()
    await emulator.wait_for(lambda: seen(emulator, "w") == 8)
    await runner.restart()
    await asyncio.sleep(0.3)
    assert calls == ["create w", "update w"]  # nothing handled twice across restarts
    assert runner.starts == 3


async def test_an_idle_operator_writes_nothing(
    emulator: Emulator, run_operator: RunOperator
) -> None:
    await run_operator(smoke_registry([]))
    emulator.create(widget("w"))
    await emulator.wait_for(lambda: seen(emulator, "w") == 6)
    await asyncio.sleep(0.3)  # let the last writes (events, annotations) settle
    mark = emulator.mark()
    await asyncio.sleep(0.5)
    assert emulator.writes(since=mark) == []
    assert ("watch", "smoke.example.com", "widgets", "", "") in emulator.api_usage()


async def test_handlers_reach_the_emulator_with_the_official_client(
    emulator: Emulator, run_operator: RunOperator
) -> None:
    from vulcan_operator.main import make_registry

    registry = make_registry()

    @kopf.on.create("smoke.example.com", "v1", "widgets", registry=registry)
    def child(name: str, namespace: str, uid: str, **_: Any) -> None:  # sync: in a thread
        kubernetes.client.CoreV1Api().create_namespaced_config_map(
            namespace,
            {
                "metadata": {
                    "name": f"{name}-config",
                    "ownerReferences": [
                        {
                            "apiVersion": "smoke.example.com/v1",
                            "kind": "Widget",
                            "name": name,
                            "uid": uid,
                            "controller": True,
                        }
                    ],
                },
                "data": {"size": "3"},
            },
        )

    await run_operator(registry)
    emulator.create(widget("parent"))
    await emulator.wait_for(lambda: emulator.get("configmaps", "default", "parent-config"))
    emulator.delete("widgets", "default", "parent")
    await emulator.wait_for(lambda: emulator.get("configmaps", "default", "parent-config") is None)


async def test_stopping_spares_the_tests_own_tasks(
    emulator: Emulator, run_operator: RunOperator
) -> None:
    runner = await run_operator(smoke_registry([]))
    mine = asyncio.create_task(asyncio.sleep(10))  # created after the operator started

    async def stop_from_another_task() -> float:  # as a fixture teardown does
        started = time.monotonic()
        await runner.stop()
        return time.monotonic() - started

    assert await asyncio.create_task(stop_from_another_task()) < 1.5
    assert not mine.done()
    mine.cancel()
