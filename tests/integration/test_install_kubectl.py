"""The one-step install, done by the real kubectl (1.32, kustomize 5.5) against the emulator.

`kubectl apply --server-side -k manifests/` creates everything in one command (CRDs, namespace,
RBAC, Deployment, ...; no custom resource of a CRD made in the same run), and the operator run
as its Deployment says (its args and environment) then makes its own peering object and
reconciles an engine. `kubectl apply --dry-run=client` accepts what the chart renders for every
value set, and what every kustomization of manifests/ builds.

kubectl talks to the emulator for discovery (client-side dry runs need the server's API list).
`--validate=false`: kubectl's own schema check downloads the server's OpenAPI document, which
the emulator does not serve; every object is validated strictly against the Kubernetes 1.31
schemas by tests/repo/test_manifests_install.py and tests/repo/test_chart.py instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.emulator import Emulator, make_crd
from tests.support.chart import (
    NAMESPACE,
    RELEASE,
    REPO,
    VALUE_SETS,
    kubeconfig,
    only,
    operator_process,
    render,
)

MANIFESTS = REPO / "manifests"
# The CRDs of other projects the chart's optional objects are custom resources of: a cluster
# that turns those values on has them (the Prometheus Operator, cert-manager).
THIRD_PARTY = [
    make_crd("monitoring.coreos.com", "ServiceMonitor"),
    make_crd("monitoring.coreos.com", "PrometheusRule"),
    make_crd("cert-manager.io", "Issuer"),
    make_crd("cert-manager.io", "Certificate"),
]


async def kubectl(emulator: Emulator, tmp: Path, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig(tmp / "kubeconfig", emulator.url))}
    done = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(240)  # kubectl runs and an operator process start, each bounded
@pytest.mark.emulator(crds=False)
async def test_one_kubectl_apply_installs_a_working_operator(
    emulator: Emulator, tmp_path: Path
) -> None:
    built = [
        d
        for d in yaml.safe_load_all(await kubectl(emulator, tmp_path, "kustomize", str(MANIFESTS)))
        if d
    ]
    out = await kubectl(
        emulator, tmp_path, "apply", "--server-side", "--validate=false", "-k", str(MANIFESTS)
    )
    assert out.count("serverside-applied") == len(built), out
    # Every object is in the cluster, as written.
    listed = yaml.safe_load(
        await kubectl(
            emulator, tmp_path, "get", "-f", "-", "-o", "yaml", stdin=yaml.safe_dump_all(built)
        )
    )
    assert len(listed["items"]) == len(built)
    # Applying again changes nothing that would fail (server-side apply is idempotent).
    await kubectl(
        emulator, tmp_path, "apply", "--server-side", "--validate=false", "-k", str(MANIFESTS)
    )

    # The operator, as the Deployment runs it, finds its CRDs, makes its peering object and
    # reconciles an engine.
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "plant-a"}})
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prod-database", "namespace": "plant-a"},
            "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
        }
    )
    emulator.create(
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanEngine",
            "metadata": {"name": "prod", "namespace": "plant-a"},
            "spec": {"version": "2.0.0"},
        }
    )
    deployment = only(built, "Deployment")
    assert emulator.get("clusterkopfpeerings", None, RELEASE) is None
    with operator_process(deployment, emulator.url, tmp_path):
        await emulator.wait_for(
            lambda: emulator.get("vulcanengines", "plant-a", "prod")["status"]["phase"] == "Ready",
            timeout=90,  # a cold start (ortools, kopf) on a loaded machine
        )
        assert emulator.get("clusterkopfpeerings", None, RELEASE) is not None
    assert deployment["metadata"]["namespace"] == NAMESPACE


@pytest.mark.emulator(crds=False)
@pytest.mark.parametrize("name", VALUE_SETS)
async def test_kubectl_accepts_every_chart_render(
    name: str, emulator: Emulator, tmp_path: Path
) -> None:
    for crd in THIRD_PARTY:
        emulator.create(crd)
    objs = render(VALUE_SETS[name])
    out = await kubectl(
        emulator,
        tmp_path,
        "apply",
        "--dry-run=client",
        "--validate=false",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objs),
    )
    assert out.count("(dry run)") == len(objs), out


@pytest.mark.emulator(crds=False)
@pytest.mark.parametrize("folder", ["", "monitoring", "namespaced", "admission-policy"])
async def test_kubectl_accepts_every_kustomization(
    folder: str, emulator: Emulator, tmp_path: Path
) -> None:
    """`kubectl kustomize manifests/<folder>` builds, and `kubectl apply --dry-run=client -f -`
    accepts what it builds."""
    for crd in THIRD_PARTY:
        emulator.create(crd)
    built = await kubectl(emulator, tmp_path, "kustomize", str(MANIFESTS / folder))
    objs = [d for d in yaml.safe_load_all(built) if d]
    out = await kubectl(
        emulator, tmp_path, "apply", "--dry-run=client", "--validate=false", "-f", "-", stdin=built
    )
    assert out.count("(dry run)") == len(objs) > 0, out
