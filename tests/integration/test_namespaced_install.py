"""The namespaced install, end to end: manifests/namespaced/ set to watch two namespaces by
following its own instructions, applied with real kubectl (1.32), and the operator run as its
Deployment runs it (the console script with the Deployment's arguments), authenticated as its
ServiceAccount. The emulator enforces RBAC from the Roles and bindings kubectl stored, and the
ValidatingAdmissionPolicy on the operator's writes (tests/support/rbac_emulator.py): what a
namespaced operator needs must be granted there, and nothing outside its namespaces is touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.admission_policy import OPERATOR
from tests.support.kubectl import KUBECTL, kubeconfig
from tests.support.rbac_emulator import RbacEmulator

REPO = Path(__file__).resolve().parents[2]
WATCHED = ("team-a", "team-b")
OTHER = "team-c"
TOKEN = "token-of-the-operators-service-account"
API_VERSION = "vulcan-engine.com/v1alpha1"
pytestmark = [
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed"),
    pytest.mark.emulator(cls=RbacEmulator, crds=False, strict_namespaces=True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def watching(tmp_path: Path, namespaces: tuple[str, ...]) -> Path:
    """A copy of manifests/ whose namespaced/ watches `namespaces`, made by the steps its
    kustomization.yaml gives: a watch/<namespace>/ folder each, listed instead of
    watch/default, and a `--namespace=` argument each."""
    root = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", root)
    overlay = root / "namespaced"
    example = (overlay / "watch" / "default" / "kustomization.yaml").read_text()
    assert "namespace: default\n" in example
    for namespace in namespaces:
        (overlay / "watch" / namespace).mkdir()
        (overlay / "watch" / namespace / "kustomization.yaml").write_text(
            example.replace("namespace: default\n", f"namespace: {namespace}\n")
        )
    shutil.rmtree(overlay / "watch" / "default")
    text = (overlay / "kustomization.yaml").read_text()
    listed, argument = "  - watch/default\n", "        value: --namespace=default\n"
    op = text[text.index("      - op: add\n") : text.index(argument) + len(argument)]
    assert text.count(listed) == 1 and text.count(op) == 1
    text = text.replace(listed, "".join(f"  - watch/{ns}\n" for ns in namespaces))
    text = text.replace(op, "".join(op.replace("=default", f"={ns}") for ns in namespaces))
    (overlay / "kustomization.yaml").write_text(text)
    return overlay


def operator_config(path: Path, server: str) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (its token)."""
    config = yaml.safe_load(kubeconfig(path, server).read_text())
    config["users"] = [{"name": "admin", "user": {"token": TOKEN}}]
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def engine(namespace: str, storage: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": namespace},
        "spec": {"version": "2.0.0", "backup": {"storage": storage}},
    }


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }


PROBLEM = {
    "apiVersion": API_VERSION,
    "kind": "SchedulingProblem",
    "metadata": {"name": "week-48", "namespace": WATCHED[0]},
    "spec": {
        "engineRef": {"name": "prod"},
        "machines": [{"name": "m1"}],
        "jobs": [{"name": "j1", "tasks": [{"name": "t1", "duration": 3, "machines": ["m1"]}]}],
    },
}


def phase(emulator: RbacEmulator, namespace: str) -> str:
    body = emulator.get("vulcanengines", namespace, "prod") or {}
    return str((body.get("status") or {}).get("phase", ""))


async def test_a_namespaced_operator_works_in_its_namespaces_only(
    emulator: RbacEmulator, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    for namespace in (*WATCHED, OTHER):
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    overlay = watching(tmp_path, WATCHED)
    admin = kubeconfig(tmp_path / "admin", emulator.url)
    done = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "--kubeconfig", str(admin), "apply", "--server-side", "-k", str(overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    roles = {(r["metadata"]["namespace"]) for r in emulator.list("roles")}
    assert roles == set(WATCHED)
    deployment = emulator.get("deployments", "vulcan-system", "vulcan-operator")
    assert deployment is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [a for a in container["args"] if a.startswith("--namespace=")] == [
        f"--namespace={ns}" for ns in WATCHED
    ]

    # The operator's Secrets and engines: a bucket in team-a (its conflict check lists the
    # engines of every namespace the operator sees), a claim in team-b, and one engine outside.
    s3 = {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "s3-creds"}}}
    for namespace in (*WATCHED, OTHER):
        emulator.create(
            secret(namespace, "prod-database", {"database-url": "postgresql://u:p@127.0.0.1:1/v"})
        )
        emulator.create(
            secret(namespace, "s3-creds", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
        )
    emulator.create(engine(WATCHED[0], s3))
    emulator.create(engine(WATCHED[1], {"pvc": {}}))
    emulator.create(engine(OTHER, {"pvc": {}}))

    emulator.identities[TOKEN] = OPERATOR
    log = tmp_path / "operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(operator_config(tmp_path / "operator", emulator.url)),
        "VULCAN_METRICS_PORT": str(free_port()),
        "POD_ID": "vulcan-operator-0",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    script = Path(sys.executable).parent / "vulcan-operator"
    processes.append(
        subprocess.Popen(  # noqa: ASYNC220 (runs beside the test; awaited by polling)
            [str(script), *container["args"], "--liveness=", "--log-format=plain"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
    )

    def ready() -> bool:
        assert processes[0].poll() is None, log.read_text()[-3000:]
        return all(phase(emulator, ns) == "Ready" for ns in WATCHED)

    try:
        await emulator.wait_for(ready, timeout=60)
        emulator.create(PROBLEM)
        await emulator.wait_for(
            lambda: [
                j
                for j in emulator.list("jobs", WATCHED[0])
                if j["metadata"]["name"].startswith("week-48-solve-")
            ],
            timeout=60,
        )
    except TimeoutError:
        pytest.fail(f"{emulator.refused}\n{log.read_text()[-4000:]}")

    # Peering: a KopfPeering in each watched namespace, made by the operator; none cluster-wide.
    for namespace in WATCHED:
        assert emulator.get("kopfpeerings", namespace, "vulcan-operator") is not None
    assert emulator.list("clusterkopfpeerings") == []
    # The solver's Role and RoleBinding were written under the policy's review, and admitted.
    reviewed = {(r.resource, r.verb) for r in emulator.reviewed}
    assert {("roles", "create"), ("rolebindings", "create"), ("jobs", "create")} <= reviewed
    assert ("secrets", "create") in reviewed  # the engines' generated keys
    assert [r for r in emulator.reviewed if r.why] == []
    # Nothing refused: not even Kopf's namespace listing (it serves exact namespaces without).
    assert emulator.refused == []
    # Outside its namespaces: never read, never touched.
    mine = emulator.requests_of(OPERATOR)
    assert mine, "the operator made no request as its ServiceAccount"
    assert [r.path for r in mine if r.namespace == OTHER] == []
    assert phase(emulator, OTHER) == ""


async def test_without_its_crds_a_namespaced_operator_stops_and_says_why(
    emulator: RbacEmulator, tmp_path: Path
) -> None:
    """It watches no CRDs then (no cluster-wide rights), so it cannot wait for them: it stops,
    naming them, and its pod restarts until they are installed."""
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": WATCHED[0]}})
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig(tmp_path / "admin", emulator.url)),
        "VULCAN_METRICS_PORT": str(free_port()),
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    script = Path(sys.executable).parent / "vulcan-operator"
    done = await asyncio.to_thread(
        subprocess.run,
        [str(script), "run", "--standalone", f"--namespace={WATCHED[0]}", "--liveness="],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "vulcanengines" in output and "install the CRDs first" in output, output[-3000:]
