"""The engines' children, followed by watches (issue 19): an idle resync reads none of them.

- One Kopf index per child kind (`k8s.cache.CHILD_KINDS`) of the objects labelled managed-by
  us (the API server filters the watch by that label: `configure`), keyed by name and by the
  engine's label; `k8s.cache.CachedApi` serves the engine reconcile's reads from them. A
  problem's children (solver Jobs, schedule ConfigMaps) are left out; they are not the engine
  reconcile's. Kopf fills every index before any handler runs.
- Drift: a watch event of a child whose spec, labels, annotations or owners changed (or that
  was deleted), and that is not this process's own write, asks for its engine's reconcile
  (`repair`) at once, instead of waiting for the next resync. Changes of a child's status
  (a rollout's progress, a CronJob's last run) are not drift. Jobs are indexed, not repaired.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from vulcan_operator import kinds, names
from vulcan_operator.k8s import Ref
from vulcan_operator.k8s.cache import (
    CHILD_KINDS,
    Packed,
    Writes,
    by_engine,
    by_name,
    fingerprint,
    index_id,
)
from vulcan_operator.sharding import Shard

#: The label the API server filters the children's watches by.
SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
#: Kinds watched but not repaired: Jobs run once, nothing puts one back.
NOT_REPAIRED = {("batch/v1", "Job")}

#: (namespace, engine name, the handler's keyword arguments: the indexes) -> None.
Repair = Callable[[str, str, dict[str, Any]], None]


def configure(settings: kopf.OperatorSettings) -> None:
    """Every watch of a child kind carries our managed-by label selector (solver Jobs, which
    `handlers.problem` follows, carry it too)."""
    for group, version, plural in CHILD_KINDS.values():
        settings.watching.label_selectors[group or version, plural] = SELECTOR


#: Kinds that carry free-form data, up to 1 MiB each: indexed only when an engine owns them.
OWNED_ONLY = {"ConfigMap", "PrometheusRule"}


def ours(shard: Shard, kind: str) -> Callable[..., bool]:
    """An engine's child in a namespace of this shard (not a problem's child). A ConfigMap or
    PrometheusRule only when an engine owns it: anyone who may create them could label some
    as ours, up to 1 MiB each, and the index would hold them (one that is not ours is read by
    name when the engine's apply finds its name taken, as before)."""

    def when(namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any) -> bool:
        owners = (body.get("metadata") or {}).get("ownerReferences") or []
        return (
            shard.owns(str(namespace or ""))
            and labels.get(names.LABEL_COMPONENT) != names.COMPONENT_SOLVER
            and not any(o.get("kind") == kinds.PROBLEM.kind for o in owners)
            and (kind not in OWNED_ONLY or any(o.get("kind") == kinds.ENGINE.kind for o in owners))
        )

    return when


def engine_of(body: kopf.Body, namespace: str, engines: kopf.Index[Any, Any]) -> str | None:
    """The name of the engine a child belongs to: its owner, else its engine label (the
    backup claim has no owner)."""
    meta = body.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == kinds.ENGINE.kind:
            return str(owner.get("name"))
    label = (meta.get("labels") or {}).get(names.LABEL_ENGINE)
    for ns, name in list(engines.keys()):
        if ns == namespace and names.label_value(name) == label:
            return str(name)
    return None


def register(
    registry: kopf.OperatorRegistry,
    shard: Shard,
    writes: Writes,
    repair: Repair,
    engines_index: str,
) -> None:
    seen: dict[Ref, str] = {}  # the fingerprint of each child as last seen

    for (api_version, kind), (group, version, plural) in CHILD_KINDS.items():
        resource = (group, version, plural) if group else (version, plural)
        when = ours(shard, kind)

        async def index(
            namespace: str | None,
            name: str,
            body: kopf.Body,
            labels: kopf.Labels,
            api_version: str = api_version,
            kind: str = kind,
            **_: Any,
        ) -> dict[Any, Any]:
            writes.watched(Ref(api_version, kind, namespace, name), body)
            obj = Packed(body, api_version, kind)
            keys: dict[Any, Any] = {by_name(namespace, name): obj}
            if labels.get(names.LABEL_ENGINE):
                keys[by_engine(namespace, labels[names.LABEL_ENGINE])] = obj
            return keys

        kopf.index(
            *resource,
            id=index_id(api_version, kind),
            labels=MANAGED,
            when=when,
            registry=registry,
        )(index)
        if (api_version, kind) in NOT_REPAIRED:
            continue

        async def changed(
            type: str | None,
            namespace: str | None,
            name: str,
            body: kopf.Body,
            api_version: str = api_version,
            kind: str = kind,
            **kwargs: Any,
        ) -> None:
            ref = Ref(api_version, kind, namespace, name)
            before = seen.get(ref)
            if type == "DELETED":
                seen.pop(ref, None)
                drifted = not writes.deleted(ref)
                writes.own.pop(ref, None)
                writes.watched(ref, body, gone=True)
            else:
                now = seen[ref] = fingerprint(body)
                drifted = type is not None and now != before and not writes.ours(ref, now)
            if not drifted:
                return
            engine = engine_of(body, str(namespace), kwargs[engines_index])
            if engine is not None:
                repair(str(namespace), engine, kwargs)

        kopf.on.event(
            *resource,
            id=f"drift-{plural}",
            labels=MANAGED,
            when=when,
            registry=registry,
        )(changed)
