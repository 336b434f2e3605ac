"""`kubectl vulcan ...`: the plugin as a person runs it. Real kubectl (found on PATH, it finds
`kubectl-vulcan` in .venv/bin, as it finds any plugin) against the emulator through a
kubeconfig, with the real operator reconciling what the plugin asks for.

The emulator does not serve pod logs; `LogEmulator` answers `pods/log` from `pod_logs`.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator import Emulator, JobOutcome
from tests.support.backups import (
    BACKUPS,
    ENGINES,
    backup_result,
    component_is,
    cond,
    failure,
    installed,
    status,
)
from tests.support.kopf_runner import OperatorRunner
from tests.support.leaks import DB_URL, PASSWORD, Corpus, all_keys, needles, scan
from tests.support.plugin import VENV_BIN, LogEmulator, Plugin, kubeconfig

KUBECTL = shutil.which("kubectl")
PLANT = Path(__file__).resolve().parents[2] / "examples" / "plant.yaml"
LOCATION = "pvc://prod-backups/default/prod/on-demand/vulcan_20261129_020000.dump"


pytestmark = [
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed"),
    pytest.mark.emulator(cls=LogEmulator),
]


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")
    monkeypatch.setenv("VULCAN_POLL_SECONDS", "0.25")


@pytest.fixture
def plugin(emulator: LogEmulator, tmp_path: Path) -> Plugin:
    emulator.pod_logs, emulator.by_user = {}, []
    return Plugin(kubeconfig(tmp_path / "config", emulator.url))


def ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def pod(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


BACKEND = {
    "app.kubernetes.io/name": "vulcan-engine",
    "vulcan-engine.com/engine": "prod",
    "app.kubernetes.io/component": "backend",
}


async def test_plugin_is_found_by_kubectl_and_says_how_to_use_it(plugin: Plugin) -> None:
    listed = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "plugin", "list"],
        capture_output=True,
        text=True,
        env=plugin.env,
    )
    assert str(VENV_BIN / "kubectl-vulcan") in listed.stdout
    out = ok(await plugin("--help"))
    for command in (
        "status",
        "backup",
        "restore",
        "hibernate",
        "pause",
        "resume",
        "retry-upgrade",
        "rotate-secrets",
        "logs",
        "problems",
        "gantt",
        "compare",
        "report",
    ):
        assert command in out
    assert (await plugin("frobnicate")).returncode == 2
    assert (await plugin("restore", "prod")).returncode == 2  # --from is required
    # The operator's own command line reaches the same plugin.
    same = await asyncio.to_thread(
        subprocess.run,
        [str(VENV_BIN / "vulcan-operator"), "ctl", "--help"],
        capture_output=True,
        text=True,
        env=plugin.env,
    )
    assert same.returncode == 0 and "retry-upgrade" in same.stdout


async def test_missing_things_exit_3_and_a_dead_server_exits_1(
    plugin: Plugin, emulator: Emulator, tmp_path: Path
) -> None:
    for args in (
        ["status", "ghost"],
        ["backup", "ghost"],
        ["pause", "ghost"],
        ["gantt", "ghost", "-o", str(tmp_path / "x.svg")],
        ["logs", "ghost"],
        ["report", "ghost", "-o", str(tmp_path / "b.tgz")],
    ):
        done = await plugin(*args)
        assert done.returncode == 3, (args, done.stderr)
        assert "ghost" in done.stderr and "Traceback" not in done.stderr
    dead = Plugin(kubeconfig(tmp_path / "dead", "http://127.0.0.1:9"))
    done = await dead("status", "prod")
    assert done.returncode == 1 and "cannot reach the API server" in done.stderr


async def test_day_two_on_a_running_engine(
    emulator: Emulator, operator: OperatorRunner, plugin: Plugin
) -> None:
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vulcan"}})
    emulator.jobs.outcome_for = component_is(
        "backup",
        JobOutcome.succeed(message=f"2026-11-29T02:00:07Z backup: done\n{backup_result(LOCATION)}"),
    )
    await installed(emulator)

    # status, as text and as data
    out = ok(await plugin("status", "prod"))
    assert out.startswith("VulcanEngine default/prod   phase Ready")
    assert "Version:    2.0.0" in out and "Deployment/prod" in out
    data = json.loads(ok(await plugin("status", "prod", "-o", "json")))
    assert data["engine"]["currentVersion"] == "2.0.0"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in data["conditions"])
    assert yaml.safe_load(ok(await plugin("status", "prod", "-o", "yaml"))) == data

    # backup --wait: a VulcanBackup, waited for, its location said
    out = ok(await plugin("backup", "prod", "--wait", "--name", "prod-manual-1"))
    assert "vulcanbackup/prod-manual-1 created" in out and LOCATION in out
    assert status(emulator, BACKUPS, "prod-manual-1")["phase"] == "Succeeded"

    # restore: asks first; a wrong answer changes nothing (exit 4)
    done = await plugin("restore", "prod", "--from", "prod-manual-1", stdin="no\n")
    assert done.returncode == 4 and "REPLACES the database" in done.stdout
    assert emulator.list("vulcanrestores", "default") == []
    # a location no backup records needs --checksum (usage, exit 2)
    done = await plugin("restore", "prod", "--from", LOCATION.replace("0200", "0300"), "--yes")
    assert done.returncode == 2 and "--checksum" in done.stderr
    # the backup's location: the checksum comes from its VulcanBackup's status
    ok(await plugin("restore", "prod", "--from", LOCATION, "--target-database", "scratch"))
    [restore] = emulator.list("vulcanrestores", "default")
    assert restore["spec"]["location"] == LOCATION
    assert restore["spec"]["checksum"] == status(emulator, BACKUPS, "prod-manual-1")["checksum"]
    assert restore["spec"]["targetDatabase"] == "scratch"

    # pause / resume: the spec field, and the operator's answer
    ok(await plugin("pause", "prod"))
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Paused")
    out = ok(await plugin("pause", "prod"))
    assert "already true" in out
    ok(await plugin("resume", "prod"))
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Ready")

    # rotate-secrets: the annotation; the keys Secret changes
    keys_before = emulator.get("secrets", "default", "prod-keys")["data"]
    ok(await plugin("rotate-secrets", "prod"))
    await emulator.wait_for(
        lambda: emulator.get("secrets", "default", "prod-keys")["data"] != keys_before
    )
    # retry-upgrade with nothing failed: refused, nothing written
    done = await plugin("retry-upgrade", "prod")
    assert done.returncode == 1 and "no failed upgrade" in done.stderr

    # logs: the backend pods; a Job's pod by kind/name
    emulator.create(pod("default", "prod-abc12", BACKEND))
    emulator.pod_logs[("default", "prod-abc12")] = "INFO started\nINFO serving\n"
    assert ok(await plugin("logs", "prod", "--tail", "5")) == "INFO started\nINFO serving\n"
    job = status(emulator, BACKUPS, "prod-manual-1")["jobName"]
    [backup_pod] = [
        p
        for p in emulator.list("pods", "default")
        if p["metadata"]["labels"].get("job-name") == job
    ]
    emulator.pod_logs[("default", backup_pod["metadata"]["name"])] = "backup: done\n"
    assert ok(await plugin("logs", "vb/prod-manual-1")) == "backup: done\n"

    # completion through kubectl's own plugin completion (kubectl_complete-vulcan)
    assert "status" in await plugin.complete("st")
    assert (await plugin.complete("status", ""))[:-1] == ["prod"]
    assert (await plugin.complete("hibernate", "o"))[:-1] == ["on", "off"]
    assert (await plugin.complete("hibernate", "on", "p"))[:-1] == ["prod"]
    assert "vulcan" in await plugin.complete("status", "-n", "")
    assert ok(await plugin("completion", "bash")).count("kubectl_complete-vulcan") >= 1


async def test_a_failed_backup_exits_1_with_the_reason(
    emulator: Emulator, operator: OperatorRunner, plugin: Plugin
) -> None:
    emulator.jobs.outcome_for = component_is(
        "backup",
        JobOutcome.fail(message=failure("vulcan-backup", "dump", "pg_dump: connection refused")),
    )
    await installed(emulator)
    done = await plugin("backup", "prod", "--wait", "--name", "prod-manual-2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "DumpFailed" in done.stderr
    await emulator.wait_for(lambda: cond(status(emulator), "BackupHealthy")["status"] == "False")
    out = ok(await plugin("status", "prod"))
    assert "Backup:     Failed" in out and "DumpFailed" in out
    assert "Warning events" in out


SMALL_PROBLEM = {
    "apiVersion": "vulcan-engine.com/v1alpha1",
    "kind": "SchedulingProblem",
    "metadata": {"name": "tiny", "namespace": "default"},
    "spec": {
        "engineRef": {"name": "prod"},
        "machines": [{"name": "m1"}],
        "jobs": [{"name": "j1", "tasks": [{"name": "t1", "duration": 5, "machines": ["m1"]}]}],
    },
}


def solver_jobs(emulator: Emulator) -> list[str]:
    return [
        j["metadata"]["name"]
        for j in emulator.list("jobs", "default")
        if j["metadata"]["labels"].get("app.kubernetes.io/component") == "solver"
    ]


async def test_hibernate_keeps_everything_but_runs_nothing(
    emulator: Emulator, operator: OperatorRunner, plugin: Plugin
) -> None:
    await installed(emulator)
    deployment = emulator.get("deployments", "default", "prod")
    replicas = deployment["spec"].get("replicas")
    kept = {
        (kind, name): emulator.get(kind, "default", name)["metadata"]["uid"]
        for kind, name in (
            ("secrets", "prod-keys"),
            ("services", "prod"),
            ("cronjobs", "prod-backup"),
            ("persistentvolumeclaims", "prod-backups"),
        )
    }
    assert emulator.get("horizontalpodautoscalers", "default", "prod") is not None

    ok(await plugin("hibernate", "on", "prod"))
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Hibernated", timeout=60)
    assert emulator.get("deployments", "default", "prod")["spec"]["replicas"] == 0
    await emulator.wait_for(
        lambda: emulator.get("horizontalpodautoscalers", "default", "prod") is None
    )
    hibernated = cond(status(emulator), "Hibernated")
    assert hibernated["status"] == "True" and hibernated["reason"] == "Hibernated"
    assert cond(status(emulator), "Ready")["reason"] == "Hibernated"
    for (kind, name), uid in kept.items():  # kept, not re-made
        assert emulator.get(kind, "default", name)["metadata"]["uid"] == uid
    assert emulator.get("cronjobs", "default", "prod-backup")["spec"]["suspend"] is False
    # A version change waits; a problem waits, with no Job.
    emulator.patch(ENGINES, "default", "prod", {"spec": {"version": "2.1.0"}})
    emulator.create(SMALL_PROBLEM)
    await emulator.wait_for(
        lambda: (
            cond(status(emulator, "schedulingproblems", "tiny"), "Ready")["reason"]
            == "EngineHibernated"
        )
    )
    assert status(emulator, "schedulingproblems", "tiny")["phase"] == "Queued"
    await emulator.wait_for(lambda: status(emulator)["observedGeneration"] == 3)
    assert status(emulator)["currentVersion"] == "2.0.0" and solver_jobs(emulator) == []
    assert (status(emulator).get("upgrade") or {}).get("to") != "2.1.0"
    out = ok(await plugin("status", "prod"))
    assert "(hibernate)" in out and "Hibernated       True" in out

    ok(await plugin("hibernate", "off", "prod"))
    await emulator.wait_for(
        lambda: (
            emulator.get("deployments", "default", "prod")["spec"].get("replicas") == replicas
            and emulator.get("horizontalpodautoscalers", "default", "prod") is not None
        ),
        timeout=60,
    )
    await emulator.wait_for(lambda: cond(status(emulator), "Hibernated")["reason"] == "Awake")
    await emulator.wait_for(lambda: solver_jobs(emulator), timeout=60)  # the problem starts
    # The version change that waited starts now.
    await emulator.wait_for(lambda: status(emulator)["upgrade"]["to"] == "2.1.0", timeout=60)


async def test_report_bundle_has_everything_and_no_secret(
    emulator: LogEmulator, operator: OperatorRunner, plugin: Plugin, tmp_path: Path
) -> None:

    await installed(emulator, url=DB_URL)
    emulator.create(pod("default", "prod-abc12", BACKEND))
    # Planted: a backend and an operator that print what they never should.
    emulator.pod_logs[("default", "prod-abc12")] = f"connecting to {DB_URL}\nready\n"
    emulator.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vulcan-system"}}
    )
    emulator.create(
        pod("vulcan-system", "vulcan-operator-0", {"app.kubernetes.io/name": "vulcan-operator"})
    )
    keys = all_keys(emulator)
    emulator.pod_logs[("vulcan-system", "vulcan-operator-0")] = (
        f"reconciled prod\npassword={PASSWORD}\nSECRET_KEY={keys[0]}\n"
    )
    bundle = tmp_path / "bundle.tar.gz"
    out = ok(await plugin("report", "prod", "-o", str(bundle)))
    assert "wrote" in out
    corpus = Corpus()
    with tarfile.open(bundle) as tar:
        members = {
            m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar if m.isfile()
        }
    for name, text in members.items():
        corpus.add(f"bundle:{name}", text)
    for expected in (
        "engine.yaml",
        "status.txt",
        "events.yaml",
        "rendered.yaml",
        "children/Deployment-prod.yaml",
        "children/Secret-prod-keys.yaml",
        "logs/backend/prod-abc12.log",
        "logs/operator/vulcan-operator-0.log",
    ):
        assert expected in members, sorted(members)
    assert "ready" in members["logs/backend/prod-abc12.log"]
    assert "<redacted>" in members["logs/operator/vulcan-operator-0.log"]
    wanted = needles(keys)  # every secret form the leak test knows
    assert len(keys) >= 2
    assert scan(corpus, wanted) == []
    # The control: the same scan finds a planted secret in the same corpus.
    corpus.add("control", f"x {DB_URL} {keys[0]}")
    assert len(scan(corpus, wanted)) >= 3


def test_status_screen_ages_are_relative_to_now() -> None:
    from vulcan_operator.ctl.view import ago

    now = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
    assert ago("2026-12-07T10:00:00Z", now) == "2026-12-07T10:00:00Z (2h ago)"
    assert ago(None, now) == "-"


def _solved(seed: int, limit: float) -> dict[str, Any]:
    """A real CP-SAT result of examples/plant.yaml."""
    from vulcan_operator.solver.api import run
    from vulcan_operator.solver.loader import load_file

    loaded = load_file(PLANT)
    settings = loaded.settings.model_copy(
        update={"maxTimeSeconds": limit, "numWorkers": 1, "seed": seed}
    )
    return run(loaded.problem, settings).to_dict()


async def test_problems_gantt_and_compare(
    emulator: LogEmulator, plugin: Plugin, tmp_path: Path
) -> None:
    plant = yaml.safe_load(PLANT.read_text())
    plant["metadata"] = {"name": "plant-week-48", "namespace": "default"}
    plant["spec"]["engineRef"] = {"name": "prod"}
    emulator.create(plant)
    # An early, poor schedule (the dispatch start only), then a better one.
    before, latest = (
        await asyncio.to_thread(_solved, 1, 0.01),
        await asyncio.to_thread(_solved, 2, 3),
    )
    keys = ("status", "objective", "bound", "makespan", "wallSeconds")
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "plant-week-48-schedule", "namespace": "default"},
            "data": {"result.json": json.dumps(latest), "generation": "2"},
        }
    )
    emulator.patch(
        "schedulingproblems",
        "default",
        "plant-week-48",
        {
            "status": {
                "phase": "Succeeded",
                "result": {**{k: latest[k] for k in keys}, "foundBy": 1},
                "history": [{k: before[k] for k in keys}],
                "solutionRef": {"configMapName": "plant-week-48-schedule"},
            }
        },
        subresource="status",
    )

    table = ok(await plugin("problems", "prod"))
    head, row = table.splitlines()
    assert head.split() == [
        "NAME", "ENGINE", "PHASE", "STATUS", "OBJECTIVE", "GAP", "MAKESPAN", "MEMBER"
    ]  # fmt: skip
    assert row.split()[:4] == ["plant-week-48", "prod", "Succeeded", latest["status"]]
    assert row.split()[6:] == [str(latest["makespan"]), "1"]  # member 1 of a portfolio won
    [item] = json.loads(ok(await plugin("problems", "-o", "json")))
    assert (item["objective"], item["foundBy"]) == (latest["objective"], 1)
    assert ok(await plugin("problems", "other-engine")).splitlines()[1:] == []

    svg = tmp_path / "plan.svg"
    ok(await plugin("gantt", "plant-week-48", "-o", str(svg)))
    text = svg.read_text()
    assert text.startswith("<svg") and "due 180" in text  # pump-housing's due date
    assert all(f"{a['job']} / {a['task']}" in text for a in latest["assignments"])
    html = tmp_path / "plan.html"
    ok(await plugin("gantt", "plant-week-48", "-o", str(html)))
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert (
        await plugin("gantt", "plant-week-48", "-o", str(tmp_path / "plan.png"))
    ).returncode == 2

    out = ok(await plugin("compare", "plant-week-48"))
    assert f"{before['objective']:>14} {latest['objective']:>14}" in out.replace(".0 ", " ")
    assert "late jobs" in out and "tasks moved  unknown" in out
    data = json.loads(ok(await plugin("compare", "plant-week-48", "-o", "json")))
    assert data["makespan"] == {"previous": before["makespan"], "current": latest["makespan"]}


async def test_compare_after_a_real_second_solve_counts_the_tasks_moved(
    emulator: LogEmulator, bridge: Any, operator: OperatorRunner, plugin: Plugin
) -> None:
    """Real solver pods solve generation 1, then 2; the pod keeps the result before beside the
    latest (server-side, it may not read the ConfigMap), so compare knows what moved."""
    emulator.create(
        {
            "apiVersion": "vulcan-engine.com/v1alpha1",
            "kind": "VulcanEngine",
            "metadata": {"name": "prod", "namespace": "default"},
            "spec": {
                "version": "2.0.0",
                "solver": {"maxTimeSeconds": 2, "numWorkers": 1, "memoryLimitMB": 512},
            },
        }
    )
    jobs = [
        {
            "name": "j1",
            "dueDate": 5,
            "tasks": [
                {"name": "a", "duration": 3, "machines": ["m1"]},
                {"name": "b", "duration": 2, "machines": ["m2"]},
            ],
        },
        {
            "name": "j2",
            "dueDate": 6,
            "tasks": [
                {"name": "a", "duration": 2, "machines": ["m2"]},
                {"name": "b", "duration": 4, "machines": ["m1"]},
            ],
        },
    ]
    body = {**SMALL_PROBLEM, "metadata": {"name": "shop", "namespace": "default"}}
    body["spec"] = {
        "engineRef": {"name": "prod"},
        "machines": [{"name": "m1"}, {"name": "m2"}],
        "jobs": jobs,
    }
    emulator.create(body)

    def solved(generation: int) -> bool:
        st = status(emulator, "schedulingproblems", "shop")
        return st.get("observedGeneration") == generation and st.get("phase") == "Succeeded"

    await emulator.wait_for(lambda: solved(1), timeout=60)
    assert (await plugin("compare", "shop")).returncode == 1  # nothing to compare with yet
    jobs[0]["tasks"][0]["duration"] = 10  # j1 now ends late, and its tasks move
    emulator.patch("schedulingproblems", "default", "shop", {"spec": {"jobs": jobs}})
    await emulator.wait_for(lambda: solved(2), timeout=60)
    cm = emulator.get("configmaps", "default", "shop-schedule")["data"]
    assert (cm["generation"], cm["previous-generation"]) == ("2", "1")
    data = json.loads(ok(await plugin("compare", "shop", "-o", "json")))
    assert data["makespan"]["previous"] < data["makespan"]["current"]
    moved = data["tasksMoved"]
    assert moved is not None and moved["of"] == 4 and moved["count"] >= 1, moved
    late = data["lateJobs"]  # known for both (the previous schedule was kept)
    assert "j1" not in late["previous"] and "j1" in late["current"], late
    text = ok(await plugin("compare", "shop"))
    assert f"tasks moved  {moved['count']} of 4" in text
