"""How long the operator's event loop is blocked while it checks large and hostile problems.

    .venv/bin/python bench/loop_lag.py [--seconds 10]

On the API emulator, with the real operator in the same loop: an engine whose one solver slot
is held by a running pod, a queued problem that references ~0.9 MB of block YAML (polled every
second), and an alias bomb. A probe ticks every 20 ms on the loop and reports how late its
ticks came: the longest the loop was blocked. The tests (tests/security/test_problem_limits.py)
check the mechanism (every ConfigMap is read in a worker thread, once per version); this is the
measurement, which depends on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.emulator import Emulator, JobOutcome  # noqa: E402
from tests.support.kopf_runner import OperatorRunner, kube_configuration  # noqa: E402
from tests.support.problems import (  # noqa: E402
    NS,
    alias_bomb,
    big_yaml_problem,
    configmap,
    engine,
    problem_body,
    ref_body,
    small_inline,
)

TICK = 0.02


async def probe(delays: list[float]) -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        delays.append(time.perf_counter() - started - TICK)


def phase(emulator: Emulator, name: str) -> str | None:
    found = emulator.get("schedulingproblems", NS, name)
    return None if found is None else (found.get("status") or {}).get("phase")


async def main(seconds: float) -> None:
    import kubernetes

    from vulcan_operator.main import make_registry

    os.environ["VULCAN_PROBLEM_POLL_SECONDS"] = "1"
    async with Emulator() as emulator:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        emulator.load_crds(ROOT / "crds")
        kubernetes.client.Configuration.set_default(kube_configuration(emulator.url))
        emulator.jobs.by_prefix["busy-"] = JobOutcome.running()
        runner = OperatorRunner(emulator.url, make_registry())
        await runner.start()
        emulator.create(engine("prod", maxConcurrentJobs=1))
        emulator.create(problem_body("busy", **small_inline()))
        await emulator.wait_for(lambda: phase(emulator, "busy") == "Running", 60)

        delays: list[float] = []
        task = asyncio.create_task(probe(delays))
        emulator.create(configmap("big", big_yaml_problem()))
        emulator.create(ref_body("large", "big"))
        emulator.create(configmap("bomb", alias_bomb()))
        emulator.create(ref_body("bomb", "bomb"))
        await emulator.wait_for(lambda: phase(emulator, "large") == "Queued", 60)
        await emulator.wait_for(lambda: phase(emulator, "bomb") == "Failed", 60)
        await asyncio.sleep(seconds)  # the large problem is polled every second meanwhile
        task.cancel()
        await runner.stop()
    print(f"ticks                 {len(delays)} of {TICK * 1000:.0f} ms")
    print(f"loop blocked, worst   {max(delays):.3f} s")
    print(f"loop blocked, p99     {statistics.quantiles(delays, n=100)[98]:.3f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().seconds))
