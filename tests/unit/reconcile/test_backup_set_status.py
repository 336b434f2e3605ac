"""A VulcanBackup of an engine on a newer server and with volumes (issue 15, defects 2 and 3),
pure: its Job runs the client of the server's major (status.database.serverVersion), and its
status records the backup set's parts from the pod's result line."""

from __future__ import annotations

import json

from tests.support.fake_api import FakeApi
from tests.unit.reconcile.test_backup_steps import BACKUP, ENGINE, NAMESPACE, body, reconcile
from vulcan_operator import API_VERSION

PART = {"file": "vulcan_20260101_020000.data.tar.gz", "sizeBytes": 10, "checksum": "d" * 64}


async def test_the_backup_job_follows_the_server_and_the_status_keeps_the_parts() -> None:
    api = FakeApi(
        {
            "apiVersion": API_VERSION,
            "kind": "VulcanEngine",
            "metadata": {"name": ENGINE, "namespace": NAMESPACE, "generation": 1},
            "spec": {"version": "2.0.0", "persistence": {"data": {"enabled": True}}},
            "status": {
                "observedGeneration": 1,
                "database": {"serverVersion": "18.1", "maxConnections": 100},
            },
        },
        {
            "apiVersion": API_VERSION,
            "kind": "VulcanBackup",
            "metadata": {"name": BACKUP, "namespace": NAMESPACE, "generation": 1},
            "spec": {"engineRef": {"name": ENGINE}},
        },
    )
    await reconcile(api)
    (job,) = api.of_kind("Job")
    pod = job["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["containers"]] == ["postgres:18-alpine"]
    assert {v["name"] for v in pod["volumes"]} >= {"app-data"}

    line = {
        "kind": "vulcan-backup",
        "outcome": "Succeeded",
        "location": "pvc://prod-backups/vulcan/prod/on-demand/vulcan_20260101_020000.dump",
        "sizeBytes": 5,
        "checksum": "c" * 64,
        "parts": {"data": PART, "bogus": PART},
    }
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": NAMESPACE,
                "labels": {"job-name": job["metadata"]["name"]},
            },
            "status": {
                "containerStatuses": [
                    {
                        "name": "backup",
                        "state": {"terminated": {"exitCode": 0, "message": json.dumps(line)}},
                    }
                ]
            },
        }
    )
    await reconcile(api)

    status = body(api)["status"]
    assert status["phase"] == "Succeeded"
    assert status["parts"] == {"data": PART}
