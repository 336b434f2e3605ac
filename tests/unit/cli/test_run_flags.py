"""`vulcan-operator run` takes Kopf's own spellings of its scope: -n/--namespace (repeatable)
and -A/--all-namespaces, which wins over VULCAN_NAMESPACES (issue 15, defect 7)."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from vulcan_operator import main as operator_main
from vulcan_operator import metrics
from vulcan_operator.cli import main


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `run` would start the operator with (it is not started)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(operator_main, "run", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.parametrize("flag", ["-A", "--all-namespaces"])
def test_all_namespaces(flag: str, runs: list[dict[str, Any]]) -> None:
    assert main(["run", flag, "--standalone"]) == 0
    (call,) = runs
    assert call["all_namespaces"] is True and call["namespaces"] == []
    assert call["standalone"] is True


def test_namespaces_are_repeatable_and_not_all(runs: list[dict[str, Any]]) -> None:
    assert main(["run", "-n", "vulcan", "--namespace", "plant-a"]) == 0
    (call,) = runs
    assert call["namespaces"] == ["vulcan", "plant-a"] and call["all_namespaces"] is False


def test_all_and_some_namespaces_at_once_is_a_usage_error(
    runs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-A", "-n", "vulcan"])
    assert exit_.value.code == 2 and runs == []
    assert "not allowed with argument -A/--all-namespaces" in capsys.readouterr().err


def test_all_namespaces_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """-A reaches Kopf as cluster-wide even when VULCAN_NAMESPACES names some."""
    seen: dict[str, Any] = {}
    monkeypatch.setenv("VULCAN_NAMESPACES", "vulcan")
    monkeypatch.setattr(operator_main, "load_kube_config", lambda: None)
    monkeypatch.setattr(metrics, "start_metrics_server", lambda port: None)
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    main(["run", "-A", "--standalone", "--liveness="])
    assert seen["clusterwide"] is True and not seen.get("namespaces")
    seen.clear()
    main(["run", "--standalone", "--liveness="])
    assert seen["namespaces"] == ["vulcan"] and not seen.get("clusterwide")
