"""Nothing is granted that the operator's requests do not need, or that rbac.yaml does not
justify. tests/data/rbac-exercised.json is the measurement: every request the operator and its
solver pods made while the integration tests ran it (the fixture in tests/support/operator.py
records them; see tests/support/rbac.py). Each grant of manifests/rbac.yaml that no request
exercised must say why it stays, in an `# unexercised: <verb> <resource> [<group>]: why` line,
and no such line may name a grant that is exercised.

Measure again after changing the operator's requests or the rules (the whole integration
suite, ~15 minutes here):
    rm -f tests/data/rbac-exercised.json
    VULCAN_RBAC_USAGE=tests/data/rbac-exercised.json pytest tests/integration
    python -m tests.support.rbac unused tests/data/rbac-exercised.json
"""

from __future__ import annotations

from pathlib import Path

from tests.support.rbac import (
    cluster_role_rules,
    denied,
    exercised,
    grants,
    load,
    unexercised_justified,
    unused,
)

REPO = Path(__file__).resolve().parents[2]
MEASURED = REPO / "tests" / "data" / "rbac-exercised.json"


def test_every_unexercised_grant_is_justified_and_only_those() -> None:
    requests = load(MEASURED)
    justified = unexercised_justified()
    idle = set(unused(requests))
    assert not idle - set(justified), (
        "grants no integration test exercised and rbac.yaml does not justify (drop them, or "
        f"add `# unexercised: <verb> <resource> [<group>]: why`): {sorted(idle - set(justified))}"
    )
    assert not set(justified) - idle, (
        "`unexercised:` lines for grants that are exercised or no longer granted: "
        f"{sorted(set(justified) - idle)}"
    )
    assert all(why for why in justified.values()), justified


def test_the_measurement_is_of_these_rules() -> None:
    requests = load(MEASURED)
    assert not denied(requests), "the measurement holds requests the rules do not allow"
    # Most of what is granted is exercised: the measurement is not of an empty run.
    rules = cluster_role_rules()
    assert len(exercised(requests) & grants(rules)) > len(grants(rules)) // 2
