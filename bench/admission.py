"""Admission webhook latency: real AdmissionReview requests over HTTPS to the real operator
(Kopf's webhook server, generated certificate) on the API emulator, one at a time.

    .venv/bin/python bench/admission.py [--rounds 5]

Each round posts every document of tests/data/invalid (refused; not the three that bring
their own ConfigMap, of one name), of examples/ and tests/data/valid (admitted), and a
problem with 800 machines and 2,000 tasks near the size caps (admitted, with a warning,
checked against its engine's caps); a problem or restore reads the engine, ConfigMap or
VulcanBackup it names from the API (found or not). Reports p50/p95/max per request; the
target is p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.emulator import Emulator  # noqa: E402
from tests.support import admission  # noqa: E402
from tests.support.kopf_runner import kube_configuration  # noqa: E402

TARGET_MS = 100.0
BENCH_ENGINE = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "VulcanEngine",
    "metadata": {"name": "bench", "namespace": "bench"},
    "spec": {"version": "2.0.0"},
}


def documents() -> list[tuple[str, Any]]:
    """(group, document) of every resource of ours to post; ConfigMaps are applied first."""
    docs: list[tuple[str, Any]] = []
    for group, folder in (("invalid", "tests/data/invalid"), ("valid", "tests/data/valid")):
        for path in sorted((ROOT / folder).glob("*.yaml")):
            found = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            if group == "invalid" and any(
                isinstance(d, dict) and d.get("kind") == "ConfigMap" for d in found
            ):
                continue  # three files with a ConfigMap of one name each: the tests post them
            docs += [(group, d) for d in found]
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        docs += [("valid", d) for d in yaml.safe_load_all(path.read_text()) if d is not None]
    machines = [{"name": f"m{i}"} for i in range(800)]
    jobs = [
        {
            "name": f"j{j}",
            "tasks": [
                {"name": f"t{t}", "duration": 5, "machines": [f"m{(j + t) % 800}"]}
                for t in range(10)
            ],
        }
        for j in range(200)
    ]
    big = {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "SchedulingProblem",
        "metadata": {"name": "big", "namespace": "bench"},
        "spec": {"engineRef": {"name": "bench"}, "machines": machines, "jobs": jobs},
    }
    return [*docs, ("near-caps", big)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(rounds: int) -> int:
    import kubernetes

    docs = documents()
    async with Emulator() as emulator:
        emulator.load_crds(ROOT / "crds")
        kubernetes.client.Configuration.set_default(kube_configuration(emulator.url))
        admission.install(emulator)
        emulator.create(BENCH_ENGINE)  # the near-caps problem's engine: its caps are checked
        for _, doc in docs:
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind == "ConfigMap":
                meta = doc["metadata"]
                plural = "configmaps" if doc["kind"] == "ConfigMap" else "vulcanengines"
                if emulator.get(plural, meta.get("namespace", "default"), meta["name"]) is None:
                    emulator.create(doc)
        port = admission.free_port()
        runner = await admission.start(emulator, port)
        client = await admission.serving(emulator, port)
        ours = [
            (group, doc)
            for group, doc in docs
            if (group == "invalid" and not (isinstance(doc, dict) and doc["kind"] == "ConfigMap"))
            or (group != "invalid" and doc.get("kind") in admission.PLURALS)
        ]
        times: dict[str, list[float]] = {}
        try:
            for _ in range(rounds):
                for group, doc in ours:
                    started = time.perf_counter()
                    response = await client.review(doc)
                    elapsed = (time.perf_counter() - started) * 1000
                    times.setdefault(group, []).append(elapsed)
                    assert response["allowed"] is (group != "invalid"), (group, doc, response)
        finally:
            await client.close()
            await runner.stop()
    every = [t for ts in times.values() for t in ts]
    print(f"{'requests':<12}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for group, ts in [*times.items(), ("all", every)]:
        print(
            f"{group:<12}{len(ts):>6}{statistics.median(ts):>10.1f}"
            f"{percentile(ts, 95):>10.1f}{max(ts):>10.1f}"
        )
    p95 = percentile(every, 95)
    print(
        f"p95 {p95:.1f} ms: {'within' if p95 < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
