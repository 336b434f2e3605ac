"""The engine's NetworkPolicies, judged by a real NetworkPolicy engine: IBM's Network Config
Analyzer (PyPI `network-config-analyzer`, the `nca` command).

For every rendered engine variant (tests/data/engines/*.yaml, examples/vulcanengine.yaml and a
few spec changes of them) the policies the builder makes are put into one small cluster of
namespaces and pods; NCA computes the connectivity map and the test asserts who can and
cannot reach the backend's API port (8000): a pod of the engine's own namespace, a Prometheus
pod, an ingress controller pod, a pod of an unrelated namespace, and an address outside the
cluster; and, with networkPolicy.egress on, where the engine's pods may connect.

The expectations are written from the product's rules (README "Network policy"), not read
back from the builder: Prometheus is admitted while a ServiceMonitor is made, the ingress
controller while an Ingress is made, any address when the Service is a NodePort or
LoadBalancer, everyone when the policy is off.

NCA lives in its own virtualenv, .venv-nca (scripts/setup.sh; policy/nca-requirements.txt says
why): skipped when it is missing, a failure under CI.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders import core_children as build
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.network import network_policy_status

REPO = Path(__file__).resolve().parents[3]
ENGINES = REPO / "tests" / "data" / "engines"
EXAMPLE = REPO / "examples" / "vulcanengine.yaml"
KEYS = {"SECRET_KEY": "k" * 64, "JWT_SECRET_KEY": "j" * 64}
API_PORT = 8000
NCA_TIMEOUT = 120
OUTSIDE = "0.0.0.0-255.255.255.255"  # how NCA names the whole IPv4 space

Obj = dict[str, Any]


# --- running NCA ----------------------------------------------------------------------------
def nca_binary() -> str | None:
    local = REPO / ".venv-nca" / "bin" / "nca"
    return str(local) if local.exists() else shutil.which("nca")


@pytest.fixture(scope="module")
def nca() -> str:
    binary = nca_binary()
    if binary is None:
        message = "nca not installed: run scripts/setup.sh (it makes .venv-nca)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@dataclass(frozen=True)
class Conn:
    """One line of NCA's connectivity map: protocols and port ranges (None: everything)."""

    protocols: frozenset[str] | None
    ports: tuple[tuple[int, int], ...] | None

    def allows(self, protocol: str, port: int) -> bool:
        if self.protocols is not None and protocol not in self.protocols:
            return False
        return self.ports is None or any(lo <= port <= hi for lo, hi in self.ports)


_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")


def _conns(text: str) -> Iterator[Conn]:
    if text.strip() == "All connections":
        yield Conn(None, None)
        return
    for group in re.findall(r"\{([^}]*)\}", text):
        fields = dict(re.findall(r"(\w+):([^:]+?)(?=,\w+:|$)", group))
        protocols = frozenset(fields["protocols"].split(",")) if "protocols" in fields else None
        ports = None
        if "dst_ports" in fields:
            ranges = [part.split("-") for part in fields["dst_ports"].split(",")]
            ports = tuple((int(r[0]), int(r[-1])) for r in ranges)
        yield Conn(protocols, ports)


@dataclass
class Connectivity:
    """NCA's answer: which (source, destination) pairs may talk, over what."""

    pairs: dict[tuple[str, str], list[Conn]]
    raw: str

    def allows(self, src: str, dst: str, port: int, protocol: str = "TCP") -> bool:
        return any(c.allows(protocol, port) for c in self.pairs.get((src, dst), []))


def connectivity(nca: str, folder: Path, policies: list[Obj], world: World) -> Connectivity:
    """Run `nca --connectivity` over `policies` in `world`; the pod-to-pod map."""
    (folder / "policies").mkdir()
    for index, policy in enumerate(policies):
        (folder / "policies" / f"{index}.yaml").write_text(yaml.safe_dump(policy))
    (folder / "pods.yaml").write_text(yaml.safe_dump(world.pod_list()))
    (folder / "namespaces.yaml").write_text(yaml.safe_dump(world.namespace_list()))
    done = subprocess.run(
        [
            nca,
            "--connectivity",
            str(folder / "policies") if policies else "",
            "--pod_list",
            str(folder / "pods.yaml"),
            "--ns_list",
            str(folder / "namespaces.yaml"),
            "--output_format",
            "txt_no_fw_rules",
            "--output_endpoints",
            "pods",
        ],
        capture_output=True,
        text=True,
        timeout=NCA_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"nca failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert "error" not in done.stderr.lower(), done.stderr
    pairs: dict[tuple[str, str], list[Conn]] = {}
    for line in done.stdout.splitlines():
        found = _LINE.match(line.strip())
        if found:
            key = (found["src"], found["dst"])
            pairs.setdefault(key, []).extend(_conns(found["conn"]))
    assert pairs, f"nca printed no connectivity map:\n{done.stdout}"
    return Connectivity(pairs, done.stdout)


# --- the cluster the policies are judged in -------------------------------------------------
@dataclass
class World:
    """Namespaces (name -> labels) and pods (ns/name -> labels)."""

    namespaces: dict[str, dict[str, str]]
    pods: dict[str, dict[str, str]]

    def namespace_list(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "NamespaceList",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": name,
                        "labels": {"kubernetes.io/metadata.name": name, **labels},
                    },
                }
                for name, labels in self.namespaces.items()
            ],
        }

    def pod_list(self) -> Obj:
        items = []
        for index, (where, labels) in enumerate(self.pods.items()):
            namespace, name = where.split("/")
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "example"}]},
                    "status": {"phase": "Running", "podIP": f"10.1.0.{index + 1}"},
                }
            )
        return {"apiVersion": "v1", "kind": "PodList", "items": items}


BACKEND = "vulcan/backend"
NEIGHBOUR = "vulcan/neighbour"
BACKUP = "vulcan/backup"
PROMETHEUS = "monitoring/prometheus"
CONTROLLER = "ingress-nginx/controller"
INTRUDER = "elsewhere/intruder"
OBSERVABILITY_PROMETHEUS = "observability/prometheus"
OBSERVABILITY_GRAFANA = "observability/grafana"
DNS = "kube-system/coredns"
POSTGRES = "databases/postgres"


def world_for(engine: str) -> World:
    """The engine's backend and a backup pod in `vulcan`, and the pods around them."""
    return World(
        namespaces={
            "vulcan": {},
            "monitoring": {},
            "ingress-nginx": {},
            "elsewhere": {},
            "observability": {"example.com/monitoring": "true"},
            "kube-system": {},
            "databases": {},
        },
        pods={
            BACKEND: names.labels(engine, names.COMPONENT_BACKEND),
            NEIGHBOUR: {"app": "neighbour"},
            BACKUP: names.labels(engine, names.COMPONENT_BACKUP),
            PROMETHEUS: {"app.kubernetes.io/name": "prometheus"},
            CONTROLLER: {"app.kubernetes.io/name": "ingress-nginx"},
            INTRUDER: {"app": "intruder"},
            OBSERVABILITY_PROMETHEUS: {"app.kubernetes.io/name": "prometheus"},
            OBSERVABILITY_GRAFANA: {"app.kubernetes.io/name": "grafana"},
            DNS: {"k8s-app": "kube-dns"},
            POSTGRES: {"app": "postgres"},
        },
    )


# --- the variants -------------------------------------------------------------------------
def _load(path: Path) -> Obj:
    body: Obj = yaml.safe_load(path.read_text())
    body["metadata"]["uid"] = "6f1c2b8e-4d3a-4e5f-9a7b-0c1d2e3f4a5b"
    return body


def _changed(path: Path, change: Callable[[Obj], None]) -> Callable[[], Obj]:
    def body() -> Obj:
        loaded = _load(path)
        change(loaded["spec"])
        return loaded

    return body


VARIANTS: dict[str, Callable[[], Obj]] = {
    "production": functools.partial(_load, EXAMPLE),
    **{p.stem: functools.partial(_load, p) for p in sorted(ENGINES.glob("*.yaml"))},
    "production-ingress": _changed(EXAMPLE, lambda s: s.update(ingress={"enabled": True})),
    "production-no-monitoring": _changed(
        EXAMPLE, lambda s: s.update(monitoring={"serviceMonitor": False})
    ),
    "production-nodeport": _changed(EXAMPLE, lambda s: s.update(service={"type": "NodePort"})),
    "production-egress": _changed(
        EXAMPLE, lambda s: s["networkPolicy"].update(egress={"enabled": True})
    ),
    "minimal-egress": _changed(
        ENGINES / "minimal.yaml", lambda s: s.update(networkPolicy={"egress": {"enabled": True}})
    ),
    "minimal-controller-pods": _changed(
        ENGINES / "minimal.yaml",
        lambda s: s.update(
            ingress={"enabled": True},
            networkPolicy={
                "ingressController": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                    },
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "other"}},
                }
            },
        ),
    ),
}


def inputs_for(variant: str, *, monitoring: bool = True) -> EngineInputs:
    return EngineInputs.from_resource(VARIANTS[variant](), keys=KEYS, monitoring=monitoring)


def policies(inputs: EngineInputs) -> list[Obj]:
    return [o for o in build(inputs) if o["kind"] == "NetworkPolicy"]


@pytest.fixture(scope="module")
def maps(nca: str, tmp_path_factory: pytest.TempPathFactory) -> Mapping[str, Connectivity]:
    """NCA's connectivity map of every variant (one run each, about 0.3 s)."""
    out = {}
    for variant in VARIANTS:
        inputs = inputs_for(variant)
        assert inputs.namespace == "vulcan", variant
        folder = tmp_path_factory.mktemp(variant)
        out[variant] = connectivity(nca, folder, policies(inputs), world_for(inputs.name))
    return out


# --- expectations, from the product's rules ---------------------------------------------------
def expected_sources(spec: VulcanEngineSpec) -> dict[str, bool]:
    """Who may reach the API port, by the rules README "Network policy" states."""
    policy = spec.networkPolicy
    if not policy.enabled:
        return dict.fromkeys((NEIGHBOUR, PROMETHEUS, CONTROLLER, INTRUDER, OUTSIDE), True)
    listed = set(policy.ingressNamespaces)
    default_prometheus = policy.prometheus.model_dump() == type(policy)().prometheus.model_dump()
    default_controller = (
        policy.ingressController.model_dump() == type(policy)().ingressController.model_dump()
    )
    exposed = spec.service.type != "ClusterIP"
    monitored = spec.monitoring.serviceMonitor
    # An exposed Service admits addresses (ipBlock), which select no pod: a pod of another
    # namespace stays outside even then (as NCA, and Cilium, read ipBlock).
    return {
        NEIGHBOUR: True,
        PROMETHEUS: "monitoring" in listed or (monitored and default_prometheus),
        OBSERVABILITY_PROMETHEUS: monitored and not default_prometheus,
        CONTROLLER: "ingress-nginx" in listed or (spec.ingress.enabled and default_controller),
        INTRUDER: False,
        OUTSIDE: exposed,
    }


def spec_of(variant: str) -> VulcanEngineSpec:
    return inputs_for(variant).spec


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_who_reaches_the_api_port(variant: str, maps: Mapping[str, Connectivity]) -> None:
    seen = maps[variant]
    wrong = {
        source: allowed
        for source, allowed in expected_sources(spec_of(variant)).items()
        if seen.allows(source, BACKEND, API_PORT) != allowed
    }
    assert not wrong, f"{variant}: expected (source: may reach :8000) {wrong}\n{seen.raw}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_only_the_api_port_is_open(variant: str, maps: Mapping[str, Connectivity]) -> None:
    seen = maps[variant]
    enabled = spec_of(variant).networkPolicy.enabled
    for port in (9090, 5432, 22):
        assert seen.allows(NEIGHBOUR, BACKEND, port) is not enabled, (variant, port)


def test_the_variants_cover_every_source_both_ways(maps: Mapping[str, Connectivity]) -> None:
    """Each source is admitted by some variant and refused by another: no expectation above
    holds by accident for every variant."""
    for source in (PROMETHEUS, OBSERVABILITY_PROMETHEUS, CONTROLLER, INTRUDER, OUTSIDE):
        outcomes = {maps[v].allows(source, BACKEND, API_PORT) for v in VARIANTS}
        assert outcomes == {True, False}, source  # the intruder: only with the policy off


def test_custom_selectors_admit_only_the_pods_they_name(
    maps: Mapping[str, Connectivity],
) -> None:
    knobs = maps["knobs"]  # prometheus: namespaces labelled example.com/monitoring, its pods
    assert spec_of("knobs").service.type == "LoadBalancer"
    # the LoadBalancer admits every address, so compare with the same selectors on ClusterIP
    seen = maps["minimal-controller-pods"]
    assert not seen.allows(CONTROLLER, BACKEND, API_PORT)  # pod selector names another app
    assert seen.allows(NEIGHBOUR, BACKEND, API_PORT)
    assert knobs.allows(OBSERVABILITY_PROMETHEUS, BACKEND, API_PORT)


def test_custom_prometheus_selector_on_a_cluster_ip_service(nca: str, tmp_path: Path) -> None:
    body = VARIANTS["knobs"]()
    body["spec"]["service"] = {"type": "ClusterIP"}
    inputs = EngineInputs.from_resource(body, keys=KEYS)
    seen = connectivity(nca, tmp_path, policies(inputs), world_for(inputs.name))
    assert seen.allows(OBSERVABILITY_PROMETHEUS, BACKEND, API_PORT)
    assert not seen.allows(OBSERVABILITY_GRAFANA, BACKEND, API_PORT)  # pod selector
    assert not seen.allows(PROMETHEUS, BACKEND, API_PORT)  # namespace selector
    assert seen.allows(CONTROLLER, BACKEND, API_PORT)  # ingress on, default selector
    assert not seen.allows(INTRUDER, BACKEND, API_PORT)
    assert not seen.allows(OUTSIDE, BACKEND, API_PORT)


def test_no_service_monitor_without_the_prometheus_operator(nca: str, tmp_path: Path) -> None:
    """Without the monitoring.coreos.com CRDs no ServiceMonitor is made: Prometheus is not
    admitted for it."""
    inputs = inputs_for("production", monitoring=False)
    seen = connectivity(nca, tmp_path, policies(inputs), world_for(inputs.name))
    assert not seen.allows(PROMETHEUS, BACKEND, API_PORT)
    assert seen.allows(NEIGHBOUR, BACKEND, API_PORT)


# --- egress ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["production-egress", "minimal-egress", "knobs"])
def test_egress_admits_only_what_the_engine_needs(
    variant: str, maps: Mapping[str, Connectivity]
) -> None:
    seen = maps[variant]
    for pod in (BACKEND, BACKUP):
        assert seen.allows(pod, DNS, 53, "UDP"), pod
        assert seen.allows(pod, DNS, 53, "TCP"), pod
        assert seen.allows(pod, POSTGRES, 5432), pod
        assert seen.allows(pod, OUTSIDE, 443), pod  # object storage
        assert seen.allows(pod, OUTSIDE, 6443), pod  # the API server (solver pods)
        assert not seen.allows(pod, INTRUDER, 8080), pod
        assert not seen.allows(pod, OUTSIDE, 80), pod
        assert not seen.allows(pod, OUTSIDE, 22), pod
    # a pod of the namespace that is not the engine's keeps its egress
    assert seen.allows(NEIGHBOUR, INTRUDER, 8080)


def test_egress_follows_the_spec(maps: Mapping[str, Connectivity]) -> None:
    knobs, plain = maps["knobs"], maps["minimal-egress"]
    assert spec_of("minimal-egress").redis.urlSecretRef is None
    assert knobs.allows(BACKEND, OUTSIDE, 6379)  # spec.redis is set
    assert not plain.allows(BACKEND, OUTSIDE, 6379)
    assert not plain.allows(BACKEND, OUTSIDE, 587)  # no spec.email
    assert knobs.allows(BACKEND, OUTSIDE, 465)  # spec.email.smtpPort
    assert knobs.allows(BACKEND, OUTSIDE, 9000)  # the S3 endpoint's port
    assert knobs.allows(BACKEND, OUTSIDE, 6831, "UDP")  # the Jaeger agent
    assert not plain.allows(BACKEND, OUTSIDE, 6831, "UDP")


def test_egress_is_untouched_unless_asked_for(maps: Mapping[str, Connectivity]) -> None:
    assert maps["production"].allows(BACKEND, INTRUDER, 8080)
    assert maps["production"].allows(BACKEND, OUTSIDE, 80)


def test_the_status_says_what_the_policy_admits() -> None:
    """status.networkPolicy names the same sources, in words."""
    status = network_policy_status(inputs_for("production-ingress"))
    assert status is not None
    words = " | ".join(status["ingressFrom"])
    assert "every pod in namespace vulcan" in words
    assert (
        "Prometheus: every pod in namespaces matching kubernetes.io/metadata.name=monitoring"
        in (words)
    )
    assert "ingress controller: every pod in namespaces matching " in words
    assert "egressTo" not in status
    assert network_policy_status(inputs_for("development")) is None
    egress = network_policy_status(inputs_for("knobs"))
    assert egress is not None and any("Redis" in line for line in egress["egressTo"])
    assert any("0.0.0.0/0 (service type LoadBalancer)" in line for line in egress["ingressFrom"])


def test_variants_are_distinct() -> None:
    bodies = {name: yaml.safe_dump(VARIANTS[name]()) for name in VARIANTS}
    assert len(set(bodies.values())) == len(bodies)
