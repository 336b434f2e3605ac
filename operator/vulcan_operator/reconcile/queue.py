"""The solver queue of each engine: who may start a Job now, and who waits where.

At most `spec.solver.maxConcurrentJobs` solver Jobs of an engine are active at once (created,
not finished, not suspended); the other problems wait in phase Queued, first come, first
served (creation time, then name). Everything here is in memory and answers at once:

- `QueueView` reads three live maps the handlers keep up to date from watch events (Kopf
  indexes): the problems of each engine, the solver Jobs of each engine and the engines.
- `Admissions` (one per operator process; only one replica is active) serialises the
  decisions per engine with a lock and remembers the Jobs it created that the Job map has not
  shown yet, so two problems never take the same free slot.
- `Wakeups` lets a waiting problem sleep until something relevant happens (its Job changed, a
  slot of its engine was freed) instead of polling.

Keys are `(namespace, label_value(engine))`, the value of the engine label on the Jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vulcan_operator import names

__all__ = [
    "STARTED_MEMORY_SECONDS",
    "Admissions",
    "JobEntry",
    "QueueEntry",
    "QueueView",
    "Wakeups",
    "engine_key",
]

EngineKey = tuple[str, str]

#: How long a problem started here counts as holding a slot before the Job map has shown its
#: Job (then the map knows). Only matters if a Job is deleted before its first watch event.
STARTED_MEMORY_SECONDS = 120.0


def engine_key(namespace: str, engine: str) -> EngineKey:
    return (namespace, names.label_value(engine))


@dataclass(frozen=True)
class QueueEntry:
    """A problem as the queue sees it (compared whole: the index keeps only changes)."""

    created: str
    name: str
    uid: str
    #: Wants a solver slot: its current generation has no Job yet, and nothing but a slot
    #: keeps it from getting one (not invalid, not missing its ConfigMap, not finished).
    waiting: bool = False
    #: Its phase ('' before its first status).
    phase: str = ""

    @property
    def order(self) -> tuple[str, str]:
        """First come, first served: creation time, then name."""
        return (self.created, self.name)


@dataclass(frozen=True)
class JobEntry:
    """A solver Job as the queue sees it."""

    name: str
    #: Created, not finished and not suspended: it holds a slot.
    active: bool
    #: The owning SchedulingProblem's uid ('' when none).
    owner: str = ""


class Admissions:
    """Per-engine locks, and the problems admitted here whose Job the maps do not show yet."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._locks: dict[EngineKey, asyncio.Lock] = {}
        self._started: dict[EngineKey, dict[str, tuple[str, float]]] = {}

    def lock(self, key: EngineKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def started(self, key: EngineKey, uid: str, job: str) -> None:
        """Problem `uid` got Job `job` just now (call while holding the engine's lock)."""
        self._started.setdefault(key, {})[uid] = (job, self._clock())

    def recent(self, key: EngineKey, seen: Iterable[str]) -> set[str]:
        """Uids of the problems started here whose Job is not among `seen` yet (the others
        are forgotten: from then on, the Job map knows)."""
        started = self._started.get(key)
        if not started:
            return set()
        known = set(seen)
        limit = self._clock() - STARTED_MEMORY_SECONDS
        for uid in [u for u, (job, t) in started.items() if job in known or t < limit]:
            del started[uid]
        return set(started)


class QueueView:
    """The queue of one engine, from the live maps (see the module docstring)."""

    def __init__(
        self,
        problems: Mapping[EngineKey, Iterable[QueueEntry]],
        jobs: Mapping[EngineKey, Iterable[JobEntry]],
        engines: Mapping[tuple[str, str], Iterable[dict[str, Any]]],
        admissions: Admissions,
    ) -> None:
        self._problems = problems
        self._jobs = jobs
        self._engines = engines
        self.admissions = admissions

    def engine(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The engine's body (as last seen), or None when it does not exist."""
        found = list(self._engines.get((namespace, name), ()))
        return found[0] if found else None

    def _recent(self, key: EngineKey) -> tuple[list[JobEntry], set[str]]:
        jobs = list(self._jobs.get(key, ()))
        return jobs, self.admissions.recent(key, (j.name for j in jobs))

    def active(self, key: EngineKey) -> int:
        """Solver Jobs of the engine holding a slot (including ones just created here)."""
        jobs, recent = self._recent(key)
        return sum(1 for j in jobs if j.active) + len(recent)

    def waiting(self, key: EngineKey) -> list[QueueEntry]:
        """The engine's problems waiting for a slot, first come first."""
        _, recent = self._recent(key)
        return sorted(
            (e for e in self._problems.get(key, ()) if e.waiting and e.uid not in recent),
            key=lambda e: e.order,
        )

    def position(self, key: EngineKey, me: QueueEntry) -> int:
        """1 + the waiting problems ahead of `me`."""
        return 1 + sum(1 for e in self.waiting(key) if e.uid != me.uid and e.order < me.order)

    async def admit(
        self, key: EngineKey, me: QueueEntry, limit: int, start: Callable[[], Awaitable[str]]
    ) -> int:
        """Start `me` when a slot is free for it: `await start()` (creates the Job, returns
        its name) under the engine's lock; returns 0 then, else `me`'s queue position.

        Safe whatever the maps lag: under the lock, every admission counts the Jobs created
        before it, and admits only while active + position <= limit.
        """
        async with self.admissions.lock(key):
            position = self.position(key, me)
            if self.active(key) + position > limit:
                return position
            job = await start()
            self.admissions.started(key, me.uid, job)
            return 0


class Wakeups:
    """Events that end a problem's wait early: its Job changed, its engine freed a slot."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[EngineKey, set[str]] = {}

    def _event(self, uid: str) -> asyncio.Event:
        event = self._events.get(uid)
        if event is None:
            event = self._events[uid] = asyncio.Event()
        return event

    def wake(self, uid: str) -> None:
        if uid:
            self._event(uid).set()

    def wake_engine(self, key: EngineKey) -> None:
        """Wake every problem waiting for a slot of this engine."""
        for uid in list(self._waiting.get(key, ())):
            self.wake(uid)

    def queued(self, key: EngineKey | None, uid: str) -> None:
        """Say whether `uid` waits for a slot of `key` (None: it does not wait for any)."""
        for waiting in self._waiting.values():
            waiting.discard(uid)
        if key is not None:
            self._waiting.setdefault(key, set()).add(uid)

    def forget(self, uid: str) -> None:
        self.queued(None, uid)
        self._events.pop(uid, None)

    async def sleep(
        self, uid: str, seconds: float | None, stop: Awaitable[Any] | None = None
    ) -> None:
        """Until woken, `stop` completes, or `seconds` pass (None: no time limit)."""
        event = self._event(uid)
        if event.is_set():
            event.clear()
            return
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(event.wait())}
        if stop is not None:
            waiters.add(asyncio.ensure_future(stop))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            event.clear()
