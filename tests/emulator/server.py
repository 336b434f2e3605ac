"""The emulated Kubernetes API server: kmock's `KubernetesEmulator` with real API semantics.

kmock gives the HTTP server (`kmock.Server`, a free localhost port), the object store with its
history (`emulator.objects[...]`, kmock's `ObjectsArray`), the resource registry with the
built-in resources of a real cluster (`emulator.resources`), and the request parsing it is
built around. kmock's own request handling is replaced (see TESTBED.md for what it lacks): every
request goes through `__call__` -> `_intercept` (the single place for fault injection, faults.py)
-> `_route` -> the store methods, which also serve the direct helpers (`create`, `patch`, ...).

The server runs in its own thread with its own event loop. The operator under test (Kopf, in
the test's loop) can then be started, stopped and cancelled without touching the server's
tasks, and the synchronous `kubernetes` client works from any thread. Every helper is
thread-safe: it runs on the server's loop and waits for the result.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import concurrent.futures
import copy
import functools
import inspect
import logging
import pathlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import attrs
import kmock
import yaml

from tests.emulator import objects as o
from tests.emulator.api import (
    EVENT_RESOURCES,
    Key,
    Obj,
    T,
)
from tests.emulator.controllers import DeploymentController, JobController
from tests.emulator.http import HttpMixin, RequestRecord
from tests.emulator.registry import Registry
from tests.emulator.store import StoreMixin, jsonable
from tests.emulator.watch import Event, Watcher

logger = logging.getLogger(__name__)


@attrs.define(kw_only=True, eq=False, repr=False)
class Emulator(HttpMixin, StoreMixin, kmock.KubernetesEmulator):
    """A Kubernetes API server for tests. Use as `async with Emulator() as emulator:`.

    kmock's own request views (`emulator[...]`, `len(emulator)`) stay empty: the requests are
    in `emulator.log`. The objects are in kmock's `emulator.objects[res, ns, name]` (with their
    history of versions) and the resources in `emulator.resources`.
    """

    controllers: bool = True  # run the Job and Deployment controller simulations
    strict_namespaces: bool = False  # 404 on creating in a namespace that does not exist
    history_limit: int = 1000  # watch events kept for `?watch&resourceVersion=N`; older: 410
    #: plural -> seconds: its watch events reach every watcher that late, in order (a real
    #: watch lags behind the writes; a client has its own write's answer first).
    watch_lag: dict[str, float] = attrs.field(factory=dict)

    registry: Registry = attrs.field(init=False)
    jobs: JobController = attrs.field(init=False)
    deployments: DeploymentController = attrs.field(init=False)
    log: builtins.list[RequestRecord] = attrs.field(init=False, factory=builtins.list)
    failures: builtins.list[BaseException] = attrs.field(init=False, factory=builtins.list)
    _rv: int = attrs.field(init=False, default=0)
    _compacted: int = attrs.field(init=False, default=0)
    _history: collections.deque[Event] = attrs.field(init=False, factory=collections.deque)
    _watchers: set[Watcher] = attrs.field(init=False, factory=set)
    _uids: dict[str, Key] = attrs.field(init=False, factory=dict)
    _tasks: set[asyncio.Task[Any]] = attrs.field(init=False, factory=set)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(init=False, default=None)
    _thread: threading.Thread | None = attrs.field(init=False, default=None)
    _stopping: asyncio.Event | None = attrs.field(init=False, default=None)
    _url: str = attrs.field(init=False, default="")
    _failure: BaseException | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        # KubernetesEmulator's own post-init (its fallback reactions) is deliberately not called:
        # `_route()` below serves every request instead.
        self.registry = Registry(self.resources)
        self.registry.load_builtins()
        self.jobs = JobController(self, enabled=self.controllers)
        self.deployments = DeploymentController(self, enabled=self.controllers)

    def __repr__(self) -> str:
        return f"<Emulator {self._url or '(stopped)'} rv={self._rv} requests={len(self.log)}>"

    def __bool__(self) -> bool:  # kmock's views are falsy without kmock-recorded requests
        return True

    # --- life cycle (the server runs in its own thread and loop) ------------------------------

    @property
    def url(self) -> str:  # type: ignore[override]
        """`http://127.0.0.1:<port>`, without a trailing slash."""
        return self._url

    async def __aenter__(self) -> Emulator:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="k8s-emulator", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(ready.wait)
        if self._failure is not None:
            raise self._failure
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._failure is not None:
            raise self._failure

    def _thread_main(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as e:
            self._failure = e
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await kmock.KubernetesEmulator.__aenter__(self)  # kmock's own bookkeeping (errors list)
        try:
            async with kmock.Server(self, user_agent="") as server:
                self._url = str(server.url).rstrip("/")
                ready.set()
                await self._stopping.wait()
                for watcher in self._watchers:
                    watcher.queue.put_nowait(None)
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await kmock.KubernetesEmulator.__aexit__(self, None, None, None)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the server's loop (where all state lives) and return its result."""
        if self._loop is None:
            raise RuntimeError("the emulator is not running")
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:
                future.set_exception(e)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task on the server's loop (controllers), cancelled at shutdown."""
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("emulator task failed", exc_info=task.exception())
            self.failures.append(task.exception())  # type: ignore[arg-type]

    # --- direct access for tests (thread-safe; same logic and events as the HTTP API) ---------

    def resource(self, ref: str | kmock.resource) -> kmock.resource:  # type: ignore[override]
        """`configmaps`, `Job`, `deploy`, `batch/v1/jobs`, `vulcanengines.vulcan-engine.com`."""
        return self._call(self.registry.resolve, ref)

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        """Create like `kubectl create`: the resource comes from apiVersion/kind."""
        obj = jsonable(obj)

        def run() -> Obj:
            res = self.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
            ns = namespace or obj.get("metadata", {}).get("namespace") or "default"
            return copy.deepcopy(
                self._create(res, ns if self.registry.info(res).namespaced else None, obj)
            )

        return self._call(run)

    def get(  # type: ignore[override]
        self,
        ref: str | kmock.resource,
        namespace: str | None,
        name: str,
    ) -> Obj | None:
        """The object, or None if it does not exist."""
        return self._call(
            lambda: copy.deepcopy(self._find(self.registry.resolve(ref), namespace, name))
        )

    def list(
        self,
        ref: str | kmock.resource,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
    ) -> builtins.list[Obj]:
        query = {"labelSelector": labels or "", "fieldSelector": fields or ""}
        return self._call(
            lambda: copy.deepcopy(self._select(self.registry.resolve(ref), namespace, query))
        )

    def patch(  # type: ignore[override]
        self,
        ref: str | kmock.resource,
        namespace: str | None,
        name: str,
        patch: Obj | builtins.list[Obj],
        *,
        subresource: str | None = None,
    ) -> Obj:
        """A merge patch (a dict) or a JSON patch (a list); `subresource="status"` for status."""

        patch = jsonable(patch)  # never shared with the stored object

        def change(current: Obj) -> Any:
            if isinstance(patch, builtins.list):
                return o.json_patch(current, patch)
            return o.merge_patch(current, patch)

        return self._call(
            lambda: copy.deepcopy(
                self._update(
                    self.registry.resolve(ref), namespace, name, change, subresource=subresource
                )
            )
        )

    def delete(  # type: ignore[override]
        self,
        ref: str | kmock.resource,
        namespace: str | None,
        name: str,
        *,
        orphan: bool = False,
    ) -> Obj:
        return self._call(
            lambda: copy.deepcopy(
                self._delete(self.registry.resolve(ref), namespace, name, orphan=orphan)[0]
            )
        )

    def apply_yaml(self, text: str) -> builtins.list[Obj]:
        """Create every document of a YAML stream (e.g. CRDs)."""
        return [self.create(doc) for doc in _yaml_docs(text) if doc]

    def load_crds(self, folder: str | pathlib.Path) -> builtins.list[str]:
        """Install every `*.yaml` of a folder (missing or empty is fine); the CRD names."""
        path = pathlib.Path(folder)
        files = sorted(path.glob("*.yaml")) if path.is_dir() else []
        return [
            obj["metadata"]["name"]
            for file in files
            for obj in self.apply_yaml(file.read_text())
            if obj["kind"] == "CustomResourceDefinition"
        ]

    def watching(self, ref: str | kmock.resource | None = None) -> int:
        """How many watch streams are open (on one resource, any version, if given)."""

        def run() -> int:
            storage = None if ref is None else self.registry.storage(self.registry.resolve(ref))
            return sum(1 for w in self._watchers if storage in {None, w.storage})

        return self._call(run)

    @property
    def resource_version(self) -> int:
        return self._rv

    def compact(self) -> None:
        """Forget the watch history (like etcd compaction): older resourceVersions get 410."""

        def run() -> None:
            self._history.clear()
            self._compacted = self._rv

        self._call(run)

    # --- the request log ---------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the request log, for `writes(since=...)` and `requests(since=...)`."""
        return len(self.log)

    def requests(self, since: int = 0) -> builtins.list[RequestRecord]:
        return self.log[since:]

    def writes(self, since: int = 0, *, events: bool = True) -> builtins.list[RequestRecord]:
        """Requests that change something (not GET, so never a watch); `events=False` leaves
        out posted Events (Kopf posts one per handler outcome)."""
        return [
            r
            for r in self.log[since:]
            if r.is_write and (events or (r.group, r.resource) not in EVENT_RESOURCES)
        ]

    async def quiet(self, seconds: float = 1.0, timeout: float = 60.0) -> int:  # noqa: ASYNC109
        """Wait until nothing but Events was written for `seconds`; a `mark` from then. An
        "idle writes nothing" check starts here, so that a handler's last writes (Kopf's own
        annotations after it returned) are not counted as idle ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            mark = self.mark()
            written = self.writes(events=False)
            since = time.time() - (written[-1].time if written else 0.0)
            if since >= seconds:
                return mark
            if loop.time() > deadline:
                raise TimeoutError(f"writes kept coming for {timeout}s: {written[-1].path}")
            await asyncio.sleep(min(seconds - since, 0.1))

    def api_usage(self, since: int = 0) -> set[tuple[str, str, str, str, str]]:
        """(verb, group, resource, subresource, namespace) of every API request, for RBAC."""
        return {
            (r.verb, r.group or "", r.resource, r.subresource or "", r.namespace or "")
            for r in self.log[since:]
            if r.verb and r.resource
        }

    async def wait_for(
        self,
        predicate: Callable[[], T | Awaitable[T]],
        timeout: float = 60.0,  # noqa: ASYNC109 (a poller's deadline, by design)
        interval: float = 0.01,
    ) -> T:
        """Poll until the predicate returns something truthy; return it. KeyError, IndexError
        and TypeError count as "not yet" (`emulator.get(...)["status"]["phase"]` just works).

        The default deadline is generous on purpose: it is only reached when a test fails, and
        a loaded machine (both cores busy) can take seconds to start a real solver pod."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Any = None
        while True:
            try:
                last = predicate()
                if inspect.isawaitable(last):
                    last = await last
                if last:
                    return last  # type: ignore[no-any-return]
            except (KeyError, IndexError, TypeError) as e:
                last = e
            if loop.time() >= deadline:
                raise TimeoutError(f"not true within {timeout}s (last: {last!r})")
            await asyncio.sleep(interval)


@functools.lru_cache(maxsize=64)
def _parsed_yaml(text: str) -> tuple[Any, ...]:
    return tuple(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _yaml_docs(text: str) -> builtins.list[Any]:
    """The documents of a YAML stream; parsed once per text (CRDs are loaded in every test)."""
    return copy.deepcopy(builtins.list(_parsed_yaml(text)))
