"""Fault injection for the emulator: what a busy or flaky API server does to the operator.

    policy = FaultPolicy(rate=0.15, seed=7)         # 15 % of the operator's requests
    async with FaultyEmulator(faults=policy) as emulator: ...
    # or, with the fixtures: @pytest.mark.emulator(cls=FaultyEmulator, faults=FaultPolicy(...))
    # or later: emulator.faults = FaultPolicy(...); emulator.faults.enabled = False
    policy.counts()                                  # {Fault.CONFLICT: 3, ...}

Every request the policy's `scope` selects (by default: the operator's, see `from_operator`)
draws once; with probability `rate` it gets one fault, chosen among the kinds that make sense
for it (and that `kinds` allows):

- `CONFLICT` (writes): 409 `Conflict` ("the object has been modified"); nothing is written.
- `TOO_MANY_REQUESTS` (any): 429 `TooManyRequests` with a `Retry-After: <retry_after>` header
  and `details.retryAfterSeconds`.
- `INTERNAL_ERROR` (any): 500 `InternalError`; nothing is written.
- `SLOW` (any but watches): the real answer, after a delay drawn from `delay`.
- `LATE` (writes): the write is done at once (watchers see it) and its answer sent after a
  delay drawn from `delay`, as a busy server's answer can trail its own watch event. Only
  when asked for (`kinds`): not among the default kinds.
- `DROP_WATCH` (watches): the stream starts as usual and ends after a time drawn from
  `watch_lifetime`: cleanly (as on a server-side timeout), or, for a share `abrupt` of the drops
  (half by default), with a connection reset and no final chunk.
- `EXPIRED` (watches from a `resourceVersion`, not 0): one `ERROR` event with a 410 `Expired`
  Status, then the end of the stream, as the API server answers a compacted resourceVersion.

Watch requests are few and long: `watch_rate`, when set, is their rate instead of `rate`.

Deterministic given the seed, as far as the clients' requests are: the draw of a request does
not depend on the order in which concurrent requests arrive, only on the seed, on what the
request is (method, path; for watches the resource and whether it resumes) and on how many
identical requests came before it. Two runs that make the same requests get the same faults.

`injected` lists every fault with its request; `seen` counts the requests in scope. The test's
own direct helpers (`emulator.create(...)`, ...) never pass through HTTP, so they never see
faults; the Job controller's simulated pods do not either.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import attrs
from aiohttp import web

from tests.emulator.api import JSON, ApiError
from tests.emulator.server import Emulator, RequestRecord

__all__ = [
    "Fault",
    "FaultPolicy",
    "FaultyEmulator",
    "Injection",
    "anyone",
    "from_operator",
    "summary",
]

WRITES = {"create", "update", "patch", "delete", "deletecollection"}


class Fault(enum.StrEnum):
    CONFLICT = "conflict"
    TOO_MANY_REQUESTS = "tooManyRequests"
    INTERNAL_ERROR = "internalError"
    SLOW = "slow"
    DROP_WATCH = "dropWatch"
    EXPIRED = "expired"
    LATE = "late"


DEFAULT_FAULTS = frozenset(Fault) - {Fault.LATE}


def from_operator(raw: web.BaseRequest, record: RequestRecord) -> bool:
    """Requests of the operator process: Kopf's own client (`kopf/<version>`), and the
    official client the operator's code uses, which sends no credentials against the emulator.
    Not: solver pods (their kubeconfig sends a bearer token), raw test sessions (aiohttp's
    user agent), discovery (no resource)."""
    if record.verb is None:
        return False
    agent = raw.headers.get("User-Agent", "")
    if agent.startswith("kopf/"):
        return True
    return agent.startswith("OpenAPI-Generator/") and "Authorization" not in raw.headers


def anyone(raw: web.BaseRequest, record: RequestRecord) -> bool:
    """Every API request on a resource, whoever makes it (for the mechanics tests)."""
    return record.verb is not None


@dataclass(frozen=True)
class Injection:
    """One injected fault and the request it hit."""

    index: int  # in emulator.log
    fault: Fault
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    detail: str = ""  # the delay, the watch lifetime, "abrupt"...
    client: str = ""  # the User-Agent's product: kopf, OpenAPI-Generator (the official client)


def applicable(record: RequestRecord) -> list[Fault]:
    """The faults that make sense for this request (in a fixed order)."""
    if record.verb == "watch":
        kinds = [Fault.TOO_MANY_REQUESTS, Fault.INTERNAL_ERROR, Fault.DROP_WATCH]
        if record.query.get("resourceVersion", "0") not in ("", "0"):
            kinds.append(Fault.EXPIRED)
        return kinds
    kinds = [Fault.TOO_MANY_REQUESTS, Fault.INTERNAL_ERROR, Fault.SLOW]
    if record.verb in WRITES:
        kinds.insert(0, Fault.CONFLICT)
        kinds.append(Fault.LATE)
    return kinds


@dataclass
class FaultPolicy:
    """Which requests get which faults. Mutable while the server runs (`enabled`, `rate`)."""

    rate: float = 0.1
    seed: int = 0
    watch_rate: float | None = None  # for watch requests, if not `rate` (they are few)
    kinds: Collection[Fault] = DEFAULT_FAULTS
    scope: Callable[[web.BaseRequest, RequestRecord], bool] = from_operator
    delay: tuple[float, float] = (0.05, 0.5)  # SLOW, LATE: seconds, uniform
    retry_after: int = 1  # TOO_MANY_REQUESTS: seconds
    watch_lifetime: tuple[float, float] = (0.1, 2.0)  # DROP_WATCH: seconds, uniform
    abrupt: float = 0.5  # DROP_WATCH: the share of drops that reset the connection
    enabled: bool = True
    injected: list[Injection] = field(default_factory=list)
    seen: int = 0  # requests in scope while enabled
    _occurrences: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[Fault, int]:
        """Faults injected so far, by kind (every kind present, zeros included)."""
        found = Counter(i.fault for i in self.injected)
        return {kind: found[kind] for kind in Fault}

    def _signature(self, record: RequestRecord) -> str:
        if record.verb == "watch":  # resourceVersions differ from run to run
            resumes = record.query.get("resourceVersion", "0") not in ("", "0")
            return f"watch {record.path} resumes={resumes}"
        if record.verb == "create":  # one path for every object of a kind
            meta = (record.body or {}).get("metadata") if isinstance(record.body, dict) else None
            return f"POST {record.path} {(meta or {}).get('name', '')}"
        return f"{record.method} {record.path} {record.query.get('labelSelector', '')}"

    def draw(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> tuple[Fault | None, random.Random]:
        """The fault for this request (or None), and the request's own random stream."""
        signature = self._signature(record)
        self._occurrences[signature] += 1
        rng = random.Random(f"{self.seed}|{signature}|{self._occurrences[signature]}")
        rate = self.watch_rate if record.verb == "watch" and self.watch_rate is not None else None
        hit = rng.random() < (self.rate if rate is None else rate)
        kinds = [k for k in applicable(record) if k in self.kinds]
        return (rng.choice(kinds) if hit and kinds else None), rng

    async def intercept(
        self, emulator: Emulator, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        if not self.enabled or not self.scope(raw, record):
            return None
        self.seen += 1
        fault, rng = self.draw(raw, record)
        if fault is None:
            return None
        detail = ""
        response: web.StreamResponse | None = None
        if fault is Fault.CONFLICT:
            name = record.name or ((record.body or {}).get("metadata") or {}).get("name", "")
            response = ApiError.conflict(
                record.resource or "", str(name), record.group or ""
            ).response()
        elif fault is Fault.TOO_MANY_REQUESTS:
            error = ApiError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"retryAfterSeconds": self.retry_after, "causes": [{"message": "injected"}]},
            )
            response = error.response()
            response.headers["Retry-After"] = str(self.retry_after)
        elif fault is Fault.INTERNAL_ERROR:
            response = ApiError(
                500,
                "InternalError",
                "Internal error occurred: etcdserver: request timed out (injected)",
                {"causes": [{"message": "etcdserver: request timed out"}]},
            ).response()
        elif fault is Fault.SLOW:
            seconds = rng.uniform(*self.delay)
            detail = f"{seconds:.3f}s"
            self._record(raw, record, fault, detail)
            await asyncio.sleep(seconds)
            return None  # then served as usual
        elif fault is Fault.LATE:
            seconds = rng.uniform(*self.delay)
            self._record(raw, record, fault, f"{seconds:.3f}s")
            response = await emulator._route(raw, record)  # done, and watched
            await asyncio.sleep(seconds)
            return response
        elif fault is Fault.DROP_WATCH:
            seconds = rng.uniform(*self.watch_lifetime)
            abrupt = rng.random() < self.abrupt
            detail = f"{seconds:.3f}s{' abrupt' if abrupt else ''}"
            if abrupt:
                asyncio.get_running_loop().call_later(seconds, _reset, raw)
            else:  # the server ends the stream, as on its own timeoutSeconds
                current = float(record.query.get("timeoutSeconds") or "inf")
                record.query["timeoutSeconds"] = str(min(current, seconds))
            self._record(raw, record, fault, detail)
            return None
        elif fault is Fault.EXPIRED:
            since = record.query.get("resourceVersion", "")
            detail = f"resourceVersion={since}"
            self._record(raw, record, fault, detail)
            return await _expired(raw, record, since, emulator.resource_version)
        self._record(raw, record, fault, detail)
        return response

    def _record(
        self, raw: web.BaseRequest, record: RequestRecord, fault: Fault, detail: str
    ) -> None:
        self.injected.append(
            Injection(
                record.index,
                fault,
                record.verb or "",
                record.resource or "",
                record.namespace,
                record.name,
                detail,
                raw.headers.get("User-Agent", "").split("/")[0],
            )
        )


def _reset(raw: web.BaseRequest) -> None:
    """Cut a watch stream mid-way, as a lost connection does: no final chunk."""
    if raw.task.done():
        return  # it ended by itself meanwhile; the connection may serve another request
    if raw.transport is not None:
        raw.transport.abort()
    raw.task.cancel()


async def _expired(
    raw: web.BaseRequest, record: RequestRecord, since: str, current: int
) -> web.StreamResponse:
    """A watch from a compacted resourceVersion: HTTP 200, one ERROR event, end of stream."""
    error = ApiError(410, "Expired", f"too old resource version: {since} ({current})")
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    record.status = 200
    await response.prepare(raw)
    await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
    await response.write_eof()
    return response


@attrs.define(kw_only=True, eq=False, repr=False)
class FaultyEmulator(Emulator):
    """The emulator with a fault policy in its `_intercept` hook (none: a faultless server)."""

    faults: FaultPolicy | None = None

    async def __aenter__(self) -> FaultyEmulator:
        await super().__aenter__()
        return self

    async def _intercept(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        if self.faults is None:
            return None
        return await self.faults.intercept(self, raw, record)


def summary(policy: FaultPolicy) -> dict[str, Any]:
    """Counts for reports: requests in scope, faults by kind, total."""
    counts = policy.counts()
    return {
        "requests": policy.seen,
        "faults": sum(counts.values()),
        **{str(kind): n for kind, n in counts.items()},
    }
