"""Tests of the manifest validation helper in tests/manifests.py."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import all_versions

from tests.support import manifests
from tests.support.manifests import (
    KUBERNETES_VERSION,
    custom_resource_schema,
    manifest_errors,
    validate_manifest,
    validate_manifests,
)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vulcan-backend", "namespace": "vulcan", "labels": {"app": "x"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [
                        {
                            "name": "backend",
                            "image": "vulcan/backend:1.0",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                        }
                    ]
                },
            },
        },
    }


def service_monitor() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "vulcan-backend", "namespace": "vulcan"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "namespaceSelector": {"matchNames": ["vulcan"]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "vulcan-alerts", "namespace": "vulcan"},
        "spec": {
            "groups": [
                {
                    "name": "vulcan",
                    "rules": [
                        {
                            "alert": "VulcanBackendDown",
                            "expr": 'up{job="vulcan-backend"} == 0',
                            "for": "5m",
                            "labels": {"severity": "critical"},
                            "annotations": {"summary": "backend down"},
                        },
                        {"record": "vulcan:solves:rate5m", "expr": "rate(solves_total[5m])"},
                    ],
                }
            ]
        },
    }


def errors_of(obj: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as info:
        validate_manifest(obj, **kwargs)
    return str(info.value)


# -- built-in kinds (kubernetes-validate, strict) ----------------------------------------------
def test_pinned_version_is_bundled() -> None:
    assert KUBERNETES_VERSION in all_versions()


def test_valid_deployment_passes() -> None:
    validate_manifest(deployment())
    assert manifest_errors(deployment()) == []


def test_typo_in_nested_field_fails_naming_object_and_field() -> None:
    obj = deployment()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "Always"
    message = errors_of(obj)
    assert "Deployment/vulcan-backend" in message
    assert "imagePullPolicyy" in message
    assert "spec.template.spec.containers[0]" in message


def test_typo_at_top_level_and_in_metadata_fail() -> None:
    obj = deployment()
    obj["sepc"] = obj.pop("spec")
    assert "sepc" in errors_of(obj)
    obj = deployment()
    obj["metadata"]["lables"] = {"a": "b"}
    assert "lables" in errors_of(obj)


def test_wrong_type_fails() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = "2"
    message = errors_of(obj)
    assert "spec.replicas" in message
    assert "'2'" in message


def test_missing_required_field_fails() -> None:
    obj = deployment()
    del obj["spec"]["template"]["spec"]["containers"][0]["name"]
    assert "'name' is a required property" in errors_of(obj)
    obj = deployment()
    del obj["spec"]["selector"]
    assert "'selector' is a required property" in errors_of(obj)


def test_removed_api_version_fails() -> None:
    obj = deployment()
    obj["apiVersion"] = "extensions/v1beta1"
    assert "no schema for kind 'Deployment'" in errors_of(obj)


def test_unknown_custom_kind_without_schema_fails_clearly(tmp_path: Path) -> None:
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {},
    }
    message = errors_of(obj, crd_dir=tmp_path)
    assert message.startswith("Gadget/g1 (example.com/v1): no schema for kind 'Gadget'")
    assert str(tmp_path) in message
    assert "example.com_v1_gadget.json" in message


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "apiVersion: missing"),
        ({"apiVersion": "v1", "metadata": {"name": "a"}}, "kind: missing"),
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "metadata: missing"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "metadata.name: missing"),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {1.5j: 1}},
            "not JSON-serializable",
        ),
    ],
)
def test_malformed_objects_fail(obj: dict[str, Any], expected: str) -> None:
    assert expected in errors_of(obj)


def test_generate_name_counts_as_a_name() -> None:
    obj = deployment()
    obj["metadata"] = {"generateName": "vulcan-backend-"}
    validate_manifest(obj)


def test_validate_manifests_reports_every_bad_object() -> None:
    bad_type = deployment()
    bad_type["spec"]["replicas"] = "3"
    bad_monitor = service_monitor()
    bad_monitor["metadata"]["name"] = "monitor"
    del bad_monitor["spec"]["selector"]
    with pytest.raises(AssertionError) as info:
        validate_manifests([deployment(), bad_type, service_monitor(), bad_monitor])
    message = str(info.value)
    assert message.startswith("2 manifest error(s) in 4 object(s)")
    assert "Deployment/vulcan-backend" in message
    assert "ServiceMonitor/monitor" in message
    validate_manifests(iter([deployment(), service_monitor(), prometheus_rule()]))


def test_validate_manifests_rejects_empty_input_unless_allowed() -> None:
    with pytest.raises(AssertionError, match="no manifests"):
        validate_manifests([])
    validate_manifests([], allow_empty=True)


# -- bundled schemas: ServiceMonitor and PrometheusRule ----------------------------------------
def test_valid_service_monitor_and_prometheus_rule_pass() -> None:
    validate_manifest(service_monitor())
    validate_manifest(prometheus_rule())


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda o: o["spec"]["endpoints"][0].update(intervall="30s"), "'intervall' was unexpected"),
        (lambda o: o["spec"]["endpoints"][0].update(interval="30 seconds"), "does not match"),
        (lambda o: o["spec"]["endpoints"][0].update(port=8080), "8080 is not of type 'string'"),
        (lambda o: o["spec"].pop("selector"), "'selector' is a required property"),
        (lambda o: o["spec"]["namespaceSelector"].update(matchNames="vulcan"), "not of type"),
        (
            lambda o: o["spec"]["selector"].update(
                matchExpressions=[{"key": "a", "operator": "Equals"}]
            ),
            "'Equals' is not one of",
        ),
        (lambda o: o["metadata"].update(lables={}), "metadata: Additional properties"),
        (lambda o: o.update(apiVersion="monitoring.coreos.com/v2"), "no schema"),
    ],
)
def test_invalid_service_monitor_fails(mutate: Any, expected: str) -> None:
    obj = service_monitor()
    mutate(obj)
    message = errors_of(obj)
    assert "ServiceMonitor/vulcan-backend" in message
    assert expected in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(expr=None), "None is not valid under any of the given schemas"),
        (lambda r: r.pop("expr"), "'expr' is a required property"),
        (lambda r: r.update(record="also:recorded"), "is valid under each of"),
        (lambda r: r.update(four="5m"), "'four' was unexpected"),
        (lambda r: r.update(labels={"severity": 1}), "1 is not of type 'string'"),
    ],
)
def test_invalid_prometheus_rule_fails(mutate: Any, expected: str) -> None:
    obj = prometheus_rule()
    mutate(obj["spec"]["groups"][0]["rules"][0])
    message = errors_of(obj)
    assert "PrometheusRule/vulcan-alerts" in message
    assert "spec.groups[0].rules[0]" in message
    assert expected in message


def test_prometheus_rule_group_names_must_be_unique() -> None:
    obj = prometheus_rule()
    obj["spec"]["groups"].append(copy.deepcopy(obj["spec"]["groups"][0]))
    assert "duplicate entry with key {'name': 'vulcan'}" in errors_of(obj)


# -- CRD schemas from a crds/ folder -----------------------------------------------------------
WIDGET_CRD = textwrap.dedent(
    """\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.vulcan-engine.com
    spec:
      group: vulcan-engine.com
      scope: Namespaced
      names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
      versions:
      - name: v1alpha1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            required: [spec]
            properties:
              apiVersion: {type: string}
              kind: {type: string}
              metadata: {type: object}
              spec:
                type: object
                required: [size, mode]
                properties:
                  size: {x-kubernetes-int-or-string: true}
                  mode: {type: string, enum: [fast, slow], default: fast}
                  ratio: {type: number, minimum: 0, exclusiveMinimum: true}
                  note: {type: string, nullable: true}
                  extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
                  tags:
                    type: array
                    items: {type: string}
                    x-kubernetes-list-type: set
                  ports:
                    type: array
                    x-kubernetes-list-type: map
                    x-kubernetes-list-map-keys: [name]
                    items:
                      type: object
                      required: [name]
                      properties:
                        name: {type: string}
                        port: {type: integer}
              status:
                type: object
                x-kubernetes-preserve-unknown-fields: true
      - name: v1old
        served: false
        storage: false
        schema:
          openAPIV3Schema: {type: object}
    """
)


@pytest.fixture
def crd_dir(tmp_path: Path) -> Path:
    (tmp_path / "widgets.vulcan-engine.com.yaml").write_text(WIDGET_CRD)
    return tmp_path


def widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "vulcan", "labels": {"a": "b"}},
        "spec": {"size": "4Gi", **spec},
    }


def test_valid_custom_resource_passes(crd_dir: Path) -> None:
    validate_manifest(widget(), crd_dir=crd_dir)  # `mode` has a default, so it may be left out
    validate_manifest(
        widget(
            size=3,
            mode="slow",
            ratio=0.5,
            note=None,
            extra={"anything": {"goes": [1]}},
            tags=["a", "b"],
            ports=[{"name": "http", "port": 80}, {"name": "grpc", "port": 81}],
        ),
        crd_dir=crd_dir,
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"sise": 3}, "'sise' was unexpected"),
        ({"size": 1.5}, "1.5 is not valid under any of the given schemas"),
        ({"mode": "medium"}, "'medium' is not one of ['fast', 'slow']"),
        ({"ratio": 0}, "less than or equal to the minimum of 0"),
        ({"tags": ["a", "a"]}, "duplicate entry"),
        ({"ports": [{"name": "x", "port": 1}, {"name": "x", "port": 2}]}, "{'name': 'x'}"),
        ({"ports": [{"port": 1}]}, "'name' is a required property"),
    ],
)
def test_invalid_custom_resource_fails(crd_dir: Path, spec: dict[str, Any], expected: str) -> None:
    message = errors_of(widget(**spec), crd_dir=crd_dir)
    assert message.startswith("Widget/w1 (vulcan-engine.com/v1alpha1): spec")
    assert f"CRD {crd_dir}" in message
    assert expected in message


def test_custom_resource_missing_spec_and_bad_metadata_fail(crd_dir: Path) -> None:
    obj = widget()
    del obj["spec"]
    assert "'spec' is a required property" in errors_of(obj, crd_dir=crd_dir)
    obj = widget()
    obj["metadata"]["annotations"] = {"a": 1}
    assert "metadata.annotations.a" in errors_of(obj, crd_dir=crd_dir)


def test_unserved_crd_version_has_no_schema(crd_dir: Path) -> None:
    obj = widget()
    obj["apiVersion"] = "vulcan-engine.com/v1old"
    assert "no schema for kind 'Widget'" in errors_of(obj, crd_dir=crd_dir)


def test_crd_folder_is_reread_when_it_changes(tmp_path: Path) -> None:
    assert custom_resource_schema("vulcan-engine.com/v1alpha1", "Widget", crd_dir=tmp_path) is None
    (tmp_path / "widgets.yaml").write_text(WIDGET_CRD)
    found = custom_resource_schema("vulcan-engine.com/v1alpha1", "Widget", crd_dir=tmp_path)
    assert found is not None
    assert found[1] == f"CRD {tmp_path / 'widgets.yaml'}"


# -- the repository's own CRDs -----------------------------------------------------------------
def _repo_crds() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(manifests.CRD_DIR.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_repository_crds_are_valid_kubernetes_objects() -> None:
    crds = _repo_crds()
    assert len(crds) == 4, "crds/ must hold our four CRDs"
    validate_manifests(crds)


def test_our_kinds_resolve_through_the_repository_crds() -> None:
    crds = [c for c in _repo_crds() if c.get("kind") == "CustomResourceDefinition"]
    assert len(crds) == 4, "crds/ must hold our four CRDs"
    for crd in crds:
        version = next(v["name"] for v in crd["spec"]["versions"] if v.get("served"))
        obj = {
            "apiVersion": f"{crd['spec']['group']}/{version}",
            "kind": crd["spec"]["names"]["kind"],
            "metadata": {"name": "probe"},
            "spec": {"surelyNotAField": 1},
        }
        message = errors_of(obj)
        assert "'surelyNotAField' was unexpected" in message
        assert "CRD crds/" in message
