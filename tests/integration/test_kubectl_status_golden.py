"""`kubectl vulcan status` on engines the real operator brought into a state: installing,
upgrading, a failed backup, hibernated. The screen is collected through a kubeconfig (the
plugin's own client) and compared with tests/integration/golden/status-<state>.txt, times
and hashes in names replaced by placeholders. `--update-golden` rewrites them.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from pathlib import Path

import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.backups import (
    ENGINES,
    component_is,
    cond,
    custom,
    db_secret,
    engine,
    failure,
    installed,
    status,
)
from tests.support.kopf_runner import OperatorRunner
from tests.support.plugin import LogEmulator, kubeconfig
from vulcan_operator.ctl import view
from vulcan_operator.ctl.kube import Kube

GOLDEN = Path(__file__).resolve().parent / "golden"
NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z( \(\d+[smhd] ago\))?")
HASHED = re.compile(r"\b(prod-[a-z0-9-]*?)-[0-9a-f]{8}(-[0-9a-z.-]+)?\b")
# The plugin's requests are its user's, not the operator's (see LogEmulator).
pytestmark = pytest.mark.emulator(cls=LogEmulator)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


async def screen(emulator: Emulator, tmp_path: Path) -> str:
    """The screen of the settled state: the engine's status catches up with its children
    a resync later, so a screen taken at once could show either."""
    await emulator.quiet(1.5)
    kube = Kube(str(kubeconfig(tmp_path / "config", emulator.url)))
    snap = await asyncio.to_thread(view.collect, kube, "default", "prod")
    assert snap is not None
    text = TIME.sub("<time>", view.render(snap, NOW))
    return HASHED.sub(lambda m: f"{m[1]}-<hash>" + ("-<suffix>" if m[2] else ""), text)


def check(state: str, text: str, update: bool) -> None:
    path = GOLDEN / f"status-{state}.txt"
    if update:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs (--update-golden rewrites it):\n{text}"


async def test_installing(
    emulator: Emulator, operator: OperatorRunner, tmp_path: Path, update_golden: bool
) -> None:
    emulator.jobs.outcome_for = component_is("migration", JobOutcome.running())
    emulator.create(db_secret())
    emulator.create(engine())
    await emulator.wait_for(lambda: status(emulator)["upgrade"]["step"] == "Install", timeout=60)
    await emulator.wait_for(
        lambda: any(
            j["metadata"]["labels"].get("app.kubernetes.io/component") == "migration"
            for j in emulator.list("jobs", "default")
        )
    )
    await emulator.wait_for(lambda: cond(status(emulator), "Ready")["status"] == "True")
    check("installing", await screen(emulator, tmp_path), update_golden)


async def test_upgrading(
    emulator: Emulator, operator: OperatorRunner, tmp_path: Path, update_golden: bool
) -> None:
    await installed(emulator)
    emulator.jobs.outcome_for = component_is("backup", JobOutcome.running())
    emulator.patch(ENGINES, "default", "prod", {"spec": {"version": "2.1.0"}})
    await emulator.wait_for(lambda: status(emulator)["upgrade"]["step"] == "Backup", timeout=60)
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Upgrading")
    # The golden's Progressing line: the engine sees its backup Running a poll after Pending.
    await emulator.wait_for(
        lambda: cond(status(emulator), "Progressing")["message"].endswith(" is Running")
    )
    check("upgrading", await screen(emulator, tmp_path), update_golden)


async def test_failed_backup(
    emulator: Emulator, operator: OperatorRunner, tmp_path: Path, update_golden: bool
) -> None:
    emulator.jobs.outcome_for = component_is(
        "backup",
        JobOutcome.fail(
            message=failure("vulcan-backup", "dump", "pg_dump: connection to db:5432 refused")
        ),
    )
    await installed(emulator)
    emulator.create(custom("VulcanBackup", "prod-manual-1"))
    await emulator.wait_for(
        lambda: cond(status(emulator), "BackupHealthy")["reason"] == "DumpFailed", timeout=60
    )
    await emulator.wait_for(
        lambda: any(e.get("reason") == "Failed" for e in emulator.list("events", "default"))
    )
    check("failed-backup", await screen(emulator, tmp_path), update_golden)


async def test_hibernated(
    emulator: Emulator, operator: OperatorRunner, tmp_path: Path, update_golden: bool
) -> None:
    await installed(emulator)
    emulator.patch(ENGINES, "default", "prod", {"spec": {"hibernate": True}})
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Hibernated", timeout=60)
    await emulator.wait_for(
        lambda: (
            emulator.get("horizontalpodautoscalers", "default", "prod") is None
            and status(emulator)["readyReplicas"] == 0
        )
    )
    check("hibernated", await screen(emulator, tmp_path), update_golden)
