"""`kubectl vulcan` in tests: real kubectl finds the plugin in .venv/bin, as it finds any
plugin on PATH, and reaches the emulator through a kubeconfig of its own user.

`LogEmulator` adds what the plugin needs and the emulator lacks: `GET pods/<name>/log`
(answered from `pod_logs`, with `tailLines`; `follow=true` is streamed as the real API server
streams it: one chunked response sending the text as a test appends to it, ending when the
container has ended), and it keeps the plugin user's requests out of `api_usage`, which the
operator fixture checks against the operator's ClusterRole (the person running the plugin is
not the operator).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from tests.emulator import Emulator, RequestRecord
from tests.support import kubectl

VENV_BIN = Path(sys.executable).parent
USER_TOKEN = "kubectl-vulcan-user"


class LogEmulator(Emulator):  # type: ignore[misc]
    """The emulator, plus `GET pods/<name>/log` from `pod_logs[(namespace, name)]`; the
    plugin's requests (its user's token) are left out of `api_usage`, which the operator
    fixture checks against the operator's ClusterRole."""

    pod_logs: dict[tuple[str, str], str] = {}  # replaced per test: `plugin`
    by_user: list[RequestRecord] = []  # replaced per test: `plugin`

    def api_usage(self, since: int = 0) -> set[tuple[str, str, str, str, str]]:
        users = {id(r) for r in self.by_user}
        return {
            (r.verb, r.group or "", r.resource, r.subresource or "", r.namespace or "")
            for r in self.log[since:]
            if r.verb and r.resource and id(r) not in users
        }

    async def _intercept(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        if raw.headers.get("Authorization") == f"Bearer {USER_TOKEN}":
            self.by_user.append(record)
        if record.resource == "pods" and record.subresource == "log" and raw.method == "GET":
            logs = getattr(self, "pod_logs", {})
            namespace, name = record.namespace or "", record.name or ""
            if (namespace, name) not in logs:
                return web.json_response(
                    {"kind": "Status", "code": 404, "reason": "NotFound", "message": "no pod"},
                    status=404,
                )
            if (record.query.get("follow") or "").lower() not in ("true", "1"):
                text = _tail(logs[(namespace, name)], record.query.get("tailLines"))
                return web.Response(text=text, content_type="text/plain")
            return await self._follow(raw, record, namespace, name)
        return None

    async def _follow(
        self, raw: web.BaseRequest, record: RequestRecord, namespace: str, name: str
    ) -> web.StreamResponse:
        """`follow=true`: the log so far, then what is appended to `pod_logs`, in chunks,
        until the container ended (the pod gone, Succeeded or Failed, or its container's
        status `terminated`)."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        record.status = 200
        await response.prepare(raw)
        text = self.pod_logs.get((namespace, name), "")
        sent = len(text)
        try:
            await response.write(_tail(text, record.query.get("tailLines")).encode())
            while True:
                ended = self._container_ended(namespace, name, record.query.get("container"))
                text = self.pod_logs.get((namespace, name), "")
                if len(text) > sent:
                    await response.write(text[sent:].encode())
                    sent = len(text)
                if ended:
                    break
                await asyncio.sleep(0.05)
            await response.write_eof()
        except ConnectionError:  # the client went away (Ctrl-C)
            pass
        return response

    def _container_ended(self, namespace: str, name: str, container: str | None) -> bool:
        pod = self._find(self.registry.resolve("pods"), namespace, name)
        if pod is None:
            return True
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return True
        states = [
            cs.get("state") or {}
            for cs in status.get("containerStatuses") or []
            if container is None or cs.get("name") == container
        ]
        return bool(states) and all("terminated" in state for state in states)


def _tail(text: str, lines: str | None) -> str:
    """The last `lines` lines of `text` (all without `tailLines`)."""
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)
    return "".join(kept[max(0, len(kept) - int(lines)) :])


def kubeconfig(file: Path, server: str) -> Path:
    """A kubeconfig for the plugin: the emulator at `server`, as the user the logs know."""
    return kubectl.kubeconfig(file, server, user="me", token=USER_TOKEN)


class Plugin:
    """Runs `kubectl vulcan ARGS` in a worker thread (the operator keeps running)."""

    def __init__(self, config: Path) -> None:
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(config),
        }
        self.env.pop("KUBERNETES_SERVICE_HOST", None)

    async def __call__(
        self, *args: str, stdin: str = "", kubectl: str = "kubectl"
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [kubectl, "vulcan", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """`kubectl vulcan ARGS` started and left running (stdout and stderr piped), for a
        command that streams (`logs --follow`)."""
        return await asyncio.create_subprocess_exec(
            "kubectl",
            "vulcan",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )

    async def complete(self, *words: str) -> list[str]:
        done = await asyncio.to_thread(
            subprocess.run,
            ["kubectl", "__complete", "vulcan", *words],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()
