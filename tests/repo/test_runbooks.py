"""Every alert the project ships links a runbook that exists and says what it means, how to
confirm it and what to do: the per-engine PrometheusRule (every combination of its options),
the operator's own rule in manifests/monitoring/ and in the Helm chart's template."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from vulcan_operator.builders.monitoring import alerts

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
SECTIONS = ("## What it means", "## How to confirm", "## What to do")


def engine_alerts() -> dict[str, str]:
    found: dict[str, str] = {}
    for backup, drill in itertools.product((True, False), repeat=2):
        groups = alerts.rule_groups("prod", "vulcan", backup_enabled=backup, drill_enabled=drill)
        for rule in (r for g in groups for r in g["rules"]):
            found[rule["alert"]] = rule["annotations"].get("runbook_url", "")
    return found


def operator_alerts() -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "manifests" / "monitoring" / "prometheusrule.yaml").read_text())
    rules = (r for g in doc["spec"]["groups"] for r in g["rules"])
    return {r["alert"]: r["annotations"].get("runbook_url", "") for r in rules}


def chart_alerts() -> dict[str, str]:
    """The chart's template, read as text (Go templating): each alert and its runbook_url."""
    text = (ROOT / "charts" / "vulcan-operator" / "templates" / "monitoring.yaml").read_text()
    found = {}
    for block in re.split(r"\n\s*- alert: ", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        url = re.search(r"runbook_url: (\S+)", block.split("- alert:", 1)[0])
        found[name] = url[1] if url else ""
    return found


ALL = {**engine_alerts(), **operator_alerts(), **chart_alerts()}


def test_the_alerts_are_all_there() -> None:
    assert set(alerts.GUIDE_ALERTS) | set(alerts.OPERATOR_ALERTS) <= set(engine_alerts())
    assert set(chart_alerts()) == set(operator_alerts()) and len(operator_alerts()) >= 3


@pytest.mark.parametrize("alert", sorted(ALL))
def test_every_alert_links_an_existing_runbook(alert: str) -> None:
    assert ALL[alert] == f"{alerts.RUNBOOKS}/{alert}.md", ALL[alert]
    page = RUNBOOKS / f"{alert}.md"
    assert page.is_file(), f"{alert}: no runbook at {page.relative_to(ROOT)}"
    text = page.read_text()
    assert text.startswith(f"# {alert}\n")
    for section in SECTIONS:
        assert section in text, f"{page.name} lacks '{section}'"
        body = text.split(section, 1)[1].split("\n## ", 1)[0].strip()
        assert len(body) > 40, f"{page.name}: '{section}' says too little"


def test_no_runbook_without_an_alert() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(ALL)
