"""The operator's admission webhook, served by the real operator against the emulator, and a
client that posts real `AdmissionReview` (v1) requests to it over HTTPS, verifying the
server's certificate with the CA from the ValidatingWebhookConfiguration, for the Service's
DNS name, as the API server does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import yaml
from kopf._core.engines.peering import Identity

from tests.emulator import Emulator
from tests.support.kopf_runner import OperatorRunner, _NotKopfs
from tests.support.rbac import cluster_role_rules, denied
from vulcan_operator import GROUP, VERSION, kinds, webhook
from vulcan_operator.config import Settings
from vulcan_operator.main import make_registry

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "manifests" / "webhook" / "component"
NAMESPACE = "vulcan-system"
HOST = webhook.hostnames(NAMESPACE)[0]
PLURALS = {k.kind: k.plural for k in kinds.ALL}
Obj = dict[str, Any]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def component(name: str) -> list[Obj]:
    """The documents of one file of manifests/webhook/component/."""
    return [d for d in yaml.safe_load_all((COMPONENT / name).read_text()) if d]


def webhook_rules() -> list[dict[str, list[str]]]:
    """The operator's ClusterRole plus the webhook's Role and ClusterRole."""
    extra = [d for d in component("rbac.yaml") if d["kind"] in ("Role", "ClusterRole")]
    return cluster_role_rules() + [rule for role in extra for rule in role["rules"]]


def configuration() -> Obj:
    (config,) = component("validatingwebhookconfiguration.yaml")
    return config


def ca_bundle(emulator: Emulator) -> bytes | None:
    """The CA the API server would trust: the caBundle of every webhook (all the same)."""
    config = emulator.get(
        "validatingwebhookconfigurations.v1.admissionregistration.k8s.io", None, "vulcan-operator"
    )
    bundles = {(h.get("clientConfig") or {}).get("caBundle") for h in (config or {})["webhooks"]}
    bundle = bundles.pop() if len(bundles) == 1 else None
    return base64.b64decode(bundle) if bundle else None


class PeeringRunner(OperatorRunner):
    """A replica among others: Kopf peering on (`identity` tells them apart in one process)."""

    def __init__(self, server: str, registry: kopf.OperatorRegistry, identity: str) -> None:
        super().__init__(server, registry)
        self.identity = identity

    async def _operate(self, stop_flag: asyncio.Event, ready: asyncio.Event) -> None:
        existing = asyncio.all_tasks()
        tasks = await kopf.spawn_tasks(
            registry=self.registry,
            clusterwide=True,
            standalone=False,
            peering_name="vulcan-operator",
            identity=Identity(self.identity),
            stop_flag=stop_flag,
            ready_flag=ready,
        )
        await kopf.run_tasks(tasks, ignored=_NotKopfs(existing))


@dataclass
class Replica:
    runner: OperatorRunner
    port: int


def settings(port: int, **changes: Any) -> Settings:
    return Settings(admission_port=port, operator_namespace=NAMESPACE, **changes)


def install(emulator: Emulator) -> None:
    """What `kubectl apply` of the webhook component puts in the cluster that the operator
    reads: the ValidatingWebhookConfiguration (without a caBundle)."""
    emulator.create(configuration())


def audit(emulator: Emulator, since: int) -> list[tuple[str, str, str, str, str]]:
    """The requests made since `since` that the operator's RBAC with the webhook's does not
    allow."""
    return denied(emulator.api_usage(since=since), webhook_rules())


class Client:
    """Posts AdmissionReviews to one replica, trusting only `ca` for the Service's name."""

    def __init__(self, port: int, ca: bytes) -> None:
        self.port = port
        self.context = ssl.create_default_context(cadata=ca.decode())
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def review(
        self,
        obj: Any,
        *,
        old: Obj | None = None,
        operation: str = "CREATE",
        plural: str | None = None,
        path: str | None = None,
    ) -> Obj:
        """The AdmissionReview response's `response` for creating (or updating) `obj`."""
        kind = obj.get("kind") if isinstance(obj, dict) else None
        plural = plural or PLURALS.get(str(kind), "vulcanengines")
        meta = (obj.get("metadata") if isinstance(obj, dict) else None) or {}
        request: Obj = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": GROUP, "version": VERSION, "kind": kind or "VulcanEngine"},
                "resource": {"group": GROUP, "version": VERSION, "resource": plural},
                "requestKind": {"group": GROUP, "version": VERSION, "kind": kind or ""},
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", "default"),
                "operation": operation,
                "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                "object": obj,
                "oldObject": old,
                "dryRun": False,
                "options": None,
            },
        }
        async with self.session.post(
            f"https://127.0.0.1:{self.port}{path or f'/validate/{plural}'}",
            json=request,
            ssl=self.context,
            server_hostname=HOST,
        ) as answer:
            if answer.status != 200:
                return {"allowed": False, "status": {"message": answer.reason, "code": 0}}
            review: Obj = await answer.json()
        assert review["response"]["uid"] == request["request"]["uid"]
        response: Obj = review["response"]
        return response


async def serving(emulator: Emulator, port: int, within: float = 60.0) -> Client:
    """A client for the replica on `port`, once the caBundle is set and the replica answers
    (Kopf starts its webhook server after its first scan of the cluster's resources)."""
    ca: bytes = await emulator.wait_for(lambda: ca_bundle(emulator), timeout=within)
    client = Client(port, ca)
    probe = {"apiVersion": "v1", "kind": "Probe"}

    async def answers() -> bool:
        try:
            await client.review(probe)
        except aiohttp.ClientConnectorError:
            return False
        return True

    try:
        await emulator.wait_for(answers, timeout=within, interval=0.05)  # type: ignore[arg-type]
    except BaseException:
        await client.close()
        raise
    return client


async def start(emulator: Emulator, port: int, **changes: Any) -> OperatorRunner:
    """One standalone operator serving the webhook on `port` (the emulator's CRDs loaded)."""
    runner = OperatorRunner(emulator.url, make_registry(settings(port, **changes)))
    await runner.start()
    return runner
