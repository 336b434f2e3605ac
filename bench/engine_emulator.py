"""Creating VulcanEngines on the API emulator: API writes against the physical minimum, and
the time from applying an engine to all of its children existing.

    .venv/bin/python bench/engine_emulator.py [--engines 20]

The minimum is one create per child object plus one status write for the engine (a real
first reconcile also records its progress). The Job and Deployment simulations answer at once,
so the times measure the operator and the API round trips, not a cluster's kubelets.
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

from tests.emulator import Emulator  # noqa: E402
from tests.support.kopf_runner import OperatorRunner, kube_configuration  # noqa: E402


def engine(name: str) -> dict[str, object]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"version": "2.0.0"},
    }


def secret(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-database", "namespace": "default"},
        "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
    }


def children(emulator: Emulator, name: str) -> list[tuple[str, str]]:
    kinds = (
        "serviceaccounts", "configmaps", "secrets", "deployments", "services",
        "horizontalpodautoscalers", "poddisruptionbudgets", "networkpolicies", "cronjobs",
        "jobs", "persistentvolumeclaims",
    )  # fmt: skip
    found = []
    for kind in kinds:
        for obj in emulator.list(kind, "default", labels=f"vulcan-engine.com/engine={name}"):
            found.append((kind, obj["metadata"]["name"]))
    return found


async def main(count: int) -> None:
    import kubernetes

    from vulcan_operator.main import make_registry

    os.environ.setdefault("VULCAN_RESYNC_SECONDS", "60")
    async with Emulator() as emulator:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        emulator.load_crds(ROOT / "crds")
        kubernetes.client.Configuration.set_default(kube_configuration(emulator.url))
        runner = OperatorRunner(emulator.url, make_registry())
        await runner.start()
        durations, writes, minimum = [], [], []
        for i in range(count):
            name = f"bench-{i}"
            emulator.create(secret(name))
            mark = emulator.mark()
            started = time.perf_counter()
            emulator.create(engine(name))
            await emulator.wait_for(
                lambda name=name: emulator.get("vulcanengines", "default", name)["status"][
                    "currentVersion"
                ],
                timeout=30,
            )
            durations.append(time.perf_counter() - started)
            await asyncio.sleep(0.5)  # let the status writes of this first reconcile land
            made = children(emulator, name)
            expected = len(made) + 1
            ours = [
                w
                for w in emulator.writes(since=mark, events=False)
                if not (w.method == "POST" and w.resource == "vulcanengines")  # the bench's own
            ]
            writes.append(len(ours))
            minimum.append(expected)
        await runner.stop()
    q = statistics.quantiles(durations, n=20)
    print(f"engines created         {count}")
    print(f"children per engine     {minimum[0] - 1} (+1 status write = minimum {minimum[0]})")
    print(f"API writes per engine   mean {statistics.mean(writes):.1f}, max {max(writes)}")
    print(f"writes / minimum        {statistics.mean(writes) / statistics.mean(minimum):.2f}")
    print(f"apply → all children    p50 {statistics.median(durations):.2f} s, p95 {q[18]:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", type=int, default=20)
    asyncio.run(main(parser.parse_args().engines))
