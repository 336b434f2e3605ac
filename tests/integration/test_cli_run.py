"""`vulcan-operator run`, the real console script in its own process, against the emulator
through a kubeconfig: what a cluster admin starts, not a test registry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.emulator import Emulator
from tests.support.kubectl import kubeconfig

ENGINE = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": "default"},
    "spec": {"version": "2.0.0"},
}


async def test_run_command_reconciles_and_stops_gracefully(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig(tmp_path / "config", emulator.url)),
        "VULCAN_METRICS_PORT": "19090",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    script = Path(sys.executable).parent / "vulcan-operator"
    proc = subprocess.Popen(  # noqa: ASYNC220 (runs beside the test; awaited by polling)
        [str(script), "run", "--standalone", "--liveness=", "--log-format=plain"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        emulator.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "prod-database", "namespace": "default"},
                "stringData": {"database-url": "postgresql://vulcan:pw@127.0.0.1:1/vulcan"},
            }
        )
        emulator.create(ENGINE)
        await emulator.wait_for(
            lambda: emulator.get("vulcanengines", "default", "prod")["status"]["phase"] == "Ready",
            timeout=60,
        )
        assert emulator.get("deployments", "default", "prod") is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
