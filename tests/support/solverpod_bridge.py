"""Run a Job's pod for real, on this machine, for the emulator's Job controller.

    bridge = SolverPodBridge(emulator, tmp_path)
    bridge.install()            # every solver Job's pod runs its real command (others: as before)

`bridge.run(job, pod)` does what a kubelet would, as far as the solver pod needs it:

- volumes: an `emptyDir` becomes a fresh directory, a `configMap` (with its `items`) becomes
  a directory of files read from the emulator; every mount path in the container's args and
  env values is rewritten to its directory;
- env: `value`s as they are, `secretKeyRef`s resolved from the emulator's Secrets (an
  optional one whose Secret or key is missing is left out, as the kubelet does), `fieldRef`s
  of the pod's metadata (the JOB_COMPLETION_INDEX of an Indexed Job's pod);
- API access: a kubeconfig pointing at the emulator (`$KUBECONFIG`), and no
  `KUBERNETES_SERVICE_HOST`, so the pod's code takes its kubeconfig path instead of the
  in-cluster one;
- the command: `python` is this interpreter; `--termination-log` is added, pointing at a file
  whose content becomes the container's termination message (with
  `terminationMessagePolicy: FallbackToLogsOnError`, the log tail when the file is empty and
  the exit code is not 0);
- the outcome: exit 0 succeeds, anything else fails with that exit code, both with the
  termination message. When the pod is deleted while the process runs (its Job or problem
  was deleted), the process gets SIGTERM, as the kubelet would send; a cancelled run
  terminates it too.

It runs on the emulator's loop (the Job controller calls it there); `runs`, `running` and
`max_running` are for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator import Emulator, JobOutcome

LOG_TAIL_BYTES = 2048
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
POD_CHECK_SECONDS = 0.1


@dataclass(frozen=True)
class PodRun:
    """One finished (or cancelled) run of a pod's command."""

    job: str
    argv: list[str]
    code: int | None  # None: cancelled
    stdout: str
    stderr: str
    termination: str
    started: float
    ended: float
    #: Its pod was deleted while it ran, and the process got SIGTERM (as from a kubelet).
    killed: bool = False
    #: The pod's completion index, in an Indexed Job (None: a plain Job).
    index: int | None = None


class SolverPodBridge:
    def __init__(self, emulator: Emulator, base_dir: Path, *, timeout: float = 60.0) -> None:
        self.emulator = emulator
        self.base_dir = base_dir
        self.timeout = timeout
        self.runs: list[PodRun] = []
        self.running = 0
        self.max_running = 0
        self.started: list[str] = []
        self._ids = itertools.count()
        base_dir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = base_dir / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": emulator.url}}],
                    "users": [{"name": "solver-pod", "user": {"token": "emulated"}}],
                    "contexts": [
                        {
                            "name": "emulator",
                            "context": {"cluster": "emulator", "user": "solver-pod"},
                        }
                    ],
                    "current-context": "emulator",
                }
            )
        )

    def outcome(self) -> JobOutcome:
        return JobOutcome.run(self.run)

    def install(self) -> None:
        """Run the pods of solver Jobs (component label `solver`); other Jobs (migrations,
        backups) keep the controller's other outcomes. `by_prefix` entries still win."""
        jobs = self.emulator.jobs

        def choose(job: dict[str, Any]) -> JobOutcome | None:
            name = job["metadata"]["name"]
            if any(name.startswith(prefix) for prefix in jobs.by_prefix):
                return None
            labels = job["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") == "solver":
                return self.outcome()
            return None

        jobs.outcome_for = choose

    # --- what a kubelet would do --------------------------------------------------------------

    def _secret_value(self, namespace: str, ref: dict[str, Any]) -> str | None:
        secret = self.emulator.get("secrets", namespace, ref["name"])
        data = (secret or {}).get("data") or {}
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise RuntimeError(f"Secret {ref['name']} / key {ref['key']} missing")
        return base64.b64decode(data[ref["key"]]).decode()

    def _volumes(self, namespace: str, pod_spec: dict[str, Any], root: Path) -> dict[str, Path]:
        dirs: dict[str, Path] = {}
        for volume in pod_spec.get("volumes") or []:
            folder = root / "volumes" / volume["name"]
            folder.mkdir(parents=True)
            source = volume.get("configMap")
            if source is not None:
                cm = self.emulator.get("configmaps", namespace, source["name"])
                if cm is None:
                    raise RuntimeError(f"ConfigMap {source['name']} of the pod is missing")
                data = cm.get("data") or {}
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (folder / item["path"]).write_text(data[item["key"]])
            dirs[volume["name"]] = folder
        return dirs

    async def run(self, job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        namespace = pod["metadata"]["namespace"]
        spec = pod["spec"]
        container = spec["containers"][0]
        root = self.base_dir / f"pod-{next(self._ids)}"
        volumes = self._volumes(namespace, spec, root)
        mounts = sorted(
            ((m["mountPath"], volumes[m["name"]]) for m in container.get("volumeMounts") or []),
            key=lambda pair: -len(pair[0]),
        )

        def local(value: str) -> str:
            for mount, folder in mounts:
                if value == mount or value.startswith(mount + "/"):
                    return str(folder) + value[len(mount) :]
            return value

        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = local(str(var["value"]))
            elif "secretKeyRef" in (var.get("valueFrom") or {}):
                value = self._secret_value(namespace, var["valueFrom"]["secretKeyRef"])
                if value is not None:
                    env[var["name"]] = value
            elif "fieldRef" in (var.get("valueFrom") or {}):
                env[var["name"]] = pod_field(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
        termination = root / "termination-log"
        termination.touch()
        command = [local(str(a)) for a in [*container["command"], *container.get("args", [])]]
        if command[0] == "python":
            command[0] = sys.executable
        command += ["--termination-log", str(termination)]

        job_name = job["metadata"]["name"]
        index = (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)
        self.started.append(job_name)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=str(root),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        code: int | None = None
        out = err = b""
        killed = False
        pod_name = pod["metadata"]["name"]
        talking = asyncio.ensure_future(proc.communicate())
        try:
            deadline = time.monotonic() + self.timeout
            while not talking.done() and time.monotonic() < deadline:
                await asyncio.wait({talking}, timeout=POD_CHECK_SECONDS)
                if not killed and self.emulator.get("pods", namespace, pod_name) is None:
                    killed = True  # the pod was deleted: the kubelet stops the container
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
            if talking.done():
                out, err = talking.result()
                code = proc.returncode
        finally:
            if not talking.done():
                talking.cancel()
            self.running -= 1
            if code is None:  # cancelled (the Job was deleted) or timed out: stop the pod
                killed = True
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except (TimeoutError, asyncio.CancelledError):
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            message = termination.read_text()
            if not message.strip() and code not in (0, None):
                message = (out + err)[-LOG_TAIL_BYTES:].decode(errors="replace")
            self.runs.append(
                PodRun(
                    job_name,
                    command,
                    code,
                    out.decode(errors="replace"),
                    err.decode(errors="replace"),
                    message,
                    started,
                    time.monotonic(),
                    killed,
                    None if index is None else int(index),
                )
            )
        if code == 0:
            return JobOutcome.succeed(message=message)
        return JobOutcome.fail(exit_code=code or 1, message=message)

    def run_of(self, job: str) -> PodRun:
        return next(r for r in self.runs if r.job == job)


def pod_field(pod: dict[str, Any], path: str) -> str:
    """A downward-API `fieldRef` of the pod: metadata.name, .namespace, .uid, or one of its
    annotations or labels (`metadata.annotations['key']`); '' when absent, as the kubelet."""
    meta = pod.get("metadata") or {}
    match = re.fullmatch(r"metadata\.(annotations|labels)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".")[1], ""))
    raise RuntimeError(f"fieldRef {path!r} is not emulated")


@pytest.fixture
def bridge(emulator: Emulator, tmp_path: Path) -> SolverPodBridge:
    """Every Job's pod runs its real command here (a plugin fixture: tests/conftest.py)."""
    pods = SolverPodBridge(emulator, tmp_path / "pods")
    pods.install()
    return pods
