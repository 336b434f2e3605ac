"""Monitoring children of a VulcanEngine: ServiceMonitor, PrometheusRule, Grafana dashboard.

Pure functions, no I/O. `monitoring_children(...)` returns what `spec.monitoring` asks for:

- a ServiceMonitor (monitoring.coreos.com/v1) that scrapes the backend Service's `http` port
  at the guide's `/api/v1/metrics`, every `scrapeInterval`;
- a PrometheusRule with the guide's five alerts and the operator's own per-engine alerts
  (`alerts.py`);
- a ConfigMap labelled `grafana_dashboard: "1"` holding a Grafana dashboard with the guide's
  panels (Request Rate, Response Time (p95), Solver Performance, Database Connections,
  Error Rate) plus the operator's view of the engine: the data template
  `templates/dashboard.json.j2`.

Scoping: the Prometheus Operator gives every target scraped through a ServiceMonitor the labels
`namespace` (of the Service) and `service` (its name); every expression selects
`{namespace="<ns>", service="<engine Service>"}`, so two engines, in one namespace or not,
never see each other's series. The operator's own gauges (`vulcan_engine_ready`,
`vulcan_engine_backup_healthy`, see `vulcan_operator.metrics`) are selected by
`{namespace="<ns>", engine="<engine>"}`.

Children get ownerReferences (owner kind VulcanEngine), our labels and the spec-hash via
`builders.common.finish`. The ServiceMonitor and PrometheusRule need the Prometheus Operator
CRDs; the dashboard is a plain ConfigMap and is built whether or not they exist.
"""

from __future__ import annotations

import json
from typing import Any

from vulcan_operator import kinds, names
from vulcan_operator.api.engine import Monitoring
from vulcan_operator.builders.common import Owner, finish
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.monitoring.alerts import matchers, rule_groups
from vulcan_operator.templating import render_one, render_text

__all__ = [
    "DASHBOARD_LABEL",
    "KIND",
    "METRICS_PATH",
    "METRICS_PORT_NAME",
    "build",
    "build_dashboard_configmap",
    "build_prometheus_rule",
    "build_service_monitor",
    "dashboard",
    "monitoring_children",
]

Manifest = dict[str, Any]

KIND = kinds.ENGINE.kind
#: The guide's Prometheus scrape path of the backend.
METRICS_PATH = "/api/v1/metrics"
#: Name of the backend Service's port (see builders.engine.build_service).
METRICS_PORT_NAME = "http"
#: The label the Grafana dashboard sidecar looks for.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
#: Annotation naming the Grafana folder (the sidecar's `folderAnnotation`, when configured).
DASHBOARD_FOLDER_ANNOTATION = "grafana_folder"
DASHBOARD_FOLDER = "Vulcan Engine"


def dashboard(engine: str, namespace: str) -> dict[str, Any]:
    """A Grafana dashboard (JSON model) of one engine: the guide's panels and the operator's."""
    text = render_text(
        "dashboard.json.j2",
        engine=engine,
        namespace=namespace,
        uid=names.engine_dashboard_uid(engine, namespace),
        selector=matchers(namespace=namespace, service=names.engine_service(engine)),
        mine=matchers(namespace=namespace, engine=engine),
    )
    board: dict[str, Any] = json.loads(text)
    return board


# --- children -------------------------------------------------------------------------------
def _finish(owner: Owner, obj: Manifest) -> Manifest:
    return finish(obj, owner, names.labels(owner.name, names.COMPONENT_MONITORING))


def build_service_monitor(owner: Owner, monitoring: Monitoring) -> Manifest:
    """ServiceMonitor of the engine's backend Service."""
    return _finish(
        owner,
        render_one(
            "servicemonitor.yaml.j2",
            name=names.engine_service_monitor(owner.name),
            namespace=owner.namespace,
            selector=names.selector(owner.name, names.COMPONENT_BACKEND),
            port_name=METRICS_PORT_NAME,
            path=METRICS_PATH,
            interval=monitoring.scrapeInterval,
        ),
    )


def build_prometheus_rule(
    owner: Owner,
    *,
    memory_limit: int | str | None = None,
    backup_enabled: bool = True,
    drill_enabled: bool = False,
) -> Manifest:
    """PrometheusRule with the engine's alerts (see `alerts.rule_groups`)."""
    return _finish(
        owner,
        render_one(
            "prometheusrule.yaml.j2",
            name=names.engine_prometheus_rule(owner.name),
            groups=rule_groups(
                owner.name,
                owner.namespace,
                memory_limit=memory_limit,
                backup_enabled=backup_enabled,
                drill_enabled=drill_enabled,
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
            name=names.engine_dashboard_configmap(owner.name),
            sidecar_labels=DASHBOARD_LABEL,
            annotations={DASHBOARD_FOLDER_ANNOTATION: DASHBOARD_FOLDER},
            file_name=names.engine_dashboard_file(owner.name, owner.namespace),
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
    drill_enabled: bool = False,
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
            build_prometheus_rule(
                owner,
                memory_limit=memory_limit,
                backup_enabled=backup_enabled,
                drill_enabled=drill_enabled,
            )
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
        drill_enabled=spec.backup.drill.enabled,
        prometheus_operator=prometheus_operator,
    )
