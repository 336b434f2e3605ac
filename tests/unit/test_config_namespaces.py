"""Settings.visible_namespaces: where the operator may list a kind across its reach. A
namespaced install grants nothing cluster-wide, so with exact `-n` names every such list is
made per watched namespace; only cluster-wide runs and namespace patterns (which need
cluster-wide rights anyway) list across all namespaces. The registry's start-up follows it:
exact names turn Kopf's namespace and CRD scanning off (main.without_scanning)."""

from __future__ import annotations

import pytest

from vulcan_operator.config import Settings
from vulcan_operator.main import make_registry, without_scanning


@pytest.mark.parametrize(
    ("namespaces", "visible"),
    [
        ((), (None,)),
        (("team-a",), ("team-a",)),
        (("team-a", "team-b"), ("team-a", "team-b")),
        (("team-*",), (None,)),
        (("team-a", "!team-b"), (None,)),
        (("team-[ab]",), (None,)),
        (("team-?",), (None,)),
    ],
)
def test_visible_namespaces(namespaces: tuple[str, ...], visible: tuple[str | None, ...]) -> None:
    settings = Settings(namespaces=namespaces)
    assert settings.visible_namespaces == visible
    assert settings.clusterwide is (namespaces == ())


def startup(settings: Settings) -> list[object]:
    """The functions the registry runs as activities (start-up, probes...)."""
    return [h.fn for h in make_registry(settings)._activities.get_all_handlers()]


def test_exact_namespaces_turn_kopfs_scanning_off() -> None:
    assert without_scanning in startup(Settings(namespaces=("team-a", "team-b")))
    assert without_scanning not in startup(Settings())
    assert without_scanning not in startup(Settings(namespaces=("team-*",)))
