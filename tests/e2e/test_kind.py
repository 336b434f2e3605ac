"""End to end on a kind cluster: install with `kubectl apply -k manifests/`, then an engine and
a scheduling problem from examples/. Skipped (quickly) when docker, kind or kubectl are
missing, the Docker daemon is down, or the kind cluster does not exist or answer.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from vulcan_operator import names

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "vulcan-system"


def _answers(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str] | None:
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done if done.returncode == 0 else None


def why_not() -> str | None:
    """Why the e2e suite cannot run here, or None when it can."""
    missing = [tool for tool in ("docker", "kind", "kubectl") if shutil.which(tool) is None]
    if missing:
        return f"e2e needs docker, kind and kubectl on PATH; missing: {', '.join(missing)}"
    if _answers("docker", "info", "--format", "{{.ServerVersion}}") is None:
        return "the Docker daemon is not reachable"
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    cluster = os.environ.get("VULCAN_E2E_CLUSTER", "") or str(config["name"])
    context = f"kind-{cluster}"
    clusters = _answers("kind", "get", "clusters")
    if clusters is None or cluster not in clusters.stdout.split():
        return f"no kind cluster {cluster!r}: kind create cluster --config kind-config.yaml"
    if _answers("kubectl", "--context", context, "get", "--raw", "/readyz", timeout=10) is None:
        return f"the kind cluster {cluster!r} does not answer (context {context})"
    return None


REASON = why_not()
if REASON is not None:
    pytest.skip(REASON, allow_module_level=True)


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text())
    return doc


def small_engine(namespace: str) -> dict[str, Any]:
    """examples/vulcanengine.yaml, sized for a laptop: one replica, no HPA, no backups."""
    engine = copy.deepcopy(example("vulcanengine.yaml"))
    engine["metadata"] = {"name": engine["metadata"]["name"], "namespace": namespace}
    spec = engine["spec"]
    spec["replicas"] = 1
    spec["autoscaling"] = {"enabled": False}
    spec["resources"] = {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    spec["backup"] = {"enabled": False}
    spec["maintenance"] = {"enabled": False}
    spec["upgrade"] = {**spec.get("upgrade", {}), "preUpgradeBackup": False}
    return engine


def secrets_for(engine: dict[str, Any]) -> list[dict[str, Any]]:
    """The Secrets the engine references, with placeholder URLs (nothing listens there)."""
    spec, meta = engine["spec"], engine["metadata"]
    database = (spec.get("database") or {}).get("urlSecretRef") or {
        "name": names.default_database_secret(meta["name"]),
        "key": names.DATABASE_URL_KEY,
    }
    wanted = [(database, "postgresql://vulcan:vulcan@postgres:5432/vulcan")]
    redis = (spec.get("redis") or {}).get("urlSecretRef")
    if redis:
        wanted.append((redis, "redis://redis:6379/0"))
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ref["name"], "namespace": meta["namespace"]},
            "stringData": {ref["key"]: value},
        }
        for ref, value in wanted
    ]


def small_problem(namespace: str, engine: str) -> dict[str, Any]:
    """examples/ft06.yaml (6x6 job shop, optimum 55) with a short, small solve."""
    problem = copy.deepcopy(example("ft06.yaml"))
    problem["metadata"] = {"name": problem["metadata"]["name"], "namespace": namespace}
    problem["spec"]["engineRef"] = {"name": engine}
    problem["spec"]["solver"] = {"maxTimeSeconds": 20, "numWorkers": 1, "memoryLimitMB": 512}
    return problem


def test_operator_replicas_peer(kube: Any, poll: Any, operator_installed: None) -> None:
    deployment = kube.get("deployment", "vulcan-operator", OPERATOR_NAMESPACE)
    assert deployment is not None and deployment["status"].get("readyReplicas") == 2

    def peers() -> bool:
        peering = kube.get("clusterkopfpeering", "vulcan-operator")
        return len((peering or {}).get("status") or {}) >= 2

    poll("both replicas to write keep-alives into the peering", peers, timeout=90)


def test_engine_and_problem(kube: Any, poll: Any, namespace: str) -> None:
    engine = small_engine(namespace)
    name = engine["metadata"]["name"]
    kube.apply(*secrets_for(engine))
    kube.apply(engine)

    deployment = names.engine_deployment(name)
    poll(
        f"Deployment {namespace}/{deployment}",
        lambda: kube.get("deployment", deployment, namespace),
        timeout=120,
    )

    problem = small_problem(namespace, name)
    kube.apply(problem)
    problem_name = problem["metadata"]["name"]

    def finished() -> dict[str, Any] | None:
        current = kube.get("schedulingproblem", problem_name, namespace) or {}
        status = current.get("status") or {}
        if status.get("phase") == "Failed":
            pytest.fail(f"SchedulingProblem failed: {yaml.safe_dump(status)}")
        return status if status.get("phase") == "Succeeded" else None

    status = poll(f"SchedulingProblem {problem_name} to succeed", finished, timeout=300)
    assert status["result"]["status"] in ("OPTIMAL", "FEASIBLE")
    assert status["result"]["makespan"] >= 55  # ft06's optimum
