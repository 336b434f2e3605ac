"""Issue 12, item 5 (and item 9's malformed database URL): upgrades that must not lie.

The real operator on the emulator; migration Jobs move a real PostgreSQL's alembic_version as
alembic would (see tests/integration/test_upgrades.py), and the operator reads it through
asyncpg from the engine's DATABASE_URL Secret.

- The README's own URL host `postgres` is a Service of the engine's namespace, which the
  operator (elsewhere) could not resolve: the revision read None before and after, the Revert
  step saw no change and rolled the old image back onto the migrated schema ("RolledBack").
  Now the flow holds, Degraded RevisionUnknown, and goes on by itself once it can read.
- A retry (the annotation) reused the first attempt's pre-upgrade VulcanBackup and revert
  VulcanRestore (names without the flow key): a stale backup, a restore that had "succeeded".
- A failed migration Job was reported as "the old version keeps serving" without looking:
  a migration that moved the revision before failing left a partly migrated schema.
- A malformed DATABASE_URL raised on every pass (a traceback loop), never a condition.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome, RolloutOutcome
from tests.support.kopf_runner import OperatorRunner
from tests.support.leaks import collect, format_record, scan
from tests.support.upgrades import (
    ENGINES,
    Migrations,
    backups,
    engine,
    fast,
    image,
    installed,
    migrations,
    serve_restores,
    set_version,
    status,
)

FIXTURES = (backups, fast, migrations)  # tests/support/upgrades.py's, used here by name

PASSWORD = "Pw-0f-the-upgr4de-test"
SHORT_HOST_URL = f"postgresql://vulcan:{PASSWORD}@postgres:5432/vulcan"  # the README's example
TERMINAL = ("Succeeded", "Failed", "RolledBack", "Refused")
WAIT = 30.0  # generous: these tests must hold on a loaded machine


def set_database_url(emulator: Emulator, url: bytes) -> None:
    data = {"database-url": base64.b64encode(url).decode()}
    emulator.patch("secrets", "default", "prod-database", {"data": data})


def condition(emulator: Emulator, kind: str) -> dict[str, Any]:
    return next(c for c in status(emulator)["conditions"] if c["type"] == kind)


def revision_unknown(emulator: Emulator) -> dict[str, Any] | None:
    degraded = condition(emulator, "Degraded")
    ok = degraded["status"] == "True" and degraded["reason"] == "RevisionUnknown"
    return degraded if ok else None


async def ended(emulator: Emulator, step: str, retry: str = "") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        up: dict[str, Any] = status(emulator)["upgrade"]
        return up if up["step"] == step and up.get("retry", "") == retry else None

    found: dict[str, Any] = await emulator.wait_for(check, timeout=WAIT)
    return found


async def holds_for(emulator: Emulator, seconds: float, check: Callable[[], None]) -> None:
    """`check` holds at every look for `seconds` (the operator polls every 0.25 s here)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        check()
        await asyncio.sleep(0.1)


def events(emulator: Emulator, reason: str) -> list[dict[str, Any]]:
    return [e for e in emulator.list("events") if e.get("reason") == reason]


async def test_an_unreadable_revision_holds_a_failing_upgrade_instead_of_rolling_back(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    """The operator cannot reach the database (the short host does not resolve where it
    runs): the upgrade waits, Degraded RevisionUnknown, without migrating; when the database
    can be read it goes on, and the failed rollout is rolled back for real (downgrade)."""
    set_database_url(emulator, SHORT_HOST_URL.encode())
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)  # an install records what it can: revision unknown
    emulator.deployments.by_image["vulcan-engine:2.1.0"] = RolloutOutcome.fail()
    set_version(emulator, "2.1.0")

    degraded = await emulator.wait_for(lambda: revision_unknown(emulator), timeout=WAIT)
    assert "database revision could not be read" in degraded["message"]
    assert PASSWORD not in degraded["message"] and "@postgres" not in degraded["message"]
    assert status(emulator)["phase"] == "Degraded"

    def still_held() -> None:
        st = status(emulator)
        assert st["upgrade"]["step"] not in TERMINAL, st["upgrade"]
        assert revision_unknown(emulator) is not None
        assert image(emulator) == "vulcan-engine:2.0.0"
        assert [v for v, _ in migrations.ran] == ["2.0.0"]  # no migration without a revision

    await holds_for(emulator, 3.0, still_held)
    assert await migrations.revision() == "rev-2.0.0"
    assert 1 <= len(events(emulator, "RevisionUnknown")) <= 2  # not one per pass

    # The database can be read again (its URL fixed): the flow goes on from where it waited.
    set_database_url(emulator, migrations.dsn.encode())
    up = await ended(emulator, "RolledBack")
    assert up["revisionBefore"] == "rev-2.0.0" and up["revisionAfter"] == "rev-2.1.0"
    assert ("2.1.0", ["alembic", "downgrade", "rev-2.0.0"]) in migrations.ran
    assert await migrations.revision() == "rev-2.0.0"
    assert image(emulator) == "vulcan-engine:2.0.0"
    assert condition(emulator, "Degraded")["reason"] == "UpgradeRolledBack"


async def test_a_revert_never_puts_the_old_image_on_a_schema_it_cannot_see(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner
) -> None:
    """The operator reads a database without alembic_version before and after the migration
    (its URL names another database of the server than the one the Jobs migrate): the failed
    rollout is not "rolled back" onto a schema that may be migrated; it holds at Revert."""
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    await installed(emulator)
    other = migrations.dsn.rsplit("/", 1)[0] + "/postgres"  # no alembic_version there
    set_database_url(emulator, other.encode())
    emulator.deployments.by_image["vulcan-engine:2.1.0"] = RolloutOutcome.fail()
    set_version(emulator, "2.1.0")

    degraded = await emulator.wait_for(lambda: revision_unknown(emulator), timeout=WAIT)
    assert "no alembic revision before nor after the migration" in degraded["message"]
    assert status(emulator)["upgrade"]["step"] == "Revert"
    assert await migrations.revision() == "rev-2.1.0"  # the Job did migrate the real one

    def still_held() -> None:
        assert status(emulator)["upgrade"]["step"] == "Revert"
        assert revision_unknown(emulator) is not None
        assert image(emulator) == "vulcan-engine:2.1.0"  # the old image is not put back

    await holds_for(emulator, 3.0, still_held)

    # The right database again: the schema did change and the revision before is unknown,
    # so the flow ends Failed on the new version, saying so (never RolledBack).
    set_database_url(emulator, migrations.dsn.encode())
    up = await ended(emulator, "Failed")
    assert up["failedStep"] == "Revert" and "cannot be downgraded safely" in up["reason"]
    assert image(emulator) == "vulcan-engine:2.1.0"
    assert all(h["outcome"] != "RolledBack" for h in status(emulator)["history"])


async def test_a_retry_takes_a_new_pre_upgrade_backup_and_a_new_revert_restore(
    emulator: Emulator, migrations: Migrations, backups: dict[str, str], operator: OperatorRunner
) -> None:
    """rollbackStrategy: restore, the rollout of 2.1.0 fails twice: the retry asked for with
    the annotation backs up again and restores its own backup with a new VulcanRestore."""
    restored = serve_restores(emulator, migrations)
    emulator.create(engine("2.0.0", rollbackStrategy="restore"))
    await installed(emulator)
    emulator.deployments.by_image["vulcan-engine:2.1.0"] = RolloutOutcome.fail()
    set_version(emulator, "2.1.0")
    first = await ended(emulator, "RolledBack")
    assert len(restored) == 1

    annotations = {"vulcan-engine.com/retry-upgrade": "1"}
    emulator.patch(ENGINES, "default", "prod", {"metadata": {"annotations": annotations}})
    second = await ended(emulator, "RolledBack", retry="1")

    assert second["backup"] != first["backup"] and second["restore"] != first["restore"]
    assert second["backup"].startswith("prod-pre-") and second["backup"].endswith("2-1-0")
    for up in (first, second):
        backup = emulator.get("vulcanbackups", "default", up["backup"])
        assert backup["status"]["phase"] == "Succeeded"
        restore = emulator.get("vulcanrestores", "default", up["restore"])
        assert restore["spec"]["backupRef"]["name"] == up["backup"]
        assert restore["status"]["phase"] == "Succeeded"
    assert len(restored) == 2  # the retry's restore ran; it did not find the first one's
    assert await migrations.revision() == "rev-2.0.0"
    outcomes = [(h["outcome"], h.get("backup")) for h in status(emulator)["history"][-2:]]
    assert outcomes == [("RolledBack", first["backup"]), ("RolledBack", second["backup"])]


def partly_migrating(emulator: Emulator, migrations: Migrations) -> None:
    """2.1.0's migration commits its first revision, then fails on the second (as alembic
    does with transaction_per_migration, or a non-transactional step)."""

    async def run(job: dict[str, Any], pod: dict[str, Any]) -> JobOutcome:
        (container,) = pod["spec"]["containers"]
        version, command = container["image"].rsplit(":", 1)[1], container["command"]
        if version == "2.1.0" and command[1] == "upgrade":
            migrations.ran.append((version, command))
            await migrations.set_revision("rev-2.1.0-part")
            return JobOutcome.fail(message='alembic: relation "plans" already exists')
        return await migrations.run(job, pod)

    emulator.jobs.outcome_for = lambda job: (
        JobOutcome.run(run)
        if job["metadata"]["labels"].get("app.kubernetes.io/component") == "migration"
        else None
    )


@pytest.mark.parametrize("auto_rollback", [True, False], ids=["autoRollback", "no-autoRollback"])
async def test_a_failed_migration_that_moved_the_revision_is_not_called_safe(
    emulator: Emulator, migrations: Migrations, operator: OperatorRunner, auto_rollback: bool
) -> None:
    emulator.create(engine("2.0.0", preUpgradeBackup=False, autoRollback=auto_rollback))
    await installed(emulator)
    partly_migrating(emulator, migrations)
    set_version(emulator, "2.1.0")
    up = await ended(emulator, "RolledBack" if auto_rollback else "Failed")
    moved = "moved the database from revision rev-2.0.0 to rev-2.1.0-part"
    assert moved in up["reason"]
    texts = [up["reason"], *(c["message"] for c in status(emulator)["conditions"])]
    texts += [e.get("message", "") for e in emulator.list("events")]
    assert not [t for t in texts if "keeps serving" in t]
    assert image(emulator) == "vulcan-engine:2.0.0"
    if auto_rollback:  # brought back the way the rollback strategy says: the downgrade Job
        assert ("2.1.0", ["alembic", "downgrade", "rev-2.0.0"]) in migrations.ran
        assert await migrations.revision() == "rev-2.0.0"
    else:  # nothing may touch the schema: say what it is and what to do
        assert up["failedStep"] == "Migrate" and "partly migrated" in up["reason"]
        assert await migrations.revision() == "rev-2.1.0-part"
        assert "partly migrated" in condition(emulator, "Degraded")["message"]


MALFORMED = {
    "bad-port": f"postgresql://vulcan:{PASSWORD}@db:54x32/vulcan".encode(),
    "not-utf8": b"postgresql://vulcan:" + PASSWORD.encode() + b"\xe9@db:5432/vulcan",
}


@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_a_malformed_database_url_is_a_condition_not_a_traceback_loop(
    emulator: Emulator,
    migrations: Migrations,
    operator: OperatorRunner,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = MALFORMED[kind]
    set_database_url(emulator, url)
    emulator.create(engine("2.0.0", preUpgradeBackup=False))
    degraded = await emulator.wait_for(lambda: revision_unknown(emulator), timeout=WAIT)
    assert (
        "Secret 'prod-database' key 'database-url' is not a valid PostgreSQL URL"
        in degraded["message"]
    )

    def still_a_condition() -> None:
        assert revision_unknown(emulator) is not None
        assert status(emulator)["upgrade"]["step"] == "Install"

    await holds_for(emulator, 3.0, still_a_condition)
    # The operator's and Kopf's records (asyncio's garbage-collection notes about sessions a
    # previous test left behind are not this operator's doing).
    failures = [
        format_record(r)
        for r in caplog.records
        if (r.exc_info or r.levelno >= 40) and r.name.startswith(("kopf", "vulcan_operator"))
    ]
    assert not failures, failures[0]
    corpus = collect(emulator, caplog.records, "", [])
    text = url.decode("utf-8", "replace")
    wanted = {
        "password": PASSWORD,
        "URL": text,
        "URL (base64)": base64.b64encode(url).decode(),
        "host and port": "db:54",
    }
    assert not scan(corpus, wanted)
    assert 1 <= len(events(emulator, "RevisionUnknown")) <= 2
