"""The engine's edge on the real operator (issue 15, defects 1 and 5): status.networkPolicy
says who may reach the API, and the children an Ingress, an nginx class and the egress policy
add are made and, once the spec no longer asks for them, deleted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator import Emulator
from tests.support.kopf_runner import OperatorRunner

ENGINES = "vulcanengines"


def engine(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": "default"},
        "spec": {"version": "2.0.0", **spec},
    }


def db_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "prod-database", "namespace": "default"},
        "stringData": {"database-url": "postgresql://vulcan:s3cr3t-pw@db:5432/vulcan"},
    }


def status(emulator: Emulator) -> dict[str, Any]:
    return (emulator.get(ENGINES, "default", "prod") or {}).get("status") or {}


@pytest.fixture(autouse=True)
def fast_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")


async def test_status_and_children_follow_the_edge_of_the_spec(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(
        engine(
            {
                "ingress": {"enabled": True, "host": "api.example.com"},
                "service": {"type": "LoadBalancer"},
                "networkPolicy": {"egress": {"enabled": True}},
            }
        )
    )

    def admitted() -> list[str]:
        return list((status(emulator).get("networkPolicy") or {}).get("ingressFrom") or [])

    await emulator.wait_for(lambda: any("ingress controller" in s for s in admitted()), timeout=60)
    sources = admitted()
    assert sources[0] == "every pod in namespace default"
    assert any(s.startswith("any address 0.0.0.0/0 (service type LoadBalancer)") for s in sources)
    egress = status(emulator)["networkPolicy"]["egressTo"]
    assert any(s.startswith("PostgreSQL") for s in egress)
    for resource, name in (
        ("ingresses", "prod"),
        ("ingresses", "prod-solve"),
        ("configmaps", "prod-security-headers"),
        ("networkpolicies", "prod-egress"),
    ):
        assert emulator.get(resource, "default", name) is not None, (resource, name)
    service = emulator.get("services", "default", "prod")
    assert service is not None and service["spec"]["type"] == "LoadBalancer"

    # back to the defaults: the extra children go, the status says so
    emulator.patch(
        ENGINES,
        "default",
        "prod",
        {"spec": {"ingress": {"enabled": False}, "service": None, "networkPolicy": None}},
    )
    await emulator.wait_for(
        lambda: (
            emulator.get("ingresses", "default", "prod-solve") is None
            and emulator.get("networkpolicies", "default", "prod-egress") is None
            and emulator.get("configmaps", "default", "prod-security-headers") is None
            and emulator.get("ingresses", "default", "prod") is None
        ),
        timeout=60,
    )
    await emulator.wait_for(
        lambda: (
            "egressTo" not in (status(emulator).get("networkPolicy") or {"egressTo": 1})
            and not any("ingress controller" in s for s in admitted())
        ),
        timeout=60,
    )
    assert emulator.get("networkpolicies", "default", "prod") is not None
    service = emulator.get("services", "default", "prod")
    assert service is not None and service["spec"]["type"] == "ClusterIP"

    # the policy off: no status entry at all
    emulator.patch(ENGINES, "default", "prod", {"spec": {"networkPolicy": {"enabled": False}}})
    await emulator.wait_for(
        lambda: (
            emulator.get("networkpolicies", "default", "prod") is None
            and status(emulator).get("networkPolicy") is None
        ),
        timeout=60,
    )
