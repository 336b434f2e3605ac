"""acceptFrom, label selectors and cross-namespace engine references (issue 15, defect 9)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vulcan_operator.api.common import LabelSelector
from vulcan_operator.api.engine import AcceptFrom, VulcanEngineSpec
from vulcan_operator.api.problem import EngineReference
from vulcan_operator.builders.problem import acceptance_issue

LABELS = {"kubernetes.io/metadata.name": "plant-a", "team": "planning", "tier": "gold"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),  # empty: everything, as the API server's selectors
        ({"matchLabels": {"team": "planning"}}, True),
        ({"matchLabels": {"team": "planning", "tier": "silver"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, False),
        ({"matchExpressions": [{"key": "other", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"kubernetes.io/metadata.name": "plant-a"},
                "matchExpressions": [{"key": "team", "operator": "Exists"}],
            },
            True,
        ),
    ],
)
def test_label_selector_semantics(selector: dict[str, object], matches: bool) -> None:
    assert LabelSelector.model_validate(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("selector", "error"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "In and NotIn need values"),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "Exists and DoesNotExist take none",
        ),
        ({"matchLabels": {"a b": "x"}}, "is not a label key"),
        ({"matchLabels": {"team": "not a value"}}, "matchLabels.team"),
        ({"matchExpressions": [{"key": "a", "operator": "Like", "values": ["x"]}]}, "operator"),
    ],
)
def test_bad_selectors_are_refused(selector: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        LabelSelector.model_validate(selector)


def test_an_engine_accepts_its_own_namespace_only_by_default() -> None:
    accept = VulcanEngineSpec(version="1").solver.acceptFrom
    assert accept == AcceptFrom()
    assert accept.admits("vulcan", "vulcan", None)
    assert not accept.admits("vulcan", "plant-a", LABELS)


def test_a_list_or_a_selector_admits() -> None:
    listed = AcceptFrom(namespaces=["plant-a"])
    assert listed.admits("vulcan", "plant-a", None)
    assert not listed.admits("vulcan", "plant-b", {"team": "planning"})
    selected = AcceptFrom.model_validate(
        {"namespaceSelector": {"matchLabels": {"team": "planning"}}}
    )
    assert selected.admits("vulcan", "plant-b", {"team": "planning"})
    assert not selected.admits("vulcan", "plant-b", {"team": "sales"})
    assert not selected.admits("vulcan", "plant-b", None)  # labels not read: no
    assert AcceptFrom.model_validate({"namespaceSelector": {}}).admits("vulcan", "any", {})


def test_a_refusal_names_the_engine_and_the_field_that_would_allow_it() -> None:
    message = acceptance_issue("plant-b", "prod", "vulcan", AcceptFrom(), None)
    assert message is not None
    assert "VulcanEngine 'prod' in namespace 'vulcan'" in message
    assert "adding 'plant-b' to its spec.solver.acceptFrom.namespaces" in message
    selector = AcceptFrom.model_validate({"namespaceSelector": {"matchLabels": {"a": "b"}}})
    message = acceptance_issue("plant-b", "prod", "vulcan", selector, {})
    assert message is not None and "namespaceSelector does not match" in message
    assert acceptance_issue("vulcan", "prod", "vulcan", AcceptFrom(), None) is None


def test_engine_reference_namespace() -> None:
    assert EngineReference(name="prod").namespace_for("plant-a") == "plant-a"
    ref = EngineReference.model_validate({"name": "prod", "namespace": "vulcan"})
    assert ref.namespace_for("plant-a") == "vulcan"
    with pytest.raises(ValidationError, match="namespace"):
        EngineReference.model_validate({"name": "prod", "namespace": "Not_A_Namespace"})
    with pytest.raises(ValidationError, match=r"acceptFrom\.namespaces"):
        VulcanEngineSpec.model_validate(
            {"version": "1", "solver": {"acceptFrom": {"namespaces": ["UPPER"]}}}
        )
