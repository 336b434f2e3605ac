"""The PrometheusRule's alerts of one engine: the guide's five and the operator's own.

The guide's alerts (HighRequestLatency, HighErrorRate, SolverTimeout, DatabaseConnectionPool,
HighMemoryUsage) keep its thresholds, `for`, severities and annotations. Where the guide's
expression is wrong for a cluster of several pods it is made right: histograms are aggregated
by `le` before `histogram_quantile`; the error rate is the ratio of 5xx to all requests (the
guide's annotation prints it as a percentage); memory is the pods' resident memory over the
container's memory limit (the guide divides by the node's memory, a series with other labels
that never matches; without a limit, the node's allocatable memory from kube-state-metrics is
used).

The operator's alerts: no backend pod scrapeable, the engine not Ready (neither while it
hibernates), backups unhealthy (only when backups are enabled), restores not verified (only when
restore drills are on), the engine hibernated or paused for too long
(`OUT_OF_SERVICE_FOR`). Every alert links its runbook, `docs/runbooks/<alert>.md`.

Scoping: every expression selects `{namespace="<ns>", service="<engine Service>"}` (the labels
the Prometheus Operator gives every target of a ServiceMonitor), or, for the operator's own
series (`vulcan_operator.metrics`), `{namespace="<ns>", engine="<engine>"}`; two engines never
see each other's series. SolverTimeout counts both sources of `solver_timeout_total`: the
backend's own solves and the ones the operator's solver pods ran for the engine (the problems
of its namespace and of the namespaces it accepts), as one rate per engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vulcan_operator import names, quantity

__all__ = [
    "GUIDE_ALERTS",
    "GUIDE_GROUP",
    "OPERATOR_ALERTS",
    "OPERATOR_GROUP",
    "RULE_INTERVAL",
    "matchers",
    "memory_bytes",
    "rule_groups",
]

#: The guide's rule-group evaluation interval.
RULE_INTERVAL = "30s"
GUIDE_GROUP = "vulcan_engine"
OPERATOR_GROUP = "vulcan_engine_operator"

GUIDE_ALERTS = (
    "HighRequestLatency",
    "HighErrorRate",
    "SolverTimeout",
    "DatabaseConnectionPool",
    "HighMemoryUsage",
)
OPERATOR_ALERTS = (
    "VulcanEngineBackendDown",
    "VulcanEngineNotReady",
    "VulcanEngineBackupUnhealthy",
    "VulcanEngineRestoreNotVerified",
    "VulcanEngineHibernatedTooLong",
    "VulcanEnginePausedTooLong",
)
#: Where each alert's runbook is: RUNBOOKS/<alert>.md (docs/runbooks/ of the repository).
RUNBOOKS = "https://github.com/vulcan-engine/vulcan-operator/blob/main/docs/runbooks"
#: How long an engine may stay hibernated / paused before an alert says so.
OUT_OF_SERVICE_FOR = {"hibernated": "14d", "paused": "3d"}


def _quote(value: str) -> str:
    """A PromQL string literal (double-quoted, escaped as in Go)."""
    return json.dumps(value, ensure_ascii=True)


def matchers(**labels: str) -> str:
    """PromQL label matchers, `namespace="ns",service="svc"`, for inside `{...}`."""
    return ",".join(f"{key}={_quote(value)}" for key, value in labels.items())


def memory_bytes(limit: int | str | None) -> int | None:
    """A Kubernetes memory quantity (`4Gi`, `512M`, `1e9`, 2048) in bytes, rounded up; None
    when there is none or it is not a positive quantity."""
    value = quantity.parse_or_none(limit)
    if value is None:
        return None
    whole = int(value.to_integral_value(rounding="ROUND_CEILING"))
    return whole if whole > 0 else None


@dataclass(frozen=True)
class _Alert:
    alert: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def rule(self, engine: str, namespace: str) -> dict[str, Any]:
        where = f"VulcanEngine {namespace}/{engine}"
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "engine": names.label_value(engine)},
            "annotations": {
                "summary": f"{self.summary} ({where})",
                "description": f"{where}: {self.description}",
                "runbook_url": f"{RUNBOOKS}/{self.alert}.md",
            },
        }


def _guide_alerts(
    engine: str, namespace: str, service: str, memory_limit: int | None, memory_text: str
) -> list[_Alert]:
    sel = matchers(namespace=namespace, service=service)
    mine = matchers(namespace=namespace, engine=engine)
    by = "namespace, service"
    if memory_limit is not None:
        memory_expr = (
            f"max by ({by}, pod) (process_resident_memory_bytes{{{sel}}}) / {memory_limit} > 0.8"
        )
        memory_of = f"of the {memory_text} memory limit"
    else:
        # No limit: the guide's "of the node's memory", as kube-state-metrics reports it.
        node_memory = (
            f"max by (namespace, pod) (kube_pod_info{{{matchers(namespace=namespace)}}}"
            " * on (node) group_left()"
            ' max by (node) (kube_node_status_allocatable{resource="memory"}))'
        )
        memory_expr = (
            f"max by ({by}, pod) (process_resident_memory_bytes{{{sel}}})"
            f" / on (namespace, pod) group_left() {node_memory} > 0.8"
        )
        memory_of = "of the node's allocatable memory"
    requests = f"sum by ({by}) (rate(http_requests_total{{{sel}}}[5m]))"
    errors = f'sum by ({by}) (rate(http_requests_total{{{sel},status=~"5.."}}[5m]))'
    return [
        _Alert(
            "HighRequestLatency",
            "histogram_quantile(0.95, sum by "
            f"({by}, le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m]))) > 2",
            "5m",
            "warning",
            "High request latency detected",
            "95th percentile latency is {{ $value }}s",
        ),
        _Alert(
            "HighErrorRate",
            f"{errors} / {requests} > 0.05",
            "5m",
            "critical",
            "High error rate detected",
            "Error rate is {{ $value | humanizePercentage }}",
        ),
        _Alert(
            "SolverTimeout",
            "sum by (namespace) (rate(solver_timeout_total{"
            + sel
            + "}[5m]) or rate(solver_timeout_total{"
            + mine
            + "}[5m])) > 0.1",
            "5m",
            "warning",
            "Solver timeouts increasing",
            "Solver timeout rate is {{ $value | humanize }} per second",
        ),
        _Alert(
            "DatabaseConnectionPool",
            f"max by ({by}, pod) (database_connection_pool_usage{{{sel}}}) > 0.8",
            "5m",
            "warning",
            "Database connection pool almost full",
            "Connection pool usage is {{ $value | humanizePercentage }} (pod {{ $labels.pod }})",
        ),
        _Alert(
            "HighMemoryUsage",
            memory_expr,
            "5m",
            "warning",
            "High memory usage",
            "Memory usage is {{ $value | humanizePercentage }} "
            + memory_of
            + " (pod {{ $labels.pod }})",
        ),
    ]


def _operator_alerts(
    engine: str, namespace: str, service: str, backup_enabled: bool, drill_enabled: bool
) -> list[_Alert]:
    sel = matchers(namespace=namespace, service=service)
    mine = matchers(namespace=namespace, engine=engine)
    # A hibernating engine runs no pods on purpose: no backend or Ready alert for it.
    asleep = f"unless on (namespace) (vulcan_engine_hibernated{{{mine}}} == 1)"
    alerts = [
        _Alert(
            "VulcanEngineBackendDown",
            f"(sum by (namespace, service) (up{{{sel}}}) == 0 or absent(up{{{sel}}})) {asleep}",
            "10m",
            "critical",
            "No backend pod can be scraped",
            "Prometheus scrapes no backend pod of the engine (all down, or none running).",
        ),
        _Alert(
            "VulcanEngineNotReady",
            f"min by (namespace, engine) (vulcan_engine_ready{{{mine}}}) == 0 {asleep}",
            "15m",
            "warning",
            "Engine not Ready",
            "The operator reports Ready=False; see `kubectl describe vulcanengine`.",
        ),
    ]
    if backup_enabled:
        alerts.append(
            _Alert(
                "VulcanEngineBackupUnhealthy",
                f"min by (namespace, engine) (vulcan_engine_backup_healthy{{{mine}}}) == 0",
                "10m",
                "critical",
                "Database backups unhealthy",
                "The operator reports BackupHealthy=False: the last scheduled backup failed "
                "or is overdue; see the engine's status.lastBackup.",
            )
        )
    if drill_enabled:
        alerts.append(
            _Alert(
                "VulcanEngineRestoreNotVerified",
                f"min by (namespace, engine) (vulcan_engine_restore_verified{{{mine}}}) == 0",
                "1h",
                "warning",
                "Backups not proven restorable",
                "The operator reports RestoreVerified=False: the newest restore drill failed "
                "or is overdue; see the engine's status.lastDrill.",
            )
        )
    for state, field in (("hibernated", "hibernate"), ("paused", "paused")):
        alerts.append(
            _Alert(
                f"VulcanEngine{state.capitalize()}TooLong",
                f"max by (namespace, engine) (vulcan_engine_{state}{{{mine}}}) == 1",
                OUT_OF_SERVICE_FOR[state],
                "info" if state == "hibernated" else "warning",
                f"Engine {state} for {OUT_OF_SERVICE_FOR[state]}",
                f"spec.{field} has been true for {OUT_OF_SERVICE_FOR[state]}: is it forgotten?",
            )
        )
    return alerts


def rule_groups(
    engine: str,
    namespace: str,
    *,
    memory_limit: int | str | None = None,
    backup_enabled: bool = True,
    drill_enabled: bool = False,
) -> list[dict[str, Any]]:
    """The PrometheusRule's groups: the guide's alerts, then the operator's."""
    service = names.engine_service(engine)
    limit = memory_bytes(memory_limit)
    memory_text = str(memory_limit) if limit is not None else ""
    guide = _guide_alerts(engine, namespace, service, limit, memory_text)
    ours = _operator_alerts(engine, namespace, service, backup_enabled, drill_enabled)
    return [
        {
            "name": GUIDE_GROUP,
            "interval": RULE_INTERVAL,
            "rules": [a.rule(engine, namespace) for a in guide],
        },
        {
            "name": OPERATOR_GROUP,
            "interval": RULE_INTERVAL,
            "rules": [a.rule(engine, namespace) for a in ours],
        },
    ]
