"""The emulator's HTTP side: each request logged and described (verb, resource, ...), routed to
the store, and answered as the API server answers (lists, watches, patches of every kind)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kmock
import yaml
from aiohttp import web

from tests.emulator import objects as o
from tests.emulator.api import (
    JSON,
    VERSION,
    WRITE_METHODS,
    ApiError,
    ApiPath,
    Obj,
    json_response,
)
from tests.emulator.watch import Watcher, as_version, group_version

logger = logging.getLogger(__name__)


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
    host: str | None = None  # the Host header: which server URL the client was given

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1"}


class HttpMixin:
    """The HTTP methods of `Emulator` (server.py)."""

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
            host=raw.host,
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
            return as_version(self._read(res, ns, name or ""), res), 200
        if verb == "list":
            return self._list_doc(res, ns, query), 200
        if verb == "create":
            return as_version(self._create(res, ns, body, dry_run=dry_run), res), 201
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError.bad_request("the body must be an object")
            if (body.get("metadata") or {}).get("name") != name:
                raise ApiError.bad_request("the name of the object does not match the URL")
            return as_version(
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
            return as_version(obj, res), 200
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
                return as_version(self._create(res, ns, body, dry_run=dry_run), res), 201
        return as_version(
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
                {"type": "ADDED", "object": as_version(obj, res)}
                for obj in self._live(res)
                if watcher.wants(obj)
            ]
            if initial:
                backlog.append(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": self.registry.info(res).kind,
                            "apiVersion": group_version(res),
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
                while (entry := await watcher.queue.get()) is not None:
                    at, item = entry
                    lag = self.watch_lag.get(watcher.storage.plural or "", 0.0)
                    if (late := at + lag - time.monotonic()) > 0:
                        await asyncio.sleep(late)
                    await response.write(json.dumps(item).encode() + b"\n")
            await response.write_eof()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._watchers.discard(watcher)
        return response


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


def _parse_body(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    try:
        if content_type and "yaml" in content_type:
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise ApiError.bad_request(f"the request body is not valid: {e}") from e
