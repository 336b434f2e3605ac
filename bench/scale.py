"""Scale on the API emulator: 200 VulcanEngines and 2,000 SchedulingProblems applied at once.

    .venv/bin/python bench/scale.py                     # 200 engines x 10 problems, resync 30 s
    .venv/bin/python bench/scale.py --engines 200 --problems-per-engine 10 --resync 30
    .venv/bin/python bench/scale.py --quick             # 10 engines x 3 problems, resync 10 s
    BENCH_CLIENT_THREADS=32 .venv/bin/python bench/scale.py ...   # API calls in 32 threads

Not part of the test suite. As in `problems_emulator.py`, the emulator runs in this process and
the operator as its own process through a kubeconfig; the Prometheus Operator's CRDs are not
installed. Each engine has its `<engine>-database` Secret and the default spec (its first
install runs a migration Job, which the emulator's Job controller succeeds); each problem is
tiny and its solver Job is faked (its pod ends after `--job-seconds` with a solver summary as
its termination message). Only solver Jobs are faked.

Measured:
- convergence: time from the first create until every engine is Ready with
  `status.currentVersion` set, and every problem Succeeded;
- API writes of the operator (creates, patches, deletes; Events apart) per engine and per
  problem, against the physical minimum: each object it created, once, plus one status write;
- the operator's peak RSS (VmHWM) and CPU seconds;
- idle resyncs: after convergence, `--idle-periods` (at least 2) full resync periods with nothing
  changed: the operator's writes then (must be 0; each is printed with its path otherwise) and
  its GET/LIST requests per resync period.

Writes and reads are attributed by name: engines are `e000...`, problems `p00000...`, and every
child is named after its owner; Events by their involvedObject.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.emulator import Emulator, JobOutcome, RequestRecord  # noqa: E402

from engine_emulator import engine, secret  # noqa: E402
from problems_emulator import (  # noqa: E402
    NS,
    SUMMARY,
    cpu_seconds,
    operator_env,
    peak_rss_mib,
    phase_of,
    problem,
    problem_status_steps,
    request_kind,
    solver_jobs,
    start_operator,
    stop_operator,
)

OWNERS = {"VulcanEngine": "engine", "SchedulingProblem": "problem"}


def engine_ready(item: dict[str, Any]) -> bool:
    st = item.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
    )
    return ready and st.get("phase") == "Ready" and bool(st.get("currentVersion"))


def object_name(r: RequestRecord) -> str:
    return r.name or ((r.body or {}).get("metadata") or {}).get("name") or ""


def owner_of(r: RequestRecord) -> str:
    """'engine', 'problem' or 'other': whose request this is (see the naming above)."""
    if r.resource == "vulcanengines":
        return "engine"
    if r.resource == "schedulingproblems":
        return "problem"
    if r.resource == "events" and r.method == "POST":
        kind = ((r.body or {}).get("involvedObject") or {}).get("kind")
        return OWNERS.get(str(kind), "other")
    selector = re.search(r"=([ep]\d+[-\w.]*)(,|$)", r.query.get("labelSelector", ""))
    name = object_name(r) or (selector[1] if selector else "")
    if re.match(r"e\d+(-|$)", name):
        return "engine"
    if re.match(r"p\d+(-|$)", name):
        return "problem"
    return "other"


def resyncs(reads: list[RequestRecord], gap: float) -> int:
    """How many engine reconciles the reads come from: per engine, bursts of requests more
    than `gap` seconds apart."""
    times = collections.defaultdict(list)
    for r in reads:
        if m := re.match(r"(e\d+)(-|$)", object_name(r)):
            times[m[1]].append(r.time)
    return sum(1 + sum(b - a > gap for a, b in itertools.pairwise(t)) for t in times.values())


def done_times(writes: list[RequestRecord], epoch: float) -> dict[str, list[float]]:
    """Seconds from `epoch` to each engine's status write setting currentVersion, and to each
    problem's status write saying Succeeded (the first such write of each object)."""
    done: dict[str, dict[str, float]] = {"engine": {}, "problem": {}}
    for r in writes:
        if r.subresource != "status" or not isinstance(r.body, dict) or r.status != 200:
            continue
        st = r.body.get("status") or {}
        if r.resource == "vulcanengines" and st.get("currentVersion"):
            done["engine"].setdefault(str(r.name), r.time - epoch)
        elif r.resource == "schedulingproblems" and st.get("phase") == "Succeeded":
            done["problem"].setdefault(str(r.name), r.time - epoch)
    return {who: sorted(times.values()) for who, times in done.items()}


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    q = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
    return f"p50 {q[9]:.0f} s, p95 {q[18]:.0f} s, max {values[-1]:.0f} s"


def is_event(r: RequestRecord) -> bool:
    return r.resource == "events"


def breakdown(requests: Iterable[RequestRecord]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((owner_of(r), request_kind(r)) for r in requests)


# Kopf's routine notes (the operator logs in Kopf's plain format: messages without levels).
ROUTINE = re.compile(
    r"(Handler|Timer|Daemon|Activity|Index) '.*' succeeded\.|Initial authentication has"
    r"|is processed: \d+ succeeded; 0 failed\.|Signal SIG\w+ is received"
    r"|Daemon '.*' (has exited|is cancelled|is signalled to exit)"
)


def operator_log_unusual(path: Path, limit: int = 15) -> tuple[int, list[tuple[int, str]]]:
    """Lines of the operator's log other than Kopf's routine notes: how many, and the distinct
    ones (numbers and generated names masked) with their counts, most frequent first."""
    seen: collections.Counter[str] = collections.Counter()
    first: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip() or ROUTINE.search(line):
            continue
        key = re.sub(r"[a-z0-9]*\d[a-z0-9]*", "N", line)[:160]
        seen[key] += 1
        first.setdefault(key, line[:300])
    return sum(seen.values()), [(n, first[k]) for k, n in seen.most_common(limit)]


def patch_shape(r: RequestRecord) -> str:
    """What a patch of one of our resources touches: JSON-patch ops, or merge-patch keys."""
    if isinstance(r.body, list):
        return "json " + ", ".join(f"{o.get('op')} {o.get('path')}" for o in r.body)
    body = r.body if isinstance(r.body, dict) else {}
    meta = body.get("metadata") or {}
    keys = [
        f"metadata.{k}" + (f"{sorted(v)}" if isinstance(v, dict) else "") for k, v in meta.items()
    ]
    return "merge " + ", ".join(keys + [k for k in body if k != "metadata"])


def save_json(path: Path, figures: dict[str, float]) -> None:
    path.write_text(json.dumps(figures, indent=1) + "\n")


class Sampler:
    """The operator's peak RSS, sampled (VmHWM is the kernel's own peak anyway)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0

    def sample(self) -> tuple[float, float]:
        hwm, rss = peak_rss_mib(self.pid)
        self.peak = max(self.peak, hwm)
        return hwm, rss


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="vulcan-scale-"))
    n_engines, per_engine = args.engines, args.problems_per_engine
    n_problems = n_engines * per_engine
    engines = [f"e{i:03d}" for i in range(n_engines)]
    problems = [(f"p{i:05d}", engines[i % n_engines]) for i in range(n_problems)]
    load = {"start": os.getloadavg()}
    wall0 = time.perf_counter()
    async with Emulator(history_limit=args.history) as emulator:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        emulator.load_crds(ROOT / "crds")  # ours only: no monitoring.coreos.com CRDs
        emulator.jobs.outcome_for = solver_jobs(
            JobOutcome.succeed(message=json.dumps(SUMMARY), delay=args.job_seconds)
        )
        env = operator_env(
            work,
            emulator.url,
            VULCAN_RESYNC_SECONDS=str(args.resync),
            VULCAN_PROBLEM_POLL_SECONDS=str(args.poll),
        )
        log_path = work / "operator.log"
        log = log_path.open("w")
        operator = start_operator(env, log)
        sampler = Sampler(operator.pid)
        try:
            await emulator.wait_for(lambda: emulator.watching() >= 3, timeout=60)
            await asyncio.sleep(2)  # every watch open
            idle_rss = sampler.sample()[1]
            mark = emulator.mark()
            cpu0, own0 = cpu_seconds(operator.pid), time.process_time()

            started, epoch = time.perf_counter(), time.time()
            for name in engines:
                emulator.create(secret(name))
                emulator.create(engine(name))
            for name, engine_name in problems:
                emulator.create(problem(name, engine_name))
            applied = time.perf_counter() - started

            engines_at = problems_at = None
            while True:
                now = time.perf_counter() - started
                sampler.sample()
                if engines_at is None:
                    items = emulator.list("vulcanengines", NS)
                    if len(items) == n_engines and all(engine_ready(i) for i in items):
                        engines_at = now
                if problems_at is None:
                    items = emulator.list("schedulingproblems", NS)
                    if all(phase_of(i) == "Succeeded" for i in items):
                        problems_at = now
                if engines_at is not None and problems_at is not None:
                    break
                if now > args.timeout:
                    eng = collections.Counter(
                        (i.get("status") or {}).get("phase")
                        for i in emulator.list("vulcanengines", NS)
                    )
                    pro = collections.Counter(
                        phase_of(i) for i in emulator.list("schedulingproblems", NS)
                    )
                    raise SystemExit(
                        f"not converged in {args.timeout:g} s: engines {dict(eng)}, "
                        f"problems {dict(pro)}; operator log {log_path}"
                    )
                await asyncio.sleep(args.interval)
            converged_at = max(engines_at, problems_at)
            cpu_converge = cpu_seconds(operator.pid) - cpu0
            own_converge = time.process_time() - own0
            load["converged"] = os.getloadavg()

            await asyncio.sleep(args.settle)  # trailing writes (daemons stopping, Events)
            writes = emulator.writes(since=mark)
            requests = emulator.requests(since=mark)
            hwm_converged = sampler.sample()[0]

            # Idle: nothing changes; every engine's resync timer fires at least once per
            # period, so the window holds at least `idle_periods` - 1 complete resyncs of each.
            idle_mark = emulator.mark()
            cpu_idle0 = cpu_seconds(operator.pid)
            window = args.idle_periods * args.resync
            t_idle = time.perf_counter()
            while time.perf_counter() - t_idle < window:
                sampler.sample()
                await asyncio.sleep(min(5.0, window))
            window = time.perf_counter() - t_idle
            idle = emulator.requests(since=idle_mark)
            cpu_idle = cpu_seconds(operator.pid) - cpu_idle0
            hwm, rss = sampler.sample()
            failures = list(emulator.failures)
        finally:
            stop_operator(operator)
            log.close()
    load["end"] = os.getloadavg()
    wall = time.perf_counter() - wall0

    figures = report(
        args,
        n_problems=n_problems,
        applied=applied,
        engines_at=engines_at,
        problems_at=problems_at,
        converged_at=converged_at,
        writes=writes,
        requests=requests,
        epoch=epoch,
        idle=idle,
        window=window,
        cpu=(cpu_converge, own_converge, cpu_idle),
        rss=(idle_rss, hwm_converged, max(hwm, sampler.peak), rss),
        load=load,
        wall=wall,
    )
    if args.json:
        save_json(Path(args.json), figures)
    unusual, lines = operator_log_unusual(log_path)
    print(f"\noperator log {log_path}: {unusual} lines besides Kopf's routine notes")
    for count, line in lines:
        print(f"  {count:6d}  {line}")
    if failures:
        print(f"emulator failures: {failures!r}")


def report(
    args: argparse.Namespace,
    *,
    n_problems: int,
    applied: float,
    engines_at: float,
    problems_at: float,
    converged_at: float,
    writes: list[RequestRecord],
    requests: list[RequestRecord],
    epoch: float,
    idle: list[RequestRecord],
    window: float,
    cpu: tuple[float, float, float],
    rss: tuple[float, float, float, float],
    load: dict[str, tuple[float, float, float]],
    wall: float,
) -> dict[str, float]:
    """Print the figures; return the main ones (for --json and bench/curves.py)."""
    n = {"engine": args.engines, "problem": n_problems}
    events = [w for w in writes if is_event(w)]
    api = [w for w in writes if not is_event(w)]
    # The physical minimum: every object the operator made, created once, + one status write.
    made = collections.defaultdict(set)
    for w in api:
        if w.verb == "create" and w.status is not None and w.status < 300:
            made[owner_of(w)].add((w.resource, object_name(w)))
    failed = [w for w in writes if w.status is not None and w.status >= 400]
    by_owner = collections.Counter(owner_of(w) for w in api)
    events_by_owner = collections.Counter(owner_of(w) for w in events)

    def row(label: str, value: str) -> None:
        print(f"| {label:<44} | {value:<44} |")

    print(
        f"\n{args.engines} engines (default spec, own database Secret) x "
        f"{args.problems_per_engine} problems = {n_problems} problems; "
        f"VULCAN_RESYNC_SECONDS={args.resync}, VULCAN_PROBLEM_POLL_SECONDS={args.poll}, "
        f"fake solver pods {args.job_seconds:g} s, no Prometheus Operator CRDs\n"
    )
    print(f"| {'measure':<44} | {'value':<44} |")
    print(f"|{'-' * 46}|{'-' * 46}|")
    row("applied (secrets, engines, problems)", f"{applied:.1f} s")
    row("all engines Ready + currentVersion", f"{engines_at:.1f} s after the first create")
    row("all problems Succeeded", f"{problems_at:.1f} s after the first create")
    row("converged", f"{converged_at:.1f} s ({n_problems / converged_at:.1f} problems/s)")
    done = done_times(writes, epoch)
    for who in ("engine", "problem"):
        row(f"  each {who} done ({len(done[who])} seen)", percentiles(done[who]))
    ops = [r for r in requests if r.verb != "watch" and r.time - epoch <= converged_at]
    row("operator requests to convergence", f"{len(ops)} ({len(ops) / converged_at:.0f}/s)")
    split = collections.Counter(owner_of(r) for r in ops)
    row(
        "  of which for engines / problems / other",
        f"{split['engine']} / {split['problem']} / {split['other']}",
    )
    for who in ("engine", "problem"):
        count, children = n[who], len(made[who])
        if not count:
            continue
        row(
            f"API writes per {who} (no Events)",
            f"{by_owner[who] / count:.2f} (minimum {children / count + 1:.2f} = "
            f"{children / count:.2f} created + 1 status)",
        )
        row(f"Events per {who}", f"{events_by_owner[who] / count:.2f}")
    if by_owner["other"] or events_by_owner["other"]:
        row("writes not attributed", f"{by_owner['other']} (+{events_by_owner['other']} Events)")
    row("failed writes (4xx/5xx)", f"{len(failed)}")
    row("operator CPU to convergence", f"{cpu[0]:.1f} s ({cpu[0] / converged_at:.0%} of a core)")
    row("emulator + Job simulation CPU (bench)", f"{cpu[1]:.1f} s")
    row("operator RSS before the apply", f"{rss[0]:.0f} MiB")
    row("operator peak RSS (VmHWM) at convergence", f"{rss[1]:.0f} MiB")
    row("operator peak RSS (VmHWM) at the end", f"{rss[2]:.0f} MiB (now {rss[3]:.0f} MiB)")
    idle_writes = [r for r in idle if r.is_write]
    reads = [r for r in idle if r.method == "GET" and r.verb != "watch"]
    watches = [r for r in idle if r.verb == "watch"]
    periods = window / args.resync
    row("idle window", f"{window:.0f} s = {periods:.1f} resync periods")
    row("operator writes in the idle window", f"{len(idle_writes)}")
    reconciles = resyncs(reads, args.resync / 2)
    row(
        "operator GET/LIST per resync period",
        f"{len(reads) / periods:.0f} ({len(reads) / periods / args.engines:.1f} per engine)",
    )
    row(
        "engine resyncs in the idle window",
        f"{reconciles} ({len(reads) / max(reconciles, 1):.1f} GET/LIST each)",
    )
    row("watch requests in the idle window", f"{len(watches)}")
    row("operator CPU per idle resync period", f"{cpu[2] / periods:.2f} s")
    row("load average (1 min) start/converged/end", "/".join(f"{load[k][0]:.1f}" for k in load))
    row("bench wall time", f"{wall:.0f} s")

    print("\nwrites to convergence, by owner and request (per owner object):")
    for (who, kind), count in sorted(breakdown(writes).items(), key=lambda kv: -kv[1]):
        print(f"  {count:7d}  {count / n.get(who, 1):6.2f}/{who:<7}  {kind}")
    shapes = collections.Counter(
        (request_kind(w), patch_shape(w))
        for w in api
        if w.verb == "patch"
        and w.resource in ("vulcanengines", "schedulingproblems")
        and not w.subresource
    )
    print("\nstatus writes of each problem, in order (phase/Ready reason; + other fields):")
    for steps, count in problem_status_steps(api).most_common(12):
        print(f"  {count:7d}  {' -> '.join(steps)}")
    print("\npatches of the custom resources themselves (not status):")
    for (kind, shape), count in shapes.most_common():
        print(f"  {count:7d}  {kind}: {shape}")
    if failed:
        print("failed writes:")
        for (kind, status), count in collections.Counter(
            (request_kind(w), w.status) for w in failed
        ).most_common():
            print(f"  {count:7d}  {status}  {kind}")
    print("\nthe first engine's own writes, in order (its children's creates apart):")
    for w in api:
        if w.resource == "vulcanengines" and w.name == "e000":
            status = (w.body or {}).get("status") if isinstance(w.body, dict) else None
            said = ""
            if isinstance(status, dict):
                ready = next(
                    (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
                )
                said = f"{status.get('phase')}/{ready.get('reason')} {sorted(status)}"
            shape = said or patch_shape(w)
            print(f"  {w.time - epoch:6.1f} s  {w.status}  {request_kind(w)}: {shape[:150]}")
    print("\nreads per resync period in the idle window:")
    for (who, kind), count in sorted(breakdown(reads).items(), key=lambda kv: -kv[1]):
        print(f"  {count / periods:9.1f}  {who:<7}  {kind}")
    resynced = {m[1] for r in reads if (m := re.fullmatch(r".*/secrets/(e\d+)-database", r.path))}
    print(
        f"  engines resynced in the window (database Secret read): {len(resynced)}/{args.engines}"
    )
    if idle_writes:
        print(f"\nIDLE WRITES ({len(idle_writes)}):")
        for r in idle_writes[:50]:
            body = json.dumps(r.body, sort_keys=True)[:300] if r.body is not None else ""
            print(f"  {r.time - idle[0].time:6.1f} s  {r.method} {r.path} {r.status}  {body}")
    return {
        "engines": args.engines,
        "problems": n_problems,
        "converged_s": converged_at,
        "writes_per_engine": by_owner["engine"] / args.engines,
        "min_writes_per_engine": len(made["engine"]) / args.engines + 1,
        "writes_per_problem": by_owner["problem"] / max(n_problems, 1),
        "min_writes_per_problem": len(made["problem"]) / max(n_problems, 1) + 1,
        "idle_writes": len(idle_writes),
        "reads_per_engine_per_resync": len(reads) / periods / args.engines,
        "reads_per_resync": len(reads) / max(reconciles, 1),
        "cpu_s": cpu[0],
        "peak_rss_mib": max(rss[1], rss[2]),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=int, default=200)
    parser.add_argument("--problems-per-engine", type=int, default=10)
    parser.add_argument("--resync", type=int, default=30, help="VULCAN_RESYNC_SECONDS")
    parser.add_argument("--poll", type=int, default=10, help="VULCAN_PROBLEM_POLL_SECONDS")
    parser.add_argument("--job-seconds", type=float, default=0.5, help="fake solver pod run time")
    parser.add_argument(
        "--idle-periods", type=float, default=2.5, help="resync periods of the idle window (>= 2)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="convergence check period (lists everything)"
    )
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--history", type=int, default=300_000, help="emulator watch history")
    parser.add_argument("--json", help="also write the main figures to this file")
    parser.add_argument("--quick", action="store_true", help="10 engines x 3 problems, resync 10 s")
    args = parser.parse_args()
    if args.quick:
        args.engines, args.problems_per_engine, args.resync = 10, 3, 10
    if args.idle_periods < 2:
        parser.error("--idle-periods must be at least 2")
    asyncio.run(main(args))
