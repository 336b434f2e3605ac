"""`vulcan-operator render`: the objects a first reconcile creates, without a cluster.

It goes through the same parsing and builders as the operator. Secret values are generated as
the operator would generate them; the owner uid is a placeholder (the API server assigns the
real one); the cluster is assumed to have the Prometheus Operator CRDs.
"""

from __future__ import annotations

from typing import Any

from vulcan_operator.builders import engine_children
from vulcan_operator.builders.engine import EngineInputs, ensure_keys
from vulcan_operator.config import Settings
from vulcan_operator.validation import resource_name, validate_resource

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


class RenderError(Exception):
    """The input cannot be rendered; the message names the resource and the fields."""


def _with_defaults(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    meta.setdefault("uid", PLACEHOLDER_UID)
    return {**doc, "metadata": meta}


def render_engine(doc: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    probe = EngineInputs.from_resource(doc, settings=settings)
    inputs = EngineInputs.from_resource(
        doc, keys=ensure_keys(probe.spec, None), settings=settings, monitoring=True
    )
    return engine_children(inputs)


RENDERERS = {"VulcanEngine": render_engine}


def render(
    docs: list[Any],
    *,
    engines: list[Any] | None = None,
    settings: Settings | None = None,
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Every object the operator would create for `docs`, in apply order."""
    settings = settings or Settings()
    out: list[dict[str, Any]] = []
    for doc in docs:
        problems = validate_resource(doc)
        if problems:
            name = resource_name(doc) if isinstance(doc, dict) else "?"
            raise RenderError("\n".join(f"{name}: {p}" for p in problems))
        renderer = RENDERERS.get(doc["kind"])
        if renderer is None:
            raise RenderError(f"{resource_name(doc)}: rendering this kind is not supported yet")
        out.extend(renderer(_with_defaults(doc, namespace), settings))
    return out


__all__ = ["PLACEHOLDER_UID", "RenderError", "render"]
