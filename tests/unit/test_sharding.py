"""`--shard K/N` (issue 19): a stable split of namespaces, the flag, and the peering per shard."""

from __future__ import annotations

from collections import Counter
from typing import Any

import kopf
import pytest

from vulcan_operator import main as operator_main
from vulcan_operator import metrics
from vulcan_operator.cli import main
from vulcan_operator.sharding import UNSHARDED, Shard, shard_of

NAMES = [f"team-{i}" for i in range(3000)]


def test_the_hash_is_sha256_and_never_changes() -> None:
    """Pinned: every replica, every Python, every restart puts a namespace in the same shard
    (Python's hash() of a str differs per process)."""
    assert [shard_of(n, 2) for n in ("default", "vulcan", "team-a", "kube-system")] == [1, 0, 0, 1]
    assert [shard_of(n, 3) for n in ("default", "vulcan", "team-a", "team-b")] == [1, 1, 0, 2]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_each_namespace_has_exactly_one_owner_and_the_split_is_even(count: int) -> None:
    shards = [Shard(k, count) for k in range(count)]
    owners = Counter(sum(1 for s in shards if s.owns(n)) for n in NAMES)
    assert owners == {1: len(NAMES)}
    sizes = Counter(shard_of(n, count) for n in NAMES)
    assert all(abs(size - len(NAMES) / count) < 0.1 * len(NAMES) / count for size in sizes.values())


def test_unsharded_owns_everything() -> None:
    assert not UNSHARDED.sharded and all(UNSHARDED.owns(n) for n in NAMES[:50])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("2/2", "0 <= K < N"),
        ("0/0", "N >= 1"),
        ("-1/2", "two whole numbers"),
        ("1", "expected K/N"),
        ("a/b", "two whole numbers"),
    ],
)
def test_a_bad_shard_is_refused_naming_the_flag(
    text: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=error):
        Shard.parse(text)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--shard", text])
    assert exit_.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_each_shard_peers_on_its_own_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards never pause one another (Kopf pauses the lower priorities of one peering); the
    replicas of one shard share its peering object."""
    seen: dict[str, Any] = {}
    peerings: list[str] = []

    async def ensure_peering(name: str, namespaces: list[str]) -> None:
        peerings.append(name)

    monkeypatch.setattr(operator_main, "load_kube_config", lambda: None)
    monkeypatch.setattr(operator_main, "ensure_peering", ensure_peering)
    monkeypatch.setattr(metrics, "start_metrics_server", lambda port: None)
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    main(["run", "--shard", "1/3", "--liveness="])
    assert seen["peering_name"] == peerings[-1] == "vulcan-operator-shard-1-of-3"
    main(["run", "--liveness="])
    assert seen["peering_name"] == peerings[-1] == "vulcan-operator"
