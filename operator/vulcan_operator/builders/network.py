"""The engine's NetworkPolicies: who may reach the backend (ingress) and, when
networkPolicy.egress is on, where its pods may connect; `network_policy_status` says both in
words for the engine's status."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from vulcan_operator import names
from vulcan_operator.api.common import LabelSelector
from vulcan_operator.api.engine import NAMESPACE_NAME_LABEL, PolicyPeer, VulcanEngineSpec
from vulcan_operator.builders.engine import (
    CONTAINER_PORT,
    EngineInputs,
    Manifest,
    _finish,
    _selector,
)
from vulcan_operator.templating import render_one

# Egress (networkPolicy.egress): ports only, as the hosts live in Secrets the builder never
# reads. DNS to any resolver; PostgreSQL and Redis at their standard ports; 443 for object
# storage; the API server (443 through the `kubernetes` Service, 6443 once a policy engine
# sees the translated address) for the solver pods.
DNS_PORT = 53
POSTGRES_PORT = 5432
REDIS_PORT = 6379
HTTPS_PORT = 443
KUBE_API_PORT = 6443  # the API server's own port, behind the `kubernetes` Service's 443


def exposed(spec: VulcanEngineSpec) -> bool:
    """Whether the Service is reachable from outside the cluster (NodePort, LoadBalancer)."""
    return spec.service.type != "ClusterIP"


def _peer(peer: PolicyPeer) -> dict[str, Any]:
    """A NetworkPolicy peer: the pods of `podSelector` in the namespaces of
    `namespaceSelector` (both in one entry: the two must hold together)."""
    out = {"namespaceSelector": _selector(peer.namespaceSelector)}
    if _selector(peer.podSelector):
        out["podSelector"] = _selector(peer.podSelector)
    return out


def _describe(peer: PolicyPeer) -> str:
    """A peer in words, for the status."""

    def words(selector: LabelSelector) -> str:
        parts = [f"{k}={v}" for k, v in sorted(selector.matchLabels.items())]
        parts += [
            f"{e.key} {e.operator}{' ' + ','.join(e.values) if e.values else ''}"
            for e in selector.matchExpressions
        ]
        return " and ".join(parts)

    pods, namespaces = words(peer.podSelector), words(peer.namespaceSelector)
    return (f"pods matching {pods}" if pods else "every pod") + (
        f" in namespaces matching {namespaces}" if namespaces else " in every namespace"
    )


def _ingress_sources(inputs: EngineInputs) -> list[tuple[dict[str, Any], str]]:
    """Who may reach the API port, as (NetworkPolicy peer, words), in the policy's order; a
    peer given twice (a namespace listed and also selected by default) appears once."""
    spec, policy = inputs.spec, inputs.spec.networkPolicy
    sources: list[tuple[dict[str, Any], str]] = [
        ({"podSelector": {}}, f"every pod in namespace {inputs.namespace}")
    ]
    sources += [
        (
            {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}},
            f"every pod in namespace {namespace} (ingressNamespaces)",
        )
        for namespace in sorted(set(policy.ingressNamespaces))
    ]
    if service_monitor_made(inputs):
        sources.append((_peer(policy.prometheus), f"Prometheus: {_describe(policy.prometheus)}"))
    if spec.ingress.enabled:
        controller = policy.ingressController
        sources.append((_peer(controller), f"ingress controller: {_describe(controller)}"))
    if exposed(spec):
        sources += [
            ({"ipBlock": {"cidr": cidr}}, f"any address {cidr} (service type {spec.service.type})")
            for cidr in ("0.0.0.0/0", "::/0")
        ]
    unique: dict[str, tuple[dict[str, Any], str]] = {}
    for peer, words in sources:
        key = json.dumps(peer, sort_keys=True)
        unique[key] = (peer, f"{unique[key][1]}; also {words}") if key in unique else (peer, words)
    return list(unique.values())


def service_monitor_made(inputs: EngineInputs) -> bool:
    """Whether the operator makes a ServiceMonitor (asked for, and the CRD exists)."""
    return inputs.monitoring and inputs.spec.monitoring.serviceMonitor


def build_network_policy(inputs: EngineInputs) -> Manifest | None:
    """Ingress NetworkPolicy of the backend pods, or None when disabled.

    Port 8000 is open to: pods of the engine's namespace; the `ingressNamespaces`; the
    Prometheus pods (networkPolicy.prometheus) while a ServiceMonitor is made; the ingress
    controller's pods (networkPolicy.ingressController) while an Ingress is made; and any
    address when the Service is a NodePort or LoadBalancer (traffic from outside the cluster
    has no pod to select). `network_policy_status` says the same in words.
    """
    if not inputs.spec.networkPolicy.enabled:
        return None
    return _finish(
        inputs,
        render_one(
            "networkpolicy.yaml.j2",
            name=names.engine_network_policy(inputs.name),
            selector=names.selector(inputs.name, names.COMPONENT_BACKEND),
            peers=[peer for peer, _ in _ingress_sources(inputs)],
            port=CONTAINER_PORT,
        ),
    )


def _egress_rules(spec: VulcanEngineSpec) -> list[tuple[list[dict[str, Any]], str]]:
    """(ports, words) of every destination the engine's pods may reach."""

    def tcp(port: int) -> dict[str, Any]:
        return {"port": port, "protocol": "TCP"}

    rules = [
        (
            [{"port": DNS_PORT, "protocol": "UDP"}, tcp(DNS_PORT)],
            f"DNS (port {DNS_PORT} UDP/TCP)",
        ),
        ([tcp(POSTGRES_PORT)], f"PostgreSQL (port {POSTGRES_PORT})"),
    ]
    if spec.redis.urlSecretRef is not None:
        rules.append(([tcp(REDIS_PORT)], f"Redis (port {REDIS_PORT})"))
    if spec.email is not None:
        rules.append(([tcp(spec.email.smtpPort)], f"SMTP (port {spec.email.smtpPort})"))
    https = {HTTPS_PORT}
    s3 = spec.backup.storage.s3
    if s3 is not None and s3.endpoint:
        https.add(urlsplit(s3.endpoint).port or HTTPS_PORT)
    rules += [([tcp(port)], f"HTTPS, object storage (port {port})") for port in sorted(https)]
    rules.append(([tcp(KUBE_API_PORT)], f"the Kubernetes API server (port {KUBE_API_PORT})"))
    monitoring = spec.monitoring
    if monitoring.enableTracing and monitoring.jaegerAgentHost:
        port = monitoring.jaegerAgentPort
        rules.append(([{"port": port, "protocol": "UDP"}], f"Jaeger agent (port {port} UDP)"))
    return rules


def build_egress_policy(inputs: EngineInputs) -> Manifest | None:
    """Egress NetworkPolicy of every pod of the engine in its namespace (backend, migration,
    backup, restore, maintenance, solver: they share the engine label), or None unless
    networkPolicy.egress is on. Ports only, to any address: the database, Redis and SMTP
    hosts are in Secrets and spec fields the policy cannot name as pods."""
    policy = inputs.spec.networkPolicy
    if not (policy.enabled and policy.egress.enabled):
        return None
    return _finish(
        inputs,
        render_one(
            "egress-networkpolicy.yaml.j2",
            name=names.engine_egress_policy(inputs.name),
            selector={names.LABEL_ENGINE: names.label_value(inputs.name)},
            rules=[{"ports": ports} for ports, _ in _egress_rules(inputs.spec)],
        ),
    )


def network_policy_status(inputs: EngineInputs) -> dict[str, Any] | None:
    """status.networkPolicy: who may reach the API port and, with the egress policy, where
    the pods may connect; None when networkPolicy is disabled."""
    policy = inputs.spec.networkPolicy
    if not policy.enabled:
        return None
    status: dict[str, Any] = {"ingressFrom": [words for _, words in _ingress_sources(inputs)]}
    if policy.egress.enabled:
        status["egressTo"] = [words for _, words in _egress_rules(inputs.spec)]
    return status


def build(inputs: EngineInputs) -> list[Manifest]:
    """The ingress NetworkPolicy and the egress one, each when enabled."""
    return [p for p in (build_network_policy(inputs), build_egress_policy(inputs)) if p]
