"""A VulcanRestore of a backup set (issue 15, defect 3): from a VulcanBackup whose status
recorded the engine's volumes, the restore Job mounts them read-write and is given each
archive with its recorded sha256; the VulcanRestore says which parts it restored. A location
restore (no recorded checksums for the volumes) and a side restore restore the database only.
"""

from __future__ import annotations

from typing import Any

from tests.unit.reconcile.test_restore_steps import (
    LOCATION,
    at_restore,
    cluster,
    engine_object,
    finish,
    job,
    restored,
    vulcan_backup,
)
from vulcan_operator import names

BASE = LOCATION.rsplit("/", 1)[1].removesuffix(".dump")
PARTS = {
    "data": {"file": f"{BASE}.data.tar.gz", "sizeBytes": 10, "checksum": "d" * 64},
    "uploads": {"file": f"{BASE}.uploads.tar.gz", "sizeBytes": 20, "checksum": "e" * 64},
    "redis": {"file": f"{BASE}.redis.rdb", "sizeBytes": 30, "checksum": "f" * 64},
}
PERSISTENT = {"persistence": {"data": {"enabled": True}, "uploads": {"enabled": True}}}


def _env(found: dict[str, Any]) -> dict[str, str]:
    container = found["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


async def test_a_restore_of_a_backup_set_puts_the_volumes_back_and_says_so() -> None:
    api = cluster(engine=engine_object(**PERSISTENT))
    api.put(vulcan_backup(parts=PARTS))
    run = await at_restore(api)
    assert run.status["parts"] == {k: v for k, v in PARTS.items() if k != "redis"}
    found = job(api, names.COMPONENT_RESTORE)
    env = _env(found)
    folder = "/backups/" + LOCATION.split("/", 3)[3].rsplit("/", 1)[0]
    assert env["PART_DATA_ARCHIVE"] == f"{folder}/{BASE}.data.tar.gz"
    assert env["PART_DATA_SHA256"] == "d" * 64 and env["PART_UPLOADS_SHA256"] == "e" * 64
    assert env["PART_DATA_DIR"] == "/vulcan/data"
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]
        for v in found["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims["prod-data"] == {"claimName": "prod-data"}  # read-write: it is put back

    finish(api, found, True, restored(parts=["database", "data", "uploads"]))
    await run.reconcile()

    assert run.status["restoredParts"] == ["database", "data", "uploads"]
    (step,) = [s for s in run.status["steps"] if s["name"] == "Restore"]
    assert "restored: database, data, uploads" in step["message"]


async def test_a_location_restore_and_an_engine_without_volumes_restore_the_database_only() -> None:
    api = cluster(engine=engine_object(**PERSISTENT))
    location = await at_restore(api, backupRef=None, location=LOCATION, checksum="a" * 64)
    assert "parts" not in location.status
    assert not [k for k in _env(job(api, names.COMPONENT_RESTORE)) if k.startswith("PART_")]

    api = cluster()  # the engine has no spec.persistence: the recorded parts stay unused
    api.put(vulcan_backup(parts=PARTS))
    plain = await at_restore(api)
    assert "parts" not in plain.status
    found = job(api, names.COMPONENT_RESTORE)
    finish(api, found, True, restored(parts=["database"]))
    await plain.reconcile()
    assert plain.status["restoredParts"] == ["database"]
