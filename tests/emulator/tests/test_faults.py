"""The emulator's fault-injection mode (`tests/emulator/faults.py`): each fault's mechanics
over plain HTTP at rate 1.0, who is in scope, and reproducibility given a seed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from tests.emulator import Fault, FaultPolicy, FaultyEmulator
from tests.emulator.faults import anyone, from_operator, summary

pytestmark = pytest.mark.emulator(cls=FaultyEmulator, controllers=False)

CM = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"


def only(*kinds: Fault, **options: Any) -> FaultPolicy:
    """Every request (whoever makes it) gets one of these faults."""
    return FaultPolicy(rate=1.0, kinds=kinds, scope=anyone, **options)


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


async def call(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any, Any]:
    data = None if body is None else json.dumps(body)
    headers.setdefault("Content-Type", "application/json")
    async with http.request(method, path, data=data, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def read_watch(
    http: aiohttp.ClientSession, query: str, deadline: float = 5.0
) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Every event of a watch stream until it ends (or the deadline), and how it ended."""
    events: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(deadline), http.get(f"{CM}?watch=true&{query}") as response:
            assert response.status == 200
            async for line in response.content:
                if line.strip():
                    events.append(json.loads(line))
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
        return events, e
    return events, None


async def test_conflict_on_writes_only(emulator: FaultyEmulator, http: Any) -> None:
    emulator.create(cm("a"))
    emulator.faults = only(Fault.CONFLICT)
    status, error, _ = await call(
        http, "PATCH", f"{CM}/a", {"data": {"k": "2"}}, **{"Content-Type": MERGE}
    )
    assert (status, error["reason"], error["code"]) == (409, "Conflict", 409)
    assert "the object has been modified" in error["message"] and '"a"' in error["message"]
    status, error, _ = await call(http, "POST", CM, cm("b"))
    assert (status, error["reason"], error["details"]["name"]) == (409, "Conflict", "b")
    assert emulator.get("configmaps", "default", "a")["data"] == {"k": "v"}  # type: ignore[index]
    assert emulator.get("configmaps", "default", "b") is None  # nothing was written
    status, body, _ = await call(http, "GET", f"{CM}/a")  # reads: no conflict to give
    assert status == 200 and body["data"] == {"k": "v"}
    assert [(i.fault, i.verb) for i in emulator.faults.injected] == [
        (Fault.CONFLICT, "patch"),
        (Fault.CONFLICT, "create"),
    ]


async def test_too_many_requests_says_when_to_retry(emulator: FaultyEmulator, http: Any) -> None:
    emulator.faults = only(Fault.TOO_MANY_REQUESTS, retry_after=3)
    status, error, headers = await call(http, "GET", CM)
    assert (status, error["reason"], error["code"]) == (429, "TooManyRequests", 429)
    assert headers["Retry-After"] == "3" and error["details"]["retryAfterSeconds"] == 3
    status, _, _ = await call(http, "POST", CM, cm("b"))
    assert status == 429 and emulator.get("configmaps", "default", "b") is None


async def test_internal_error_writes_nothing(emulator: FaultyEmulator, http: Any) -> None:
    emulator.faults = only(Fault.INTERNAL_ERROR)
    status, error, _ = await call(http, "POST", CM, cm("b"))
    assert (status, error["reason"], error["kind"]) == (500, "InternalError", "Status")
    assert emulator.get("configmaps", "default", "b") is None
    assert emulator.log[-1].status == 500


async def test_slow_answers_are_right_and_late(emulator: FaultyEmulator, http: Any) -> None:
    emulator.faults = only(Fault.SLOW, delay=(0.3, 0.3))
    started = time.monotonic()
    status, body, _ = await call(http, "POST", CM, cm("b"))
    assert status == 201 and body["metadata"]["name"] == "b"
    assert time.monotonic() - started >= 0.3
    assert emulator.faults.injected[0].detail == "0.300s"
    # Slow requests do not hold others up: two at once take one delay, not two.
    started = time.monotonic()
    await asyncio.gather(call(http, "GET", f"{CM}/b"), call(http, "GET", CM))
    assert time.monotonic() - started < 0.55


async def test_a_late_answer_trails_its_own_watch_event(
    emulator: FaultyEmulator, http: Any
) -> None:
    emulator.create(cm("a"))
    emulator.faults = only(Fault.LATE, delay=(1.0, 1.0))
    seen: list[float] = []

    async def watch() -> None:
        async with http.get(f"{CM}?watch=true&resourceVersion={emulator.resource_version}") as r:
            async for line in r.content:
                if line.strip() and json.loads(line)["type"] == "MODIFIED":
                    seen.append(time.monotonic())
                    return

    watching = asyncio.create_task(watch())
    await emulator.wait_for(lambda: emulator.watching() == 1)
    status, body, _ = await call(
        http, "PATCH", f"{CM}/a", {"data": {"k": "2"}}, **{"Content-Type": MERGE}
    )
    answered = time.monotonic()
    await watching
    assert status == 200 and body["data"] == {"k": "2"}
    assert seen and answered - seen[0] >= 0.9  # the event came first, a second before
    assert [(i.fault, i.detail) for i in emulator.faults.injected] == [(Fault.LATE, "1.000s")]
    status, _, _ = await call(http, "GET", f"{CM}/a")  # reads: never late
    assert status == 200 and len(emulator.faults.injected) == 1


async def test_a_dropped_watch_ends_cleanly_after_a_while(
    emulator: FaultyEmulator, http: Any
) -> None:
    emulator.create(cm("a"))
    emulator.faults = only(Fault.DROP_WATCH, watch_lifetime=(0.3, 0.3), abrupt=0.0)
    started = time.monotonic()
    events, error = await read_watch(http, "timeoutSeconds=30")
    assert error is None and 0.3 <= time.monotonic() - started < 2
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]
    assert emulator.watching() == 0
    assert emulator.faults.injected[0].detail == "0.300s"


async def test_a_dropped_watch_can_be_cut_abruptly(emulator: FaultyEmulator, http: Any) -> None:
    emulator.create(cm("a"))
    emulator.faults = only(Fault.DROP_WATCH, watch_lifetime=(0.3, 0.3), abrupt=1.0)
    started = time.monotonic()
    events, error = await read_watch(http, "")
    assert isinstance(error, aiohttp.ClientPayloadError), error  # no final chunk
    assert 0.3 <= time.monotonic() - started < 2
    assert [e["type"] for e in events] == ["ADDED"]
    await emulator.wait_for(lambda: emulator.watching() == 0)
    assert emulator.faults.injected[0].detail == "0.300s abrupt"
    emulator.faults.enabled = False  # the server is fine afterwards
    status, _, _ = await call(http, "GET", f"{CM}/a")
    assert status == 200


async def test_a_watch_from_a_resource_version_can_expire(
    emulator: FaultyEmulator, http: Any
) -> None:
    emulator.create(cm("a"))
    since = emulator.resource_version
    emulator.create(cm("b"))
    emulator.faults = only(Fault.EXPIRED)
    events, error = await read_watch(http, f"resourceVersion={since}")
    assert error is None
    (event,) = events
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert f"too old resource version: {since}" in event["object"]["message"]
    # Without a resourceVersion there is nothing to expire: a normal (clean) watch.
    emulator.faults = only(Fault.EXPIRED)
    events, error = await read_watch(http, "timeoutSeconds=1")
    assert error is None and [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert emulator.faults.injected == []


async def test_watches_can_have_their_own_rate(emulator: FaultyEmulator, http: Any) -> None:
    emulator.create(cm("a"))
    emulator.faults = FaultPolicy(
        rate=0.0,
        watch_rate=1.0,
        kinds={Fault.INTERNAL_ERROR},
        scope=anyone,
        watch_lifetime=(0.2, 0.2),
        abrupt=0.0,
    )
    assert [(await call(http, "GET", f"{CM}/a"))[0] for _ in range(20)] == [200] * 20
    assert emulator.faults.injected == []
    emulator.faults.kinds = {Fault.DROP_WATCH}
    events, error = await read_watch(http, "timeoutSeconds=30")
    assert error is None and [e["type"] for e in events] == ["ADDED"]
    assert [i.fault for i in emulator.faults.injected] == [Fault.DROP_WATCH]


async def test_rate_zero_and_disabled_inject_nothing(emulator: FaultyEmulator, http: Any) -> None:
    emulator.faults = FaultPolicy(rate=0.0, scope=anyone)
    for i in range(20):
        assert (await call(http, "POST", CM, cm(f"c{i}")))[0] == 201
    assert emulator.faults.injected == [] and emulator.faults.seen == 20
    emulator.faults = FaultPolicy(rate=1.0, scope=anyone, enabled=False)
    assert (await call(http, "GET", CM))[0] == 200
    assert emulator.faults.seen == 0


async def test_scope_is_the_operator_and_never_the_tests_helpers(
    emulator: FaultyEmulator, http: Any
) -> None:
    emulator.faults = FaultPolicy(rate=1.0, kinds={Fault.INTERNAL_ERROR}, scope=from_operator)
    emulator.create(cm("a"))  # direct helpers do not go through HTTP
    emulator.patch("configmaps", "default", "a", {"data": {"k": "2"}})
    assert (await call(http, "GET", f"{CM}/a"))[0] == 200  # a test's own aiohttp session
    kopf = {"User-Agent": "kopf/1.45.2"}
    client = {"User-Agent": "OpenAPI-Generator/37.0.2/python"}
    pod = {**client, "Authorization": "Bearer emulated"}  # a solver pod's kubeconfig
    assert (await call(http, "GET", f"{CM}/a", **kopf))[0] == 500
    assert (await call(http, "GET", f"{CM}/a", **client))[0] == 500
    assert (await call(http, "GET", f"{CM}/a", **pod))[0] == 200
    assert (await call(http, "GET", "/api/v1", **kopf))[0] == 200  # discovery: no resource
    assert emulator.faults.seen == 2 and summary(emulator.faults)["internalError"] == 2


async def test_the_real_clients_are_in_scope(emulator: FaultyEmulator, run_operator: Any) -> None:
    """The operator's two clients, as they really send their requests."""
    from vulcan_operator.k8s import Api, ApiError, Ref

    emulator.faults = FaultPolicy(rate=1.0, kinds={Fault.INTERNAL_ERROR}, scope=from_operator)
    emulator.create(cm("a"))
    with pytest.raises(ApiError) as caught:  # kube_config (via run_operator): the emulator
        await Api().get(Ref("v1", "ConfigMap", "default", "a"))
    assert caught.value.status == 500
    emulator.faults.enabled = False
    await run_operator()  # Kopf starts with its watches...
    emulator.faults = FaultPolicy(rate=1.0, kinds={Fault.SLOW}, delay=(0, 0))
    await emulator.wait_for(lambda: any(r.verb == "watch" for r in emulator.log))
    emulator.create(
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanEngine",
            "metadata": {"name": "prod", "namespace": "default"},
            "spec": {"version": "2.0.0"},
        }
    )
    await emulator.wait_for(lambda: emulator.faults.seen > 0, timeout=10)  # type: ignore[union-attr]
    assert {i.verb for i in emulator.faults.injected} <= {"get", "list", "patch", "create"}


async def requests_in_order(emulator: FaultyEmulator, http: Any, order: list[int]) -> list[Any]:
    """Create then patch ConfigMaps, in the given order of names; the faults they got."""
    results = {}
    for i in order:
        status, _, _ = await call(http, "POST", CM, cm(f"n{i}"))
        patched, _, _ = await call(
            http, "PATCH", f"{CM}/n{i}", {"data": {"k": "2"}}, **{"Content-Type": MERGE}
        )
        results[i] = (status, patched)
    assert emulator.faults is not None
    faults = sorted((i.fault, i.verb, i.name or "") for i in emulator.faults.injected)
    return [results[i] for i in sorted(results)] + faults


@pytest.mark.parametrize("seed", [1, 2])
async def test_seeded_runs_are_reproducible_whatever_the_order(seed: int) -> None:
    outcomes = []
    for order in (list(range(30)), list(reversed(range(30))), list(range(30))):
        policy = FaultPolicy(rate=0.3, seed=seed, scope=anyone, delay=(0, 0.01))
        async with (
            FaultyEmulator(controllers=False, faults=policy) as emulator,
            aiohttp.ClientSession(emulator.url) as http,
        ):
            outcomes.append(await requests_in_order(emulator, http, order))
            assert 0 < len(policy.injected) < 60
    assert outcomes[0] == outcomes[1] == outcomes[2]
    other = FaultPolicy(rate=0.3, seed=seed + 100, scope=anyone, delay=(0, 0.01))
    async with (
        FaultyEmulator(controllers=False, faults=other) as emulator,
        aiohttp.ClientSession(emulator.url) as http,
    ):
        assert await requests_in_order(emulator, http, list(range(30))) != outcomes[0]


async def test_the_rate_is_the_share_of_requests(emulator: FaultyEmulator, http: Any) -> None:
    emulator.faults = FaultPolicy(rate=0.2, seed=3, scope=anyone, kinds={Fault.INTERNAL_ERROR})
    statuses = [(await call(http, "GET", f"{CM}?limit={i}"))[0] for i in range(300)]
    share = statuses.count(500) / len(statuses)
    assert 0.13 < share < 0.27, share
    assert emulator.faults.counts()[Fault.INTERNAL_ERROR] == statuses.count(500)
