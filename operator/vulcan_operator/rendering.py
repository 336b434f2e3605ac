"""`vulcan-operator render`: the objects a first reconcile creates, without a cluster.

It goes through the same parsing and builders as the operator. Secret values are generated as
the operator would generate them; the owner uid is a placeholder (the API server assigns the
real one); the cluster is assumed to have the Prometheus Operator CRDs.
"""

from __future__ import annotations

from typing import Any

from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders import engine_children
from vulcan_operator.builders import problem as problem_builder
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


def render_problem(
    doc: dict[str, Any], settings: Settings, engine: dict[str, Any]
) -> list[dict[str, Any]]:
    """The solver Job of the problem's first generation, and its ServiceAccount, Role,
    RoleBinding and schedule ConfigMap."""
    meta = doc["metadata"]
    inputs = problem_builder.ProblemInputs(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 1),
        spec=SchedulingProblem.model_validate(doc).spec,
        engine=VulcanEngineSpec.model_validate(engine.get("spec") or {}),
        settings=settings,
    )
    return problem_builder.build(inputs)


RENDERERS = {"VulcanEngine": render_engine}
#: Kinds rendered together with the VulcanEngine they refer to (`--engine`).
ENGINE_RENDERERS = {"SchedulingProblem": render_problem}


def _engine_of(doc: dict[str, Any], engines: list[Any], namespace: str) -> dict[str, Any]:
    wanted = ((doc.get("spec") or {}).get("engineRef") or {}).get("name")
    for engine in engines:
        if not isinstance(engine, dict) or engine.get("kind") != "VulcanEngine":
            continue
        meta = engine.get("metadata") or {}
        if meta.get("name") == wanted and meta.get("namespace", namespace) == namespace:
            problems = validate_resource(engine)
            if problems:
                raise RenderError("\n".join(f"{resource_name(engine)}: {p}" for p in problems))
            return engine
    raise RenderError(
        f"{resource_name(doc)}: needs its VulcanEngine '{wanted}' (namespace '{namespace}'): "
        "pass it with --engine FILE"
    )


def render(
    docs: list[Any],
    *,
    engines: list[Any] | None = None,
    settings: Settings | None = None,
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Every object the operator would create for `docs`, in apply order."""
    settings = settings or Settings()
    # ConfigMaps in the file are the data of a problemRef: checked with it, not rendered.
    configmaps = {
        str((d.get("metadata") or {}).get("name")): d
        for d in docs
        if isinstance(d, dict) and d.get("apiVersion") == "v1" and d.get("kind") == "ConfigMap"
    }
    out: list[dict[str, Any]] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "ConfigMap"
            and doc.get("apiVersion") == "v1"
        ):
            continue
        problems = validate_resource(doc, configmaps)
        if problems:
            name = resource_name(doc) if isinstance(doc, dict) else "?"
            raise RenderError("\n".join(f"{name}: {p}" for p in problems))
        with_engine = ENGINE_RENDERERS.get(doc["kind"])
        if with_engine is not None:
            doc = _with_defaults(doc, namespace)
            engine = _engine_of(doc, engines or [], doc["metadata"]["namespace"])
            out.extend(with_engine(doc, settings, engine))
            continue
        renderer = RENDERERS.get(doc["kind"])
        if renderer is None:
            raise RenderError(f"{resource_name(doc)}: rendering this kind is not supported yet")
        out.extend(renderer(_with_defaults(doc, namespace), settings))
    return out


__all__ = ["PLACEHOLDER_UID", "RenderError", "render"]
