"""The real operator under API faults ends where it ends without them.

One engine, ten tiny SchedulingProblems solved by the REAL solver pod command (through the
same `SolverPodBridge` the problem tests use) and one VulcanBackup, first on a faultless
emulator (the baseline), then with 15 % of the operator's requests failing or slowed (409 on
writes, 429 with Retry-After, 500, slow answers) and half of its watch requests dropped, cut
or expired (410). The normalised end states (`faults_scenario.end_state`) must be equal: the
same objects, phases, results and conditions, one Job per problem, backup and install, and
complete statuses. The solver pods' own API calls are not faulted (they are not the operator).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.emulator import Fault, FaultPolicy, FaultyEmulator, RequestRecord
from tests.emulator.faults import summary
from tests.support.faults_scenario import ENV, Scenario, run_scenario
from vulcan_operator.k8s import Api, ApiError, Ref
from vulcan_operator.k8s import client as k8s

SCENARIO = Scenario.of(10, real_solver=True)
RATE = 0.15
WATCH_RATE = 0.5
SEED = 8  # a seed whose draws hit watches with every watch fault (drops, 410s)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


async def test_faults_change_nothing_in_the_end(tmp_path: Path) -> None:
    base = await run_scenario(SCENARIO, pods_dir=tmp_path / "base", timeout=240)
    problems = base.state["problems"]
    assert [p["phase"] for p in problems.values()] == ["Succeeded"] * 10
    assert all(
        p["result"]["status"] == "OPTIMAL" and p["resultComplete"] for p in problems.values()
    )
    assert base.state["backups"]["manual-1"]["phase"] == "Succeeded"
    assert set(base.state["jobsCreated"].values()) == {1}, base.state["jobsCreated"]

    # Every kind, late answers too (a write done and watched before its answer comes).
    policy = FaultPolicy(rate=RATE, watch_rate=WATCH_RATE, seed=SEED, kinds=frozenset(Fault))
    faulty = await run_scenario(
        SCENARIO, faults=policy, want=base.state, pods_dir=tmp_path / "faulty", timeout=240
    )
    assert faulty.state == base.state
    # No Job was created twice (the counts above come from the stored history, these from
    # the API's answers), and the operator never stopped.
    assert set(faulty.job_creations.values()) == {1}, faulty.job_creations
    assert faulty.starts == 1
    # Every kind of fault happened, to both of the operator's clients.
    counts = policy.counts()
    assert all(counts[kind] > 0 for kind in Fault), counts
    assert {i.client for i in policy.injected} == {"kopf", "OpenAPI-Generator"}
    by_target = Counter((i.client, i.fault.value, i.verb) for i in policy.injected)
    print(
        f"\nfaults: {summary(policy)}; baseline {base.seconds:.1f}s, "
        f"under faults {faulty.seconds:.1f}s\n{dict(by_target)}"
    )


# --- the operator's own client: transient answers are retried ---------------------------------


def first(count: int) -> Any:
    """A scope: the first `count` requests of the operator's client, then none."""
    seen = 0

    def scope(raw: Any, record: RequestRecord) -> bool:
        nonlocal seen
        if raw.headers.get("User-Agent", "").startswith("OpenAPI-Generator/") and seen < count:
            seen += 1
            return True
        return False

    return scope


def configmap(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": "v"},
    }


CM = Ref("v1", "ConfigMap", "default", "a")


@pytest.mark.emulator(cls=FaultyEmulator, controllers=False)
@pytest.mark.parametrize("fault", [Fault.INTERNAL_ERROR, Fault.TOO_MANY_REQUESTS, Fault.CONFLICT])
async def test_transient_answers_are_retried(
    emulator: FaultyEmulator, kube_config: Any, fault: Fault
) -> None:
    emulator.create(configmap("a"))
    emulator.faults = FaultPolicy(rate=1.0, kinds={fault}, scope=first(2), retry_after=1)
    started = time.monotonic()
    patched = await Api().patch(CM, {"data": {"k": "2"}})
    assert patched["data"] == {"k": "2"}
    code = {Fault.INTERNAL_ERROR: 500, Fault.TOO_MANY_REQUESTS: 429, Fault.CONFLICT: 409}[fault]
    assert [r.status for r in emulator.log if r.verb == "patch"] == [code, code, 200]
    if fault is Fault.TOO_MANY_REQUESTS:  # Retry-After: 1, longer than the backoffs
        assert time.monotonic() - started >= 2.0


@pytest.mark.emulator(cls=FaultyEmulator, controllers=False)
async def test_answers_that_are_answers_are_not_retried(
    emulator: FaultyEmulator, kube_config: Any
) -> None:
    created = emulator.create(configmap("a"))
    api = Api()
    with pytest.raises(ApiError) as caught:  # a precondition that failed: a real conflict
        await api.patch(CM, {"metadata": {"resourceVersion": "1"}, "data": {"k": "2"}})
    assert caught.value.status == 409
    with pytest.raises(ApiError) as caught:
        await api.create(configmap("a"))
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")
    assert await api.get(Ref("v1", "ConfigMap", "default", "b")) is None
    assert [r.verb for r in emulator.log] == ["patch", "create", "get"]
    assert emulator.get("configmaps", "default", "a") == created


@pytest.mark.emulator(cls=FaultyEmulator, controllers=False)
async def test_persistent_failures_reach_the_handler(
    emulator: FaultyEmulator, kube_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(k8s, "RETRY_BACKOFFS", (0.01, 0.01))
    emulator.faults = FaultPolicy(rate=1.0, kinds={Fault.INTERNAL_ERROR}, scope=first(10))
    with pytest.raises(ApiError) as caught:
        await Api().get(CM)
    assert caught.value.status == 500 and len(emulator.log) == 3
