"""No secret ever leaves its Secret: the real operator on the emulator, through the main
scenarios, scanned everywhere it writes or says something.

Scenarios (one operator run): an engine created with generated keys, its keys rotated, a
second engine waiting for its missing database Secret and then installed, an upgrade whose
pre-upgrade backup succeeds and whose migration fails, a SchedulingProblem solved by a real
solver pod (a subprocess that gets DATABASE_URL), an on-demand VulcanBackup.

Scanned: every log record of every logger (DEBUG, Kopf's included: message, arguments,
exception text and extra fields), everything written to this process's stdout/stderr, every
Event (core and events.k8s.io), every stored version of every object (statuses, annotations,
ConfigMaps...; of Secrets, everything but their data), every request body sent to the API
server (but the Secrets' own), the stdout, stderr and termination message of every solver pod
subprocess, the Prometheus metrics, and the emulator's failures.

Looked for: SECRET_KEY and JWT_SECRET_KEY (every value they ever had, plain, base64 and a
12-character prefix) and the database password and URL (plain and base64). Zero hits; the
negative control plants one secret in each channel and the same scan must find every one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from tests.emulator import Emulator, JobOutcome
from tests.support.backups import backup_result
from tests.support.fuzzdocs import report
from tests.support.kopf_runner import OperatorRunner
from tests.support.leaks import (
    DB_URL,
    OTHER_URL,
    PASSWORD,
    PREFIX,
    all_keys,
    b64,
    collect,
    needles,
    scan,
)
from tests.support.solverpod_bridge import SolverPodBridge

NS = "default"
API = "vulcan-engine.com/v1alpha1"
ENGINES = "vulcanengines"


# --- the scenarios ------------------------------------------------------------------------------
def engine(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "version": "2.0.0",
            "solver": {"maxTimeSeconds": 2, "numWorkers": 1, "memoryLimitMB": 512},
            **spec,
        },
    }


def secret(name: str, key: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": {key: url},
    }


def status(emulator: Emulator, resource: str, name: str) -> dict[str, Any]:
    return (emulator.get(resource, NS, name) or {}).get("status") or {}


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


def backups_succeed(job: dict[str, Any]) -> JobOutcome | None:
    labels = job["metadata"].get("labels") or {}
    if labels.get("app.kubernetes.io/component") != "backup":
        return None
    (owner,) = job["metadata"]["ownerReferences"]
    location = (
        f"pvc://prod-backups/default/prod/on-demand/vulcan_20261129_020000_{owner['name']}.dump"
    )
    return JobOutcome.succeed(message=backup_result(location))


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")
    monkeypatch.setenv("VULCAN_PROBLEM_POLL_SECONDS", "1")


@pytest.fixture
def pods(emulator: Emulator, bridge: SolverPodBridge) -> SolverPodBridge:
    """Solver pods run for real; backup Jobs succeed with the program's result line."""
    solver = emulator.jobs.outcome_for
    assert solver is not None
    emulator.jobs.outcome_for = lambda job: backups_succeed(job) or solver(job)
    return bridge


async def run_scenarios(emulator: Emulator) -> None:
    # An engine with generated keys, installed.
    emulator.create(secret("prod-database", "database-url", DB_URL))
    emulator.create(engine("prod"))
    await emulator.wait_for(
        lambda: status(emulator, ENGINES, "prod").get("currentVersion") == "2.0.0", timeout=60
    )
    keys = emulator.get("secrets", NS, "prod-keys")["data"]

    # Its keys rotated.
    emulator.patch(
        ENGINES,
        NS,
        "prod",
        {"metadata": {"annotations": {"vulcan-engine.com/rotate-secrets": "2026-11-29"}}},
    )
    await emulator.wait_for(lambda: emulator.get("secrets", NS, "prod-keys")["data"] != keys)

    # An engine waiting for its database Secret, then installed.
    emulator.create(engine("other", database={"urlSecretRef": {"name": "other-db", "key": "url"}}))
    await emulator.wait_for(lambda: status(emulator, ENGINES, "other").get("phase") == "Pending")
    assert condition(status(emulator, ENGINES, "other"), "Ready")["reason"] == "SecretMissing"
    emulator.create(secret("other-db", "url", OTHER_URL))
    await emulator.wait_for(
        lambda: status(emulator, ENGINES, "other").get("currentVersion") == "2.0.0", timeout=60
    )

    # An upgrade: the pre-upgrade backup succeeds; the database is down, so the revision cannot
    # be read and the flow holds before migrating, saying why (the operator's database error
    # path, the likeliest to print a URL).
    emulator.patch(ENGINES, NS, "prod", {"spec": {"version": "2.1.0"}})
    await emulator.wait_for(
        lambda: (
            condition(status(emulator, ENGINES, "prod"), "Degraded").get("reason")
            == "RevisionUnknown"
        ),
        timeout=60,
    )

    # A problem solved by a real solver pod (it gets DATABASE_URL; the database is down).
    emulator.create(
        {
            "apiVersion": API,
            "kind": "SchedulingProblem",
            "metadata": {"name": "week-48", "namespace": NS},
            "spec": {
                "engineRef": {"name": "prod"},
                "machines": [{"name": "m1"}, {"name": "m2"}],
                "jobs": [
                    {"name": "j1", "tasks": [{"name": "a", "duration": 3, "machines": ["m1"]}]},
                    {"name": "j2", "tasks": [{"name": "a", "duration": 2, "machines": ["m2"]}]},
                ],
            },
        }
    )
    await emulator.wait_for(
        lambda: status(emulator, "schedulingproblems", "week-48").get("phase") in ("Succeeded",),
        timeout=60,
    )

    # An on-demand backup.
    emulator.create(
        {
            "apiVersion": API,
            "kind": "VulcanBackup",
            "metadata": {"name": "manual-1", "namespace": NS},
            "spec": {"engineRef": {"name": "prod"}},
        }
    )
    await emulator.wait_for(
        lambda: status(emulator, "vulcanbackups", "manual-1").get("phase") == "Succeeded",
        timeout=60,
    )


async def test_no_secret_leaks_anywhere(
    emulator: Emulator,
    pods: SolverPodBridge,
    operator: OperatorRunner,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, Kopf's included
    for name in ("kopf", "vulcan_operator", "asyncio", "kubernetes", "urllib3", "asyncpg"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    await run_scenarios(emulator)
    await operator.stop()  # its last words are part of the corpus too

    keys = all_keys(emulator)
    assert len(keys) == 6, "prod (2 + 2 rotated) and other (2)"
    wanted = needles(keys)
    out, err = capfd.readouterr()
    processes = [
        (f"{run.job} {stream}", text)
        for run in pods.runs
        for stream, text in (
            ("stdout", run.stdout),
            ("stderr", run.stderr),
            ("termination", run.termination),
        )
    ]
    assert pods.runs and all(run.code == 0 for run in pods.runs), pods.runs
    # The solver pod had DATABASE_URL and went down its error path (the database is down).
    problem = status(emulator, "schedulingproblems", "week-48")
    assert "cannot write the schedule to the engine's database" in json.dumps(problem) + "".join(
        run.stdout + run.stderr + run.termination for run in pods.runs
    )
    corpus = collect(emulator, caplog.records, out + err, processes)

    # The corpus is the real thing: each channel has content, and the logs are Kopf's too.
    sizes = corpus.size()
    report(
        request.config,
        [f"leak scan: {len(wanted)} secret forms in {sum(sizes.values())} texts: {sizes}"],
    )
    assert sizes["log"] > 200 and sizes["event"] > 10 and sizes["request body"] > 50, sizes
    assert any(r.name.startswith("kopf") for r in caplog.records)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any("subprocess" in channel for channel in sizes)

    assert scan(corpus, wanted) == []

    # --- negative control: one secret planted in each channel; the same scan finds each ---
    jwt, password = keys[0], PASSWORD
    log = logging.getLogger("kopf.objects")
    log.debug("planted %s", keys[1])
    try:
        raise RuntimeError(f"connect failed: {DB_URL}")
    except RuntimeError:
        logging.getLogger("vulcan_operator.planted").exception("boom")  # only in exc_info
    print(f"planted {b64(keys[2])}")
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "planted", "namespace": NS},
            "involvedObject": {"kind": "VulcanEngine", "name": "prod", "namespace": NS},
            "reason": "Planted",
            "message": f"key {b64(jwt)}",
        }
    )
    async with aiohttp.ClientSession(emulator.url) as http:  # a request, as a client makes it
        response = await http.patch(
            f"/apis/{API}/namespaces/{NS}/{ENGINES}/other/status",
            data=json.dumps({"status": {"lastBackup": {"message": password}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status == 200, await response.text()
    planted = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", f"import sys; sys.stderr.write({keys[3][:PREFIX]!r})"],
        capture_output=True,
        text=True,
        check=True,
    )
    out, err = capfd.readouterr()
    corpus = collect(
        emulator,
        caplog.records,
        out + err,
        [*processes, ("planted stderr", planted.stderr)],
    )
    hits = scan(corpus, wanted)
    found = {hit.split(": ", 2)[0] + ": " + hit.split(": ", 2)[1] for hit in hits}
    for expected in (
        "log: key #1",
        "log: database URL",  # from the exception in exc_info, not the message
        "stdout/stderr: key #2 (base64)",
        "event: key #0 (base64)",
        "status: database password",
        "request body: database password",
        f"subprocess planted stderr: key #3 (first {PREFIX} characters)",
    ):
        assert expected in found, f"the scanner missed a planted {expected!r}: {sorted(found)}"
