"""`kubectl vulcan logs ENGINE|PROBLEM -f`: real kubectl finds the plugin and the plugin follows
the pod logs the emulator streams (`LogEmulator`: `follow=true` is one chunked response that
sends what is appended to the log and ends when the container ends, as the real API server's).
Lines show while the pods still run; the command ends when every container has."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.backups import ENGINES, engine
from tests.support.plugin import LogEmulator, Plugin, kubeconfig

pytestmark = [
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
    pytest.mark.emulator(cls=LogEmulator),
]
BACKEND = {
    "app.kubernetes.io/name": "vulcan-engine",
    "vulcan-engine.com/engine": "prod",
    "app.kubernetes.io/component": "backend",
}
WAIT = 60  # seconds; reached only when a test fails


@pytest.fixture
def plugin(emulator: LogEmulator, tmp_path: Path) -> Plugin:
    emulator.pod_logs, emulator.by_user = {}, []
    emulator.create(engine())
    assert emulator.get(ENGINES, "default", "prod") is not None
    return Plugin(kubeconfig(tmp_path / "config", emulator.url))


def backend_pod(emulator: LogEmulator, name: str, log: str) -> None:
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": BACKEND},
            "spec": {"containers": [{"name": "backend", "image": "vulcan:2.0.0"}]},
        }
    )
    running: dict[str, Any] = {"running": {"startedAt": "2026-12-07T10:00:00Z"}}
    emulator.patch(
        "pods",
        "default",
        name,
        {"status": {"phase": "Running", "containerStatuses": [status(running)]}},
        subresource="status",
    )
    emulator.pod_logs[("default", name)] = log


def status(state: dict[str, Any]) -> dict[str, Any]:
    return {"name": "backend", "ready": "running" in state, "restartCount": 0, "state": state}


def end(emulator: LogEmulator, name: str) -> None:
    """The pod's container ends (exit 0)."""
    terminated = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    emulator.patch(
        "pods",
        "default",
        name,
        {"status": {"phase": "Succeeded", "containerStatuses": [status(terminated)]}},
        subresource="status",
    )


def append(emulator: LogEmulator, name: str, text: str) -> None:
    key = ("default", name)
    emulator.pod_logs[key] = emulator.pod_logs[key] + text


async def line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_follow_streams_the_lines_as_they_come_until_the_container_ends(
    emulator: LogEmulator, plugin: Plugin
) -> None:
    backend_pod(emulator, "prod-abc12", "INFO booting\nINFO started\n")
    process = await plugin.start("logs", "prod", "--follow", "--tail", "1")
    try:
        assert await line(process) == "INFO started\n"  # --tail 1: the last line so far
        await asyncio.sleep(0.5)
        assert process.returncode is None  # still following the running container
        append(emulator, "prod-abc12", "INFO serving\n")
        assert await line(process) == "INFO serving\n"  # shown while the pod still runs
        append(emulator, "prod-abc12", "INFO stopping\n")
        end(emulator, "prod-abc12")
        code, out, err = await finished(process)
        assert (code, out) == (0, "INFO stopping\n"), err
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_follow_of_several_pods_prefixes_each_line_and_ends_with_the_last(
    emulator: LogEmulator, plugin: Plugin
) -> None:
    backend_pod(emulator, "prod-a", "a1\n")
    backend_pod(emulator, "prod-b", "b1\n")
    process = await plugin.start("logs", "prod", "-f")
    try:
        assert sorted([await line(process), await line(process)]) == [
            "[prod-a] a1\n",
            "[prod-b] b1\n",
        ]
        end(emulator, "prod-a")
        append(emulator, "prod-b", "b2\n")
        assert await line(process) == "[prod-b] b2\n"
        await asyncio.sleep(0.5)
        assert process.returncode is None  # prod-b still runs
        end(emulator, "prod-b")
        code, out, err = await finished(process)
        assert (code, out) == (0, ""), err
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    # More pods than --max-log-requests: refused before any stream opens, as kubectl does.
    done = await plugin("logs", "prod", "-f", "--max-log-requests", "1")
    assert done.returncode == 2 and "--max-log-requests" in done.stderr, done.stderr
    # A finished container's log comes whole and the command ends at once.
    done = await plugin("logs", "prod", "-f")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["[prod-a] a1", "[prod-b] b1", "[prod-b] b2"]
