"""A VulcanBackup whose Job's name is taken (`reconcile.backup`), pure: an in-memory Api."""

from __future__ import annotations

import json
from typing import Any

from tests.support.fake_api import FakeApi
from vulcan_operator import API_VERSION, names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.jobs import build_backup_job
from vulcan_operator.builders.common import Owner
from vulcan_operator.config import Settings
from vulcan_operator.reconcile import backup
from vulcan_operator.status import Outcome

ENGINE, NAMESPACE, BACKUP = "prod", "vulcan", "nightly"
ENGINE_SPEC = {"version": "2.0.0", "image": "vulcan-engine"}


def cluster() -> FakeApi:
    return FakeApi(
        {
            "apiVersion": API_VERSION,
            "kind": "VulcanEngine",
            "metadata": {"name": ENGINE, "namespace": NAMESPACE, "generation": 1},
            "spec": ENGINE_SPEC,
            "status": {"observedGeneration": 1},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "VulcanBackup",
            "metadata": {"name": BACKUP, "namespace": NAMESPACE, "generation": 1},
            "spec": {"engineRef": {"name": ENGINE}},
        },
    )


def body(api: FakeApi) -> dict[str, Any]:
    found = api.find(API_VERSION, "VulcanBackup", NAMESPACE, BACKUP)
    assert found is not None
    return found


async def reconcile(api: FakeApi) -> Outcome:
    """One reconcile; the status kept as the handler would write it."""
    outcome = await backup.reconcile(api, json.loads(json.dumps(body(api))), Settings())  # type: ignore[arg-type]
    body(api)["status"] = outcome.status
    return outcome


def job_name(api: FakeApi) -> str:
    meta = body(api)["metadata"]
    owner = Owner(kind="VulcanBackup", name=BACKUP, namespace=NAMESPACE, uid=meta["uid"])
    spec = VulcanEngineSpec.model_validate(ENGINE_SPEC)
    return str(build_backup_job(owner, ENGINE, spec, Settings())[-1]["metadata"]["name"])


async def test_a_job_name_taken_by_a_users_job_keeps_the_backup_pending_and_the_job_untouched() -> (
    None
):
    api = cluster()
    name = job_name(api)
    theirs = api.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": names.selector(ENGINE, names.COMPONENT_BACKUP),  # even alike
            },
            "spec": {"someone": "else"},
        }
    )
    outcome = await reconcile(api)
    status = outcome.status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Pending" and "jobName" not in status
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert ready["message"].startswith(f"Job {name} already exists and does not belong")
    assert [(k, r) for k, r, _ in outcome.events] == [("Warning", "NameConflict")]
    again = await reconcile(api)
    assert again.events == [] and again.status["phase"] == "Pending"  # told once
    assert api.find("batch/v1", "Job", NAMESPACE, name) == theirs  # never patched nor followed
    assert not any(verb in ("patch", "delete") for verb, _, _ in api.calls)
    api.objects.pop(("batch/v1", "Job", NAMESPACE, name))
    started = await reconcile(api)
    assert (started.status["phase"], started.status["jobName"]) == ("Running", name)
    ours = api.find("batch/v1", "Job", NAMESPACE, name)
    assert ours is not None and ours["metadata"]["ownerReferences"][0]["name"] == BACKUP
