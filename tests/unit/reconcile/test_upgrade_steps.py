"""Every transition of the upgrade step machine (`reconcile.upgrade`), pure: an in-memory Api,
Jobs and Deployments whose status the test sets, and a revision reader the test controls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.fake_api import FakeApi
from vulcan_operator import API_VERSION
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.enginedb import DatabaseUnavailable, InvalidDatabaseURL
from vulcan_operator.reconcile import upgrade

ENGINE, NAMESPACE = "prod", "vulcan"
OLD, NEW = "1.0.0", "2.0.0"


@dataclass
class Database:
    """What the revision reader answers: a revision, or an error to raise."""

    revision: str | None = "r1"
    error: Exception | None = None
    reads: int = 0

    async def read(self) -> str | None:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.revision


@dataclass
class Flow:
    """One engine's upgrade state between reconciles, as the engine reconcile keeps it."""

    api: FakeApi = field(default_factory=FakeApi)
    db: Database = field(default_factory=Database)
    status: dict[str, Any] = field(default_factory=lambda: {"currentVersion": OLD})
    upgrade: dict[str, Any] = field(default_factory=dict)  # spec.upgrade
    version: str = NEW
    retry: str = ""
    deployment: dict[str, Any] | None = None

    def context(self) -> upgrade.Context:
        spec = VulcanEngineSpec.model_validate(
            {"version": self.version, "image": "vulcan-engine", "upgrade": self.upgrade}
        )
        inputs = EngineInputs(
            name=ENGINE, namespace=NAMESPACE, uid="engine-uid", spec=spec, run_version=self.version
        )
        reader: Callable[[], Awaitable[str | None]] = self.db.read
        return upgrade.Context(
            api=self.api,  # type: ignore[arg-type]
            inputs=inputs,
            status=self.status,
            retry=self.retry,
            generation=3,
            deployment=self.deployment,
            read_revision=reader,
        )

    async def step(self, *, hold: bool = False) -> upgrade.Step:
        """One reconcile: advance, then keep what the engine reconcile would write."""
        result = await upgrade.advance(self.context(), hold=hold)
        self.status = {**self.status, **result.fields, "upgrade": result.upgrade}
        self.status = {k: v for k, v in self.status.items() if v is not None}
        return result

    # the cluster
    def job(self, purpose: str) -> dict[str, Any]:
        """The one unfinished Job of `purpose` (migrate, downgrade)."""
        (job,) = [
            j
            for j in self.api.of_kind("Job")
            if j["spec"]["template"]["spec"]["containers"][0]["name"] == purpose
            and "status" not in j
        ]
        return job

    def finish(self, purpose: str, ok: bool, message: str = "exit code 1") -> str:
        """The newest unfinished Job of `purpose` ends; returns its name."""
        job = self.job(purpose)
        kind = "Complete" if ok else "Failed"
        job["status"] = {"conditions": [{"type": kind, "status": "True", "message": message}]}
        return str(job["metadata"]["name"])

    def rollout(self, version: str, state: str = "Done") -> None:
        """The Deployment runs `version`: rolled out, still rolling, or past its deadline."""
        ready = 3 if state == "Done" else 1
        conditions = (
            [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]
            if state == "Failed"
            else []
        )
        self.deployment = {
            "metadata": {"name": ENGINE, "generation": 2},
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [{"image": f"vulcan-engine:{version}"}]}},
            },
            "status": {
                "observedGeneration": 2,
                "updatedReplicas": ready,
                "availableReplicas": ready,
                "replicas": 3,
                "conditions": conditions,
            },
        }

    def child(self, kind: str) -> dict[str, Any]:
        (obj,) = self.api.of_kind(kind)
        return obj

    def set_phase(self, kind: str, phase: str) -> None:
        self.child(kind)["status"] = {"phase": phase}


def reasons(step: upgrade.Step) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in step.conditions}


def events(step: upgrade.Step) -> list[tuple[str, str]]:
    return [(kind, reason) for kind, reason, _ in step.events]


async def migrated_flow(**upgrade_spec: Any) -> Flow:
    """An upgrade OLD → NEW at step Rollout: backup taken, revision r1 → r2."""
    flow = Flow(upgrade=upgrade_spec)
    await flow.step()  # Backup: the VulcanBackup is made
    flow.set_phase("VulcanBackup", "Succeeded")
    await flow.step()  # → Migrate: revision before recorded
    await flow.step()  # the migration Job runs
    flow.db.revision = "r2"
    flow.finish("migrate", ok=True)
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Rollout", step
    return flow


# --- no flow ---------------------------------------------------------------------------------
async def test_the_running_version_needs_no_flow() -> None:
    flow = Flow(version=OLD)
    step = await flow.step()
    assert (step.run_version, step.upgrade, step.fields) == (OLD, None, {"failedVersion": None})
    assert not step.conditions and not step.events


async def test_a_version_change_waits_while_a_restore_holds_the_engine() -> None:
    flow = Flow()
    step = await flow.step(hold=True)
    assert step.run_version == OLD and step.upgrade is None
    assert reasons(step) == {"Progressing": ("False", "WaitingForRestore")}
    assert not flow.api.calls


@pytest.mark.parametrize(
    ("current", "history", "backup", "first"),
    [
        (None, [], True, "Install"),
        (OLD, [], True, "Backup"),
        (OLD, [], False, "Migrate"),
        (
            OLD,
            [{"version": NEW, "outcome": "Succeeded", "databaseRevision": "r2"}],
            True,
            "Downgrade",
        ),
    ],
)
def test_a_new_flow_starts_at_its_first_step(
    current: str | None, history: list[dict[str, Any]], backup: bool, first: str
) -> None:
    flow = Flow(status={"currentVersion": current, "history": history})
    flow.upgrade = {"preUpgradeBackup": backup}
    up = upgrade.start(flow.context(), current, NEW)
    assert up["step"] == first
    assert up["kind"] == {"Install": "install", "Downgrade": "rollback"}.get(first, "upgrade")
    assert (up["from"], up["to"], up["image"]) == (current, NEW, f"vulcan-engine:{NEW}")


async def test_an_unknown_step_is_an_error() -> None:
    flow = Flow()
    flow.status["upgrade"] = {"step": "Teleport", "to": NEW, "from": OLD, "kind": "upgrade"}
    with pytest.raises(ValueError, match="Teleport"):
        await flow.step()


# --- Install ---------------------------------------------------------------------------------
async def test_install_runs_the_migration_with_the_rollout_and_succeeds() -> None:
    flow = Flow(status={})
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Install" and step.phase is None
    assert reasons(step) == {"Progressing": ("True", "Install")}
    assert step.conditions[0]["message"] == f"installing {NEW}: migration running"
    flow.finish("migrate", ok=True)
    step = await flow.step()  # the Job is done, the Deployment is not yet
    assert flow.status["upgrade"]["step"] == "Install"
    assert "migration succeeded" in step.conditions[0]["message"]
    flow.rollout(NEW)
    flow.db.revision = "r1"
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Succeeded"
    assert flow.status["upgrade"]["revisionAfter"] == "r1"
    assert step.fields["currentVersion"] == NEW and step.fields["databaseRevision"] == "r1"
    assert events(step) == [("Normal", "UpgradeSucceeded")]
    assert flow.status["history"][-1]["outcome"] == "Succeeded"
    assert len(flow.api.of_kind("Job")) == 1  # found again every pass, never a second one


async def test_install_fails_with_its_migration() -> None:
    flow = Flow(status={})
    await flow.step()
    flow.finish("migrate", ok=False, message="exit code 2")
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"]) == ("Failed", "Install")
    assert "migration failed" in up["reason"]
    assert events(step) == [("Warning", "UpgradeFailed")]
    assert reasons(step)["Degraded"] == ("True", "UpgradeFailed")
    assert step.fields["failedVersion"] == NEW


async def test_install_holds_on_a_malformed_database_url() -> None:
    flow = Flow(status={})
    await flow.step()
    flow.finish("migrate", ok=True)
    flow.rollout(NEW)
    flow.db.error = InvalidDatabaseURL("the DATABASE_URL is not a URL")
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Install"
    assert reasons(step) == {
        "Degraded": ("True", "RevisionUnknown"),
        "Progressing": ("False", "RevisionUnknown"),
    }


async def test_install_records_an_unreadable_revision_as_unknown() -> None:
    flow = Flow(status={})
    await flow.step()
    flow.finish("migrate", ok=True)
    flow.rollout(NEW)
    flow.db.error = DatabaseUnavailable("connection refused")
    await flow.step()
    assert flow.status["upgrade"]["step"] == "Succeeded"
    assert flow.status["upgrade"]["revisionAfter"] is None
    assert "databaseRevision" not in flow.status["history"][-1]  # a rollback to it is refused


# --- Backup ----------------------------------------------------------------------------------
async def test_backup_makes_one_vulcan_backup_and_waits_for_it() -> None:
    flow = Flow()
    step = await flow.step()
    backup = flow.child("VulcanBackup")
    assert backup["apiVersion"] == API_VERSION
    assert backup["spec"] == {"engineRef": {"name": ENGINE}}
    assert flow.status["upgrade"]["backup"] == backup["metadata"]["name"]
    assert (step.run_version, step.phase) == (OLD, "Upgrading")
    assert "is Pending" in step.conditions[0]["message"]
    flow.set_phase("VulcanBackup", "Running")
    step = await flow.step()
    assert "is Running" in step.conditions[0]["message"]
    assert len(flow.api.of_kind("VulcanBackup")) == 1


async def test_a_failed_backup_fails_the_upgrade_before_anything_changed() -> None:
    flow = Flow()
    await flow.step()
    flow.set_phase("VulcanBackup", "Failed")
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"], up["running"]) == ("Failed", "Backup", OLD)
    assert "nothing was changed" in up["reason"]
    assert step.run_version == OLD
    assert not flow.api.of_kind("Job")


async def test_a_finished_backup_hands_over_to_migrate_in_the_same_pass() -> None:
    flow = Flow()
    await flow.step()
    flow.set_phase("VulcanBackup", "Succeeded")
    step = await flow.step()
    up = flow.status["upgrade"]
    assert up["step"] == "Migrate"
    assert (up["revisionBefore"], up["revisionRecorded"]) == ("r1", True)
    assert step.run_version == OLD
    assert not flow.api.of_kind("Job")  # the revision is persisted before the migration runs


# --- Migrate ---------------------------------------------------------------------------------
async def migrating(**upgrade_spec: Any) -> Flow:
    """At step Migrate, the revision before (r1) recorded, the migration Job running."""
    flow = Flow(upgrade={"preUpgradeBackup": False, **upgrade_spec})
    await flow.step()  # revision before
    step = await flow.step()  # the Job
    assert "migrating the database" in step.conditions[0]["message"]
    assert step.run_version == OLD
    return flow


async def test_migrate_holds_while_the_revision_before_cannot_be_read() -> None:
    flow = Flow(upgrade={"preUpgradeBackup": False})
    flow.db.error = DatabaseUnavailable("connection refused")
    step = await flow.step()
    assert reasons(step)["Degraded"] == ("True", "RevisionUnknown")
    assert events(step) == [("Warning", "RevisionUnknown")]
    again = await flow.step()
    assert not again.events  # the same problem is told once
    assert flow.status["upgrade"]["step"] == "Migrate" and not flow.api.of_kind("Job")
    flow.db.error = None
    step = await flow.step()
    assert "revisionUnknown" not in flow.status["upgrade"]
    assert flow.status["upgrade"]["revisionBefore"] == "r1"


async def test_a_migration_that_succeeds_moves_on_to_rollout() -> None:
    flow = await migrating()
    flow.db.revision = "r2"
    flow.finish("migrate", ok=True)
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["revisionAfter"]) == ("Rollout", "r2")
    assert step.run_version == NEW
    assert events(step) == [("Normal", "Migrated")]


async def test_a_migration_whose_result_cannot_be_judged_holds() -> None:
    flow = await migrating()
    flow.finish("migrate", ok=True)
    flow.db.error = DatabaseUnavailable("connection refused")
    step = await flow.step()
    assert reasons(step)["Degraded"] == ("True", "RevisionUnknown")
    assert "after the migration Job Succeeded" in step.conditions[0]["message"]
    assert flow.status["upgrade"]["step"] == "Migrate"


async def test_a_failed_migration_that_changed_nothing_fails_on_the_old_version() -> None:
    flow = await migrating()
    flow.finish("migrate", ok=False)
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"], up["running"]) == ("Failed", "Migrate", OLD)
    assert f"still at r1, {OLD} keeps serving" in up["reason"]
    assert step.run_version == OLD


async def test_a_failed_migration_without_any_revision_holds() -> None:
    flow = Flow(upgrade={"preUpgradeBackup": False}, db=Database(revision=None))
    await flow.step()
    await flow.step()
    flow.finish("migrate", ok=False)
    step = await flow.step()
    assert reasons(step)["Degraded"] == ("True", "RevisionUnknown")
    assert upgrade.NO_REVISION in step.conditions[0]["message"]


async def test_a_failed_migration_that_moved_the_revision_is_reverted() -> None:
    flow = await migrating()
    flow.db.revision = "r2"
    flow.finish("migrate", ok=False)
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["revisionAfter"]) == ("Revert", "r2")
    assert "moved the database from revision r1 to r2" in up["reason"]
    assert (step.phase, step.run_version) == ("RollingBack", NEW)


async def test_a_failed_migration_that_moved_the_revision_without_autorollback_fails() -> None:
    flow = await migrating(autoRollback=False)
    flow.db.revision = "r2"
    flow.finish("migrate", ok=False)
    await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"]) == ("Failed", "Migrate")
    assert "partly migrated" in up["reason"]


# --- Rollout ---------------------------------------------------------------------------------
async def test_a_rollout_that_completes_succeeds() -> None:
    flow = await migrated_flow()
    flow.rollout(NEW, "Running")
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Rollout"
    assert f"rolling out {NEW} (since" in step.conditions[0]["message"]
    flow.rollout(NEW)
    step = await flow.step()
    up = flow.status["upgrade"]
    assert up["step"] == "Succeeded" and step.fields["currentVersion"] == NEW
    assert step.fields["databaseRevision"] == "r2"
    assert flow.status["history"][-1]["backup"] == up["backup"]


async def test_a_flow_ended_again_from_an_older_status_is_recorded_once() -> None:
    """A reconcile that read the status from before the flow's end (its step put back by a
    stale write) ends the same flow again: still one history entry for it."""
    flow = await migrated_flow()
    flow.rollout(NEW)
    before = dict(flow.status)
    await flow.step()
    ended = flow.status["history"]
    flow.status = {**flow.status, "upgrade": before["upgrade"]}  # the step put back
    await flow.step()
    assert len(flow.status["history"]) == len(ended)
    assert flow.status["history"][-1]["startedAt"] == ended[-1]["startedAt"]


async def test_a_stalled_rollout_without_autorollback_fails_on_the_new_version() -> None:
    flow = await migrated_flow(autoRollback=False)
    flow.rollout(NEW, "Failed")
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"], up["running"]) == ("Failed", "Rollout", NEW)
    assert (
        "kubectl patch vulcanengine"
        in {c["type"]: c for c in step.conditions}["Degraded"]["message"]
    )


async def test_a_stalled_rollout_is_reverted_by_a_downgrade_job() -> None:
    flow = await migrated_flow()
    flow.rollout(NEW, "Failed")
    step = await flow.step()  # Rollout → Revert in one pass: the revision moved, downgrade
    up = flow.status["upgrade"]
    assert (up["step"], up["revertStarted"]) == ("Revert", True)
    assert step.phase == "RollingBack"
    job = flow.job("downgrade")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "r1"
    step = await flow.step()
    assert "bringing the schema back to r1" in step.conditions[0]["message"]
    flow.finish("downgrade", ok=True)
    flow.db.revision = "r1"
    step = await flow.step()
    assert flow.status["upgrade"]["revertDone"] is True
    assert "checking it is at r1" in step.conditions[0]["message"]
    step = await flow.step()  # the revision is r1 again: the old image goes back
    assert flow.status["upgrade"]["step"] == "RevertRollout"
    assert step.run_version == OLD
    step = await flow.step()
    assert f"rolling back to {OLD}" in step.conditions[0]["message"]
    flow.rollout(OLD)
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["running"]) == ("RolledBack", OLD)
    assert events(step) == [("Warning", "UpgradeRolledBack")]
    assert step.fields["failedVersion"] == NEW
    assert reasons(step)["Degraded"] == ("True", "UpgradeRolledBack")


async def test_a_failed_downgrade_fails_the_revert() -> None:
    flow = await migrated_flow()
    flow.rollout(NEW, "Failed")
    await flow.step()
    flow.finish("downgrade", ok=False, message="exit code 3")
    await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"]) == ("Failed", "Revert")
    assert "bringing the schema back failed: exit code 3" in up["reason"]


async def test_a_revert_that_left_another_revision_fails() -> None:
    flow = await migrated_flow()
    flow.rollout(NEW, "Failed")
    await flow.step()
    flow.finish("downgrade", ok=True)
    flow.db.revision = "r0"
    await flow.step()  # revertDone
    await flow.step()
    up = flow.status["upgrade"]
    assert up["step"] == "Failed"
    assert "at revision r0 after bringing it back, not r1" in up["reason"]


async def test_a_revert_holds_while_the_revision_cannot_be_read() -> None:
    flow = await migrated_flow()
    flow.rollout(NEW, "Failed")
    flow.db.error = DatabaseUnavailable("connection refused")
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Revert"
    assert reasons(step)["Degraded"] == ("True", "RevisionUnknown")
    assert len(flow.api.of_kind("Job")) == 1  # the migration only


async def test_a_revert_whose_schema_is_already_back_rolls_back_at_once() -> None:
    flow = await migrated_flow()
    flow.rollout(NEW, "Failed")
    flow.db.revision = "r1"
    await flow.step()
    assert flow.status["upgrade"]["step"] == "RevertRollout"
    assert len(flow.api.of_kind("Job")) == 1  # the migration only: no downgrade


async def test_a_revert_without_the_revision_before_fails_rather_than_guess() -> None:
    flow = Flow(upgrade={"preUpgradeBackup": False}, db=Database(revision=None))
    await flow.step()
    await flow.step()
    flow.db.revision = "r2"
    flow.finish("migrate", ok=True)
    await flow.step()
    flow.rollout(NEW, "Failed")
    await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"]) == ("Failed", "Revert")
    assert "cannot be downgraded safely" in up["reason"]


async def test_a_revert_with_neither_revision_holds() -> None:
    flow = Flow(upgrade={"preUpgradeBackup": False}, db=Database(revision=None))
    await flow.step()
    await flow.step()
    flow.finish("migrate", ok=True)
    await flow.step()
    flow.rollout(NEW, "Failed")
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Revert"
    assert upgrade.NO_REVISION in step.conditions[0]["message"]


async def test_a_revert_by_restore_goes_through_a_vulcan_restore() -> None:
    flow = await migrated_flow(rollbackStrategy="restore")
    flow.rollout(NEW, "Failed")
    step = await flow.step()
    restore = flow.child("VulcanRestore")
    backup = flow.child("VulcanBackup")
    assert restore["spec"] == {
        "engineRef": {"name": ENGINE},
        "backupRef": {"name": backup["metadata"]["name"]},
        "migrate": False,
    }
    assert flow.status["upgrade"]["restore"] == restore["metadata"]["name"]
    assert "bringing the schema back" in step.conditions[0]["message"]
    flow.set_phase("VulcanRestore", "Failed")
    await flow.step()
    up = flow.status["upgrade"]
    assert up["step"] == "Failed" and "restore" in up["reason"]


async def test_a_revert_by_restore_that_succeeds_rolls_back() -> None:
    flow = await migrated_flow(rollbackStrategy="restore")
    flow.rollout(NEW, "Failed")
    await flow.step()
    flow.set_phase("VulcanRestore", "Succeeded")
    flow.db.revision = "r1"
    await flow.step()
    assert flow.status["upgrade"]["revertDone"] is True
    await flow.step()
    assert flow.status["upgrade"]["step"] == "RevertRollout"


# --- Downgrade (a rollback to a version of the history) --------------------------------------
def rolled_back_to(revision: str | None) -> Flow:
    """The engine runs NEW (r2); spec.version goes back to OLD, which ran with `revision`."""
    history = [{"version": OLD, "outcome": "Succeeded", "startedAt": "t0", "finishedAt": "t1"}]
    if revision is not None:
        history[0]["databaseRevision"] = revision
    return Flow(
        status={"currentVersion": NEW, "history": history},
        version=OLD,
        db=Database(revision="r2"),
    )


async def test_a_rollback_downgrades_then_rolls_out() -> None:
    flow = rolled_back_to("r1")
    step = await flow.step()
    up = flow.status["upgrade"]
    assert (up["kind"], up["step"], up["revisionBefore"]) == ("rollback", "Downgrade", "r2")
    assert "downgrading the database to r1" in step.conditions[0]["message"]
    assert step.run_version == NEW
    flow.finish("downgrade", ok=True)
    flow.db.revision = "r1"
    flow.rollout(OLD, "Running")
    step = await flow.step()  # Downgrade → Rollout in one pass
    assert (flow.status["upgrade"]["step"], step.run_version) == ("Rollout", OLD)
    flow.rollout(OLD)
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Succeeded"
    assert step.fields["currentVersion"] == OLD and step.fields["databaseRevision"] == "r1"


async def test_a_rollback_to_an_unrecorded_revision_is_refused() -> None:
    flow = rolled_back_to(None)
    step = await flow.step()
    up = flow.status["upgrade"]
    assert up["step"] == "Refused" and "is not recorded" in up["reason"]
    assert reasons(step)["Degraded"] == ("True", "UpgradeRefused")
    assert events(step) == [("Warning", "UpgradeRefused")]
    assert not flow.api.of_kind("Job")


async def test_a_failed_downgrade_fails_the_rollback() -> None:
    flow = rolled_back_to("r1")
    await flow.step()
    flow.finish("downgrade", ok=False)
    await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["failedStep"], up["running"]) == ("Failed", "Downgrade", NEW)


async def test_a_rollback_holds_while_the_revision_cannot_be_read() -> None:
    flow = rolled_back_to("r1")
    flow.db.error = DatabaseUnavailable("connection refused")
    step = await flow.step()
    assert flow.status["upgrade"]["step"] == "Downgrade"
    assert reasons(step)["Degraded"] == ("True", "RevisionUnknown")


# --- a flow that ended -----------------------------------------------------------------------
async def test_a_failed_version_is_not_tried_again_until_the_retry_annotation_moves() -> None:
    flow = await migrating()
    flow.finish("migrate", ok=False)
    await flow.step()
    jobs = len(flow.api.of_kind("Job"))
    step = await flow.step()  # settled: shown, nothing run
    assert flow.status["upgrade"]["step"] == "Failed" and not step.events
    assert len(flow.api.of_kind("Job")) == jobs
    flow.retry = "1"
    await flow.step()
    up = flow.status["upgrade"]
    assert (up["step"], up["retry"]) == ("Migrate", "1")
    await flow.step()
    assert len(flow.api.of_kind("Job")) == jobs + 1  # a new flow: a new migration Job


# --- name conflicts --------------------------------------------------------------------------
def squat(flow: Flow, kind: str) -> dict[str, Any]:
    """A user's object takes the name of the flow's `kind` object (not ours: never touched)."""
    ours = flow.api.of_kind(kind)[-1]
    theirs = {
        "apiVersion": ours["apiVersion"],
        "kind": kind,
        "metadata": {"name": ours["metadata"]["name"], "namespace": NAMESPACE},
        "spec": {"someone": "else"},
    }
    flow.api.objects.pop(next(k for k, v in flow.api.objects.items() if v is ours))
    return flow.api.put(theirs)


async def conflicted(flow: Flow, theirs: dict[str, Any], at: str) -> None:
    """The flow waits at step `at`, Degraded ChildConflict naming `theirs`, told once; once the
    name is free it goes on."""
    writes = len(flow.api.calls)
    step = await flow.step()
    what = f"{theirs['kind']} {theirs['metadata']['name']}"
    assert reasons(step)["Degraded"] == ("True", "ChildConflict")
    assert reasons(step)["Progressing"] == ("False", "ChildConflict")
    assert step.conditions[0]["message"].startswith(f"{what} already exists")
    assert f"waits at step {at}" in step.conditions[0]["message"]
    assert events(step) == [("Warning", "ChildConflict")]
    assert flow.status["upgrade"]["step"] == at
    flow.status["conditions"] = step.conditions  # as the engine reconcile keeps them
    again = await flow.step()
    assert not again.events and reasons(again)["Degraded"] == ("True", "ChildConflict")
    ref = (theirs["apiVersion"], theirs["kind"], NAMESPACE, theirs["metadata"]["name"])
    assert flow.api.objects[ref] == theirs  # untouched
    assert all(verb == "create" for verb, _, _ in flow.api.calls[writes:])  # refused: 409
    flow.api.objects.pop(ref)
    step = await flow.step()
    assert "Degraded" not in reasons(step)
    assert flow.api.objects[ref].get("metadata", {}).get("labels")  # ours now


async def test_a_migration_job_name_taken_by_another_job_holds_the_flow() -> None:
    flow = await migrating()
    theirs = squat(flow, "Job")
    await conflicted(flow, theirs, "Migrate")
    assert flow.job("migrate")["metadata"]["name"] == theirs["metadata"]["name"]


async def test_a_pre_upgrade_backup_name_taken_by_a_users_backup_holds_the_flow() -> None:
    flow = Flow()
    await flow.step()
    theirs = squat(flow, "VulcanBackup")
    await conflicted(flow, theirs, "Backup")
    assert flow.status["upgrade"]["backup"] == theirs["metadata"]["name"]


async def test_a_revert_restore_name_taken_by_a_users_restore_holds_the_flow() -> None:
    flow = await migrated_flow(rollbackStrategy="restore")
    flow.rollout(NEW, "Failed")
    await flow.step()
    theirs = squat(flow, "VulcanRestore")
    await conflicted(flow, theirs, "Revert")
    assert flow.child("VulcanRestore")["spec"]["migrate"] is False
