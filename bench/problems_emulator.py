"""500 SchedulingProblems applied at once on the API emulator: time to converge, API writes
per problem, the operator's peak RSS.

    .venv/bin/python bench/problems_emulator.py          # 500 problems, 1 engine, 20 at once
    .venv/bin/python bench/problems_emulator.py --engines 5 --limit 4 --mode hold

Not part of the test suite. The emulator runs in this process; the operator runs as its own
process (what `vulcan-operator run --standalone` runs, through a kubeconfig pointing at the
emulator), so its peak RSS (VmHWM) is its own.

Jobs are fake: the emulator's Job controller ends each solver pod after `--job-seconds` with a
solver summary as its termination message (what the real pod writes), so the operator does all
of its own work (queue, children, Job, outcome, status, Events) and no solver runs.

Modes:
- `succeed` (default): converged when every problem is Succeeded.
- `hold`: pods never end; converged when each engine runs exactly `--limit` Jobs and every other
  problem is Queued with positions 1..n without gaps (the queue is reported correctly).

API writes are the operator's HTTP writes (creates, patches, deletes; Events counted apart).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from tests.emulator import Emulator, JobOutcome, RequestRecord  # noqa: E402

from vulcan_operator import names  # noqa: E402

NS = "default"
API = "vulcan-engine.com/v1alpha1"
SUMMARY = {
    "status": "OPTIMAL",
    "objective": 7,
    "bound": 7,
    "gap": 0.0,
    "makespan": 7,
    "wallSeconds": 0.01,
    "solutions": 1,
    "stopReason": "optimal",
    "explanation": [],
    "configMap": None,
    "scheduleId": None,
    "jobsByPriority": {"1": 2},
    "notes": [],
}


def engine(name: str, limit: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"version": "2.0.0", "solver": {"maxConcurrentJobs": limit}},
    }


def problem(name: str, engine_name: str) -> dict[str, Any]:
    tasks = [{"name": "a", "duration": 3, "machines": ["m1"]}]
    return {
        "apiVersion": API,
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "engineRef": {"name": engine_name},
            "machines": [{"name": "m1"}],
            "jobs": [{"name": "j1", "tasks": tasks}, {"name": "j2", "tasks": tasks}],
        },
    }


def phase_of(item: dict[str, Any]) -> str | None:
    return (item.get("status") or {}).get("phase")


# What `vulcan-operator run --standalone` does, plus Kopf's login through the kubernetes
# client's kubeconfig (a fresh OperatorRegistry has no login handler of its own). With
# BENCH_CLIENT_THREADS=N, the API calls run in N worker threads instead of asyncio's default
# (min(32, CPUs + 4): 6 on 2 cores), to see whether the threads hold the operator back.
OPERATOR = """
import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
import kopf
from vulcan_operator.config import Settings
from vulcan_operator.main import load_kube_config, make_registry
load_kube_config()
registry = make_registry(Settings.from_env())
kopf.on.login(registry=registry)(kopf.login_via_client)
if os.environ.get("BENCH_CLIENT_THREADS"):
    threads = int(os.environ["BENCH_CLIENT_THREADS"])
    @kopf.on.startup(registry=registry)
    async def client_threads(**_):
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads))
kopf.configure(verbose=False, log_format=kopf.LogFormat.PLAIN)
kopf.run(registry=registry, clusterwide=True, standalone=True)
"""


def operator_env(work: Path, url: str, **settings: str) -> dict[str, str]:
    """The environment of an operator process talking to the emulator at `url`: a kubeconfig
    written into `work`, a free metrics port, and the `VULCAN_*` settings given."""
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "bench"}}],
                "contexts": [{"name": "e", "context": {"cluster": "e", "user": "u"}}],
                "current-context": "e",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=str(kubeconfig), VULCAN_METRICS_PORT=str(free_port()), **settings)
    return env


def start_operator(env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    """The operator in its own process."""
    return subprocess.Popen(
        [sys.executable, "-c", OPERATOR], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def stop_operator(operator: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Kopf stops gracefully), SIGKILL after 20 s."""
    operator.terminate()
    try:
        operator.wait(timeout=20)
    except subprocess.TimeoutExpired:
        operator.kill()


def solver_jobs(outcome: JobOutcome) -> Callable[[dict[str, Any]], JobOutcome | None]:
    """An `emulator.jobs.outcome_for` giving solver Jobs `outcome`; other Jobs (an engine's
    migration) get the emulator's default, a plain success."""

    def outcome_for(job: dict[str, Any]) -> JobOutcome | None:
        labels = job.get("metadata", {}).get("labels") or {}
        solver = labels.get(names.LABEL_COMPONENT) == names.COMPONENT_SOLVER
        return outcome if solver else None

    return outcome_for


def problem_status_steps(writes: list[RequestRecord]) -> collections.Counter[tuple[str, ...]]:
    """Per problem, its status writes in order, each as 'phase/Ready reason' (or the fields
    it sets when it sets no condition): how many problems wrote each sequence."""
    steps: dict[str, list[str]] = collections.defaultdict(list)
    for w in writes:
        if w.resource != "schedulingproblems" or w.subresource != "status" or w.verb != "patch":
            continue
        st = (w.body or {}).get("status") or {} if isinstance(w.body, dict) else {}
        ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
        step = f"{st.get('phase', '')}/{ready.get('reason')}" if ready else "+".join(sorted(st))
        steps[str(w.name)].append(step)
    return collections.Counter(tuple(s) for s in steps.values())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process, MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


def request_kind(record: RequestRecord) -> str:
    """'verb resource[/subresource]' of a logged request, e.g. 'patch schedulingproblems/status';
    discovery requests by their path."""
    if record.resource is None:
        return f"{record.verb or record.method.lower()} {record.path}"
    sub = f"/{record.subresource}" if record.subresource else ""
    return f"{record.verb} {record.resource}{sub}"


def converged(items: list[dict[str, Any]], mode: str, limit: int) -> bool:
    statuses = [i.get("status") or {} for i in items]
    if mode == "succeed":
        return all(s.get("phase") == "Succeeded" for s in statuses)
    per_engine: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for item, st in zip(items, statuses, strict=True):
        per_engine[item["spec"]["engineRef"]["name"]].append(st)
    for states in per_engine.values():
        running = [s for s in states if s.get("phase") in ("Pending", "Running")]
        queued = sorted(s.get("queuePosition") or 0 for s in states if s.get("phase") == "Queued")
        if len(running) != min(limit, len(states)) or len(running) + len(queued) != len(states):
            return False
        if queued != list(range(1, len(queued) + 1)):
            return False
    return True


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="vulcan-bench-"))
    async with Emulator(history_limit=100_000) as emulator:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        emulator.load_crds(ROOT / "crds")
        if args.mode == "hold":
            emulator.jobs.outcome_for = solver_jobs(JobOutcome.running())
        else:
            emulator.jobs.outcome_for = solver_jobs(
                JobOutcome.succeed(message=json.dumps(SUMMARY), delay=args.job_seconds)
            )
        engines = [f"e{i}" for i in range(args.engines)]
        for name in engines:
            emulator.create(engine(name, args.limit))

        env = operator_env(work, emulator.url, VULCAN_PROBLEM_POLL_SECONDS=str(args.poll))
        log = (work / "operator.log").open("w")
        operator = start_operator(env, log)
        try:
            await emulator.wait_for(lambda: emulator.watching() >= 3, timeout=60)
            await asyncio.sleep(2)  # let the engines settle (their own children and status)
            mark = emulator.mark()
            operator_cpu = cpu_seconds(operator.pid)
            own_cpu = time.process_time()
            names = [f"p{i:04d}" for i in range(args.problems)]
            started = time.perf_counter()
            for i, name in enumerate(names):
                emulator.create(problem(name, engines[i % len(engines)]))
            applied = time.perf_counter() - started
            peak_rss = 0.0
            while True:
                items = emulator.list("schedulingproblems", NS)
                peak_rss = max(peak_rss, peak_rss_mib(operator.pid)[0])
                if converged(items, args.mode, args.limit):
                    break
                if time.perf_counter() - started > args.timeout:
                    phases = collections.Counter(phase_of(i) for i in items)
                    raise SystemExit(f"not converged in {args.timeout} s: {dict(phases)}")
                await asyncio.sleep(1.0)
            elapsed = time.perf_counter() - started
            operator_cpu = cpu_seconds(operator.pid) - operator_cpu
            own_cpu = time.process_time() - own_cpu
            await asyncio.sleep(args.settle)  # trailing writes (finalizers let go, Events)
            writes = emulator.writes(since=mark)
            hwm, rss = peak_rss_mib(operator.pid)
        finally:
            stop_operator(operator)
            log.close()

    kinds = collections.Counter(request_kind(r) for r in writes)
    events = sum(n for k, n in kinds.items() if k.endswith(" events"))
    n = args.problems
    print(
        f"{n} problems, {args.engines} engine(s), {args.limit} solver Jobs at once per engine, "
        f"mode {args.mode}, job {args.job_seconds:g} s, poll {args.poll} s"
    )
    print(f"  applied in {applied:.2f} s; converged {elapsed:.1f} s after the first create")
    print(
        f"  CPU meanwhile: operator {operator_cpu:.1f} s, emulator and Job simulation "
        f"(this process) {own_cpu:.1f} s"
    )
    print(
        f"  API writes: {len(writes)} ({len(writes) / n:.1f} per problem), of which Events "
        f"{events} ({events / n:.1f} per problem); without Events {(len(writes) - events) / n:.1f}"
    )
    for kind, count in kinds.most_common():
        print(f"    {count:6d}  {count / n:5.2f}/problem  {kind}")
    print("  status writes of each problem, in order (phase/Ready reason; + other fields):")
    for steps, count in problem_status_steps(writes).most_common(8):
        print(f"    {count:6d}  {' -> '.join(steps)}")
    print(f"  operator peak RSS {max(hwm, peak_rss):.0f} MiB (now {rss:.0f} MiB)")
    if args.trace:
        t0 = min(r.time for r in writes)
        for r in writes:
            if r.verb == "create" and r.resource == "jobs":
                print(f"    {r.time - t0:7.2f} s  Job {r.body['metadata']['name']}")
            elif r.resource == "schedulingproblems" and r.subresource == "status":
                st = (r.body or {}).get("status") or {}
                if "phase" in st or "queuePosition" in st:
                    print(
                        f"    {r.time - t0:7.2f} s  {r.name} {st.get('phase', '')} "
                        f"{st.get('queuePosition', '')}"
                    )
    print(f"  operator log: {work / 'operator.log'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--engines", type=int, default=1)
    parser.add_argument("--limit", type=int, default=20, help="maxConcurrentJobs per engine")
    parser.add_argument("--mode", choices=["succeed", "hold"], default="succeed")
    parser.add_argument("--job-seconds", type=float, default=0.5, help="fake pod run time")
    parser.add_argument("--poll", type=int, default=10, help="VULCAN_PROBLEM_POLL_SECONDS")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--trace", action="store_true", help="print when each Job was created")
    asyncio.run(main(parser.parse_args()))
