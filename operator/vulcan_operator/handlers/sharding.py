"""Confine a registry to one shard (`run --shard K/N`, see `vulcan_operator.sharding`).

Done once, here, after every handler is registered, so no handler of our four kinds can be
left out: each change handler, timer, daemon, index and event handler of our kinds gets a
`when` filter that refuses objects of another shard's namespaces (on top of its own filter).
A refused object gets no annotation, no status and no child from this shard.

Finalizers: no handler asks for one any more (`handlers.without_finalizers`), but earlier
versions put one on each object, one name per shard (`finalizer(shard)`; unsharded, the usual
`vulcan-engine.com/finalizer`), because Kopf removes its finalizer from any object none of its
handlers want and shards sharing one name would take each other's off. Kopf takes its own name
off at once; one left by another layout (another N, or no sharding) would keep a deleted
object forever: the owner takes it off an object being deleted (`register`).

- VulcanEngine, VulcanBackup, VulcanRestore: the object's own namespace.
- SchedulingProblem: the namespace of the engine it names (`spec.engineRef.namespace`, else its
  own): an engine's solver queue and its slots are kept by one shard, the engine's, even for
  problems from other namespaces (spec.solver.acceptFrom).
- Not filtered: the index of every engine (`UNFILTERED`: an S3 bucket may be shared across
  shards, and the check that refuses it compares with every engine), the admission webhooks
  (every shard serves every namespace, so any replica behind the webhook's Service answers
  alike), the handlers of solver Jobs (they only wake a problem this shard keeps, by uid) and
  the operator-wide ones (start-up, login, probes).

Kopf keeps a registry's handlers in lists of frozen dataclasses without a public way to
replace one; the lists are rebuilt with `dataclasses.replace` (tests/unit/handlers/
test_sharding.py fails if a Kopf release changes that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import kopf

from vulcan_operator import GROUP, VERSION, kinds
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.sharding import Shard

OURS = {k.plural for k in kinds.ALL}
#: Handlers left unfiltered: the index of every engine (handlers.problem's ENGINES_INDEX), for
#: the backup store conflict check, which compares an engine with those of every shard.
UNFILTERED = {"vulcan_engines"}
FINALIZER = f"{GROUP}/finalizer"


def finalizer(shard: Shard) -> str:
    """The finalizer this shard's Kopf puts on the objects it owns."""
    if not shard.sharded:
        return FINALIZER
    return f"{FINALIZER}-shard-{shard.index}-of-{shard.count}"


def stale_finalizers(meta: dict[str, Any], shard: Shard) -> list[str]:
    """Our finalizers on an object being deleted that no running shard will take off (another
    layout's), once this shard's own is gone (its deletion handling comes first)."""
    present = list(meta.get("finalizers") or [])
    mine = finalizer(shard)
    if not meta.get("deletionTimestamp") or mine in present:
        return []
    return [f for f in present if f != mine and (f == FINALIZER or f.startswith(f"{FINALIZER}-"))]


def register(registry: kopf.OperatorRegistry, shard: Shard) -> None:
    """Release objects held by another layout's finalizer (see the module's docstring)."""
    api = Api()
    for kind in kinds.ALL:

        async def release(
            body: kopf.Body, namespace: str | None, name: str, kind: kinds.Kind = kind, **_: Any
        ) -> None:
            meta = dict(body.get("metadata") or {})
            stale = stale_finalizers(meta, shard)
            if stale:
                present = list(meta.get("finalizers") or [])
                kept = [f for f in present if f not in stale]
                ops = [
                    {"op": "test", "path": "/metadata/finalizers", "value": present},
                    {"op": "replace", "path": "/metadata/finalizers", "value": kept},
                ]
                await api.json_patch(Ref(kind.api_version, kind.kind, namespace, name), ops)

        kopf.on.event(
            GROUP,
            VERSION,
            kind.plural,
            id=f"release-stale-finalizers-{kind.plural}",
            registry=registry,
        )(release)


def our_plural(selector: Any) -> str | None:
    """The plural of our kind a handler's selector names (`kopf.on.x(GROUP, VERSION, plural)`),
    else None."""
    if selector is None or selector.group != GROUP:
        return None
    plural = selector.plural or selector.any_name
    return str(plural) if plural in OURS else None


def namespace_of(plural: str, namespace: str | None, spec: dict[str, Any]) -> str:
    """The namespace whose shard owns an object of `plural`."""
    if plural == kinds.PROBLEM.plural:
        return str((spec.get("engineRef") or {}).get("namespace") or namespace or "")
    return str(namespace or "")


def _owned(shard: Shard, plural: str, previous: Callable[..., bool] | None) -> Callable[..., bool]:
    def when(namespace: str | None = None, spec: Any = None, **kwargs: Any) -> bool:
        if not shard.owns(namespace_of(plural, namespace, dict(spec or {}))):
            return False
        return previous is None or previous(namespace=namespace, spec=spec, **kwargs)

    return when


def restrict(registry: kopf.OperatorRegistry, shard: Shard) -> None:
    """Every handler of our kinds in `registry` sees only the objects `shard` owns."""
    if not shard.sharded:
        return
    for part in (registry._indexing, registry._watching, registry._spawning, registry._changing):
        handlers: list[Any] = part._handlers
        for i, handler in enumerate(handlers):
            plural = our_plural(handler.selector)
            if plural and handler.id not in UNFILTERED:
                handlers[i] = dataclasses.replace(handler, when=_owned(shard, plural, handler.when))
