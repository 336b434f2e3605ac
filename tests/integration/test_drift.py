"""What changes under the operator, or in a spec, reaches the children it owns: a changed
autoscaling or ingress spec patches the HPA and the Ingress; a ServiceAccount, PDB,
ServiceMonitor, PrometheusRule or solver Role and RoleBinding someone edited is put back at the
next reconcile (the fields the operator sets); with the Prometheus Operator's CRDs the engine's
ServiceMonitor and PrometheusRule are made, repaired and pruned. These exercise grants of
manifests/rbac.yaml that no other test does (tests/repo/test_rbac_grants.py).
"""

from __future__ import annotations

from typing import Any

from tests.emulator import Emulator
from tests.support.crds import MONITORING_KINDS, monitoring_crd
from tests.support.kopf_runner import OperatorRunner

API_VERSION = "vulcan-engine.com/v1alpha1"
NS = "default"


ENGINE = {
    "apiVersion": API_VERSION,
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": NS},
    "spec": {
        "version": "2.0.0",
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4},
        "ingress": {"enabled": True, "host": "a.example.com"},
    },
}
PROBLEM = {
    "apiVersion": API_VERSION,
    "kind": "SchedulingProblem",
    "metadata": {"name": "week-48", "namespace": NS},
    "spec": {
        "engineRef": {"name": "prod"},
        "machines": [{"name": "m1"}],
        "jobs": [{"name": "j1", "tasks": [{"name": "t1", "duration": 3, "machines": ["m1"]}]}],
    },
}


def one(emulator: Emulator, plural: str) -> dict[str, Any]:
    """The engine's child of that kind: named like the engine (names.engine_*)."""
    obj = emulator.get(plural, NS, "prod")
    assert obj is not None, plural
    return obj


async def test_spec_changes_and_edits_by_hand_reach_the_children(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    for plural, kind in MONITORING_KINDS:
        emulator.create(monitoring_crd(plural, kind))
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prod-database", "namespace": NS},
            "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
        }
    )
    emulator.create(ENGINE)
    await emulator.wait_for(
        lambda: all(
            emulator.list(p, NS, labels="vulcan-engine.com/engine=prod")
            for p in ("servicemonitors", "prometheusrules", "horizontalpodautoscalers", "ingresses")
        ),
        timeout=60,
    )

    # Edited by hand: the ServiceAccount, the PDB and the ServiceMonitor (fields the operator
    # sets; it leaves fields it does not set alone).
    account = emulator.get("serviceaccounts", NS, "prod")
    assert account is not None and account.get("automountServiceAccountToken") is False
    emulator.patch("serviceaccounts", NS, "prod", {"automountServiceAccountToken": True})
    emulator.patch("poddisruptionbudgets", NS, "prod", {"spec": {"maxUnavailable": 3}})
    endpoints = one(emulator, "servicemonitors")["spec"]["endpoints"]
    assert endpoints
    emulator.patch("servicemonitors", NS, "prod", {"spec": {"endpoints": []}})
    groups = one(emulator, "prometheusrules")["spec"]["groups"]
    emulator.patch("prometheusrules", NS, "prod", {"spec": {"groups": []}})
    # A new spec: the HPA's bounds and the Ingress's host change.
    emulator.patch(
        "vulcanengines",
        NS,
        "prod",
        {"spec": {"autoscaling": {"maxReplicas": 6}, "ingress": {"host": "b.example.com"}}},
    )

    def reconciled() -> bool:
        hpa, ingress = one(emulator, "horizontalpodautoscalers"), one(emulator, "ingresses")
        account = emulator.get("serviceaccounts", NS, "prod") or {}
        pdb = emulator.get("poddisruptionbudgets", NS, "prod") or {}
        monitor = one(emulator, "servicemonitors")
        return (
            hpa["spec"]["maxReplicas"] == 6
            and ingress["spec"]["rules"][0]["host"] == "b.example.com"
            and account.get("automountServiceAccountToken") is False
            and pdb["spec"]["maxUnavailable"] == 1
            and monitor["spec"]["endpoints"] == endpoints
            and one(emulator, "prometheusrules")["spec"]["groups"] == groups
        )

    await emulator.wait_for(reconciled, timeout=60)

    # Turned off: the ServiceMonitor and the PrometheusRule are pruned.
    emulator.patch(
        "vulcanengines",
        NS,
        "prod",
        {"spec": {"monitoring": {"serviceMonitor": False, "prometheusRule": False}}},
    )
    await emulator.wait_for(
        lambda: (
            emulator.get("prometheusrules", NS, "prod") is None
            and emulator.get("servicemonitors", NS, "prod") is None
        ),
        timeout=60,
    )

    # The solver's Role and RoleBinding, widened and re-pointed by hand, are put back when the
    # problem's next generation is solved.
    emulator.create(PROBLEM)
    role = await emulator.wait_for(lambda: emulator.get("roles", NS, "week-48-solver"), timeout=60)
    binding = await emulator.wait_for(
        lambda: emulator.get("rolebindings", NS, "week-48-solver"), timeout=60
    )
    assert role is not None and binding is not None
    wide = [*role["rules"], {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    emulator.patch("roles", NS, "week-48-solver", {"rules": wide})
    other = [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]
    emulator.patch("rolebindings", NS, "week-48-solver", {"subjects": other})
    emulator.patch("schedulingproblems", NS, "week-48", {"spec": {"solver": {"maxTimeSeconds": 5}}})
    await emulator.wait_for(
        lambda: (
            (emulator.get("roles", NS, "week-48-solver") or {}).get("rules") == role["rules"]
            and (emulator.get("rolebindings", NS, "week-48-solver") or {}).get("subjects")
            == binding["subjects"]
        ),
        timeout=60,
    )
