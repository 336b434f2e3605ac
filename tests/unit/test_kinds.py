"""The kinds table is what the CRDs, the client and the handlers say."""

from __future__ import annotations

from vulcan_operator import crdgen, kinds
from vulcan_operator.k8s import PLURALS


def test_each_crd_model_is_the_kind_of_its_row() -> None:
    assert [k.table for k in crdgen.KINDS] == list(kinds.ALL)
    assert all(k.model.__name__ == k.kind for k in crdgen.KINDS)


def test_the_client_knows_each_kinds_plural() -> None:
    for kind in kinds.ALL:
        assert PLURALS[(kind.api_version, kind.kind)] == kind.plural


def test_plurals_and_short_names_are_unique() -> None:
    assert len({k.plural for k in kinds.ALL}) == len({k.short for k in kinds.ALL}) == 4
