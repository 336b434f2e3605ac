"""handlers.children.ours: which watched objects the children's indexes keep."""

from __future__ import annotations

from typing import Any

from vulcan_operator import names
from vulcan_operator.handlers.children import ours
from vulcan_operator.sharding import UNSHARDED

LABELS = {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_ENGINE: "prod"}
ENGINE = {"apiVersion": "vulcan-engine.com/v1alpha1", "kind": "VulcanEngine", "name": "prod"}
PROBLEM = {**ENGINE, "kind": "SchedulingProblem", "name": "week"}


def keeps(kind: str, *owners: dict[str, Any], labels: dict[str, str] = LABELS) -> bool:
    body = {"metadata": {"labels": labels, "ownerReferences": list(owners)}}
    return ours(UNSHARDED, kind)(namespace="default", labels=labels, body=body)


def test_data_carrying_kinds_only_when_an_engine_owns_them() -> None:
    # Anyone who may create ConfigMaps or PrometheusRules could label 1 MiB ones as ours.
    for kind in ("ConfigMap", "PrometheusRule"):
        assert keeps(kind, ENGINE)
        assert not keeps(kind)
    assert keeps("Service") and keeps("ServiceMonitor")  # small: the label is enough


def test_a_problems_children_are_not_the_engines() -> None:
    assert not keeps("ConfigMap", PROBLEM)
    solver = {**LABELS, names.LABEL_COMPONENT: names.COMPONENT_SOLVER}
    assert not keeps("Job", labels=solver)
