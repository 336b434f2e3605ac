"""Pure builders: typed spec + owner + settings in, manifests (dicts) out. No API calls.

One module per concern: `engine` (the core children), `network` (NetworkPolicies), `ingress`
(the Ingresses), `keys` (the generated SECRET_KEY and
JWT_SECRET_KEY values), `backup` (backup and maintenance CronJobs, the backup volume, one-off
backup and restore Jobs), `monitoring` (ServiceMonitor, PrometheusRule, dashboard).
`engine_children` is everything a VulcanEngine owns, in apply order (plus the backup volume,
which it makes but does not own).
"""

from __future__ import annotations

from typing import Any

from vulcan_operator.builders import engine, ingress, monitoring, network
from vulcan_operator.builders.backup.cronjobs import EngineRef, build_engine_backup_children
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.volumes import build_app_pvcs

__all__ = ["EngineInputs", "core_children", "engine_children"]


def core_children(inputs: EngineInputs) -> list[dict[str, Any]]:
    """The engine's own children, dependencies first: `builders.engine.build` (ServiceAccount
    to PodDisruptionBudget), then the NetworkPolicies (`builders.network`), then the Ingresses
    and the security-headers ConfigMap (`builders.ingress`)."""
    return [*engine.build(inputs), *network.build(inputs), *ingress.build(inputs)]


def engine_children(inputs: EngineInputs) -> list[dict[str, Any]]:
    """Every child of a VulcanEngine, dependencies first: the core children (see
    `core_children`) after the claims of spec.persistence (unowned, as the backup
    volume: `builders.volumes`), the monitoring objects (`inputs.monitoring` says whether the
    Prometheus Operator CRDs exist), then the backup volume (unowned: apply it create-only and
    never prune it), the backup CronJob and the maintenance CronJob."""
    ref = EngineRef(name=inputs.name, namespace=inputs.namespace, uid=inputs.uid)
    return [
        *build_app_pvcs(inputs.name, ref.owner, inputs.spec),
        *core_children(inputs),
        *monitoring.build(inputs, prometheus_operator=inputs.monitoring),
        *build_engine_backup_children(
            ref, inputs.spec, inputs.settings, suspend=inputs.suspend_cronjobs
        ),
    ]
