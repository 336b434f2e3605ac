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
import contextlib
import copy
import functools
import inspect
import json
import logging
import pathlib
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import attrs
import kmock
import yaml
from aiohttp import web

from tests.emulator import objects as o
from tests.emulator.api import JSON, ApiError, ApiPath, json_response
from tests.emulator.controllers import DeploymentController, JobController
from tests.emulator.registry import Registry

logger = logging.getLogger(__name__)

T = TypeVar("T")
Obj = dict[str, Any]
Key = tuple[kmock.resource, str | None, str]

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-emulated",
    "platform": "linux/amd64",
    "gitCommit": "0000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SERVER_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "managedFields",
)
KEPT_META = ("name", "namespace", *SERVER_META[:-1])  # managedFields are not tracked at all
IMMUTABLE_SPEC = {
    "jobs": ("spec.template", "spec.selector", "spec.completionMode"),
    "deployments": ("spec.selector",),
}
CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = kmock.resource("", "v1", "namespaces")
EVENT_RESOURCES = {("", "events"), ("events.k8s.io", "events")}


@dataclass
class RequestRecord:
    """One HTTP request as the server saw it (also the raw material for RBAC checks)."""

    index: int
    time: float  # time.time() when it arrived
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any = None
    verb: str | None = None  # get list watch create update patch delete deletecollection
    group: str | None = None
    version: str | None = None
    resource: str | None = None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    status: int | None = None

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


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
    queue: asyncio.Queue[Obj | None]

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
        return None if kind is None else {"type": kind, "object": _as(event.obj, self.resource)}


def _gv(res: kmock.resource) -> str:
    return f"{res.group}/{res.version}" if res.group else str(res.version)


def _as(obj: Obj, res: kmock.resource) -> Obj:
    """The object as served under the requested version (storage objects carry their own)."""
    return obj if obj.get("apiVersion") == _gv(res) else {**obj, "apiVersion": _gv(res)}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1"}


@attrs.define(kw_only=True, eq=False, repr=False)
class Emulator(kmock.KubernetesEmulator):
    """A Kubernetes API server for tests. Use as `async with Emulator() as emulator:`.

    kmock's own request views (`emulator[...]`, `len(emulator)`) stay empty: the requests are
    in `emulator.log`. The objects are in kmock's `emulator.objects[res, ns, name]` (with their
    history of versions) and the resources in `emulator.resources`.
    """

    controllers: bool = True  # run the Job and Deployment controller simulations
    strict_namespaces: bool = False  # 404 on creating in a namespace that does not exist
    history_limit: int = 1000  # watch events kept for `?watch&resourceVersion=N`; older: 410

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

    # --- HTTP -------------------------------------------------------------------------------

    async def __call__(self, raw: web.BaseRequest) -> web.StreamResponse:
        body = await raw.read()
        content_type = raw.headers.get("Content-Type", "").split(";")[0].strip() or None
        record = RequestRecord(
            index=len(self.log),
            time=time.time(),
            method=raw.method,
            path=raw.path,
            query=dict(raw.query),
            content_type=content_type,
        )
        self.log.append(record)
        try:
            record.body = _parse_body(body, content_type)
            _describe(record)
            response = await self._intercept(raw, record)
            if response is None:  # NB: a StreamResponse is a (falsy when empty) mapping
                response = await self._route(raw, record)
        except ApiError as e:
            response = e.response()
        except Exception as e:  # a bug of the emulator: answer 500 and fail the test later
            logger.exception("emulator failed on %s %s", raw.method, raw.path_qs)
            self.failures.append(e)
            response = ApiError(500, "InternalError", f"emulator failure: {e!r}").response()
        record.status = record.status or response.status
        return response

    async def _intercept(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        """The one hook before a request is served: return a response to replace the real one.

        A fault-injection mode (409/429/500, slowness, dropped watches, 410) goes here: the
        request is logged and described (`record.verb`, `.resource`, `.name`...), and nothing
        has been changed yet. Return None to serve the request as usual.
        """
        return None

    async def _route(self, raw: web.BaseRequest, record: RequestRecord) -> web.StreamResponse:
        path = raw.path.rstrip("/") or "/"
        if raw.method == "GET":
            if path == "/version":
                return json_response(VERSION)
            if path in {"/healthz", "/livez", "/readyz"}:
                return web.Response(text="ok")
            if path == "/api":
                return json_response(self.registry.api_versions(self._url.split("//")[-1]))
            if path == "/apis":
                return json_response(self.registry.group_list())
            if m := re.fullmatch(r"/apis/([^/]+)", path):
                return json_response(self.registry.group_doc(m[1]))
        api = ApiPath.parse(path)
        if api is None:
            raise ApiError.not_found("")
        if api.plural is None:
            if raw.method != "GET":
                raise _not_allowed()
            return json_response(self.registry.resource_list(api.group, api.version))
        res = kmock.resource(api.group, api.version, api.plural)
        verb = _verb(raw.method, api, record.query)
        self._check_scope(res, api, verb)
        if verb == "watch":
            return await self._watch(raw, record, res, api)
        result, status = self._serve(verb, res, api, record)
        return json_response(result, status)

    def _check_scope(self, res: kmock.resource, api: ApiPath, verb: str) -> None:
        info = self.registry.info(res)
        if api.namespace is not None and not info.namespaced:
            raise ApiError.not_found(res.plural or "")
        if info.namespaced and api.namespace is None and verb not in {"list", "watch"}:
            raise _not_allowed() if verb == "create" else ApiError.not_found(res.plural or "")
        if api.subresource is not None:
            if api.subresource not in info.subresources:
                raise ApiError.not_found(res.plural or "")
            if api.subresource != "status":
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    f"the emulator does not implement {res.plural}/{api.subresource}",
                )

    def _serve(
        self, verb: str, res: kmock.resource, api: ApiPath, record: RequestRecord
    ) -> tuple[Any, int]:
        ns, name, sub, query, body = (
            api.namespace,
            api.name,
            api.subresource,
            record.query,
            record.body,
        )
        dry_run = query.get("dryRun") == "All"
        if verb == "get":
            return _as(self._read(res, ns, name or ""), res), 200
        if verb == "list":
            return self._list_doc(res, ns, query), 200
        if verb == "create":
            return _as(self._create(res, ns, body, dry_run=dry_run), res), 201
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError.bad_request("the body must be an object")
            if (body.get("metadata") or {}).get("name") != name:
                raise ApiError.bad_request("the name of the object does not match the URL")
            return _as(
                self._update(
                    res,
                    ns,
                    name or "",
                    lambda _: copy.deepcopy(body),
                    subresource=sub,
                    dry_run=dry_run,
                ),
                res,
            ), 200
        if verb == "patch":
            return self._serve_patch(res, api, record, dry_run)
        if verb == "delete":
            options = body if isinstance(body, dict) else {}
            policy = query.get("propagationPolicy") or options.get("propagationPolicy")
            obj, gone = self._delete(
                res,
                ns,
                name or "",
                orphan=policy == "Orphan",
                preconditions=options.get("preconditions"),
            )
            if gone and not self.registry.is_custom(res):
                return {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": res.group,
                        "kind": res.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                }, 200
            return _as(obj, res), 200
        if verb == "deletecollection":
            items = self._select(res, ns, query)
            for obj in items:  # some may be garbage-collected on the way
                if self._find(res, obj["metadata"].get("namespace"), obj["metadata"]["name"]):
                    self._delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            return self._list_doc(res, ns, {}, items=items), 200
        raise _not_allowed()

    def _serve_patch(
        self, res: kmock.resource, api: ApiPath, record: RequestRecord, dry_run: bool
    ) -> tuple[Any, int]:
        ns, name, kind = api.namespace, api.name or "", record.content_type
        body = copy.deepcopy(record.body)  # the log keeps what was sent
        change: Callable[[Obj], Obj]
        if kind == "application/json-patch+json":
            change = lambda current: o.json_patch(current, body)  # noqa: E731
        elif kind in {
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        }:
            if kind == "application/strategic-merge-patch+json" and self.registry.is_custom(res):
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources",
                )
            if not isinstance(body, dict):
                raise ApiError.bad_request("a merge patch must be an object")
            change = lambda current: o.merge_patch(current, body)  # noqa: E731
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type: {kind}")
        if kind == "application/apply-patch+yaml":
            if not record.query.get("fieldManager"):
                raise ApiError.bad_request("fieldManager is required for apply patch")
            if self._find(res, ns, name) is None:  # server-side apply creates what is missing
                return _as(self._create(res, ns, body, dry_run=dry_run), res), 201
        return _as(
            self._update(res, ns, name, change, subresource=api.subresource, dry_run=dry_run), res
        ), 200

    async def _watch(
        self, raw: web.BaseRequest, record: RequestRecord, res: kmock.resource, api: ApiPath
    ) -> web.StreamResponse:
        query = record.query
        watcher = Watcher(
            resource=res,
            storage=self.registry.storage(res),
            namespace=api.namespace,
            name=api.name,
            selects=self._selector(res, query),
            queue=asyncio.Queue(),
        )
        since = query.get("resourceVersion") or "0"
        initial = _truthy(query.get("sendInitialEvents"))
        backlog: list[Obj] = []
        if since == "0" or initial:
            backlog = [
                {"type": "ADDED", "object": _as(obj, res)}
                for obj in self._live(res)
                if watcher.wants(obj)
            ]
            if initial:
                backlog.append(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": self.registry.info(res).kind,
                            "apiVersion": _gv(res),
                            "metadata": {
                                "resourceVersion": str(self._rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    }
                )
        elif not since.isdigit():
            raise ApiError.bad_request(f"invalid resourceVersion: {since!r}")
        elif int(since) < self._compacted:
            backlog = [
                {
                    "type": "ERROR",
                    "object": ApiError(
                        410, "Expired", f"too old resource version: {since} ({self._compacted})"
                    ).status(),
                }
            ]
            watcher.queue.put_nowait(None)
        else:
            backlog = [
                item
                for event in self._history
                if event.rv > int(since)
                if (item := watcher.translate(event)) is not None
            ]
        self._watchers.add(watcher)
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        record.status = 200
        try:
            await response.prepare(raw)
            for item in backlog:
                await response.write(json.dumps(item).encode() + b"\n")
            async with asyncio.timeout(timeout):
                while (item := await watcher.queue.get()) is not None:
                    await response.write(json.dumps(item).encode() + b"\n")
            await response.write_eof()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._watchers.discard(watcher)
        return response

    # --- the store (runs on the server's loop only) -------------------------------------------

    def _key(self, res: kmock.resource, namespace: str | None, name: str) -> Key:
        info = self.registry.info(res)
        return (self.registry.storage(res), namespace if info.namespaced else None, name)

    def _find(self, res: kmock.resource, namespace: str | None, name: str) -> Obj | None:
        key = self._key(res, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key].last.raw
        return None

    def _read(self, res: kmock.resource, namespace: str | None, name: str) -> Obj:
        obj = self._find(res, namespace, name)
        if obj is None:
            raise ApiError.not_found(res.plural or "", name, res.group or "")
        return obj

    def _live(self, res: kmock.resource) -> builtins.list[Obj]:
        storage = self.registry.storage(res)
        found = [
            obj.last.raw
            for (r, _, _), obj in self.objects.items()
            if r == storage and not obj.deleted
        ]
        return sorted(
            found, key=lambda x: (x["metadata"].get("namespace") or "", x["metadata"]["name"])
        )

    def _selector(self, res: kmock.resource, query: dict[str, str]) -> Callable[[Obj], bool]:
        by_labels = o.label_selector(query.get("labelSelector"))
        by_fields = o.field_selector(query.get("fieldSelector"), res.plural or "")
        return lambda obj: by_labels(obj) and by_fields(obj)

    def _select(
        self, res: kmock.resource, namespace: str | None, query: dict[str, str]
    ) -> builtins.list[Obj]:
        selects = self._selector(res, query)
        return [
            obj
            for obj in self._live(res)
            if selects(obj) and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]

    def _list_doc(
        self,
        res: kmock.resource,
        namespace: str | None,
        query: dict[str, str],
        items: builtins.list[Obj] | None = None,
    ) -> Obj:
        items = self._select(res, namespace, query) if items is None else items
        meta: Obj = {"resourceVersion": str(self._rv)}
        limit = int(query.get("limit") or 0)
        if limit:
            start = int(query.get("continue") or 0)
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        if self.registry.is_custom(res):  # typed lists of built-ins carry no per-item kind
            items = [_as(obj, res) for obj in items]
        else:
            items = [
                {k: v for k, v in obj.items() if k not in {"kind", "apiVersion"}} for obj in items
            ]
        kind = f"{self.registry.info(res).kind}List"
        return {"kind": kind, "apiVersion": _gv(res), "metadata": meta, "items": items}

    def _commit(self, kind: str, key: Key, obj: Obj, old: Obj | None) -> None:
        """Store a change with a new resourceVersion, record it and tell watchers/controllers."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        uid = obj["metadata"]["uid"]
        if key not in self.objects:
            self.objects[key] = obj
        else:
            self.objects[key].history.append(obj)
        if kind == "DELETED":
            self.objects[key].delete()
            self._uids.pop(uid, None)
        else:
            self._uids[uid] = key
        event = Event(self._rv, kind, key[0], obj, old)
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self._compacted = self._history.popleft().rv
        for watcher in builtins.list(self._watchers):
            if (item := watcher.translate(event)) is not None:
                watcher.queue.put_nowait(item)
        self.jobs.observe(event)
        self.deployments.observe(event)

    def _admit(self, res: kmock.resource, obj: Obj, old: Obj | None) -> Obj:
        """What the API server does to every write before storing: normalize, default,
        prune and validate (422 with every problem found)."""
        info = self.registry.info(res)
        plural = res.plural or ""
        errors: list[str] = []
        if self.registry.is_custom(res):
            crd_schema = self.registry.schema(self.registry.storage(res))
            if crd_schema is not None:
                errors += crd_schema.admit(obj)
        else:
            if res.group == "" and plural == "secrets":
                o.normalize_secret(obj)
            if old is not None and plural == "services":  # the cluster IP is allocated once
                for field in ("clusterIP", "clusterIPs"):
                    if field in old.get("spec", {}) and isinstance(obj.get("spec"), dict):
                        obj["spec"].setdefault(field, old["spec"][field])
            o.apply_defaults(plural, obj)
            if old is not None:
                errors += [
                    f"{field}: Invalid value: field is immutable"
                    for field in IMMUTABLE_SPEC.get(plural, ())
                    if o.lookup(obj, field) != o.lookup(old, field)
                ]
        errors += o.validate("" if self.registry.is_custom(res) else plural, obj)
        if errors:
            raise ApiError.invalid(info.kind or "", obj["metadata"].get("name", ""), errors)
        return obj

    def _create(
        self, res: kmock.resource, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> Obj:
        info = self.registry.info(res)
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body must be an object")
        obj = copy.deepcopy(body)
        if obj.get("apiVersion", _gv(res)) != _gv(res) or obj.get("kind", info.kind) != info.kind:
            raise ApiError.bad_request(
                f"the API version/kind in the data ({obj.get('apiVersion')}/{obj.get('kind')})"
                f" does not match the expected ({_gv(res)}/{info.kind})"
            )
        storage = self.registry.storage(res)
        obj = {"apiVersion": _gv(storage), "kind": info.kind, **obj}  # also their usual order
        obj["apiVersion"], obj["kind"] = _gv(storage), info.kind
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        for field in SERVER_META:
            meta.pop(field, None)
        if info.namespaced:
            if meta.setdefault("namespace", namespace) != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match"
                    " the namespace sent on the request"
                )
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError.invalid(
                    info.kind or "",
                    "",
                    ["metadata.name: Required value: name or generateName is required"],
                )
            meta["name"] = meta["generateName"] + o.random_suffix()
        if "status" in info.subresources:
            obj.pop("status", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=o.now(), generation=1)
        obj = self._admit(res, obj, None)
        if self._find(res, namespace, meta["name"]) is not None:
            raise ApiError.already_exists(res.plural or "", meta["name"], res.group or "")
        if (
            self.strict_namespaces
            and info.namespaced
            and self._find(NAMESPACES, None, namespace or "") is None
        ):
            raise ApiError.not_found("namespaces", namespace)
        if storage == NAMESPACES:
            obj["status"] = {"phase": "Active"}
        if storage == CRDS:
            if not dry_run:
                self.registry.register_crd(obj)
            names = obj["spec"]["names"]
            obj["status"] = {
                "acceptedNames": names,
                "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")],
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "reason": r,
                        "lastTransitionTime": o.now(),
                        "message": "",
                    }
                    for t, r in (
                        ("NamesAccepted", "NoConflicts"),
                        ("Established", "InitialNamesAccepted"),
                    )
                ],
            }
        if dry_run:
            return obj
        self._commit("ADDED", self._key(res, namespace, meta["name"]), obj, None)
        if meta.get("ownerReferences") and self._loop is not None:  # owners gone already?
            self._loop.call_soon(
                self._collect_if_orphaned, self._key(res, namespace, meta["name"]), meta["uid"]
            )
        return obj

    def _update(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Every modification: PUT, the three PATCH types, status writes, controllers."""
        key = self._key(res, namespace, name)
        old = self._read(res, namespace, name)
        candidate = change(copy.deepcopy(old))
        if not isinstance(candidate, dict) or not isinstance(candidate.get("metadata", {}), dict):
            raise ApiError(422, "Invalid", "the result of the change is not an object")
        sent_rv = (candidate.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict(res.plural or "", name, res.group or "")
        info = self.registry.info(res)
        if subresource == "status":  # only the status changes, whatever else was sent
            new = copy.deepcopy(old)
            new.pop("status", None)
            if "status" in candidate:
                new["status"] = candidate["status"]
        else:
            new = candidate
            sent = new.pop("status", None)
            if "status" not in info.subresources and sent is not None:
                new["status"] = sent
            elif "status" in info.subresources and "status" in old:  # kept as it was
                new["status"] = copy.deepcopy(old["status"])
            meta = new["metadata"] = dict(new.get("metadata") or {})
            meta.pop("managedFields", None)
            for field in KEPT_META:
                meta.pop(field, None)
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(
                    old["metadata"].get("finalizers") or []
                )
                if added:
                    raise ApiError.invalid(
                        info.kind or "",
                        name,
                        [
                            f"metadata.finalizers: Forbidden: no new finalizers can be added if the"
                            f" object is being deleted, found new finalizers {sorted(added)}"
                        ],
                    )
        new = self._admit(res, new, old)
        if key[0] == CRDS and subresource is None and not dry_run:
            self.registry.register_crd(new)
        if o.spec_part(new) != o.spec_part(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if new == old or dry_run:  # a write that changes nothing changes nothing (no event)
            return old if new == old else new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit("DELETED", key, new, old)
            self._after_delete(key[0], new)
        else:
            self._commit("MODIFIED", key, new, old)
        return new

    def _delete(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        *,
        orphan: bool = False,
        preconditions: Obj | None = None,
    ) -> tuple[Obj, bool]:
        """Delete, or only mark for deletion while finalizers remain. True if gone now."""
        key = self._key(res, namespace, name)
        old = self._read(res, namespace, name)
        for field in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != old["metadata"][field]:
                raise ApiError.conflict(
                    res.plural or "",
                    name,
                    res.group or "",
                    f"Precondition failed: {field} mismatch",
                )
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"].update(deletionTimestamp=o.now(), deletionGracePeriodSeconds=0)
            self._commit("MODIFIED", key, new, old)
            return new, False
        final = copy.deepcopy(old)
        self._commit("DELETED", key, final, old)
        self._after_delete(key[0], final, orphan=orphan)
        return final, True

    def _after_delete(self, storage: kmock.resource, obj: Obj, orphan: bool = False) -> None:
        if storage == CRDS:  # the custom resources go with their definition
            spec = obj["spec"]
            for key, item in builtins.list(self.objects.items()):
                kind = (key[0].group, key[0].plural)
                if kind == (spec["group"], spec["names"]["plural"]) and not item.deleted:
                    final = copy.deepcopy(item.last.raw)
                    self._commit("DELETED", key, final, item.last.raw)
                    self._after_delete(key[0], final)
            self.registry.unregister_crd(obj)
        if storage == NAMESPACES:  # what lives in a namespace goes with it
            for (res, ns, name), _ in builtins.list(self.objects.items()):
                if ns == obj["metadata"]["name"] and self._find(res, ns, name) is not None:
                    self._delete(res, ns, name)
        if not orphan:
            self._collect(obj["metadata"]["uid"])

    def _collect(self, uid: str) -> None:
        """Garbage collection: delete the dependents of `uid` whose every owner is gone."""
        for key, item in builtins.list(self.objects.items()):
            refs = [] if item.deleted else item.last.raw["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                self._collect_if_orphaned(key, item.last.raw["metadata"]["uid"])

    def _collect_if_orphaned(self, key: Key, uid: str) -> None:
        res, ns, name = key
        obj = self._find(res, ns, name)
        if obj is None or obj["metadata"]["uid"] != uid:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and not any(self._owner_alive(ref, ns) for ref in refs):
            self._delete(res, ns, name)

    def _owner_alive(self, ref: Obj, namespace: str | None) -> bool:
        key = self._uids.get(ref.get("uid", ""))
        return key is not None and key[1] in {None, namespace}  # owners: same namespace or none

    # --- direct access for tests (thread-safe; same logic and events as the HTTP API) ---------

    def resource(self, ref: str | kmock.resource) -> kmock.resource:  # type: ignore[override]
        """`configmaps`, `Job`, `deploy`, `batch/v1/jobs`, `vulcanengines.vulcan-engine.com`."""
        return self._call(self.registry.resolve, ref)

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        """Create like `kubectl create`: the resource comes from apiVersion/kind."""
        obj = _jsonable(obj)

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

        patch = _jsonable(patch)  # never shared with the stored object

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
        timeout: float = 5.0,  # noqa: ASYNC109 (a poller's deadline, by design)
        interval: float = 0.01,
    ) -> T:
        """Poll until the predicate returns something truthy; return it. KeyError, IndexError
        and TypeError count as "not yet" (`emulator.get(...)["status"]["phase"]` just works)."""
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


def _describe(record: RequestRecord) -> None:
    """Fill in the Kubernetes view of a request (verb, resource, ...), if it has one."""
    api = ApiPath.parse(record.path)
    if api is None or api.plural is None:
        return
    with contextlib.suppress(ApiError):  # an impossible verb: answered by `_route()`
        record.verb = _verb(record.method, api, record.query)
    record.group, record.version = api.group, api.version
    record.resource, record.subresource = api.plural, api.subresource
    record.namespace, record.name = api.namespace, api.name


def _jsonable(obj: T) -> T:
    """A deep copy that is sure to be JSON (a test's datetime fails here, not when served)."""
    return json.loads(json.dumps(obj))  # type: ignore[no-any-return]


def _verb(method: str, api: ApiPath, query: dict[str, str]) -> str:
    if method == "GET":
        return "watch" if _truthy(query.get("watch")) else "get" if api.name else "list"
    verbs = {
        ("POST", False): "create",
        ("PUT", True): "update",
        ("PATCH", True): "patch",
        ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }
    if (method, api.name is not None) not in verbs:
        raise _not_allowed()
    return verbs[method, api.name is not None]


def _not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


@functools.lru_cache(maxsize=64)
def _parsed_yaml(text: str) -> tuple[Any, ...]:
    return tuple(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _yaml_docs(text: str) -> builtins.list[Any]:
    """The documents of a YAML stream; parsed once per text (CRDs are loaded in every test)."""
    return copy.deepcopy(builtins.list(_parsed_yaml(text)))


def _parse_body(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    try:
        if content_type and "yaml" in content_type:
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise ApiError.bad_request(f"the request body is not valid: {e}") from e
