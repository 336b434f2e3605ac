"""The Helm chart's namespace-scoped install, run for real against the emulator.

Everything `helm template` renders with `watchNamespaces: [team-a, team-b]` is created in the
emulator (the chart's own CRDs included); then the real console script runs with the chart
Deployment's own arguments (`run --peering=vulcan-operator --log-format=json -n team-a -n
team-b`) and its VULCAN_* environment, through a kubeconfig, as the pod would. Two deviations,
both for the test machine's sake: `--liveness=` (no health server on the shared port 8080) and a
free VULCAN_METRICS_PORT.

An engine in a watched namespace reconciles; an identical one in another namespace is never
read, watched or touched (no request names that namespace, and no namespaced kind is listed or
watched cluster-wide); every request is allowed by the RBAC the chart rendered (the Role of its
namespace, or the ClusterRole for the cluster-scoped kinds); the replicas peer through a
KopfPeering in each watched namespace, which the operator created.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.emulator import Emulator
from tests.support.chart import NAMESPACE, RELEASE, Obj, only, operator_process, render
from tests.support.rbac import CLUSTER_SCOPED, allowed

WATCHED = ["team-a", "team-b"]
OTHER = "team-x"


def engine(namespace: str) -> Obj:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": namespace},
        "spec": {"version": "2.0.0"},
    }


def database_secret(namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "prod-database", "namespace": namespace},
        "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
    }


def refused(request: tuple[str, str, str, str, str], objs: list[Obj]) -> bool:
    """Would the API server refuse this request, given the RBAC the chart rendered?"""
    _, _, resource, _, namespace = request
    cluster = only(objs, "ClusterRole")["rules"]
    if resource in CLUSTER_SCOPED or not namespace:
        return not allowed(request, cluster)
    roles = [o for o in objs if o["kind"] == "Role" and o["metadata"]["namespace"] == namespace]
    return not any(allowed(request, role["rules"]) for role in roles) and not allowed(
        request, cluster
    )


@pytest.mark.timeout(240)  # kubectl runs and an operator process start, each bounded
@pytest.mark.emulator(crds=False)
async def test_a_namespace_scoped_install_reconciles_its_namespaces_and_no_other(
    emulator: Emulator, tmp_path: Path
) -> None:
    objs = render({"watchNamespaces": WATCHED})
    for namespace in [NAMESPACE, *WATCHED, OTHER]:
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    emulator.apply_yaml(yaml.safe_dump_all(objs))  # `helm install`: CRDs, RBAC, Deployment...
    for namespace in (WATCHED[0], OTHER):
        emulator.create(database_secret(namespace))
        emulator.create(engine(namespace))

    deployment = only(objs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "run" and args[-4:] == ["-n", WATCHED[0], "-n", WATCHED[1]]
    mark = emulator.mark()
    with operator_process(deployment, emulator.url, tmp_path):
        await emulator.wait_for(
            lambda: emulator.get("vulcanengines", WATCHED[0], "prod")["status"]["phase"] == "Ready",
            timeout=90,  # a cold start (ortools, kopf) on a loaded machine
        )
        assert emulator.get("deployments", WATCHED[0], "prod") is not None
        # The replicas peer in each watched namespace, through objects the operator made.
        for namespace in WATCHED:
            assert emulator.get("kopfpeerings", namespace, RELEASE) is not None

    # The engine outside the watched namespaces: untouched, and never even read.
    outside = emulator.get("vulcanengines", OTHER, "prod")
    assert "status" not in outside
    assert not outside["metadata"].get("finalizers")
    assert not [a for a in outside["metadata"].get("annotations", {}) if "vulcan" in a]
    assert emulator.get("deployments", OTHER, "prod") is None
    usage = emulator.api_usage(since=mark)
    assert usage, "no request was recorded"
    assert not [r for r in usage if r[4] == OTHER], "a request named the unwatched namespace"
    cluster_wide = sorted(r for r in usage if not r[4] and r[2] not in CLUSTER_SCOPED)
    assert not cluster_wide, f"namespaced kinds read across the cluster: {cluster_wide}"
    # Every request is one the chart's RBAC allows.
    denied = sorted(r for r in usage if refused(r, objs))
    assert not denied, f"requests the chart's namespace-scoped RBAC does not allow: {denied}"
    assert {r[4] for r in usage if r[4]} <= set(WATCHED)


def test_the_rbac_check_here_can_refuse() -> None:
    """The negative control of `refused`: a Secret read in an unwatched namespace, or listed
    cluster-wide, is refused; one in a watched namespace is allowed."""
    objs = render({"watchNamespaces": WATCHED})
    assert not refused(("get", "", "secrets", "", WATCHED[0]), objs)
    assert refused(("get", "", "secrets", "", OTHER), objs)
    assert refused(("list", "", "secrets", "", ""), objs)
    assert not refused(("get", "", "namespaces", "", ""), objs)  # acceptFrom reads one by name
    assert refused(("list", "", "namespaces", "", ""), objs)
