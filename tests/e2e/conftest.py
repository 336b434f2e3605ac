"""End-to-end fixtures: a kind cluster with the operator installed from manifests/.

Whether the suite can run at all is decided in `test_kind.py` (a module-level skip), before any
fixture here runs. See tests/e2e/README.md. The tests use these only as fixtures (`kube`,
`poll`, `operator_installed`, `namespace`): importing a module named `conftest` is ambiguous
when several test folders have one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def cluster_name() -> str:
    """$VULCAN_E2E_CLUSTER, else the name in kind-config.yaml."""
    default = yaml.safe_load((REPO / "kind-config.yaml").read_text())["name"]
    return os.environ.get("VULCAN_E2E_CLUSTER", "") or str(default)


CLUSTER = cluster_name()
CONTEXT = f"kind-{CLUSTER}"
IMAGE = "ghcr.io/vulcan-engine/vulcan-operator:0.1.0"  # what manifests/base/deployment.yaml runs
OPERATOR_NAMESPACE = "vulcan-system"
CRDS = [
    "vulcanengines.vulcan-engine.com",
    "schedulingproblems.vulcan-engine.com",
    "vulcanbackups.vulcan-engine.com",
    "vulcanrestores.vulcan-engine.com",
    "clusterkopfpeerings.kopf.dev",
    "kopfpeerings.kopf.dev",
]


def run(*args: str, stdin: str | None = None, timeout: float = 120) -> str:
    """Run a command; its stdout, or a test failure naming the command and its stderr."""
    done = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr or done.stdout}")
    return done.stdout


class Kube:
    """kubectl against the kind cluster's context."""

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        return run("kubectl", "--context", CONTEXT, *args, stdin=stdin, timeout=timeout)

    def apply(self, *objs: dict[str, Any]) -> None:
        stream = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
        self("apply", "-f", "-", stdin=json.dumps(stream))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self(*args).strip()
        return json.loads(out) if out else None


def wait_for(what: str, probe: Callable[[], Any], *, timeout: float, interval: float = 2.0) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {last!r})")


@pytest.fixture(scope="session")
def kube() -> Kube:
    return Kube()


@pytest.fixture(scope="session")
def poll() -> Callable[..., Any]:
    """`wait_for`, for the tests (they import nothing from this conftest)."""
    return wait_for


@pytest.fixture(scope="session")
def operator_installed(kube: Kube) -> None:
    """Build and load the image, install manifests/ in one step, wait for rollout."""
    if os.environ.get("VULCAN_E2E_SKIP_BUILD", "") in ("", "0"):
        run("docker", "build", "-t", IMAGE, str(REPO), timeout=1800)
    run("kind", "load", "docker-image", IMAGE, "--name", CLUSTER, timeout=600)
    kube("apply", "--server-side", "-k", str(REPO / "manifests"))
    kube(
        "wait", "--for", "condition=Established", "--timeout=90s", *[f"crd/{name}" for name in CRDS]
    )
    kube(
        "-n",
        OPERATOR_NAMESPACE,
        "rollout",
        "status",
        "deployment/vulcan-operator",
        "--timeout=300s",
        timeout=330,
    )


@pytest.fixture
def namespace(kube: Kube, operator_installed: None) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (children go with it)."""
    name = f"vulcan-e2e-{uuid.uuid4().hex[:6]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        kube("delete", "namespace", name, "--wait=false", "--ignore-not-found")
