"""handlers.sharding.restrict: every handler of our four kinds filtered to its shard, nothing
else touched (also the check that Kopf still keeps its handlers where `restrict` looks)."""

from __future__ import annotations

from typing import Any

import kopf

from vulcan_operator import kinds
from vulcan_operator.config import Settings
from vulcan_operator.handlers.sharding import (
    UNFILTERED,
    finalizer,
    our_plural,
    stale_finalizers,
)
from vulcan_operator.main import make_registry
from vulcan_operator.sharding import UNSHARDED, Shard, shard_of

SHARD = Shard(0, 2)
MINE = next(f"ns-{i}" for i in range(100) if shard_of(f"ns-{i}", 2) == 0)
THEIRS = next(f"ns-{i}" for i in range(100) if shard_of(f"ns-{i}", 2) == 1)


def resource_handlers(registry: kopf.OperatorRegistry) -> list[Any]:
    parts = (registry._indexing, registry._watching, registry._spawning, registry._changing)
    return [h for part in parts for h in part.get_all_handlers()]


def ours(handler: Any) -> bool:
    return our_plural(handler.selector) is not None


def cause(namespace: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments Kopf passes a `when` filter (those our filters read)."""
    body = {"metadata": {"namespace": namespace, "name": "x"}, "spec": spec or {}, "status": {}}
    return {
        "namespace": namespace,
        "name": "x",
        "uid": "u",
        "body": body,
        "spec": body["spec"],
        "meta": body["metadata"],
        "status": body["status"],
        "type": "ADDED",
    }


def test_every_handler_of_our_kinds_sees_only_its_shard() -> None:
    plain = make_registry(Settings(admission_port=8443))
    sharded = make_registry(Settings(admission_port=8443, shard=SHARD))
    before, after = resource_handlers(plain), resource_handlers(sharded)
    assert [h.id for h in before] == [h.id for h in after]
    assert {our_plural(h.selector) for h in after if ours(h)} == {k.plural for k in kinds.ALL}
    for old, new in zip(before, after, strict=True):
        if not ours(old) or old.id in UNFILTERED:  # solver Jobs, children, every engine
            assert new.when is None or new.when.__qualname__ == old.when.__qualname__
            continue
        problem = our_plural(new.selector) == kinds.PROBLEM.plural
        assert new.when(**cause(THEIRS)) is False, new.id
        theirs_engine = {"engineRef": {"name": "e", "namespace": THEIRS}}
        mine_engine = {"engineRef": {"name": "e", "namespace": MINE}}
        # Anything else a handler filters on is kept: mine passes exactly when it did.
        expected = old.when is None or old.when(**cause(MINE))
        assert new.when(**cause(MINE)) is expected, new.id
        if problem:  # a problem goes with its engine's namespace
            assert new.when(**cause(MINE, theirs_engine)) is False
            assert new.when(**cause(THEIRS, mine_engine)) is expected


def test_admission_and_operator_wide_handlers_are_left_alone() -> None:
    plain = make_registry(Settings(admission_port=8443))
    sharded = make_registry(Settings(admission_port=8443, shard=SHARD))
    hooks = sharded._webhooks.get_all_handlers()
    assert hooks and all(h.when is None for h in hooks)
    assert len(hooks) == len(plain._webhooks.get_all_handlers())
    activities = sharded._activities.get_all_handlers()
    assert [h.id for h in activities] == [h.id for h in plain._activities.get_all_handlers()]


def test_unsharded_registry_is_unchanged() -> None:
    registry = make_registry(Settings())
    for handler in resource_handlers(registry):
        assert handler.when is None or "_owned" not in handler.when.__qualname__


def test_each_shard_has_its_own_finalizer_and_releases_another_layouts() -> None:
    """Shards sharing a finalizer would take each other's off (Kopf removes its finalizer
    from objects none of its handlers want); one of an earlier layout is released only from
    an object being deleted, after this shard's own is gone."""
    one, two = Shard(1, 2), Shard(0, 3)
    assert finalizer(UNSHARDED) == "vulcan-engine.com/finalizer"
    assert finalizer(one) == "vulcan-engine.com/finalizer-shard-1-of-2" != finalizer(two)
    gone = {"deletionTimestamp": "2026-01-01T00:00:00Z"}
    old = ["vulcan-engine.com/finalizer", "vulcan-engine.com/finalizer-shard-0-of-3", "x.io/keep"]
    assert stale_finalizers({**gone, "finalizers": old}, one) == old[:2]
    assert stale_finalizers({"finalizers": old}, one) == []  # not being deleted
    mine = [finalizer(one), *old]
    assert stale_finalizers({**gone, "finalizers": mine}, one) == []  # its own handling first
    assert stale_finalizers({**gone, "finalizers": old[1:]}, UNSHARDED) == [old[1]]
