"""Pure builders: typed spec + owner + settings in, manifests (dicts) out. No API calls.

One module per concern: `engine` (the core children), `monitoring` (ServiceMonitor,
PrometheusRule, dashboard). `engine_children` is everything a VulcanEngine owns, in apply
order.
"""

from __future__ import annotations

from typing import Any

from vulcan_operator.builders import engine, monitoring
from vulcan_operator.builders.engine import EngineInputs

__all__ = ["EngineInputs", "engine_children"]


def engine_children(inputs: EngineInputs) -> list[dict[str, Any]]:
    """Every child of a VulcanEngine, dependencies first: the core children (see
    `builders.engine.build`), then the monitoring objects (`inputs.monitoring` says whether
    the Prometheus Operator CRDs exist)."""
    return [
        *engine.build(inputs),
        *monitoring.build(inputs, prometheus_operator=inputs.monitoring),
    ]
