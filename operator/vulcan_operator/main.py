"""Kopf entry: builds the handler registry and the operator's start-up settings.

Handlers are registered on a registry made here (not Kopf's global one), so tests can run the
real operator in-process with their own login handler added to a fresh registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from typing import Any

import kopf

from vulcan_operator import GROUP, health, kinds, metrics, webhook
from vulcan_operator.config import Settings
from vulcan_operator.handlers import (
    admission,
    backup,
    children,
    engine,
    problem,
    restore,
    sharding,
    without_finalizers,
)
from vulcan_operator.health import Heartbeat
from vulcan_operator.k8s import Api, ApiError, apply
from vulcan_operator.sharding import UNSHARDED, Shard


def configure(settings: kopf.OperatorSettings, shard: Shard = UNSHARDED, **_: Any) -> None:
    """Start-up settings: where Kopf keeps its own bookkeeping, timeouts, posting."""
    # Kopf's progress and diff-base go to annotations under our group, never into status,
    # which belongs to our API (and never into spec).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = sharding.finalizer(shard)  # one per shard
    # Recycle watch streams so a silently frozen stream cannot stall the operator forever.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # The engines' children are watched (handlers.children): only those labelled as ours.
    children.configure(settings)
    # Our own actions are posted as Events explicitly (kopf.event); from the logs, only
    # warnings and errors become Events, so an idle resync writes nothing.
    settings.posting.level = logging.WARNING
    # A daemon told to stop (a problem done: handlers.problem_daemon) may be finishing an API
    # call; Kopf waits this long for it before polling for its exit with a patch of a dummy
    # annotation (a write; a problem has no finalizer patch of the same cycle to ride on).
    settings.background.instant_exit_timeout = 0.5
    # Replicas with equal priorities would all stay active; a random one makes exactly one
    # (the highest) active and the others stand by until it is gone.
    settings.peering.priority = random.randint(1, 2**31 - 1)


async def without_scanning(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Watching exact namespaces (`-n a -n b`), Kopf needs no list of namespaces and no watch
    of the CRDs, and a namespaced install grants neither (Kopf would retry each 403 for about
    a minute at every start). Without that watch our CRDs must be served when the operator
    starts: it stops until they are (its pod restarts)."""
    settings.scanning.disabled = True
    api = Api()
    missing = [k.plural for k in kinds.ALL if not await api.has_kind(k.api_version, k.kind)]
    if missing:
        raise kopf.PermanentError(f"not served yet: {', '.join(missing)}; install the CRDs first")


def make_registry(settings: Settings | None = None) -> kopf.OperatorRegistry:
    """A fresh registry with every handler of the operator."""
    settings = settings or Settings.from_env()
    registry = kopf.OperatorRegistry()
    shard = settings.shard

    def configure_operator(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, shard)

    kopf.on.startup(registry=registry)(configure_operator)
    if settings.visible_namespaces != (None,):
        kopf.on.startup(registry=registry)(without_scanning)
    heartbeat = Heartbeat(settings.liveness_threshold)
    health.register(registry, heartbeat)
    engine.register(registry, settings, heartbeat)
    problem.register(registry, settings)
    backup.register(registry, settings)
    restore.register(registry, settings)
    sharding.register(registry, settings.shard)
    without_finalizers(registry)
    sharding.restrict(registry, settings.shard)  # before the webhooks: every shard serves them
    metrics.set_shard(settings.shard.index, settings.shard.count, lambda: len(heartbeat.objects))
    if settings.admission_port:
        admission.register(registry, settings)

        async def serve_admission(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.admission.server = await webhook.server(operator_settings, Api())

        operator_settings = settings
        kopf.on.startup(registry=registry)(serve_admission)
    return registry


def load_kube_config() -> None:
    """In-cluster config when running in a pod, else the current kubeconfig context."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


async def ensure_peering(name: str, namespaces: list[str]) -> None:
    """Create the peering object(s) the replicas coordinate through, if missing."""
    api = Api()
    objs = [
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": name, "namespace": ns},
        }
        for ns in namespaces
    ] or [{"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}]
    for obj in objs:
        try:
            await apply(api, obj, create_only=True)
        except ApiError as exc:  # e.g. not allowed: Kopf then says what is missing
            logging.getLogger(__name__).warning("cannot create peering %s: %s", name, exc)


def run(
    *,
    namespaces: list[str],
    standalone: bool,
    peering: str,
    liveness: str | None,
    log_format: str,
    verbose: bool,
    admission_port: int = 0,
    admission_cert_dir: str = "",
    all_namespaces: bool = False,
    shard: Shard = UNSHARDED,
) -> None:
    """Run the operator until it is stopped (SIGTERM/SIGINT stop it gracefully).
    `all_namespaces` (`-A`): every namespace, whatever VULCAN_NAMESPACES says. `shard`
    (`--shard K/N`): only the namespaces of shard K, with a peering object of the shard's own
    (`<peering>-shard-K-of-N`), so the shards never pause one another; its replicas share it."""
    settings = dataclasses.replace(
        Settings.from_env(),
        admission_port=admission_port,
        admission_cert_dir=admission_cert_dir,
        shard=shard,
    )
    if shard.sharded:
        peering = f"{peering}-shard-{shard.index}-of-{shard.count}"
    namespaces = [] if all_namespaces else namespaces or list(settings.namespaces)
    settings = dataclasses.replace(settings, namespaces=tuple(namespaces))  # the handlers' reach
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    load_kube_config()
    metrics.start_metrics_server(settings.metrics_port)
    if not standalone:
        asyncio.run(ensure_peering(peering, namespaces))
    registry = make_registry(settings)
    kopf.on.login(registry=registry)(kopf.login_via_client)  # in-cluster or kubeconfig
    kopf.run(
        registry=registry,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=standalone,
        peering_name=None if standalone else peering,
        liveness_endpoint=liveness,
    )
