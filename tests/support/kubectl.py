"""Real kubectl against the emulator: a kubeconfig for it, the OpenAPI v3 documents kubectl
asks for, and the README's shell blocks as commands.

kubectl validates what it applies (`--validate=strict`, its default): it reads the server's
OpenAPI v3 documents to learn whether the server validates fields itself (a `fieldValidation`
query parameter on each kind's PATCH), and otherwise downloads the OpenAPI v2 schema to
validate on its side. The emulator serves neither, so kubectl refuses every `apply`.
`OpenApiEmulator` serves the v3 root and one document per group-version, naming that parameter
for every kind the emulator serves; kubectl then sends `fieldValidation=Strict` and leaves the
validation to the server (the emulator's structural schemas), as with a real API server.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.emulator import Emulator
from tests.emulator.http import RequestRecord

KUBECTL = shutil.which("kubectl")
FIELD_VALIDATION = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}


def kubeconfig(path: Path, server: str, user: str = "admin", token: str = "emulated") -> Path:
    """A kubeconfig file whose current context is the emulator at `server`, as `user`."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": server}}],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": user}}],
                "current-context": "emu",
            }
        )
    )
    return path


class OpenApiEmulator(Emulator):
    """The emulator, plus `GET /openapi/v3` and `/openapi/v3/<api|apis/group>/<version>`.

    kubectl's requests are the cluster admin's, not the operator's: `api_usage` (what the RBAC
    check of the operator reads) leaves them out (kubectl names itself in its User-Agent).
    """

    def api_usage(self, since: int = 0) -> set[tuple[str, str, str, str, str]]:
        admin: set[int] = getattr(self, "kubectl_requests", set())
        return {
            (r.verb, r.group or "", r.resource, r.subresource or "", r.namespace or "")
            for r in self.log[since:]
            if r.verb and r.resource and r.index not in admin
        }

    def _group_versions(self) -> list[tuple[str, str]]:
        registry = self.registry
        return [("", "v1")] + [(g, v) for g in registry.groups() for v in registry.versions(g)]

    def _document(self, group: str, version: str) -> dict[str, Any]:
        root = f"/{_key(group, version)}"
        paths = {}
        for entry in self.registry.resource_list(group, version)["resources"]:
            if "/" in entry["name"]:  # a subresource
                continue
            scope = "/namespaces/{namespace}" if entry["namespaced"] else ""
            gvk = {"group": group, "version": version, "kind": entry["kind"]}
            paths[f"{root}{scope}/{entry['name']}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [FIELD_VALIDATION],
                    "responses": {},
                }
            }
        return {"openapi": "3.0.0", "info": {"title": "emulator", "version": "v1"}, "paths": paths}

    async def _intercept(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        if raw.headers.get("User-Agent", "").startswith("kubectl/"):
            if not hasattr(self, "kubectl_requests"):
                self.kubectl_requests: set[int] = set()
            self.kubectl_requests.add(record.index)
        path = raw.path.rstrip("/")
        if raw.method != "GET" or not path.startswith("/openapi/v3"):
            return await super()._intercept(raw, record)
        versions = self._group_versions()
        if path == "/openapi/v3":
            index = {
                _key(g, v): {"serverRelativeURL": f"/openapi/v3/{_key(g, v)}?hash=0"}
                for g, v in versions
            }
            return web.json_response({"paths": index})
        for group, version in versions:
            if path == f"/openapi/v3/{_key(group, version)}":
                return web.json_response(self._document(group, version))
        return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)


def _key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def shell_block(markdown: str, heading: str) -> list[list[str]]:
    """The commands of the first ```sh block under `heading` (a Markdown heading line), each
    as its argv: backslash continuations joined, comments dropped, quotes as a shell reads
    them."""
    section = markdown.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no ```sh block under {heading}"
    text = match[1].replace("\\\n", " ")
    return [argv for line in text.splitlines() if (argv := shlex.split(line, comments=True))]
