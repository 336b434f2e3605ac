"""Monitoring children of a VulcanEngine: ServiceMonitor, PrometheusRule, Grafana dashboard.

Pure functions, no I/O. `monitoring_children(...)` returns what `spec.monitoring` asks for:

- a ServiceMonitor (monitoring.coreos.com/v1) that scrapes the backend Service's `http` port
  at the guide's `/api/v1/metrics`, every `scrapeInterval`;
- a PrometheusRule with the guide's five alerts (HighRequestLatency, HighErrorRate,
  SolverTimeout, DatabaseConnectionPool, HighMemoryUsage; thresholds, `for`, severities and
  annotations as in the guide) and the operator's own per-engine alerts (not Ready, backups
  unhealthy, backend not scrapeable);
- a ConfigMap labelled `grafana_dashboard: "1"` holding a Grafana dashboard with the guide's
  panels (Request Rate, Response Time (p95), Solver Performance, Database Connections,
  Error Rate) plus the operator's view of the engine.

Scoping: the Prometheus Operator gives every target scraped through a ServiceMonitor the labels
`namespace` (of the Service) and `service` (its name); every expression here selects
`{namespace="<ns>", service="<engine Service>"}`, so two engines, in one namespace or not,
never see each other's series. The operator's own gauges (`vulcan_engine_ready`,
`vulcan_engine_backup_healthy`, see `vulcan_operator.metrics`) are selected by
`{namespace="<ns>", engine="<engine>"}`.

Where the guide's expression is wrong for a cluster of several pods it is made right, keeping
its threshold: histograms are aggregated by `le` before `histogram_quantile`; the error rate is
the ratio of 5xx to all requests (the guide's annotation prints it as a percentage); memory is
the pods' resident memory over the container's memory limit (the guide divides by the node's
memory, a series with other labels that never matches; without a limit, the node's allocatable
memory from kube-state-metrics is used).

Children get ownerReferences (owner kind VulcanEngine), our labels and the spec-hash via
`builders.common.finish`. The ServiceMonitor and PrometheusRule need the Prometheus Operator
CRDs; the dashboard is a plain ConfigMap and is built whether or not they exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from vulcan_operator import names
from vulcan_operator.api.engine import Monitoring
from vulcan_operator.builders.common import Owner, finish
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.templating import render_one

__all__ = [
    "COMPONENT",
    "DASHBOARD_LABEL",
    "GUIDE_ALERTS",
    "KIND",
    "METRICS_PATH",
    "METRICS_PORT_NAME",
    "OPERATOR_ALERTS",
    "build",
    "build_dashboard_configmap",
    "build_prometheus_rule",
    "build_service_monitor",
    "dashboard",
    "dashboard_configmap_name",
    "dashboard_file_name",
    "memory_bytes",
    "monitoring_children",
    "prometheus_rule_name",
    "rule_groups",
    "service_monitor_name",
]

Manifest = dict[str, Any]

KIND = "VulcanEngine"
#: The `app.kubernetes.io/component` of the monitoring children.
COMPONENT = "monitoring"
#: The guide's Prometheus scrape path of the backend.
METRICS_PATH = "/api/v1/metrics"
#: Name of the backend Service's port (see builders.engine.build_service).
METRICS_PORT_NAME = "http"
#: The label the Grafana dashboard sidecar looks for.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
#: Annotation naming the Grafana folder (the sidecar's `folderAnnotation`, when configured).
DASHBOARD_FOLDER_ANNOTATION = "grafana_folder"
DASHBOARD_FOLDER = "Vulcan Engine"
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
OPERATOR_ALERTS = ("VulcanEngineBackendDown", "VulcanEngineNotReady", "VulcanEngineBackupUnhealthy")


# --- names ----------------------------------------------------------------------------------
def service_monitor_name(engine: str) -> str:
    """ServiceMonitor of the engine: the engine's name, like its Service."""
    return names.dns_name(engine)


def prometheus_rule_name(engine: str) -> str:
    """PrometheusRule with the engine's alerts."""
    return names.dns_name(engine)


def dashboard_configmap_name(engine: str) -> str:
    """ConfigMap with the engine's Grafana dashboard."""
    return names.dns_name(engine, "dashboard")


def dashboard_file_name(engine: str, namespace: str) -> str:
    """The dashboard's key in its ConfigMap: the file the Grafana sidecar writes, unique per
    engine across namespaces, a valid ConfigMap key of at most 253 characters."""
    stem = names.dns_name(
        "vulcan-engine", namespace, engine, max_length=names.MAX_SUBDOMAIN_LENGTH - len(".json")
    )
    return f"{stem}.json"


# --- PromQL helpers -------------------------------------------------------------------------
def _quote(value: str) -> str:
    """A PromQL string literal (double-quoted, escaped as in Go)."""
    return json.dumps(value, ensure_ascii=True)


def _matchers(**labels: str) -> str:
    return ",".join(f"{key}={_quote(value)}" for key, value in labels.items())


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_FACTORS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def memory_bytes(quantity: int | str | None) -> int | None:
    """A Kubernetes memory quantity (`4Gi`, `512M`, `1e9`, 2048) in bytes, rounded up; None
    when there is none or it is not a positive quantity."""
    if quantity is None:
        return None
    if isinstance(quantity, int):
        return quantity if quantity > 0 else None
    match = _QUANTITY.match(quantity.strip())
    if not match:
        return None
    try:
        number = Decimal(match.group(1)) * _FACTORS[match.group(2)]
    except InvalidOperation:
        return None
    whole = int(number.to_integral_value(rounding="ROUND_CEILING"))
    return whole if whole > 0 else None


# --- alerts ---------------------------------------------------------------------------------
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
            },
        }


def _guide_alerts(
    namespace: str, service: str, memory_limit: int | None, memory_text: str
) -> list[_Alert]:
    sel = _matchers(namespace=namespace, service=service)
    by = "namespace, service"
    if memory_limit is not None:
        memory_expr = (
            f"max by ({by}, pod) (process_resident_memory_bytes{{{sel}}}) / {memory_limit} > 0.8"
        )
        memory_of = f"of the {memory_text} memory limit"
    else:
        # No limit: the guide's "of the node's memory", as kube-state-metrics reports it.
        node_memory = (
            f"max by (namespace, pod) (kube_pod_info{{{_matchers(namespace=namespace)}}}"
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
            f"sum by ({by}) (rate(solver_timeout_total{{{sel}}}[5m])) > 0.1",
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
    engine: str, namespace: str, service: str, backup_enabled: bool
) -> list[_Alert]:
    sel = _matchers(namespace=namespace, service=service)
    mine = _matchers(namespace=namespace, engine=engine)
    alerts = [
        _Alert(
            "VulcanEngineBackendDown",
            f"sum by (namespace, service) (up{{{sel}}}) == 0 or absent(up{{{sel}}})",
            "10m",
            "critical",
            "No backend pod can be scraped",
            "Prometheus scrapes no backend pod of the engine (all down, or none running).",
        ),
        _Alert(
            "VulcanEngineNotReady",
            f"min by (namespace, engine) (vulcan_engine_ready{{{mine}}}) == 0",
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
    return alerts


def rule_groups(
    engine: str,
    namespace: str,
    *,
    memory_limit: int | str | None = None,
    backup_enabled: bool = True,
) -> list[dict[str, Any]]:
    """The PrometheusRule's groups: the guide's alerts, then the operator's."""
    service = names.engine_service(engine)
    limit = memory_bytes(memory_limit)
    memory_text = str(memory_limit) if limit is not None else ""
    guide = _guide_alerts(namespace, service, limit, memory_text)
    ours = _operator_alerts(engine, namespace, service, backup_enabled)
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


# --- dashboard ------------------------------------------------------------------------------
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(
    panel_id: int,
    title: str,
    targets: Sequence[tuple[str, str]],
    unit: str,
    grid: tuple[int, int, int, int],
    description: str,
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": _DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": _DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(engine: str, namespace: str) -> dict[str, Any]:
    """A Grafana dashboard (JSON model) of one engine: the guide's panels and the operator's."""
    service = names.engine_service(engine)
    sel = _matchers(namespace=namespace, service=service)
    mine = _matchers(namespace=namespace, engine=engine)
    by = "namespace, service"
    panels = [
        _panel(
            1,
            "Request Rate",
            [(f"sum by (status) (rate(http_requests_total{{{sel}}}[5m]))", "{{status}}")],
            "reqps",
            (0, 0, 12, 8),
            "HTTP requests per second, by status code.",
        ),
        _panel(
            2,
            "Response Time (p95)",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
                    "p95",
                )
            ],
            "s",
            (12, 0, 12, 8),
            "95th percentile of the request duration.",
        ),
        _panel(
            3,
            "Solver Performance",
            [
                (f"sum by (status) (rate(solver_problems_total{{{sel}}}[5m]))", "{{status}}"),
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(solver_duration_seconds_bucket{{{sel}}}[5m])))",
                    "p95 solve time",
                ),
            ],
            "short",
            (0, 8, 12, 8),
            "Problems solved per second by result status, and the p95 solver time (s).",
        ),
        _panel(
            4,
            "Database Connections",
            [
                (f"sum by (pod) (database_connection_pool_size{{{sel}}})", "size {{pod}}"),
                (f"max by (pod) (database_connection_pool_usage{{{sel}}})", "usage {{pod}}"),
            ],
            "short",
            (12, 8, 12, 8),
            "Connection pool size and usage ratio, per backend pod.",
        ),
        _panel(
            5,
            "Error Rate",
            [
                (
                    f'sum by ({by}) (rate(http_requests_total{{{sel},status=~"5.."}}[5m]))'
                    f" / sum by ({by}) (rate(http_requests_total{{{sel}}}[5m]))",
                    "5xx ratio",
                )
            ],
            "percentunit",
            (0, 16, 12, 8),
            "Share of requests answered with a 5xx status (alert above 5 %).",
        ),
        _panel(
            6,
            "Operator: Ready and Backups",
            [
                (f"min(vulcan_engine_ready{{{mine}}})", "ready"),
                (f"min(vulcan_engine_backup_healthy{{{mine}}})", "backup healthy"),
                (f"sum(up{{{sel}}})", "backend pods up"),
            ],
            "short",
            (12, 16, 12, 8),
            "The operator's Ready and BackupHealthy conditions (1 = True) and scrapeable pods.",
        ),
    ]
    return {
        "uid": f"vulcan-{names.short_hash(f'{namespace}/{engine}', 16)}",
        "title": f"Vulcan Engine / {namespace} / {engine}",
        "description": f"Vulcan Engine {namespace}/{engine}, from its ServiceMonitor's series.",
        "tags": ["vulcan-engine", namespace],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                }
            ]
        },
        "panels": panels,
    }


# --- children -------------------------------------------------------------------------------


def _finish(owner: Owner, obj: Manifest) -> Manifest:
    return finish(obj, owner, names.labels(owner.name, COMPONENT))


def build_service_monitor(owner: Owner, monitoring: Monitoring) -> Manifest:
    """ServiceMonitor of the engine's backend Service."""
    return _finish(
        owner,
        render_one(
            "servicemonitor.yaml.j2",
            name=service_monitor_name(owner.name),
            namespace=owner.namespace,
            selector=names.selector(owner.name, names.COMPONENT_BACKEND),
            port_name=METRICS_PORT_NAME,
            path=METRICS_PATH,
            interval=monitoring.scrapeInterval,
        ),
    )


def build_prometheus_rule(
    owner: Owner, *, memory_limit: int | str | None = None, backup_enabled: bool = True
) -> Manifest:
    """PrometheusRule with the engine's alerts (see `rule_groups`)."""
    return _finish(
        owner,
        render_one(
            "prometheusrule.yaml.j2",
            name=prometheus_rule_name(owner.name),
            groups=rule_groups(
                owner.name,
                owner.namespace,
                memory_limit=memory_limit,
                backup_enabled=backup_enabled,
            ),
        ),
    )


def build_dashboard_configmap(owner: Owner) -> Manifest:
    """ConfigMap with the Grafana dashboard, labelled for the Grafana sidecar."""
    board = dashboard(owner.name, owner.namespace)
    return _finish(
        owner,
        render_one(
            "dashboard-configmap.yaml.j2",
            name=dashboard_configmap_name(owner.name),
            sidecar_labels=DASHBOARD_LABEL,
            annotations={DASHBOARD_FOLDER_ANNOTATION: DASHBOARD_FOLDER},
            file_name=dashboard_file_name(owner.name, owner.namespace),
            dashboard_json=json.dumps(board, indent=2, sort_keys=True),
        ),
    )


def monitoring_children(
    name: str,
    namespace: str,
    uid: str,
    monitoring: Monitoring,
    *,
    memory_limit: int | str | None = None,
    backup_enabled: bool = True,
    prometheus_operator: bool = True,
) -> list[Manifest]:
    """The monitoring children `monitoring` asks for, in apply order.

    `memory_limit`: the backend container's memory limit (spec.resources.limits.memory), for
    HighMemoryUsage. `backup_enabled`: spec.backup.enabled (no backup alert otherwise).
    `prometheus_operator`: whether the cluster serves monitoring.coreos.com/v1; without it the
    ServiceMonitor and PrometheusRule are left out (the reconciler says so in a condition) and
    only the dashboard ConfigMap, if asked for, is built.
    """
    owner = Owner(KIND, name, namespace, uid)
    children: list[Manifest] = []
    if prometheus_operator and monitoring.serviceMonitor:
        children.append(build_service_monitor(owner, monitoring))
    if prometheus_operator and monitoring.prometheusRule:
        children.append(
            build_prometheus_rule(owner, memory_limit=memory_limit, backup_enabled=backup_enabled)
        )
    if monitoring.grafanaDashboard:
        children.append(build_dashboard_configmap(owner))
    return children


def build(inputs: EngineInputs, *, prometheus_operator: bool = True) -> list[Manifest]:
    """`monitoring_children` for an engine's builder inputs."""
    spec = inputs.spec
    return monitoring_children(
        inputs.name,
        inputs.namespace,
        inputs.uid,
        spec.monitoring,
        memory_limit=spec.resources.limits.get("memory"),
        backup_enabled=spec.backup.enabled,
        prometheus_operator=prometheus_operator,
    )
