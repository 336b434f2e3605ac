"""The HTTP client: the only code that talks to the Kubernetes API for our own calls.

It uses the official `kubernetes` client (its configuration loading, auth and TLS) through its
generic `ApiClient.call_api`, so one code path serves every kind. The client is synchronous:
every call runs in a worker thread so Kopf's event loop is never blocked.

Transient failures are retried here, as Kopf's own client retries its calls: 429 (after its
Retry-After when longer), 5xx, no answer at all, and a 409 Conflict on a write without a
resourceVersion precondition (a busy server gives up on its own retries of a patch). Waits
`RETRY_BACKOFFS`, then the error goes to the handler (Kopf waits 60 s before its next try).

Applying desired objects (compare, create, patch, ownership) is `k8s.apply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

from vulcan_operator import kinds

# apiVersion, kind → plural. Everything the operator reads or writes.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Pod"): "pods",
    ("v1", "Namespace"): "namespaces",
    ("apps/v1", "Deployment"): "deployments",
    ("batch/v1", "Job"): "jobs",
    ("batch/v1", "CronJob"): "cronjobs",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules",
    ("kopf.dev/v1", "ClusterKopfPeering"): "clusterkopfpeerings",
    ("kopf.dev/v1", "KopfPeering"): "kopfpeerings",
    ("kueue.x-k8s.io/v1beta1", "Workload"): "workloads",
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): (
        "validatingwebhookconfigurations"
    ),
    **{(k.api_version, k.kind): k.plural for k in kinds.ALL},
}

MERGE = "application/merge-patch+json"
# (connect, read) seconds: a hung API call fails (and is retried) instead of hanging a handler.
REQUEST_TIMEOUT = (10.0, 60.0)
#: Seconds between the attempts of a call that failed transiently (see the module's doc).
RETRY_BACKOFFS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: A server's Retry-After is obeyed up to this many seconds.
RETRY_AFTER_LIMIT = 30.0
TRANSIENT = frozenset({0, 429, 500, 502, 503, 504})


class ApiError(Exception):
    """A failed API call; `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # seconds, from a Retry-After header


def _retryable(exc: ApiError, method: str, body: Any) -> bool:
    if exc.status in TRANSIENT:
        return True
    if exc.status == 409 and exc.reason == "Conflict" and method != "GET":
        meta = body.get("metadata") if isinstance(body, dict) else None
        return not (meta or {}).get("resourceVersion")  # a precondition's 409 is an answer
    return False


@dataclass(frozen=True)
class Ref:
    """Where an object lives: apiVersion, kind, namespace, name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str | None = None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta.get("name"))

    def path(self, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespace:
            base += f"/namespaces/{self.namespace}"
        base += f"/{PLURALS[(self.api_version, self.kind)]}"
        if self.name:
            base += f"/{self.name}"
        if subresource:
            base += f"/{subresource}"
        return base


#: How long an answer of API discovery (`Api.has_kind`) is kept, seconds.
DISCOVERY_SECONDS = 60.0


class Api:
    """Thin async wrapper over the official client's generic call."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._client = api_client or client.ApiClient()
        #: API discovery: group/version -> (when read, the kinds it serves; None: not served)
        self._discovery: dict[str, tuple[float, frozenset[str] | None]] = {}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        def call() -> Any:
            request = self._client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            try:
                response = self._client.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
            except client.ApiException as exc:  # not reached the server, or no answer
                raise _api_error(exc.status, exc.reason, exc.body, exc.headers) from None
            except urllib3.exceptions.HTTPError as exc:  # connection refused, reset, ...
                raise ApiError(0, "Unreachable", str(exc)[:500]) from None
            data = response.read()  # type: ignore[no-untyped-call]
            if not 200 <= response.status < 300:
                headers = response.headers
                raise _api_error(response.status, response.reason, data, headers)
            return json.loads(data) if data else None

        for backoff in (*RETRY_BACKOFFS, None):
            try:
                return await asyncio.to_thread(call)
            except ApiError as exc:
                if backoff is None or not _retryable(exc, method, body):
                    raise
                wait = max(backoff, min(exc.retry_after or 0.0, RETRY_AFTER_LIMIT))
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def get(self, ref: Ref) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = await self._call("GET", ref.path())
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def list(self, ref: Ref, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        query = (
            [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
        )
        result = await self._call("GET", ref.path(), query=query)
        items: list[dict[str, Any]] = result.get("items", [])
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", ref.api_version)
            item.setdefault("kind", ref.kind)
        return items

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        ref = Ref.of(obj)
        created: dict[str, Any] = await self._call(
            "POST", Ref(ref.api_version, ref.kind, ref.namespace).path(), body=obj
        )
        return created

    async def patch(
        self, ref: Ref, body: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        patched: dict[str, Any] = await self._call(
            "PATCH", ref.path(subresource), body=body, content_type=MERGE
        )
        return patched

    async def json_patch(
        self, ref: Ref, ops: Sequence[Mapping[str, Any]], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """A JSON patch (RFC 6902): all of `ops` or none (a failed `test` or a missing `from`
        is a 422 from the server)."""
        patched: dict[str, Any] = await self._call(
            "PATCH",
            ref.path(subresource),
            body=[dict(op) for op in ops],
            content_type="application/json-patch+json",
        )
        return patched

    async def delete(self, ref: Ref) -> bool:
        """Delete in the background (dependents too); False when it was already gone."""
        try:
            await self._call("DELETE", ref.path(), body={"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def has_kind(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves this kind (API discovery), e.g. ServiceMonitor.

        Each group/version is read at most once per DISCOVERY_SECONDS (a CRD installed or
        removed is seen within that time), not on every reconcile of every engine."""
        now = time.monotonic()
        cached = self._discovery.get(api_version)
        if cached is not None and now - cached[0] < DISCOVERY_SECONDS:
            served = cached[1]
        else:
            try:
                result = await self._call("GET", f"/apis/{api_version}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
                result = None
            served = (
                None
                if result is None
                else frozenset(str(r.get("kind")) for r in result.get("resources", []))
            )
            self._discovery[api_version] = (now, served)
        return served is not None and kind in served


def _api_error(status: int | None, reason: str | None, body: Any, headers: Any = None) -> ApiError:
    reason, message = str(reason or ""), ""
    try:
        details = json.loads(body or "{}")
        reason = details.get("reason") or reason
        message = details.get("message") or ""
    except (TypeError, ValueError):
        message = str(body or "")[:500]
    retry_after = None
    with contextlib.suppress(TypeError, ValueError):  # absent, or an HTTP date: backoff only
        retry_after = float((headers or {}).get("Retry-After") or "")
    return ApiError(int(status or 0), reason, message, retry_after)
