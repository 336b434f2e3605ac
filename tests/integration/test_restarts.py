"""A killed operator, restarted, ends where it ends when nothing happens to it.

Twenty seeded runs of one engine, three tiny SchedulingProblems and one VulcanBackup. In each,
the operator is killed one to three times, at points drawn from the seed among its first
`WINDOW` API requests (the work of a fault-free run: from its start-up scan to the last status),
and started again as a new process: a hard stop (the stop flag, then an immediate cancel: no
grace for handlers in flight, no draining of Kopf's queues), and a fresh handler registry (no
in-memory state survives, as in a new pod). The kill points are counted from the operator's
requests as the emulator sees them, polled every 2 ms, so a kill lands within a burst, not on
its exact request. The normalised end state must equal the one of a run without kills, with
one Job per problem, backup and install.

Solver Jobs end at once with the termination message the real solver pod writes
(`faults_scenario.solved_message`): twenty runs of the real solver would not fit in a minute.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

import kopf
import pytest

from tests.emulator import FaultPolicy, FaultyEmulator
from tests.support.faults_scenario import ENV, Scenario, run_scenario
from tests.support.kopf_runner import OperatorRunner

SCENARIO = Scenario.of(3)
SEEDS = range(20)
KILLS = (1, 3)  # per run, inclusive
#: Kill points are drawn from the first this many requests of the operator: about what a
#: fault-free run makes to get done (140-180, with its resyncs), fixed so the points depend
#: on the seed alone.
WINDOW = 150
_BASELINE: dict[str, Any] = {}
TOTALS: dict[str, float] = {"runs": 0, "kills": 0, "seconds": 0.0}


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


def killable() -> kopf.OperatorRegistry:
    """The operator's registry, for a process that is killed: no wait for its queues."""
    from vulcan_operator.main import make_registry

    registry = make_registry()

    @kopf.on.startup(registry=registry)
    def no_drain(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.queueing.exit_timeout = 0.0

    return registry


async def baseline() -> tuple[dict[str, Any], int]:
    """The end state without kills, and how many requests the operator made to get there
    (one run per session)."""
    if not _BASELINE:
        counter = FaultPolicy(rate=0.0)  # no faults: it counts the operator's requests
        run = await run_scenario(SCENARIO, faults=counter, registry=killable, timeout=120)
        problems = run.state["problems"].values()
        assert [p["phase"] for p in problems] == ["Succeeded"] * len(SCENARIO.problems)
        assert set(run.state["jobsCreated"].values()) == {1}, run.state["jobsCreated"]
        _BASELINE.update(state=run.state, requests=run.requests)
    return _BASELINE["state"], _BASELINE["requests"]


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_killed_operator_converges_after_restarts(seed: int) -> None:
    want, busy = await baseline()
    assert WINDOW / 2 < busy < WINDOW * 2, busy  # the window still covers the work
    rng = random.Random(seed)
    counter = FaultPolicy(rate=0.0)
    kills: list[int] = []

    async def chaos(emulator: FaultyEmulator, runner: OperatorRunner) -> None:
        # Anywhere in the work of a fault-free run (a restarted operator repeats some of it,
        # so the later points too fall while there is work left).
        points = sorted(rng.sample(range(1, WINDOW + 1), rng.randint(*KILLS)))
        for target in points:
            with contextlib.suppress(TimeoutError):  # idle before that: killed idle
                await emulator.wait_for(
                    lambda t=target: counter.seen >= t,  # type: ignore[misc]
                    timeout=10,
                    interval=0.002,
                )
            await runner.stop(grace=0)
            kills.append(counter.seen)
            runner.replace_registry(killable())
            await runner.start()

    started = time.monotonic()
    run = await run_scenario(
        SCENARIO, faults=counter, want=want, chaos=chaos, registry=killable, timeout=120
    )
    assert run.state == want
    assert set(run.job_creations.values()) == {1}, run.job_creations  # no Job made twice
    assert run.starts == 1 + len(kills)
    TOTALS["runs"] += 1
    TOTALS["kills"] += len(kills)
    TOTALS["seconds"] += time.monotonic() - started
    print(f"\nseed {seed}: killed after requests {kills}; {run.seconds:.1f}s; {TOTALS}")
