"""The operator's own Prometheus metrics, served on `/metrics` (port 9090 in the Deployment).

Every metric lives in a dedicated `CollectorRegistry` (`REGISTRY`), never in prometheus_client's
global default one, so tests can build their own `OperatorMetrics(CollectorRegistry())` without
name clashes. Handlers use the module-level helpers, which record into `METRICS`:

    with reconcile_timer("VulcanEngine"):            # counts, times, and flags an exception
        ...
    observe_reconcile("SchedulingProblem", 0.12, error=False)
    observe_problem("vulcan", "prod", "OPTIMAL", seconds=41.5, jobs_by_priority={3: 2, 1: 5},
                    timed_out=False, memory_bytes=180_000_000)
    set_queue_depth("plant-a", "prod", 2)
    set_engine_status("vulcan", "prod", ready=True, backup_healthy=False)
    forget_engine("vulcan", "prod")                  # on deletion: drop its series
    start_metrics_server(9090)                       # a daemon thread; never blocks the loop

Metric names (a public contract: the engines' PrometheusRules and dashboards use them):

| name | type | labels |
|---|---|---|
| `vulcan_operator_reconcile_total` | counter | kind, result (`success`/`error`) |
| `vulcan_operator_reconcile_errors_total` | counter | kind |
| `vulcan_operator_reconcile_duration_seconds` | histogram | kind |
| `vulcan_operator_queue_depth` | gauge | namespace, engine |
| `vulcan_operator_build_info` | gauge (1) | version, python_version, kopf_version |
| `vulcan_operator_shard_info` | gauge (1) | shard, shards (`run --shard K/N`; 0 and 1 unsharded) |
| `vulcan_operator_shards` | gauge | (N: how many shards there should be) |
| `vulcan_operator_shard_engines` | gauge | shard (the engines this replica reconciles) |
| `vulcan_engine_ready` | gauge (0/1) | namespace, engine |
| `vulcan_engine_backup_healthy` | gauge (0/1) | namespace, engine |
| `vulcan_engine_restore_verified` | gauge (0/1) | namespace, engine (none while Unknown) |
| `vulcan_engine_hibernated` | gauge (0/1) | namespace, engine (spec.hibernate in effect) |
| `vulcan_engine_paused` | gauge (0/1) | namespace, engine (spec.paused) |
| `solver_problems_total` | counter | namespace, engine, status (the guide's metric) |
| `solver_problems_solved_total` | counter | namespace, engine (the guide's dashboard) |
| `solver_duration_seconds` | histogram | namespace, engine (the guide's metric) |
| `solver_timeout_total` | counter | namespace, engine (the guide's SolverTimeout alert) |
| `solver_memory_bytes` | gauge | namespace, engine (the guide's metric) |
| `jobs_scheduled_total` | counter | namespace, engine, priority (the guide's metric) |

`namespace` and `engine` name the VulcanEngine (for a problem of another namespace, the
engine's namespace: the series belong to the engine that solved it); the operator's
ServiceMonitor sets `honorLabels: true` so these win over the scrape target's own `namespace`
label. The solver series are the guide's names, for the solves the operator's solver pods ran
(the backend exports the same names for its own): a solve times out when its search stopped at
the time limit without proving the optimum, or its pod passed its deadline;
`solver_memory_bytes` is the peak resident memory of the engine's latest solve (the memory
limit when it was OOM-killed).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from importlib import metadata
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = [
    "METRICS",
    "REGISTRY",
    "RESULT_ERROR",
    "RESULT_SUCCESS",
    "OperatorMetrics",
    "forget_backup",
    "forget_engine",
    "observe_problem",
    "observe_reconcile",
    "reconcile_timer",
    "set_engine_status",
    "set_queue_depth",
    "set_shard",
    "start_metrics_server",
]

RESULT_SUCCESS = "success"
#: Result statuses that are a schedule (solver_problems_solved_total).
SOLVED = ("OPTIMAL", "FEASIBLE")
RESULT_ERROR = "error"

#: Reconciles take milliseconds to a few seconds (API round trips, a database read).
RECONCILE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Solver runs take seconds to the engine's maxTimeSeconds (default 300) and beyond.
SOLVER_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class OperatorMetrics:
    """Every metric of the operator, registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.reconcile_total = Counter(
            "vulcan_operator_reconcile_total",
            "Reconciliations of our resources, by kind and result.",
            ["kind", "result"],
            registry=reg,
        )
        self.reconcile_errors_total = Counter(
            "vulcan_operator_reconcile_errors_total",
            "Reconciliations that ended in an error, by kind.",
            ["kind"],
            registry=reg,
        )
        self.reconcile_duration_seconds = Histogram(
            "vulcan_operator_reconcile_duration_seconds",
            "Time spent in one reconciliation, by kind.",
            ["kind"],
            buckets=RECONCILE_BUCKETS,
            registry=reg,
        )
        self.queue_depth = Gauge(
            "vulcan_operator_queue_depth",
            "SchedulingProblems waiting for a solver slot (phase Queued), per engine.",
            ["namespace", "engine"],
            registry=reg,
        )
        self.build_info = Gauge(
            "vulcan_operator_build_info",
            "Always 1; the labels say which build of the operator runs.",
            ["version", "python_version", "kopf_version"],
            registry=reg,
        )
        self.shard_info = Gauge(
            "vulcan_operator_shard_info",
            "Always 1; the labels say which shard of how many this replica is.",
            ["shard", "shards"],
            registry=reg,
        )
        self.shards = Gauge(
            "vulcan_operator_shards",
            "How many shards the operator was started with (a missing shard's series vanish).",
            registry=reg,
        )
        self.shard_engines = Gauge(
            "vulcan_operator_shard_engines",
            "VulcanEngines this replica reconciles (those of its shard's namespaces).",
            ["shard"],
            registry=reg,
        )
        self.engine_ready = Gauge(
            "vulcan_engine_ready",
            "1 when the engine's Ready condition is True, else 0.",
            ["namespace", "engine"],
            registry=reg,
        )
        self.engine_backup_healthy = Gauge(
            "vulcan_engine_backup_healthy",
            "1 when the engine's BackupHealthy condition is True, else 0.",
            ["namespace", "engine"],
            registry=reg,
        )
        self.engine_restore_verified = Gauge(
            "vulcan_engine_restore_verified",
            "1 when the engine's RestoreVerified condition is True (its newest restore drill "
            "passed and is recent), else 0; no series while drills are off or none ran.",
            ["namespace", "engine"],
            registry=reg,
        )
        self.engine_hibernated = Gauge(
            "vulcan_engine_hibernated",
            "1 while the engine hibernates (spec.hibernate), else 0.",
            ["namespace", "engine"],
            registry=reg,
        )
        self.engine_paused = Gauge(
            "vulcan_engine_paused",
            "1 while the engine is paused (spec.paused), else 0.",
            ["namespace", "engine"],
            registry=reg,
        )
        # The guide's solver metrics, for the problems the operator's solver pods ran.
        engine = ["namespace", "engine"]
        self.solver_problems_total = Counter(
            "solver_problems_total",
            "Scheduling problems finished, by engine and result status (OPTIMAL, FEASIBLE, ...).",
            [*engine, "status"],
            registry=reg,
        )
        self.solver_problems_solved_total = Counter(
            "solver_problems_solved_total",
            "Scheduling problems that got a schedule (OPTIMAL or FEASIBLE), by engine.",
            engine,
            registry=reg,
        )
        self.solver_duration_seconds = Histogram(
            "solver_duration_seconds",
            "Solver wall time per scheduling problem, by engine.",
            engine,
            buckets=SOLVER_BUCKETS,
            registry=reg,
        )
        self.solver_timeout_total = Counter(
            "solver_timeout_total",
            "Solves stopped by their time limit before proving the optimum, or past their "
            "pod's deadline, by engine.",
            engine,
            registry=reg,
        )
        self.solver_memory_bytes = Gauge(
            "solver_memory_bytes",
            "Peak resident memory of the engine's latest solve (bytes).",
            engine,
            registry=reg,
        )
        self.jobs_scheduled_total = Counter(
            "jobs_scheduled_total",
            "Jobs of solved problems that got a schedule, by engine and job priority.",
            [*engine, "priority"],
            registry=reg,
        )
        self.build_info.labels(
            version=_version("vulcan-operator"),
            python_version=platform.python_version(),
            kopf_version=_version("kopf"),
        ).set(1)

    # -- reconciliation --------------------------------------------------------------------
    def observe_reconcile(self, kind: str, seconds: float, error: bool) -> None:
        """Record one reconciliation of `kind` that took `seconds`."""
        result = RESULT_ERROR if error else RESULT_SUCCESS
        self.reconcile_total.labels(kind=kind, result=result).inc()
        if error:
            self.reconcile_errors_total.labels(kind=kind).inc()
        self.reconcile_duration_seconds.labels(kind=kind).observe(max(0.0, seconds))

    @contextmanager
    def reconcile_timer(self, kind: str) -> Iterator[None]:
        """Time the block as one reconciliation; an exception counts as an error (re-raised).

        Kopf's `TemporaryError` (a dependency not ready yet) counts as an error too: it is a
        reconcile that did not converge.
        """
        start = time.perf_counter()
        error = True
        try:
            yield
            error = False
        finally:
            self.observe_reconcile(kind, time.perf_counter() - start, error)

    # -- solver ----------------------------------------------------------------------------
    def observe_problem(
        self,
        namespace: str,
        engine: str,
        status: str,
        seconds: float | None = None,
        jobs_by_priority: Mapping[int | str, int] | None = None,
        *,
        timed_out: bool = False,
        memory_bytes: int | None = None,
    ) -> None:
        """Record a finished SchedulingProblem of engine `namespace`/`engine`: its result
        status, wall time, scheduled jobs, whether it timed out, its peak memory.

        `jobs_by_priority` maps a job priority to how many jobs of that priority got a
        schedule (nothing for an infeasible result).
        """
        labels = {"namespace": namespace, "engine": engine}
        self.solver_problems_total.labels(**labels, status=status).inc()
        if status in SOLVED:
            self.solver_problems_solved_total.labels(**labels).inc()
        if seconds is not None:
            self.solver_duration_seconds.labels(**labels).observe(max(0.0, seconds))
        if timed_out:
            self.solver_timeout_total.labels(**labels).inc()
        if memory_bytes is not None:
            self.solver_memory_bytes.labels(**labels).set(max(0, memory_bytes))
        for priority, count in (jobs_by_priority or {}).items():
            if count > 0:
                self.jobs_scheduled_total.labels(**labels, priority=str(priority)).inc(count)

    def set_queue_depth(self, namespace: str, engine: str, depth: int) -> None:
        """How many problems of this engine wait in phase Queued."""
        self.queue_depth.labels(namespace=namespace, engine=engine).set(max(0, depth))

    def set_shard(self, index: int, count: int, engines: Callable[[], float]) -> None:
        """This replica is shard `index` of `count`; `engines()` counts the engines it keeps."""
        self.shard_info.labels(shard=str(index), shards=str(count)).set(1)
        self.shards.set(count)
        self.shard_engines.labels(shard=str(index)).set_function(engines)

    # -- engine status ---------------------------------------------------------------------
    def set_engine_status(
        self,
        namespace: str,
        engine: str,
        *,
        ready: bool | None = None,
        backup_healthy: bool | None = None,
    ) -> None:
        """Export the engine's Ready and BackupHealthy conditions (None: leave as is).

        Set `backup_healthy` only while backups are enabled, and call `forget_engine` or
        `forget_backup` when they stop being, so no stale series keeps an alert firing.
        """
        labels = {"namespace": namespace, "engine": engine}
        if ready is not None:
            self.engine_ready.labels(**labels).set(1 if ready else 0)
        if backup_healthy is not None:
            self.engine_backup_healthy.labels(**labels).set(1 if backup_healthy else 0)

    def set_engine_service(
        self,
        namespace: str,
        engine: str,
        *,
        hibernated: bool,
        paused: bool,
        restore_verified: bool | None,
    ) -> None:
        """Export whether the engine is out of service (hibernated, paused) and whether its
        restores are verified (None: drop that series: drills off or none ran yet)."""
        labels = {"namespace": namespace, "engine": engine}
        self.engine_hibernated.labels(**labels).set(1 if hibernated else 0)
        self.engine_paused.labels(**labels).set(1 if paused else 0)
        if restore_verified is None:
            _remove(self.engine_restore_verified, namespace, engine)
        else:
            self.engine_restore_verified.labels(**labels).set(1 if restore_verified else 0)

    def forget_backup(self, namespace: str, engine: str) -> None:
        """Drop the engine's backup series (backups were turned off)."""
        _remove(self.engine_backup_healthy, namespace, engine)

    def forget_engine(self, namespace: str, engine: str) -> None:
        """Drop the engine's gauges (the engine was deleted); its solver counters stay, as
        counters of a finished thing do (a rate over them falls to zero)."""
        for gauge in (
            self.engine_ready,
            self.engine_backup_healthy,
            self.engine_restore_verified,
            self.engine_hibernated,
            self.engine_paused,
            self.queue_depth,
            self.solver_memory_bytes,
        ):
            _remove(gauge, namespace, engine)

    # -- exposition ------------------------------------------------------------------------
    def start_server(self, port: int, addr: str = "0.0.0.0") -> WSGIServer:
        """Serve this registry on `addr:port` (see `start_metrics_server`)."""
        return start_metrics_server(port, self.registry, addr=addr)


def _remove(gauge: Gauge, namespace: str, engine: str) -> None:
    with suppress(KeyError):
        gauge.remove(namespace, engine)


def start_metrics_server(
    port: int,
    registry: CollectorRegistry | None = None,
    *,
    addr: str = "0.0.0.0",  # all interfaces: scraped from other pods
) -> WSGIServer:
    """Serve `registry` (default `REGISTRY`) at `http://addr:port/metrics` from a daemon thread.

    Returns the HTTP server: `server.server_port` is the bound port (useful with port 0),
    `server.shutdown()` stops it. The thread never touches the asyncio loop.
    """
    server, _thread = start_http_server(port, addr=addr, registry=registry or REGISTRY)
    return server


#: The operator's registry and metrics; the module-level helpers record here.
REGISTRY = CollectorRegistry()
METRICS = OperatorMetrics(REGISTRY)


def observe_reconcile(kind: str, seconds: float, error: bool) -> None:
    """Record one reconciliation (see `OperatorMetrics.observe_reconcile`)."""
    METRICS.observe_reconcile(kind, seconds, error)


def reconcile_timer(kind: str) -> AbstractContextManager[None]:
    """Context manager timing one reconciliation (see `OperatorMetrics.reconcile_timer`)."""
    return METRICS.reconcile_timer(kind)


def observe_problem(
    namespace: str,
    engine: str,
    status: str,
    seconds: float | None = None,
    jobs_by_priority: Mapping[int | str, int] | None = None,
    *,
    timed_out: bool = False,
    memory_bytes: int | None = None,
) -> None:
    """Record a finished SchedulingProblem (see `OperatorMetrics.observe_problem`)."""
    METRICS.observe_problem(
        namespace,
        engine,
        status,
        seconds,
        jobs_by_priority,
        timed_out=timed_out,
        memory_bytes=memory_bytes,
    )


def set_queue_depth(namespace: str, engine: str, depth: int) -> None:
    """Problems of an engine waiting in phase Queued."""
    METRICS.set_queue_depth(namespace, engine, depth)


def set_shard(index: int, count: int, engines: Callable[[], float]) -> None:
    """Export which shard this replica is, and how many engines it keeps."""
    METRICS.set_shard(index, count, engines)


def set_engine_status(
    namespace: str,
    engine: str,
    *,
    ready: bool | None = None,
    backup_healthy: bool | None = None,
) -> None:
    """Export an engine's Ready / BackupHealthy conditions."""
    METRICS.set_engine_status(namespace, engine, ready=ready, backup_healthy=backup_healthy)


def set_engine_service(
    namespace: str,
    engine: str,
    *,
    hibernated: bool,
    paused: bool,
    restore_verified: bool | None,
) -> None:
    """Export whether an engine is hibernated or paused, and its RestoreVerified condition."""
    METRICS.set_engine_service(
        namespace, engine, hibernated=hibernated, paused=paused, restore_verified=restore_verified
    )


def forget_backup(namespace: str, engine: str) -> None:
    """Drop an engine's backup series (backups turned off)."""
    METRICS.forget_backup(namespace, engine)


def forget_engine(namespace: str, engine: str) -> None:
    """Drop every series of a deleted engine."""
    METRICS.forget_engine(namespace, engine)
