"""Monitoring children of a VulcanEngine: ServiceMonitor, PrometheusRule, dashboard ConfigMap.

Golden files golden/monitoring-*.yaml (the PrometheusRule, with and without a memory limit) and
golden/monitoring-dashboard.json (the Grafana dashboard) pin the whole output;
`pytest tests/unit/builders/test_monitoring.py --update-golden` rewrites them.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.support.manifests import validate_manifest, validate_manifests
from vulcan_operator import names
from vulcan_operator.api.engine import Monitoring
from vulcan_operator.builders import monitoring as mon
from vulcan_operator.builders.engine import EngineInputs, build_service
from vulcan_operator.builders.monitoring import alerts
from vulcan_operator.names import ANNOTATION_SPEC_HASH, LABEL_ENGINE

REPO = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent / "golden"
NS, ENGINE, UID = "vulcan", "prod", "0b6f5e0e-9a0e-4a53-8a55-2f1bbd4b1f00"
GUIDE_PANELS = [
    "Request Rate",
    "Response Time (p95)",
    "Solver Performance",
    "Database Connections",
    "Error Rate",
]
# Series from kube-state-metrics, used only when the backend has no memory limit.
KSM_SERIES = {"kube_pod_info", "kube_node_status_allocatable"}


def children(**kwargs: Any) -> list[dict[str, Any]]:
    monitoring = kwargs.pop("monitoring", Monitoring())
    kwargs.setdefault("memory_limit", "4Gi")
    return mon.monitoring_children(ENGINE, NS, UID, monitoring, **kwargs)


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objs}


def rules(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric name, {label: (op, value)}) of every vector selector in a PromQL expression."""
    found: list[tuple[str, dict[str, tuple[str, str]]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {
                m.name: (str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers
            }
            found.append((node.name or "", matchers))

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def dashboard_of(configmap: dict[str, Any]) -> dict[str, Any]:
    (text,) = configmap["data"].values()
    board: dict[str, Any] = json.loads(text)
    return board


def all_exprs(objs: list[dict[str, Any]]) -> list[str]:
    kinds = by_kind(objs)
    exprs = [r["expr"] for r in rules(kinds["PrometheusRule"]).values()]
    board = dashboard_of(kinds["ConfigMap"])
    exprs += [t["expr"] for p in board["panels"] for t in p["targets"]]
    return exprs


# --- golden files ------------------------------------------------------------------------------
def check_golden(path: Path, text: str, update_golden: bool) -> None:
    """`text` equals the golden file `path` (rewritten instead with --update-golden)."""
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.is_file(), f"{path} missing: run pytest {__file__} --update-golden"
    expected = path.read_text()
    if text != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), text.splitlines(), str(path), "built", lineterm=""
            )
        )
        pytest.fail(f"output differs from {path.name} (review, then --update-golden):\n{diff}")


@pytest.mark.parametrize(
    ("variant", "memory_limit", "backup_enabled"),
    [("with-limit", "4Gi", True), ("no-limit-no-backup", None, False)],
)
def test_golden_prometheus_rule(
    variant: str, memory_limit: str | None, backup_enabled: bool, update_golden: bool
) -> None:
    objs = children(memory_limit=memory_limit, backup_enabled=backup_enabled)
    text = yaml.safe_dump(by_kind(objs)["PrometheusRule"], sort_keys=False, width=100)
    check_golden(GOLDEN / f"monitoring-rule-{variant}.yaml", text, update_golden)


def test_golden_dashboard(update_golden: bool) -> None:
    (text,) = by_kind(children())["ConfigMap"]["data"].values()
    check_golden(GOLDEN / "monitoring-dashboard.json", text + "\n", update_golden)


def test_every_scalar_in_the_dashboard_template_goes_through_tojson() -> None:
    """As in the YAML templates (test_templating); a panel is the macro's JSON object."""
    text = (REPO / "templates" / "dashboard.json.j2").read_text()
    # The panel calls hold Grafana's own {{legend}} strings: leave them out.
    text = re.sub(r"\{\{ panel\(.*?\) \}\}", "", text, flags=re.DOTALL)
    inner = [e.strip() for e in re.findall(r"\{\{(.*?)\}\}", text, flags=re.DOTALL)]
    assert inner and all(re.search(r"\|\s*tojson$", e) for e in inner), inner


def test_the_dashboard_template_escapes_what_it_is_given() -> None:
    board = mon.dashboard('a"b', "n\\s")
    assert board["title"] == 'Vulcan Engine / n\\s / a"b'
    expr = board["panels"][0]["targets"][0]["expr"]
    assert 'namespace="n\\\\s"' in expr  # a PromQL string literal, escaped once more in JSON


# --- shape and validity -----------------------------------------------------------------------
def test_children_are_valid_manifests() -> None:
    objs = children()
    assert [o["kind"] for o in objs] == ["ServiceMonitor", "PrometheusRule", "ConfigMap"]
    validate_manifests(objs)


@pytest.mark.parametrize("engine", ["e" * 63, ".".join(["segment-of-a-long-name"] * 11)])
def test_children_are_valid_for_a_long_engine_name_without_memory_limit(engine: str) -> None:
    assert len(engine) <= 253  # any VulcanEngine name
    objs = mon.monitoring_children(engine, NS, UID, Monitoring(), memory_limit=None)
    validate_manifests(objs)
    for obj in objs:
        assert len(obj["metadata"]["name"]) <= 63
    cm = by_kind(objs)["ConfigMap"]
    board = dashboard_of(cm)
    assert len(board["uid"]) <= 40  # Grafana's limit
    (key,) = cm["data"]
    assert len(key) <= 253 and re.fullmatch(r"[-._a-zA-Z0-9]+\.json", key)


@pytest.mark.parametrize(
    ("flags", "prometheus_operator", "kinds"),
    [
        ({}, True, ["ServiceMonitor", "PrometheusRule", "ConfigMap"]),
        ({"serviceMonitor": False}, True, ["PrometheusRule", "ConfigMap"]),
        ({"prometheusRule": False}, True, ["ServiceMonitor", "ConfigMap"]),
        ({"grafanaDashboard": False}, True, ["ServiceMonitor", "PrometheusRule"]),
        (
            {"serviceMonitor": False, "prometheusRule": False, "grafanaDashboard": False},
            True,
            [],
        ),
        ({}, False, ["ConfigMap"]),  # no Prometheus Operator CRDs: the dashboard only
        ({"grafanaDashboard": False}, False, []),
    ],
)
def test_spec_flags_choose_the_children(
    flags: dict[str, bool], prometheus_operator: bool, kinds: list[str]
) -> None:
    objs = children(monitoring=Monitoring(**flags), prometheus_operator=prometheus_operator)
    assert [o["kind"] for o in objs] == kinds


def test_children_are_owned_labelled_and_hashed() -> None:
    for obj in children():
        meta = obj["metadata"]
        assert meta["namespace"] == NS
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "vulcan-engine.com/v1alpha1",
                "kind": "VulcanEngine",
                "name": ENGINE,
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"].items() >= names.labels(ENGINE, names.COMPONENT_MONITORING).items()
        assert "app.kubernetes.io/instance" not in meta["labels"]  # Argo CD's tracking label
        assert re.fullmatch(r"[0-9a-f]{16}", meta["annotations"][ANNOTATION_SPEC_HASH])


def test_building_is_deterministic_and_the_hash_follows_the_spec() -> None:
    assert children() == children()
    before = by_kind(children())["ServiceMonitor"]
    after = by_kind(children(monitoring=Monitoring(scrapeInterval="30s")))["ServiceMonitor"]
    hash_ = ANNOTATION_SPEC_HASH
    assert before["metadata"]["annotations"][hash_] != after["metadata"]["annotations"][hash_]


# --- ServiceMonitor ---------------------------------------------------------------------------
def engine_inputs(**spec_changes: Any) -> EngineInputs:
    body = yaml.safe_load((REPO / "examples" / "vulcanengine.yaml").read_text())
    body["metadata"]["uid"] = UID
    body["spec"].update(spec_changes)
    return EngineInputs.from_resource(body)


def test_service_monitor_scrapes_the_engines_own_service() -> None:
    inputs = engine_inputs(monitoring={"scrapeInterval": "30s"})
    service = build_service(inputs)
    sm = by_kind(mon.build(inputs))["ServiceMonitor"]
    match = sm["spec"]["selector"]["matchLabels"]
    assert match == names.selector(ENGINE, names.COMPONENT_BACKEND)
    assert service["metadata"]["labels"].items() >= match.items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/api/v1/metrics"  # the guide's metrics_path
    assert endpoint["interval"] == "30s"
    # The alerts select `service="<the Service's name>"`, the label the ServiceMonitor sets.
    rule = by_kind(mon.build(inputs))["PrometheusRule"]
    for name, matchers in selectors(rules(rule)["HighErrorRate"]["expr"]):
        assert matchers["service"] == ("Equal", service["metadata"]["name"]), name


def test_service_monitor_does_not_select_other_engines_services() -> None:
    sm = by_kind(children())["ServiceMonitor"]
    other = names.labels("prod-2", names.COMPONENT_BACKEND)
    match = sm["spec"]["selector"]["matchLabels"]
    assert not other.items() >= match.items()


# --- PrometheusRule ---------------------------------------------------------------------------
GUIDE = {
    # alert: (threshold at the end of the expression, for, severity, summary, description part)
    "HighRequestLatency": (
        "> 2",
        "5m",
        "warning",
        "High request latency detected",
        "95th percentile latency is {{ $value }}s",
    ),
    "HighErrorRate": (
        "> 0.05",
        "5m",
        "critical",
        "High error rate detected",
        "Error rate is {{ $value | humanizePercentage }}",
    ),
    "SolverTimeout": (
        "> 0.1",
        "5m",
        "warning",
        "Solver timeouts increasing",
        "Solver timeout rate is",
    ),
    "DatabaseConnectionPool": (
        "> 0.8",
        "5m",
        "warning",
        "Database connection pool almost full",
        "Connection pool usage is {{ $value | humanizePercentage }}",
    ),
    "HighMemoryUsage": (
        "> 0.8",
        "5m",
        "warning",
        "High memory usage",
        "Memory usage is {{ $value | humanizePercentage }}",
    ),
}


def test_prometheus_rule_has_the_guides_alerts() -> None:
    rule = by_kind(children())["PrometheusRule"]
    groups = {g["name"]: g for g in rule["spec"]["groups"]}
    assert groups["vulcan_engine"]["interval"] == "30s"  # the guide's group interval
    guide_group = [r["alert"] for r in groups["vulcan_engine"]["rules"]]
    assert guide_group == list(GUIDE) == list(alerts.GUIDE_ALERTS)
    found = rules(rule)
    for alert, (threshold, for_, severity, summary, description) in GUIDE.items():
        r = found[alert]
        assert r["expr"].endswith(f" {threshold}"), alert
        assert r["for"] == for_, alert
        assert r["labels"] == {"severity": severity, "engine": ENGINE}, alert
        assert r["annotations"]["summary"].startswith(summary), alert
        assert f"{NS}/{ENGINE}" in r["annotations"]["summary"], alert
        assert description in r["annotations"]["description"], alert


def test_guide_metrics_are_the_ones_alerted_on() -> None:
    found = rules(by_kind(children())["PrometheusRule"])
    metric_names = {a: {n for n, _ in selectors(r["expr"])} for a, r in found.items()}
    assert metric_names["HighRequestLatency"] == {"http_request_duration_seconds_bucket"}
    assert metric_names["HighErrorRate"] == {"http_requests_total"}
    assert metric_names["SolverTimeout"] == {"solver_timeout_total"}
    assert metric_names["DatabaseConnectionPool"] == {"database_connection_pool_usage"}
    assert metric_names["HighMemoryUsage"] == {"process_resident_memory_bytes"}
    error_rate = found["HighErrorRate"]["expr"]
    assert [m.get("status") for _, m in selectors(error_rate)] == [("Re", "5.."), None]


def test_operator_alerts_use_the_operators_gauges() -> None:
    found = rules(by_kind(children())["PrometheusRule"])
    assert set(alerts.OPERATOR_ALERTS) - {"VulcanEngineRestoreNotVerified"} <= set(found)
    backup = selectors(found["VulcanEngineBackupUnhealthy"]["expr"])
    assert backup == [
        ("vulcan_engine_backup_healthy", {"namespace": ("Equal", NS), "engine": ("Equal", ENGINE)})
    ]
    assert found["VulcanEngineBackupUnhealthy"]["expr"].endswith("== 0")
    assert found["VulcanEngineBackupUnhealthy"]["labels"]["severity"] == "critical"
    ready = selectors(found["VulcanEngineNotReady"]["expr"])
    assert [n for n, _ in ready] == ["vulcan_engine_ready", "vulcan_engine_hibernated"]


def test_no_backup_alert_when_backups_are_off() -> None:
    found = rules(by_kind(children(backup_enabled=False))["PrometheusRule"])
    assert "VulcanEngineBackupUnhealthy" not in found
    assert "VulcanEngineNotReady" in found


def test_memory_alert_uses_the_container_limit() -> None:
    for limit, expected in [("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("2G", 2 * 10**9)]:
        expr = rules(by_kind(children(memory_limit=limit))["PrometheusRule"])["HighMemoryUsage"]
        assert f" / {expected} > 0.8" in expr["expr"], limit
        assert f"of the {limit} memory limit" in expr["annotations"]["description"]


def test_memory_alert_without_limit_falls_back_to_node_memory() -> None:
    expr = rules(by_kind(children(memory_limit=None))["PrometheusRule"])["HighMemoryUsage"]
    used = {n for n, _ in selectors(expr["expr"])}
    assert used == {"process_resident_memory_bytes"} | KSM_SERIES
    assert "node's allocatable memory" in expr["annotations"]["description"]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("4Gi", 4294967296),
        ("1536Mi", 1610612736),
        ("1k", 1000),
        ("1.5Gi", 1610612736),
        ("1e9", 1000000000),
        ("100m", 1),  # 0.1 byte, rounded up
        (2048, 2048),
        (None, None),
        ("", None),
        ("0", None),
        ("lots", None),
    ],
)
def test_memory_bytes(quantity: int | str | None, expected: int | None) -> None:
    assert alerts.memory_bytes(quantity) == expected


def test_builder_reads_limit_and_backup_from_the_spec() -> None:
    inputs = engine_inputs(resources={"limits": {"memory": "8Gi"}}, backup={"enabled": False})
    found = rules(by_kind(mon.build(inputs))["PrometheusRule"])
    assert f" / {8 * 2**30} > 0.8" in found["HighMemoryUsage"]["expr"]
    assert "VulcanEngineBackupUnhealthy" not in found
    assert [o["kind"] for o in mon.build(inputs, prometheus_operator=False)] == ["ConfigMap"]


# --- PromQL: parses, and is scoped to this engine -------------------------------------------
@pytest.mark.parametrize("memory_limit", ["4Gi", None])
def test_every_expression_parses_and_selects_only_this_engine(
    memory_limit: str | None,
) -> None:
    objs = children(memory_limit=memory_limit)
    exprs = all_exprs(objs)
    assert len(exprs) >= len(GUIDE) + len(GUIDE_PANELS)
    service = names.engine_service(ENGINE)
    for expr in exprs:
        found = selectors(expr)  # raises ValueError when the expression does not parse
        assert found, expr
        for name, matchers in found:
            if name in KSM_SERIES:
                assert memory_limit is None, expr
                # Node memory is per node: joined to this engine's pods via kube_pod_info.
                if name == "kube_pod_info":
                    assert matchers.get("namespace") == ("Equal", NS), expr
                continue
            assert matchers.get("namespace") == ("Equal", NS), (name, expr)
            scoped = matchers.get("service") == ("Equal", service) or matchers.get("engine") == (
                "Equal",
                ENGINE,
            )
            assert scoped, (name, expr)


def test_an_invalid_expression_is_refused_by_the_parser() -> None:
    # The check above is only worth something if the parser does refuse bad PromQL.
    with pytest.raises(ValueError):
        promql_parser.parse('sum by (le (rate(x{namespace="a"}[5m]))')


def test_two_engines_in_one_namespace_select_disjoint_series() -> None:
    a = all_exprs(mon.monitoring_children("a", NS, UID, Monitoring(), memory_limit="1Gi"))
    b = all_exprs(mon.monitoring_children("b", NS, UID, Monitoring(), memory_limit="1Gi"))

    def scopes(exprs: list[str]) -> set[tuple[str, str]]:
        out = set()
        for expr in exprs:
            for _, m in selectors(expr):
                _, scope = m.get("service") or m["engine"]
                out.add((scope, m["namespace"][1]))
        return out

    assert scopes(a) == {("a", NS)}
    assert scopes(b) == {("b", NS)}


def test_go_template_annotations_survive_jinja() -> None:
    rule = by_kind(children())["PrometheusRule"]
    text = json.dumps(rule)
    assert "{{ $value }}" in text and "{{ $labels.pod }}" in text


# --- dashboard --------------------------------------------------------------------------------
def test_dashboard_configmap_is_picked_up_by_the_grafana_sidecar() -> None:
    cm = by_kind(children())["ConfigMap"]
    validate_manifest(cm)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"][LABEL_ENGINE] == ENGINE
    (key,) = cm["data"]
    assert key.endswith(".json")
    assert re.fullmatch(r"[-._a-zA-Z0-9]+", key)  # a valid ConfigMap key


def test_dashboard_is_a_grafana_dashboard_with_the_guides_panels() -> None:
    board = dashboard_of(by_kind(children())["ConfigMap"])
    assert board["title"] == f"Vulcan Engine / {NS} / {ENGINE}"
    assert isinstance(board["schemaVersion"], int)
    assert re.fullmatch(r"[-_a-zA-Z0-9]{1,40}", board["uid"])
    titles = [p["title"] for p in board["panels"]]
    assert titles[: len(GUIDE_PANELS)] == GUIDE_PANELS
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    datasource = {v["name"]: v for v in board["templating"]["list"]}["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    for panel in board["panels"]:
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs)
    panels = {p["title"]: p for p in board["panels"]}
    solver = {n for t in panels["Solver Performance"]["targets"] for n, _ in selectors(t["expr"])}
    assert solver == {
        "solver_problems_total",
        "solver_problems_solved_total",
        "solver_duration_seconds_bucket",
    }
    db = {n for t in panels["Database Connections"]["targets"] for n, _ in selectors(t["expr"])}
    assert db == {"database_connection_pool_size", "database_connection_pool_usage"}
    assert panels["Error Rate"]["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_dashboards_of_two_engines_do_not_collide() -> None:
    one = by_kind(mon.monitoring_children("a", "ns1", UID, Monitoring()))["ConfigMap"]
    two = by_kind(mon.monitoring_children("a", "ns2", UID, Monitoring()))["ConfigMap"]
    assert dashboard_of(one)["uid"] != dashboard_of(two)["uid"]
    assert set(one["data"]) != set(two["data"])  # the sidecar writes files by key
