"""Watches as a real API server serves them: the event history and each watcher's view of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import kmock

from tests.emulator.api import (
    Obj,
)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: kmock.resource  # the storage resource
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    resource: kmock.resource  # as requested (its version goes into apiVersion)
    storage: kmock.resource
    namespace: str | None
    name: str | None
    selects: Callable[[Obj], bool]
    queue: asyncio.Queue[tuple[float, Obj] | None]  # (time.monotonic() of the write, event)

    def wants(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        return (
            (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta["name"] == self.name)
            and self.selects(obj)
        )

    def translate(self, event: Event) -> Obj | None:
        """The event as this watcher sees it: objects entering or leaving its selection are
        ADDED or DELETED, as with a real API server."""
        if event.resource != self.storage:
            return None
        now = self.wants(event.obj)
        before = event.old is not None and self.wants(event.old)
        if event.type == "MODIFIED":
            kind = (
                "MODIFIED" if now and before else "ADDED" if now else "DELETED" if before else None
            )
        else:
            kind = event.type if now else None
        return (
            None if kind is None else {"type": kind, "object": as_version(event.obj, self.resource)}
        )


def group_version(res: kmock.resource) -> str:
    return f"{res.group}/{res.version}" if res.group else str(res.version)


def as_version(obj: Obj, res: kmock.resource) -> Obj:
    """The object as served under the requested version (storage objects carry their own)."""
    return (
        obj
        if obj.get("apiVersion") == group_version(res)
        else {**obj, "apiVersion": group_version(res)}
    )
