"""Two shards at scale (issue 19): `vulcan-operator run --shard 0/2` and `--shard 1/2`, each its
own process (the console script, as a Deployment's pod runs it), on one API emulator, with
200 engines spread over 20 namespaces. Not part of the test suite.

    .venv/bin/python bench/shards.py                    # 200 engines, 20 namespaces
    .venv/bin/python bench/shards.py --engines 50 --namespaces 10

Each shard's kubeconfig names the emulator by another host (127.0.0.1, localhost), so the
emulator's request log says which shard made each request. Printed: the time until every engine
is Ready with currentVersion; the namespaces whose requests came from a shard that does not own
them (must be none); writes per engine (Events apart) of each shard and in all (compare with one
operator: bench/scale.py, 17.00 per engine with the default spec); each shard's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from tests.emulator import Emulator  # noqa: E402

from problems_emulator import operator_env, peak_rss_mib  # noqa: E402
from scale import engine_ready  # noqa: E402
from vulcan_operator.sharding import shard_of  # noqa: E402

HOSTS = ("127.0.0.1", "localhost")


def engine(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"version": "2.0.0"},
    }


def secret(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-database", "namespace": namespace},
        "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
    }


def start_shard(k: int, url: str, work: Path) -> tuple[subprocess.Popen[bytes], Any]:
    shard_dir = work / f"shard-{k}"
    shard_dir.mkdir()
    env = operator_env(shard_dir, url)
    log = (shard_dir / "operator.log").open("w")
    command = [str(Path(sys.executable).with_name("vulcan-operator")), "run", f"--shard={k}/2"]
    command += ["--standalone", "--liveness=", "--log-format=plain"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log


async def main(args: argparse.Namespace) -> None:
    namespaces = [f"scale-{i:02d}" for i in range(args.namespaces)]
    engines = [(namespaces[i % len(namespaces)], f"e{i:03d}") for i in range(args.engines)]
    work = Path(tempfile.mkdtemp(prefix="vulcan-shards-"))
    async with Emulator(history_limit=300_000) as emulator:
        port = emulator.url.rsplit(":", 1)[1]
        for ns in namespaces:
            emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        emulator.load_crds(ROOT / "crds")
        shards = [start_shard(k, f"http://{HOSTS[k]}:{port}", work) for k in (0, 1)]
        try:
            await emulator.wait_for(lambda: emulator.watching() >= 6, timeout=120)
            mark, started = emulator.mark(), time.perf_counter()
            for ns, name in engines:
                emulator.create(secret(ns, name))
                emulator.create(engine(ns, name))

            def converged() -> bool:
                items = [i for ns in namespaces for i in emulator.list("vulcanengines", ns)]
                return len(items) == len(engines) and all(engine_ready(i) for i in items)

            await emulator.wait_for(converged, timeout=args.timeout, interval=2.0)
            took = time.perf_counter() - started
            await asyncio.sleep(3)  # trailing writes of the last reconciles
            requests = emulator.requests(since=mark)
            rss = [peak_rss_mib(p.pid)[0] for p, _ in shards]
        finally:
            for process, log in shards:
                process.terminate()
                process.wait(timeout=30)
                log.close()

    owner = {ns: f"{HOSTS[shard_of(ns, 2)]}:{port}" for ns in namespaces}
    ours = [r for r in requests if r.namespace in owner]
    crossed = sorted({str(r.namespace) for r in ours if r.host != owner[str(r.namespace)]})
    writes = [r for r in ours if r.is_write and r.resource != "events"]
    by_host = collections.Counter(r.host for r in writes)
    owned = collections.Counter(owner[ns] for ns, _ in engines)
    print(f"\n{len(engines)} engines in {len(namespaces)} namespaces, 2 shards (processes)")
    print(f"  all Ready with currentVersion after {took:.1f} s")
    print(f"  namespaces touched by a shard that does not own them: {crossed or 'none'}")
    for k, host in enumerate(HOSTS):
        key = f"{host}:{port}"
        print(
            f"  shard {k}/2: {owned[key]} engines, {by_host[key]} writes "
            f"({by_host[key] / max(owned[key], 1):.2f} per engine), peak RSS {rss[k]:.0f} MiB"
        )
    print(f"  writes per engine, both shards: {len(writes) / len(engines):.2f} (Events apart)")
    print(f"  load average: {os.getloadavg()[0]:.1f}; logs in {work}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800.0)
    asyncio.run(main(parser.parse_args()))
