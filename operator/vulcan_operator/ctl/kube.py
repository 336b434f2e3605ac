"""The plugin's access to the cluster: kubectl's kubeconfig, context and namespace conventions,
through the official client's generic call (as `k8s.client`, but synchronous: a command line
has no event loop to keep free).

`--kubeconfig`, else `KUBECONFIG` (a list of files, merged as kubectl merges them), else
`~/.kube/config`; `--context`, else the current context; `-n`, else the context's namespace,
else `default`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes import client, config

from vulcan_operator import API_VERSION, kinds

CORE_PLURALS = {
    "Pod": "pods",
    "Event": "events",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "PersistentVolumeClaim": "persistentvolumeclaims",
}
TIMEOUT = (10.0, 60.0)


class KubeError(Exception):
    """A failed API call: `status` is the HTTP status (0: the server was not reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    sub: str | None = None,
) -> str:
    """The REST path of a collection or an object (`sub`: a subresource such as `log`)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


def ours(kind: kinds.Kind, namespace: str, name: str | None = None) -> str:
    """The path of one of our kinds."""
    return path(API_VERSION, kind.plural, namespace, name)


class Kube:
    """A cluster as kubectl would reach it; `namespace` is the one commands act in."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
    ) -> None:
        files = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=files,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=files
            )
        except (config.ConfigException, OSError) as exc:
            raise KubeError(0, f"cannot load the kubeconfig ({files}): {exc}") from None
        chosen = (
            next((c for c in contexts if c["name"] == context), current) if context else current
        )
        self.namespace = namespace or (chosen.get("context") or {}).get("namespace") or "default"
        self._client = client.ApiClient(configuration)

    def request(
        self,
        method: str,
        resource_path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        text: bool = False,
    ) -> Any:
        """One API call: the decoded JSON answer (or the text, with `text`)."""
        request = self._client.param_serialize(
            method=method,
            resource_path=resource_path,
            query_params=query or [],
            header_params={
                "Accept": "*/*" if text else "application/json",
                "Content-Type": content_type,
            },
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*request, _request_timeout=TIMEOUT)
        except client.ApiException as exc:
            raise _error(exc.status, exc.reason, exc.body) from None
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(0, f"cannot reach the API server: {type(exc).__name__}") from None
        data = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise _error(response.status, response.reason, data)
        if text:
            return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        return json.loads(data) if data else None

    def get(self, resource_path: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            obj: dict[str, Any] = self.request("GET", resource_path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def list(
        self, resource_path: str, labels: dict[str, str] | None = None, *, missing_ok: bool = True
    ) -> list[dict[str, Any]]:
        """The items (an empty list for a kind the cluster does not serve, with `missing_ok`)."""
        query = (
            [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
        )
        try:
            result = self.request("GET", resource_path, query=query)
        except KubeError as exc:
            if exc.status == 404 and missing_ok:
                return []
            raise
        items: list[dict[str, Any]] = (result or {}).get("items") or []
        return sorted(items, key=lambda o: str((o.get("metadata") or {}).get("name")))

    def create(self, resource_path: str, obj: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.request("POST", resource_path, body=obj)
        return created

    def merge(self, resource_path: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = self.request(
            "PATCH", resource_path, body=patch, content_type="application/merge-patch+json"
        )
        return patched

    def log(
        self,
        namespace: str,
        pod: str,
        *,
        tail: int | None = None,
        container: str | None = None,
        previous: bool = False,
    ) -> str:
        query = _log_query(tail, container, previous)
        text: str = self.request(
            "GET", path("v1", "pods", namespace, pod, "log"), query=query, text=True
        )
        return text

    def follow_log(
        self,
        namespace: str,
        pod: str,
        *,
        tail: int | None = None,
        container: str | None = None,
        previous: bool = False,
    ) -> Iterator[str]:
        """The lines of a pod's log as the server streams them (`follow=true`, as
        `kubectl logs -f`): they come as they are written, and end when the container does.
        No read timeout: a quiet container keeps the stream open."""
        query = [*_log_query(tail, container, previous), ("follow", "true")]
        request = self._client.param_serialize(
            method="GET",
            resource_path=path("v1", "pods", namespace, pod, "log"),
            query_params=query,
            header_params={"Accept": "*/*"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*request, _request_timeout=(TIMEOUT[0], None))
        except client.ApiException as exc:
            raise _error(exc.status, exc.reason, exc.body) from None
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(0, f"cannot reach the API server: {type(exc).__name__}") from None
        if not 200 <= response.status < 300:
            raise _error(response.status, response.reason, response.read())  # type: ignore[no-untyped-call]
        raw = response.response
        pending = b""
        try:
            for chunk in raw.stream(64 * 1024, decode_content=True):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(0, f"the log stream broke off: {type(exc).__name__}") from None
        finally:
            raw.release_conn()
        if pending:
            yield pending.decode("utf-8", "replace")


def _log_query(tail: int | None, container: str | None, previous: bool) -> list[tuple[str, str]]:
    query = [("tailLines", str(tail))] if tail is not None else []
    if container:
        query.append(("container", container))
    if previous:
        query.append(("previous", "true"))
    return query


def _error(status: int | None, reason: str | None, body: Any) -> KubeError:
    message = ""
    try:
        details = json.loads(body or "{}")
        message = str(details.get("message") or "")
    except (TypeError, ValueError):
        message = ""
    return KubeError(int(status or 0), f"{status} {reason}: {message}".rstrip(": "))
