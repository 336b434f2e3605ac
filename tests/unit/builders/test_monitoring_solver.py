"""The per-engine SolverTimeout alert and the dashboard's solver panels see the solves the
operator's solver pods ran, and only that engine's (issue 15, defect 8).

The series are the operator's real exposition (`OperatorMetrics`, rendered by
prometheus_client as Prometheus scrapes it), labelled as the operator's own ServiceMonitor
(`manifests/monitoring/servicemonitor.yaml`, read here) makes Prometheus store them: the
target's labels, with the exposed ones winning when `honorLabels` is true. Each alert and panel
expression is parsed by promql-parser and its vector selectors are matched against those
series, beside a backend pod's series of the guide's names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vulcan_operator import names
from vulcan_operator.api.engine import Monitoring
from vulcan_operator.builders import monitoring as mon
from vulcan_operator.metrics import OperatorMetrics

REPO = Path(__file__).resolve().parents[3]
UID = "00000000-0000-0000-0000-000000000001"
Series = dict[str, str]


def operator_series(metrics: OperatorMetrics) -> list[Series]:
    """The operator's exposition as Prometheus stores it through the operator's ServiceMonitor."""
    monitor = yaml.safe_load((REPO / "manifests/monitoring/servicemonitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["endpoints"]
    target = {
        "namespace": "vulcan-system",
        "service": "vulcan-operator-metrics",
        "pod": "vulcan-operator-0",
        "job": "vulcan-operator-metrics",
        "instance": "10.0.0.9:9090",
    }
    out = []
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            exposed = dict(sample.labels)
            if endpoint.get("honorLabels"):
                labels = {**target, **exposed}
            else:  # Prometheus keeps the target's, and renames the exposed: exported_<name>
                labels = {**{f"exported_{k}": v for k, v in exposed.items()}, **target}
            out.append({"__name__": sample.name, **labels})
    return out


def backend_series(namespace: str, engine: str) -> list[Series]:
    """A backend pod's solver series of the guide's names, as its ServiceMonitor stores them."""
    target = {"namespace": namespace, "service": names.engine_service(engine), "pod": "b-0"}
    return [
        {"__name__": n, **target}
        for n in (
            "solver_timeout_total",
            "solver_problems_total",
            "solver_problems_solved_total",
            "solver_duration_seconds_bucket",
            "solver_memory_bytes",
        )
    ]


def matched(expr: str, series: list[Series]) -> list[Series]:
    """The series any vector selector of `expr` selects (equality matchers, as ours use)."""
    selectors: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            selectors.append(node)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    out = []
    for s in series:
        for sel in selectors:
            ops = {str(m.op).rsplit(".", 1)[-1] for m in sel.matchers.matchers}
            assert ops == {"Equal"}, expr
            if s["__name__"] == sel.name and all(
                s.get(m.name) == m.value for m in sel.matchers.matchers
            ):
                out.append(s)
                break
    return out


def solved(metrics: OperatorMetrics) -> None:
    """Solves of three engines: prod in vulcan (one timed out), staging in vulcan, prod in qa."""
    metrics.observe_problem("vulcan", "prod", "FEASIBLE", 300.0, {1: 3}, timed_out=True)
    metrics.observe_problem("vulcan", "prod", "OPTIMAL", 2.0, {1: 3}, memory_bytes=2**28)
    metrics.observe_problem("vulcan", "staging", "UNKNOWN", 9.0, timed_out=True, memory_bytes=1)
    metrics.observe_problem("qa", "prod", "UNKNOWN", 9.0, timed_out=True, memory_bytes=1)


def exprs_of(namespace: str, engine: str) -> dict[str, list[str]]:
    children = {o["kind"]: o for o in mon.monitoring_children(engine, namespace, UID, Monitoring())}
    rules = {
        r["alert"]: [r["expr"]]
        for g in children["PrometheusRule"]["spec"]["groups"]
        for r in g["rules"]
    }
    (text,) = children["ConfigMap"]["data"].values()
    board = yaml.safe_load(text)
    panels = {p["title"]: [t["expr"] for t in p["targets"]] for p in board["panels"]}
    return {**rules, **panels}


def test_solver_timeout_alert_selects_the_operators_solves_of_this_engine_only() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    solved(metrics)
    series = operator_series(metrics) + backend_series("vulcan", "prod")
    (expr,) = exprs_of("vulcan", "prod")["SolverTimeout"]
    found = matched(expr, series)
    ours = [s for s in found if s.get("engine")]
    assert ours and {(s["namespace"], s["engine"]) for s in ours} == {("vulcan", "prod")}
    assert all(s["__name__"] == "solver_timeout_total" for s in found)
    backend = [s for s in found if s["service"] == names.engine_service("prod")]
    assert len(backend) == 1  # the backend's own timeouts still count


def test_dashboard_solver_panels_show_the_operators_solves_of_this_engine_only() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    solved(metrics)
    series = operator_series(metrics) + backend_series("vulcan", "prod")
    exprs = exprs_of("vulcan", "prod")
    for panel, wanted in (
        (
            "Solver Performance",
            {
                "solver_problems_total",
                "solver_problems_solved_total",
                "solver_duration_seconds_bucket",
            },
        ),
        ("Solver Timeouts and Memory", {"solver_timeout_total", "solver_memory_bytes"}),
    ):
        found = [s for e in exprs[panel] for s in matched(e, series)]
        ours = [s for s in found if s.get("engine")]
        assert {s["__name__"] for s in ours} == wanted, panel
        assert {(s["namespace"], s["engine"]) for s in ours} == {("vulcan", "prod")}, panel
        assert {s["__name__"] for s in found if not s.get("engine")} == wanted, panel


def test_without_honor_labels_the_engine_series_would_be_lost() -> None:
    # The check above can fail: the same selectors find nothing of the operator's when the
    # scrape keeps the target's namespace (no honorLabels).
    metrics = OperatorMetrics(CollectorRegistry())
    solved(metrics)
    series = [
        {**s, "namespace": "vulcan-system"} for s in operator_series(metrics) if s.get("engine")
    ]
    (expr,) = exprs_of("vulcan", "prod")["SolverTimeout"]
    assert matched(expr, series) == []
