"""The solver queue of each engine: who may start a Job now, and who waits where.

At most `spec.solver.maxConcurrentJobs` solver pods of an engine are active at once (their
Jobs created, not finished, not suspended; a problem with `spec.solver.parallelism` N counts N
pods until its Job ends); the other problems wait in phase Queued, first come, first served
(creation time, then name; a problem that needs more slots than are free waits, and so do
the ones behind it). Everything here is in memory and answers at once:

- `QueueView` reads three live maps the handlers keep up to date from watch events (Kopf
  indexes): the problems of each engine (from any namespace the engine accepts), the solver
  Jobs of each problem (by the owning problem's uid) and the engines.
- `Admissions` (one per operator process; only one replica is active) remembers the slots
  given that the Job map does not show yet, so two problems never take the same free slot.
- `Wakeups` lets a waiting problem sleep until something relevant happens instead of polling.
  A freed slot wakes only the head of the queue; a problem that got a slot wakes the next one
  (which starts too if another slot is free, else learns it is now first). So a slot costs
  O(1) work, not a wave through the whole queue; the positions further back are refreshed by
  each problem's own poll.

Keys are `(engine namespace, label_value(engine))`. A Job counts for an engine only as the
Job of one of that engine's problems (its owner uid), at most one per problem: a Job anyone
made with our labels, in any namespace, takes no slot (a planner could otherwise starve the
engine's other namespaces), and labels are never trusted to say which engine a Job is for.
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
    #: The name of the Job of its current generation (whether it exists or not).
    job: str = ""
    #: Its namespace (its Jobs are there: an ownerReference never crosses namespaces).
    namespace: str = ""
    #: The solver pods its Job runs (spec.solver.parallelism): the slots it takes.
    pods: int = 1

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


class Admissions:
    """The problems given a slot here whose Job the maps do not show yet (one per process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: dict[EngineKey, dict[str, tuple[str, float]]] = {}

    def started(self, key: EngineKey, uid: str, job: str) -> None:
        """Problem `uid` holds a slot for Job `job` from now on."""
        self._started.setdefault(key, {})[uid] = (job, self._clock())

    def release(self, key: EngineKey, uid: str) -> None:
        """Problem `uid` did not get its Job after all: its slot is free again."""
        self._started.get(key, {}).pop(uid, None)

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
        jobs: Mapping[tuple[str, str], Iterable[JobEntry]],
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

    def _jobs_of(self, entry: QueueEntry) -> list[JobEntry]:
        """The solver Jobs the problem owns, in its own namespace."""
        return list(self._jobs.get((entry.namespace, entry.uid), ()))

    def _recent(self, key: EngineKey) -> tuple[list[QueueEntry], set[str]]:
        """The engine's problems, and the uids of those started here whose Job the map does
        not show yet."""
        entries = list(self._problems.get(key, ()))
        seen = (j.name for e in entries for j in self._jobs_of(e))
        return entries, self.admissions.recent(key, seen)

    def _waiting(self, key: EngineKey) -> list[QueueEntry]:
        entries, recent = self._recent(key)
        # A problem whose Job exists no longer waits, even before its status says so.
        return [
            e
            for e in entries
            if e.waiting
            and e.uid not in recent
            and not any(j.name == e.job for j in self._jobs_of(e))
        ]

    def active(self, key: EngineKey) -> int:
        """Slots of the engine held: by each problem with an active Job (one Job per problem
        at most) or a slot just given here, as many as its spec's pods."""
        entries, recent = self._recent(key)
        pods = {e.uid: e.pods for e in entries}
        holding = {e.uid for e in entries if any(j.active for j in self._jobs_of(e))}
        return sum(pods.get(uid, 1) for uid in holding | recent)

    def waiting(self, key: EngineKey) -> list[QueueEntry]:
        """The engine's problems waiting for a slot, first come first."""
        return sorted(self._waiting(key), key=lambda e: e.order)

    def knows_job(self, key: EngineKey, me: QueueEntry) -> bool:
        """Whether problem `me`'s Job (`me.job`) may exist: the Job map has it, or it was just
        given a slot here. (The map is complete before any handler runs, after a restart too;
        a Job created meanwhile by anyone else is still found, by name, when creating it.)"""
        _, recent = self._recent(key)
        return me.uid in recent or any(j.name == me.job for j in self._jobs_of(me))

    def head(self, key: EngineKey) -> QueueEntry | None:
        """The problem that gets the next free slot of the engine."""
        waiting = self.waiting(key)
        return waiting[0] if waiting else None

    def position(self, key: EngineKey, me: QueueEntry) -> int:
        """1 + the waiting problems ahead of `me`."""
        return 1 + sum(1 for e in self.waiting(key) if e.uid != me.uid and e.order < me.order)

    def admit(self, key: EngineKey, me: QueueEntry, limit: int, job: str) -> int:
        """Give `me` its slots (`me.pods`) for Job `job` when they are free for it (the
        problems ahead of it take theirs first): 0, and the slots are held for it (create the
        Job then; `admissions.release` if that fails); else `me`'s queue position.

        Safe whatever the maps lag: the decision and the hold happen without a pause of the
        event loop, and every decision counts the slots held before it: at most `limit`.
        """
        waiting = self.waiting(key)
        ahead = [e for e in waiting if e.uid != me.uid and e.order < me.order]
        if self.active(key) + sum(e.pods for e in ahead) + me.pods > limit:
            return 1 + len(ahead)
        self.admissions.started(key, me.uid, job)
        return 0


class Wakeups:
    """Events that end a problem's wait early: its Job changed, a slot is free for it."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def _event(self, uid: str) -> asyncio.Event:
        event = self._events.get(uid)
        if event is None:
            event = self._events[uid] = asyncio.Event()
        return event

    def wake(self, uid: str) -> None:
        if uid:
            self._event(uid).set()

    def forget(self, uid: str) -> None:
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
