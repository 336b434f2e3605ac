"""The README's install section, followed word for word, ends with a Ready engine (issue 15,
defect 7).

Every command of the section's shell block runs as written with real kubectl (1.32) against
the API emulator, which refuses objects in a namespace that does not exist (as a real API
server does). The operator runs as its Deployment in `manifests/` runs it: the console script
with the Deployment's own arguments (plus `-A`, Kopf's flag for all namespaces), in its own
process, from the moment `kubectl apply -k manifests/` created that Deployment (its arguments
read from the Deployment kubectl created). The emulator's
controllers make Deployments ready and Jobs (the migration) succeed. Only the resync period is
shortened, so the test does not wait a minute for a timer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator import Emulator
from tests.support.kubectl import KUBECTL, OpenApiEmulator, kubeconfig, shell_block

REPO = Path(__file__).resolve().parents[2]
INSTALL = "## Install"
COMMAND_SECONDS = 120

pytestmark = [
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed"),
    pytest.mark.emulator(cls=OpenApiEmulator, crds=False, strict_namespaces=True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deployment_args(emulator: Emulator) -> list[str]:
    """The operator container's arguments, as `kubectl apply -k manifests/` created them."""
    deployment = emulator.get("deployments", "vulcan-system", "vulcan-operator")
    assert deployment is not None, "kubectl apply -k manifests/ made no operator Deployment"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


@pytest.fixture
def operator_process(emulator: Emulator, tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Where the test puts the operator's process; stopped (SIGTERM, then waited for) at the
    end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_operator(emulator: Emulator, config: Path, log: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "VULCAN_METRICS_PORT": str(free_port()),
        "VULCAN_RESYNC_SECONDS": "1",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    script = Path(sys.executable).parent / "vulcan-operator"
    liveness = f"--liveness=http://127.0.0.1:{free_port()}/healthz"
    return subprocess.Popen(
        [str(script), *deployment_args(emulator), "-A", liveness],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def engine_status(emulator: Emulator) -> dict[str, Any]:
    return (emulator.get("vulcanengines", "vulcan", "prod") or {}).get("status") or {}


async def test_the_install_section_word_for_word_ends_ready(
    emulator: Emulator, tmp_path: Path, operator_process: list[subprocess.Popen[str]]
) -> None:
    commands = shell_block((REPO / "README.md").read_text(), INSTALL)
    assert commands and all(argv[0] == "kubectl" for argv in commands), commands
    config = kubeconfig(tmp_path / "kubeconfig", emulator.url)
    log = tmp_path / "operator.log"
    outputs = []
    for argv in commands:
        done = await asyncio.to_thread(
            subprocess.run,
            ["kubectl", "--kubeconfig", str(config), *argv[1:]],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
        )
        operator_log = log.read_text() if log.exists() else ""
        assert done.returncode == 0, (argv, done.stdout, done.stderr, operator_log[-3000:])
        outputs.append(done.stdout)
        if argv[1:3] == ["apply", "-k"] and not operator_process:
            # The operator's Deployment exists now: its pod starts.
            operator_process.append(start_operator(emulator, config, log))

    assert operator_process, "the install section never applied manifests/"
    assert operator_process[0].poll() is None, log.read_text()[-3000:]
    st = engine_status(emulator)
    assert st.get("phase") == "Ready", st
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert "prod" in outputs[-1]  # `kubectl get vulcan -n vulcan` lists it
    # The first install (its migration Job) is recorded too (a moment after Ready, at times).
    await emulator.wait_for(lambda: engine_status(emulator).get("currentVersion") == "2.0.0", 30)
