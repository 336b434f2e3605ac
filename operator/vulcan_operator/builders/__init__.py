"""Pure builders: typed spec + owner + settings in, manifests (dicts) out. No API calls."""

from __future__ import annotations

from typing import Any

from vulcan_operator.builders.engine import EngineInputs, build

__all__ = ["EngineInputs", "engine_children"]


def engine_children(inputs: EngineInputs) -> list[dict[str, Any]]:
    """The core children of a VulcanEngine (see `builders.engine.build`)."""
    return build(inputs)
