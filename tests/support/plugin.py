"""`kubectl vulcan` in tests: real kubectl finds the plugin in .venv/bin, as it finds any
plugin on PATH, and reaches the emulator through a kubeconfig of its own user.

`LogEmulator` adds what the plugin needs and the emulator lacks: `GET pods/<name>/log`
(answered from `pod_logs`), and it keeps the plugin user's requests out of `api_usage`, which
the operator fixture checks against the operator's ClusterRole (the person running the plugin
is not the operator).
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
            key = (record.namespace or "", record.name or "")
            if key not in logs:
                return web.json_response(
                    {"kind": "Status", "code": 404, "reason": "NotFound", "message": "no pod"},
                    status=404,
                )
            return web.Response(text=logs[key], content_type="text/plain")
        return None


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
