"""README "Day two": its shell block, word for word, through real kubectl and the plugin,
against the emulator with the real operator. Each command must exit 0 and do what it says."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.emulator import JobOutcome
from tests.support.backups import backup_result, restore_result
from tests.support.kopf_runner import OperatorRunner
from tests.support.kubectl import shell_block
from tests.support.plugin import LogEmulator, Plugin, kubeconfig

REPO = Path(__file__).resolve().parents[2]
HEADING = "## Day two: `kubectl vulcan`"
NS = "vulcan"
LOCATION = f"pvc://prod-backups/{NS}/prod/on-demand/vulcan_20261129_020000.dump"
BACKEND = {
    "app.kubernetes.io/name": "vulcan-engine",
    "vulcan-engine.com/engine": "prod",
    "app.kubernetes.io/component": "backend",
}

pytestmark = [
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
    pytest.mark.emulator(cls=LogEmulator),
]


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


def outcomes(job: dict[str, Any]) -> JobOutcome | None:
    component = (job["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
    if component == "backup":
        return JobOutcome.succeed(message=backup_result(LOCATION, namespace=NS))
    if component == "restore":
        target = "vulcan_check" if "check" in str(job["spec"]) else "vulcan"
        return JobOutcome.succeed(message=restore_result(LOCATION, database=target))
    return None


def engine_status(emulator: LogEmulator) -> dict[str, Any]:
    return (emulator.get("vulcanengines", NS, "prod") or {}).get("status") or {}


async def test_the_day_two_section_word_for_word(
    emulator: LogEmulator, operator: OperatorRunner, tmp_path: Path
) -> None:
    commands = shell_block((REPO / "README.md").read_text(), HEADING)
    assert len(commands) >= 10 and all(argv[:2] == ["kubectl", "vulcan"] for argv in commands)
    emulator.pod_logs, emulator.by_user = {}, []
    emulator.jobs.outcome_for = outcomes
    for obj in (
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prod-database", "namespace": NS},
            "stringData": {"database-url": "postgresql://vulcan:pw@db:5432/vulcan"},
        },
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanEngine",
            "metadata": {"name": "prod", "namespace": NS},
            "spec": {"version": "2.0.0"},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "prod-abc12", "namespace": NS, "labels": BACKEND},
            "spec": {"containers": [{"name": "main", "image": "vulcan-engine:2.0.0"}]},
        },
    ):
        emulator.create(obj)
    emulator.pod_logs[(NS, "prod-abc12")] = "INFO serving\n"
    await emulator.wait_for(lambda: engine_status(emulator)["phase"] == "Ready", timeout=60)
    plugin = Plugin(kubeconfig(tmp_path / "config", emulator.url))
    for argv in commands:
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=plugin.env,
            timeout=120,
        )
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        verb = argv[2] if argv[2] != "hibernate" else f"hibernate {argv[3]}"
        if verb == "hibernate on":
            await emulator.wait_for(
                lambda: engine_status(emulator)["phase"] == "Hibernated", timeout=60
            )
        if verb == "hibernate off":
            await emulator.wait_for(lambda: engine_status(emulator)["phase"] == "Ready", timeout=60)
        if verb == "logs":
            assert done.stdout == "INFO serving\n"
        if verb == "status":
            assert done.stdout.startswith(f"VulcanEngine {NS}/prod")
    backup = emulator.get("vulcanbackups", NS, "prod-manual-1")
    assert backup["status"]["phase"] == "Succeeded"
    restores = emulator.list("vulcanrestores", NS)
    assert [r["spec"].get("targetDatabase", "") for r in restores] in (
        ["vulcan_check", ""],
        ["", "vulcan_check"],
    )
    assert emulator.get("vulcanengines", NS, "prod")["spec"]["paused"] is False
    assert (
        "vulcan-engine.com/rotate-secrets"
        in (emulator.get("vulcanengines", NS, "prod")["metadata"]["annotations"])
    )
    with tarfile.open(tmp_path / "prod-report.tar.gz") as tar:
        assert "prod-report/engine.yaml" in tar.getnames()
