"""VulcanEngine reconciliation: the real Kopf operator against the API emulator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kopf
import pytest

from tests.emulator import Emulator, Fault, FaultPolicy, FaultyEmulator, JobOutcome, RequestRecord
from tests.emulator.faults import from_operator
from tests.support.kopf_runner import OperatorRunner
from tests.support.operator import RunOperator
from vulcan_operator.config import Settings

ENGINES = "vulcanengines"
CORE = {
    ("serviceaccounts", "prod"),
    ("configmaps", "prod-config"),
    ("secrets", "prod-keys"),
    ("deployments", "prod"),
    ("services", "prod"),
    ("horizontalpodautoscalers", "prod"),
    ("poddisruptionbudgets", "prod"),
    ("networkpolicies", "prod"),
}


def engine(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": "default", **meta},
        "spec": {"version": "2.0.0", **(spec or {})},
    }


def db_secret(name: str = "prod-database") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "stringData": {"database-url": "postgresql://vulcan:s3cr3t-pw@db:5432/vulcan"},
    }


def status(emulator: Emulator) -> dict[str, Any]:
    return emulator.get(ENGINES, "default", "prod")["status"]  # type: ignore[index]


def condition(emulator: Emulator, type_: str) -> dict[str, Any]:
    return next(c for c in status(emulator)["conditions"] if c["type"] == type_)


def config_hash(emulator: Emulator) -> str:
    template = emulator.get("deployments", "default", "prod")["spec"]["template"]
    return str(template["metadata"]["annotations"]["vulcan-engine.com/config-hash"])


@pytest.fixture(autouse=True)
def fast_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")


async def ready(emulator: Emulator) -> None:
    """Ready, and the first install (migration included) recorded."""
    await emulator.wait_for(
        lambda: status(emulator)["phase"] == "Ready" and status(emulator)["currentVersion"],
        timeout=60,
    )


async def test_create_makes_every_child_and_reports_ready(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(engine(labels={"app.kubernetes.io/instance": "argo-app", "team": "x"}))
    await ready(emulator)
    for resource, name in CORE:
        child = emulator.get(resource, "default", name)
        assert child is not None, (resource, name)
        labels = child["metadata"]["labels"]
        assert "app.kubernetes.io/instance" not in labels and "team" not in labels
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["kind"] == "VulcanEngine" and owner["name"] == "prod" and owner["uid"]
    st = status(emulator)
    assert st["currentVersion"] == "2.0.0" and st["targetVersion"] == "2.0.0"
    assert (
        st["observedGeneration"]
        == emulator.get(ENGINES, "default", "prod")["metadata"]["generation"]
    )
    assert condition(emulator, "Ready")["status"] == "True"
    assert condition(emulator, "Degraded")["status"] == "False"


async def test_idle_resync_writes_nothing(emulator: Emulator, operator: OperatorRunner) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    mark = await emulator.quiet(1.5)  # the first resyncs have settled the status
    ticks = len(emulator.requests(since=mark))
    await asyncio.sleep(3)  # three resync periods
    assert len(emulator.requests(since=mark)) > ticks, "the resync did not run at all"
    assert emulator.writes(since=mark) == []


async def test_spec_change_patches_only_affected_children(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    mark = emulator.mark()
    before = config_hash(emulator)
    emulator.patch(ENGINES, "default", "prod", {"spec": {"rateLimit": {"requestsPerMinute": 120}}})
    await emulator.wait_for(
        lambda: (
            emulator.get("configmaps", "default", "prod-config")["data"][
                "RATE_LIMIT_REQUESTS_PER_MINUTE"
            ]
            == "120"
        )
    )
    await emulator.wait_for(lambda: config_hash(emulator) != before)
    await asyncio.sleep(1.5)  # a resync after the change: it must add nothing
    patched = {
        (w.path.split("/")[-2], w.path.split("/")[-1])
        for w in emulator.writes(since=mark, events=False)
        if w.method == "PATCH" and "/vulcanengines/" not in w.path
    }
    # The config changed, so the Deployment's pods roll (config hash); nothing else moves.
    assert patched == {("configmaps", "prod-config"), ("deployments", "prod")}


async def test_drift_is_repaired(emulator: Emulator, operator: OperatorRunner) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    emulator.delete("services", "default", "prod")
    emulator.patch("configmaps", "default", "prod-config", {"data": {"DEBUG": "true"}})
    await emulator.wait_for(lambda: emulator.get("services", "default", "prod"))
    await emulator.wait_for(
        lambda: emulator.get("configmaps", "default", "prod-config")["data"]["DEBUG"] == "false"
    )


async def test_disabling_autoscaling_removes_the_hpa_and_sets_replicas(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    assert emulator.get("horizontalpodautoscalers", "default", "prod") is not None
    emulator.patch(
        ENGINES, "default", "prod", {"spec": {"autoscaling": {"enabled": False}, "replicas": 2}}
    )
    await emulator.wait_for(
        lambda: emulator.get("horizontalpodautoscalers", "default", "prod") is None
    )
    await emulator.wait_for(
        lambda: emulator.get("deployments", "default", "prod")["spec"]["replicas"] == 2
    )


async def test_generated_keys_survive_restarts_and_spec_changes(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    keys = emulator.get("secrets", "default", "prod-keys")["data"]
    assert set(keys) == {"SECRET_KEY", "JWT_SECRET_KEY"}
    await operator.restart()
    emulator.patch(ENGINES, "default", "prod", {"spec": {"jwt": {"algorithm": "HS512"}}})
    await emulator.wait_for(
        lambda: (
            emulator.get("configmaps", "default", "prod-config")["data"]["JWT_ALGORITHM"] == "HS512"
        )
    )
    assert emulator.get("secrets", "default", "prod-keys")["data"] == keys


async def test_rotation_annotation_replaces_keys_and_rolls_pods(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    keys = emulator.get("secrets", "default", "prod-keys")["data"]
    before = config_hash(emulator)
    emulator.patch(
        ENGINES,
        "default",
        "prod",
        {"metadata": {"annotations": {"vulcan-engine.com/rotate-secrets": "2026-11-29"}}},
    )
    await emulator.wait_for(lambda: emulator.get("secrets", "default", "prod-keys")["data"] != keys)
    new = emulator.get("secrets", "default", "prod-keys")["data"]
    assert (
        new["SECRET_KEY"] != keys["SECRET_KEY"] and new["JWT_SECRET_KEY"] != keys["JWT_SECRET_KEY"]
    )
    await emulator.wait_for(lambda: config_hash(emulator) != before)


async def test_paused_engine_is_left_alone(emulator: Emulator, operator: OperatorRunner) -> None:
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    emulator.patch(ENGINES, "default", "prod", {"spec": {"paused": True}})
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Paused")
    mark = emulator.mark()
    emulator.delete("services", "default", "prod")
    emulator.patch(ENGINES, "default", "prod", {"spec": {"replicas": 5}})
    await asyncio.sleep(2.5)
    assert emulator.get("services", "default", "prod") is None
    children = [
        w for w in emulator.writes(since=mark, events=False) if "/vulcanengines/" not in w.path
    ]
    assert children == []
    assert "paused" in condition(emulator, "Progressing")["message"]


async def test_missing_database_secret_waits_then_recovers(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(engine({"database": {"urlSecretRef": {"name": "vulcan-db", "key": "url"}}}))
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Pending")
    ready_cond = condition(emulator, "Ready")
    assert ready_cond["reason"] == "SecretMissing"
    assert "vulcan-db" in ready_cond["message"]
    assert emulator.get("deployments", "default", "prod") is None
    secret = db_secret("vulcan-db")
    secret["stringData"] = {"url": "postgresql://vulcan:pw@db/vulcan"}
    emulator.create(secret)
    await ready(emulator)


async def test_invalid_spec_is_reported_not_retried(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    # As if the cluster skipped the CRD's validation: the operator checks again.
    body = engine({"autoscaling": {"minReplicas": 5, "maxReplicas": 3}})
    emulator.create(db_secret())
    emulator.create(body)
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Failed")
    ready_cond = condition(emulator, "Ready")
    assert ready_cond["reason"] == "InvalidSpec"
    assert "spec.autoscaling" in ready_cond["message"]
    assert emulator.get("deployments", "default", "prod") is None
    mark = await emulator.quiet()
    await asyncio.sleep(2)
    assert emulator.writes(since=mark) == []


async def test_a_failed_first_install_says_how_to_retry_and_can_be_retried(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.jobs.by_prefix["prod-migrate-"] = JobOutcome.fail(message="alembic: no database")
    emulator.create(db_secret())
    emulator.create(engine())
    await emulator.wait_for(lambda: status(emulator)["upgrade"]["step"] == "Failed")
    degraded = condition(emulator, "Degraded")
    assert degraded["status"] == "True" and "alembic: no database" in degraded["message"]
    assert "retry-upgrade" in degraded["message"] and "back to None" not in degraded["message"]
    # The resyncs go on (a crashing handler would wait 60 s): the retry annotation is seen.
    await asyncio.sleep(1.5)
    del emulator.jobs.by_prefix["prod-migrate-"]
    emulator.patch(
        ENGINES,
        "default",
        "prod",
        {"metadata": {"annotations": {"vulcan-engine.com/retry-upgrade": "1"}}},
    )
    await ready(emulator)


def slow_job_creates(raw: Any, record: RequestRecord) -> bool:
    return from_operator(raw, record) and (record.verb, record.resource) == ("create", "jobs")


@pytest.mark.emulator(
    cls=FaultyEmulator,
    faults=FaultPolicy(rate=1.0, kinds={Fault.SLOW}, delay=(2.5, 2.5), scope=slow_job_creates),
)
async def test_overlapping_reconciles_run_one_migration(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    """The create handler is still creating the migration Job (a slow API) when the resync
    timer fires: reconciles of one engine take turns, so there is one migration Job."""
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    await asyncio.sleep(1.5)  # more resyncs after the slow install

    creates = [r for r in emulator.log if (r.verb, r.resource) == ("create", "jobs")]
    created = [r.body["metadata"]["name"] for r in creates if r.status == 201]
    assert len(created) == 1, created
    assert [h["outcome"] for h in status(emulator)["history"]] == ["Succeeded"]


async def test_a_child_name_taken_by_a_users_object_is_refused_and_the_rest_is_made(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "prod", "namespace": "default", "labels": {"team": "x"}},
        "spec": {"ports": [{"name": "theirs", "port": 9999}], "selector": {"app": "theirs"}},
    }
    users = emulator.create(theirs)
    emulator.create(db_secret())
    emulator.create(engine())

    def refused() -> bool:
        degraded = next(
            (c for c in status(emulator).get("conditions") or [] if c["type"] == "Degraded"), {}
        )
        return degraded.get("reason") == "ChildConflict"

    await emulator.wait_for(
        lambda: emulator.get(ENGINES, "default", "prod").get("status") and refused()
    )
    degraded = condition(emulator, "Degraded")
    assert degraded["status"] == "True"
    assert (
        "Service prod already exists and does not belong to this VulcanEngine"
        in degraded["message"]
    )
    assert status(emulator)["phase"] == "Degraded"
    for resource, name in CORE - {("services", "prod")}:
        assert emulator.get(resource, "default", name) is not None, (resource, name)
    await emulator.wait_for(
        lambda: any(
            e.get("reason") == "ChildConflict" and e.get("type") == "Warning"
            for e in emulator.list("events", "default")
            if (e.get("involvedObject") or {}).get("name") == "prod"
        )
    )
    await asyncio.sleep(2)  # resyncs: the user's Service stays as it was, one Event in all
    now = emulator.get("services", "default", "prod")
    assert now["metadata"]["resourceVersion"] == users["metadata"]["resourceVersion"]
    assert now["spec"] == users["spec"] and now["metadata"] == users["metadata"]
    conflicts = [
        e for e in emulator.list("events", "default") if e.get("reason") == "ChildConflict"
    ]
    assert len(conflicts) == 1 and sum(e.get("count", 1) for e in conflicts) == 1

    emulator.delete("services", "default", "prod")  # the user gives the name up: ours is made
    await emulator.wait_for(
        lambda: (
            (emulator.get("services", "default", "prod") or {})
            .get("metadata", {})
            .get("ownerReferences")
        )
    )
    await emulator.wait_for(lambda: condition(emulator, "Degraded")["status"] == "False")


async def test_a_lagging_watch_never_puts_the_status_back(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    """The engines' watch 1.5 s behind the writes, resyncs every second: a resync that starts
    from the engine as the watch last showed it must not undo what the reconcile before it
    wrote (the count to wake up to once became 0, and the engine woke to no pods)."""
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    replicas = emulator.get("deployments", "default", "prod")["spec"]["replicas"]
    emulator.watch_lag[ENGINES] = 1.5
    emulator.patch(ENGINES, "default", "prod", {"spec": {"hibernate": True}})
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Hibernated")
    await asyncio.sleep(3.5)  # resyncs while the watch is behind
    assert status(emulator)["hibernatedReplicas"] == replicas
    emulator.patch(ENGINES, "default", "prod", {"spec": {"hibernate": False}})
    await emulator.wait_for(
        lambda: emulator.get("deployments", "default", "prod")["spec"]["replicas"] == replicas
    )
    await emulator.wait_for(lambda: status(emulator)["phase"] == "Ready")
    mark = await emulator.quiet(1.5)
    await asyncio.sleep(2)
    assert emulator.get("deployments", "default", "prod")["spec"]["replicas"] == replicas
    assert emulator.writes(since=mark, events=False) == []


async def test_status_writes_hold_to_the_spec_read_not_to_kopfs_annotations(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    """Each status write is refused if the spec moved since the reconcile read it (a test of
    the generation), and only then: Kopf's own annotations, patched after each change
    handler, once made the next reconcile's write fail (409) and run again."""
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    emulator.patch(ENGINES, "default", "prod", {"spec": {"replicas": 2}})
    await emulator.wait_for(lambda: status(emulator)["observedGeneration"] == 2)
    await emulator.quiet()
    writes = [
        r
        for r in emulator.requests()
        if r.is_write and r.path.endswith("/vulcanengines/prod/status")
    ]
    assert len(writes) >= 3 and all(r.status == 200 for r in writes), [
        (r.status, r.body) for r in writes
    ]
    first, *later = (r.body for r in writes)
    assert first["metadata"]["resourceVersion"]  # the first status: over the version read
    tests = [ops[0] for ops in later]
    assert {t["path"] for t in tests} == {"/metadata/generation"}, later
    assert {t["value"] for t in tests} == {1, 2}


def written_phase(body: Any) -> str | None:
    """The phase a status write sets: a JSON patch's op on /status/phase, or a merge patch's."""
    if isinstance(body, list):
        return next((op.get("value") for op in body if op.get("path") == "/status/phase"), None)
    return ((body or {}).get("status") or {}).get("phase")


def late_engine_status_writes(raw: Any, record: RequestRecord) -> bool:
    return from_operator(raw, record) and (record.resource, record.subresource) == (
        "vulcanengines",
        "status",
    )


@pytest.mark.emulator(
    cls=FaultyEmulator,
    faults=FaultPolicy(
        rate=1.0, kinds={Fault.LATE}, delay=(1.0, 1.0), scope=late_engine_status_writes
    ),
)
async def test_an_engine_in_flight_is_polled_without_kopf_patching_it(
    emulator: Emulator, run_operator: RunOperator
) -> None:
    """While a rollout is in flight the engine is looked at every few seconds until Ready (no
    child event says a rollout ended). A Kopf timer filtered on the status did that, and Kopf
    patched a `touch-dummy` annotation onto the engine when the filter turned false while the
    timer's reconcile still ran, waiting for the answer to the very status write that ended
    the flight (here each answer trails its watch event by a second, as on a busy server;
    Kopf polls such a timer's exit every second instead of every minute)."""
    from vulcan_operator.main import make_registry

    registry = make_registry()

    @kopf.on.startup(registry=registry)
    def poll_exits_often(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.background.cancellation_polling = 1

    await run_operator(registry)
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    for generation, value in ((2, "a"), (3, "b")):  # a new pod template: a rollout each
        env = [{"name": "VULCAN_TEST", "value": value}]
        emulator.patch(ENGINES, "default", "prod", {"spec": {"env": env}})
        await emulator.wait_for(lambda g=generation: status(emulator)["observedGeneration"] == g)
        await ready(emulator)
    await emulator.quiet(2 * Settings.from_env().poll_seconds)
    writes = [r for r in emulator.requests() if r.is_write and "/vulcanengines/prod" in r.path]
    phases = [written_phase(r.body) for r in writes if r.subresource == "status"]
    assert phases.count("Progressing") >= 2, phases  # in flight, twice
    patches = [r.body for r in writes if not r.subresource and r.method == "PATCH"]
    assert patches and not [p for p in patches if "touch-dummy" in json.dumps(p)], patches


def ready_gauge() -> float | None:
    from vulcan_operator.metrics import REGISTRY

    return REGISTRY.get_sample_value(
        "vulcan_engine_ready", {"namespace": "default", "engine": "prod"}
    )


async def test_no_finalizer_and_a_deleted_engine_is_forgotten(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    """Kopf's timers would put a finalizer on every engine (a write when it appears, another
    when it is deleted); none is needed: the children go by their owner references, and what
    the operator keeps of an engine (its gauges) goes on its DELETED event."""
    emulator.create(db_secret())
    emulator.create(engine())
    await ready(emulator)
    await emulator.wait_for(lambda: ready_gauge() == 1.0)
    await emulator.quiet()
    assert not emulator.get(ENGINES, "default", "prod")["metadata"].get("finalizers")  # type: ignore[index]
    emulator.delete(ENGINES, "default", "prod")
    assert emulator.get(ENGINES, "default", "prod") is None  # gone at once
    await emulator.wait_for(lambda: ready_gauge() is None)
    await emulator.wait_for(lambda: emulator.get("deployments", "default", "prod") is None)


async def test_the_finalizer_an_older_version_put_on_an_engine_is_taken_off(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret())
    emulator.create(engine(finalizers=["vulcan-engine.com/finalizer"]))
    await ready(emulator)
    await emulator.wait_for(
        lambda: not emulator.get(ENGINES, "default", "prod")["metadata"].get("finalizers")  # type: ignore[index]
    )
