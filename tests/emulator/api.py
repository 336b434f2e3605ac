"""HTTP-level pieces: URL paths, errors as Kubernetes `Status` objects, JSON responses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

import kmock
from aiohttp import web

JSON = "application/json"  # exactly this: some clients (pykube-ng) reject a charset suffix


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type=JSON)


class ApiError(Exception):
    """An API failure, rendered as a `Status` object with the matching HTTP code."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return json_response(self.status(), self.code)

    @classmethod
    def not_found(cls, plural: str, name: str | None = None, group: str = "") -> ApiError:
        what = f"{plural}{'.' + group if group else ''}"
        if name is None:
            return cls(404, "NotFound", "the server could not find the requested resource")
        return cls(404, "NotFound", f'{what} "{name}" not found', _details(plural, name, group))

    @classmethod
    def already_exists(cls, plural: str, name: str, group: str = "") -> ApiError:
        what = f"{plural}{'.' + group if group else ''}"
        return cls(
            409, "AlreadyExists", f'{what} "{name}" already exists', _details(plural, name, group)
        )

    @classmethod
    def conflict(cls, plural: str, name: str, group: str = "", why: str = "") -> ApiError:
        what = f"{plural}{'.' + group if group else ''}"
        why = why or (
            "the object has been modified; please apply your changes to the latest version"
            " and try again"
        )
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {what} "{name}": {why}',
            _details(plural, name, group),
        )

    @classmethod
    def invalid(cls, kind: str, name: str, causes: list[str]) -> ApiError:
        message = f'{kind} "{name}" is invalid: {"; ".join(causes)}'
        return cls(
            422,
            "Invalid",
            message,
            {"name": name, "kind": kind, "causes": [{"message": c} for c in causes]},
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


def _details(plural: str, name: str, group: str) -> dict[str, Any]:
    return {"name": name, "group": group, "kind": plural}


@dataclass(frozen=True)
class ApiPath:
    """A resource URL: `/api/v1/...` or `/apis/<group>/<version>/...`.

    `plural` is None for the group-version discovery document itself.
    """

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None

    @classmethod
    def parse(cls, path: str) -> ApiPath | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        # `namespaces/<ns>/<plural>/...`, but `namespaces/<name>[/status|/finalize]` is a
        # Namespace object itself (kmock's own parser trips over exactly this).
        namespace_itself = len(rest) <= 2 or (len(rest) == 3 and rest[2] in {"status", "finalize"})
        if rest[:1] == ["namespaces"] and not namespace_itself:
            namespace, rest = rest[1], rest[2:]
        return cls(
            group=group,
            version=version,
            plural=rest[0] if rest else None,
            namespace=namespace,
            name=rest[1] if len(rest) > 1 else None,
            subresource="/".join(rest[2:]) or None,
        )

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# --- shared by the server modules ------------------------------------------------------
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
    "jobs": ("spec.template", "spec.selector", "spec.completionMode", "spec.backoffLimitPerIndex"),
    "deployments": ("spec.selector",),
}
CRDS = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = kmock.resource("", "v1", "namespaces")
EVENT_RESOURCES = {("", "events"), ("events.k8s.io", "events")}
T = TypeVar("T")
