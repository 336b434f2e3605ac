"""The operator's own metrics: names, labels, helpers, and the HTTP exposition."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from vulcan_operator import metrics
from vulcan_operator.metrics import OperatorMetrics


@pytest.fixture
def m() -> OperatorMetrics:
    return OperatorMetrics(CollectorRegistry())


def value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.fixture
def server(m: OperatorMetrics) -> Iterator[int]:
    srv = metrics.start_metrics_server(0, m.registry, addr="127.0.0.1")
    try:
        yield int(srv.server_port)
    finally:
        srv.shutdown()
        srv.server_close()


def test_reconcile_counts_success_and_error_separately(m: OperatorMetrics) -> None:
    m.observe_reconcile("VulcanEngine", 0.2, error=False)
    m.observe_reconcile("VulcanEngine", 0.3, error=False)
    m.observe_reconcile("VulcanEngine", 1.5, error=True)
    m.observe_reconcile("SchedulingProblem", 0.01, error=False)

    total = "vulcan_operator_reconcile_total"
    assert value(m, total, kind="VulcanEngine", result="success") == 2
    assert value(m, total, kind="VulcanEngine", result="error") == 1
    assert value(m, total, kind="SchedulingProblem", result="success") == 1
    assert value(m, "vulcan_operator_reconcile_errors_total", kind="VulcanEngine") == 1
    assert value(m, "vulcan_operator_reconcile_errors_total", kind="SchedulingProblem") is None
    duration = "vulcan_operator_reconcile_duration_seconds"
    assert value(m, f"{duration}_count", kind="VulcanEngine") == 3
    assert value(m, f"{duration}_sum", kind="VulcanEngine") == pytest.approx(2.0)
    # 0.2 and 0.3 fall in the 0.5 s bucket, 1.5 does not.
    assert value(m, f"{duration}_bucket", kind="VulcanEngine", le="0.5") == 2


def test_reconcile_timer_flags_exceptions_and_reraises(m: OperatorMetrics) -> None:
    with m.reconcile_timer("VulcanBackup"):
        pass
    with pytest.raises(RuntimeError, match="boom"), m.reconcile_timer("VulcanBackup"):
        raise RuntimeError("boom")

    total = "vulcan_operator_reconcile_total"
    assert value(m, total, kind="VulcanBackup", result="success") == 1
    assert value(m, total, kind="VulcanBackup", result="error") == 1
    assert value(m, "vulcan_operator_reconcile_errors_total", kind="VulcanBackup") == 1
    count = "vulcan_operator_reconcile_duration_seconds_count"
    assert value(m, count, kind="VulcanBackup") == 2


PROD = {"namespace": "vulcan", "engine": "prod"}


def test_solver_metrics_use_the_guides_names(m: OperatorMetrics) -> None:
    m.observe_problem("vulcan", "prod", "OPTIMAL", seconds=42.0, jobs_by_priority={3: 2, 1: 5})
    m.observe_problem("vulcan", "prod", "INFEASIBLE", seconds=0.5)
    m.observe_problem("vulcan", "prod", "OPTIMAL", jobs_by_priority={"1": 1, 2: 0})

    assert value(m, "solver_problems_total", **PROD, status="OPTIMAL") == 2
    assert value(m, "solver_problems_total", **PROD, status="INFEASIBLE") == 1
    assert value(m, "solver_problems_solved_total", **PROD) == 2
    assert value(m, "solver_duration_seconds_count", **PROD) == 2
    assert value(m, "solver_duration_seconds_sum", **PROD) == pytest.approx(42.5)
    assert value(m, "jobs_scheduled_total", **PROD, priority="1") == 6
    assert value(m, "jobs_scheduled_total", **PROD, priority="3") == 2
    assert value(m, "jobs_scheduled_total", **PROD, priority="2") is None  # zero jobs: no series
    assert value(m, "solver_timeout_total", **PROD) is None  # none timed out: no series


def test_solver_metrics_are_per_engine_with_timeouts_and_memory(m: OperatorMetrics) -> None:
    m.observe_problem("vulcan", "prod", "FEASIBLE", 300.0, timed_out=True, memory_bytes=2**30)
    m.observe_problem("vulcan", "prod", "UNKNOWN", 300.0, timed_out=True, memory_bytes=2**28)
    m.observe_problem("vulcan", "staging", "OPTIMAL", 1.0, memory_bytes=2**20)
    assert value(m, "solver_timeout_total", **PROD) == 2
    assert value(m, "solver_timeout_total", namespace="vulcan", engine="staging") is None
    # The latest solve's peak, not the highest ever (a gauge, as the guide's).
    assert value(m, "solver_memory_bytes", **PROD) == 2**28
    assert value(m, "solver_memory_bytes", namespace="vulcan", engine="staging") == 2**20
    assert value(m, "solver_problems_solved_total", **PROD) == 1
    assert value(m, "solver_duration_seconds_count", namespace="vulcan", engine="staging") == 1
    m.forget_engine("vulcan", "prod")  # the gauge goes with the engine; counters stay
    assert value(m, "solver_memory_bytes", **PROD) is None
    assert value(m, "solver_timeout_total", **PROD) == 2


def test_engine_gauges_set_and_forget(m: OperatorMetrics) -> None:
    m.set_engine_status("vulcan", "prod", ready=True, backup_healthy=False)
    m.set_queue_depth("vulcan", "prod", 3)
    assert value(m, "vulcan_engine_ready", namespace="vulcan", engine="prod") == 1
    assert value(m, "vulcan_engine_backup_healthy", namespace="vulcan", engine="prod") == 0
    assert value(m, "vulcan_operator_queue_depth", namespace="vulcan", engine="prod") == 3

    m.set_engine_status("vulcan", "prod", ready=False)  # backup_healthy left as it was
    assert value(m, "vulcan_engine_ready", namespace="vulcan", engine="prod") == 0
    assert value(m, "vulcan_engine_backup_healthy", namespace="vulcan", engine="prod") == 0

    m.forget_backup("vulcan", "prod")
    assert value(m, "vulcan_engine_backup_healthy", namespace="vulcan", engine="prod") is None
    m.forget_engine("vulcan", "prod")
    m.forget_engine("vulcan", "prod")  # twice: no error
    assert value(m, "vulcan_engine_ready", namespace="vulcan", engine="prod") is None
    assert value(m, "vulcan_operator_queue_depth", namespace="vulcan", engine="prod") is None


def test_build_info_is_one_with_versions(m: OperatorMetrics) -> None:
    samples = [
        s for f in m.registry.collect() if f.name == "vulcan_operator_build_info" for s in f.samples
    ]
    assert len(samples) == 1
    assert samples[0].value == 1
    assert set(samples[0].labels) == {"version", "python_version", "kopf_version"}
    assert samples[0].labels["kopf_version"] not in ("", "unknown")


def test_registries_are_independent() -> None:
    a, b = OperatorMetrics(CollectorRegistry()), OperatorMetrics(CollectorRegistry())
    a.observe_reconcile("VulcanEngine", 0.1, error=False)
    total = "vulcan_operator_reconcile_total"
    assert value(a, total, kind="VulcanEngine", result="success") == 1
    assert value(b, total, kind="VulcanEngine", result="success") is None
    # The module's own metrics are in their own registry, not prometheus_client's global one.
    assert metrics.REGISTRY is metrics.METRICS.registry
    from prometheus_client import REGISTRY as GLOBAL

    assert not any(f.name == "vulcan_operator_build_info" for f in GLOBAL.collect())


def test_module_helpers_record_into_the_module_registry() -> None:
    total = "vulcan_operator_reconcile_total"
    labels = {"kind": "HelperKind", "result": "error"}
    before = metrics.REGISTRY.get_sample_value(total, labels) or 0.0
    with pytest.raises(ValueError), metrics.reconcile_timer("HelperKind"):
        raise ValueError("x")
    metrics.observe_reconcile("HelperKind", 0.1, error=True)
    assert metrics.REGISTRY.get_sample_value(total, labels) == before + 2


def test_http_scrape_sees_counters_move(m: OperatorMetrics, server: int) -> None:
    total = ("vulcan_operator_reconcile_total", (("kind", "VulcanEngine"), ("result", "success")))
    before = scrape(server)
    assert total not in before
    assert ("vulcan_operator_build_info", ()) not in before  # it has labels
    assert any(name == "vulcan_operator_build_info" for name, _ in before)

    m.observe_reconcile("VulcanEngine", 0.05, error=False)
    m.observe_problem("plant", "prod", "FEASIBLE", seconds=3.0, jobs_by_priority={1: 4})
    after = scrape(server)
    assert after[total] == 1
    engine = (("engine", "prod"), ("namespace", "plant"))
    assert after[("solver_problems_total", (*engine, ("status", "FEASIBLE")))] == 1
    assert after[("jobs_scheduled_total", (*engine, ("priority", "1")))] == 4

    m.observe_reconcile("VulcanEngine", 0.05, error=False)
    assert scrape(server)[total] == 2
