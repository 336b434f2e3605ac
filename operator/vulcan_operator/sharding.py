"""Sharding (`vulcan-operator run --shard K/N`): which namespaces one operator Deployment owns.

A namespace belongs to shard `sha256(name) mod N` (the first 8 bytes of the digest, big-endian):
the same on every machine and Python version (never `hash()`, which is salted per process), so
N Deployments started with `--shard 0/N` ... `--shard N-1/N` split the namespaces between them,
each namespace owned by exactly one. Shards count from 0.

Changing N moves most namespaces to another shard: roll all N Deployments at once (the objects
keep their state in their status, so the new owner carries on where the old one stopped).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["UNSHARDED", "Shard", "shard_of"]


def shard_of(namespace: str, count: int) -> int:
    """The shard (0 .. count-1) that owns `namespace`."""
    digest = hashlib.sha256(namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`; the default 0/1 owns every namespace."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"--shard {self}: expected K/N with N >= 1 and 0 <= K < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N`, e.g. `0/3`; a clear error otherwise."""
        index, slash, count = text.strip().partition("/")
        if not (slash and index.isdigit() and count.isdigit()):
            raise ValueError(f"--shard {text!r}: expected K/N, two whole numbers (e.g. 0/3)")
        return cls(int(index), int(count))

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, namespace: str) -> bool:
        return not self.sharded or shard_of(namespace, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


#: One operator for every namespace (no `--shard`).
UNSHARDED = Shard()
