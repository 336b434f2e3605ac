"""The Helm chart (charts/vulcan-operator) rendered by real Helm, for tests.

helm-python-sdk bundles Helm v4's Go SDK as a shared library: `Chart.load(dir).render(values,
name=, namespace=)` is `helm template`, offline (no cluster; `lookup` finds nothing).

    objs = render({"watchNamespaces": ["a", "b"]})     # every object, parsed, NOTES.txt left out
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import yaml

from tests.support import kubectl

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vulcan-operator"
RELEASE = "vulcan-operator"
NAMESPACE = "vulcan-system"
DIGEST = "sha256:" + "0123456789abcdef" * 4

Obj = dict[str, Any]

# The value sets every chart test renders: each must lint clean, render strictly valid objects
# and pass checkov (tests/repo/test_policy.py).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "aggregated-roles": {"rbac": {"aggregateClusterRoles": True}},
    "monitoring": {
        "monitoring": {
            "serviceMonitor": True,
            "prometheusRule": True,
            "grafanaDashboard": True,
            "additionalLabels": {"release": "kube-prometheus-stack"},
        }
    },
    "digest": {"image": {"digest": DIGEST, "pullPolicy": "Always"}},
    "sharded": {"sharding": {"shards": 3}},
    "webhook": {
        "webhook": {"enabled": True, "certManager": {"enabled": True}},
        "config": {"allowedImages": ["ghcr.io/vulcan-engine/", "registry.example.com/vulcan/"]},
        "admissionPolicy": {"enabled": True},
    },
    "scheduling": {
        "replicaCount": 3,
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"kubernetes.io/os": "linux", "node-role/operators": "true"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "operators", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": ["amd64", "arm64"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "vulcan-operator"}},
            }
        ],
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"example.com/cost-centre": "42"},
        "resources": {
            "requests": {"cpu": "200m", "memory": "300Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}},
        "logFormat": "plain",
        "config": {"resyncSeconds": 120, "postgresImage": "registry.example.com/postgres:16"},
    },
}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render_files(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` prints them."""
    return chart().render(values or {}, name=name, namespace=namespace)


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[Obj]:
    """Every object the chart renders (NOTES.txt left out)."""
    objs: list[Obj] = []
    for path, text in sorted(render_files(values, name=name, namespace=namespace).items()):
        if not path.endswith(".txt"):
            objs += [d for d in yaml.safe_load_all(text) if d]
    return objs


@functools.cache
def cluster_role_rules() -> list[dict[str, list[str]]]:
    """The rules of the operator's ClusterRole in the chart's default (cluster-wide) render."""
    roles = [o for o in render() if o["kind"] == "ClusterRole" and o["metadata"]["name"] == RELEASE]
    assert len(roles) == 1, roles
    return list(roles[0]["rules"])


def key(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def only(objs: Iterable[Obj], kind: str, namespace: str | None = None) -> Obj:
    found = [
        o for o in objs if o["kind"] == kind and namespace in (None, o["metadata"].get("namespace"))
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def sync_script() -> ModuleType:
    """scripts/sync_chart.py, imported (it keeps the chart's copies and README current)."""
    spec = importlib.util.spec_from_file_location("sync_chart", REPO / "scripts" / "sync_chart.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- running what the chart and manifests/ install, against the emulator ---------------------
def kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig for kubectl and the operator's console script, pointing at `server`."""
    return kubectl.kubeconfig(path, server, user="vulcan-operator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def operator_process(deployment: Obj, server: str, tmp: Path) -> Iterator[subprocess.Popen[str]]:
    """The real console script, run as the Deployment's pod would run it: its args and its
    VULCAN_* environment, through a kubeconfig for `server`. For the test machine's sake, no
    health server on the shared port 8080 (`--liveness=`) and a free metrics port. Stopped
    with SIGTERM on exit; it must then exit 0."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in container["env"] if "value" in e},
        "POD_ID": f"{deployment['metadata']['name']}-0",
        "POD_NAMESPACE": deployment["metadata"]["namespace"],
        "KUBECONFIG": str(kubeconfig(tmp / "kubeconfig", server)),
        "VULCAN_METRICS_PORT": str(free_port()),
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    script = Path(sys.executable).parent / "vulcan-operator"
    proc = subprocess.Popen(
        [str(script), *container["args"], "--liveness="],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output[-3000:]
