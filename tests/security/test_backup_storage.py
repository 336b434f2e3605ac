"""Attacks on where backups go and where restores read from (issue 12, items 1, 2 and 3), by a
namespace user who may create VulcanBackups and VulcanRestores but may not read the
namespace's Secrets: on the real paths (`vulcan-operator validate` and `render`, the CRDs' CEL
rules as cel-python evaluates them, the builders the reconcilers call, and the real operator on
the emulator).

Each test failed on c37051b (checked by running this file against an export of that commit,
see the report of issue 12): a VulcanBackup could send the engine's dump to any S3 endpoint
(plain http included), bucket and credentials, or make the operator create a 900Ti claim under
the engine's claim name; any location the engine's keys could read was restored; two engines
on one bucket and prefix wrote the same keys and nothing refused them.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.emulator import Emulator
from tests.support.backups import API, BACKUPS, ENGINES, cond
from tests.support.crds import cel_errors  # the CEL evaluation of the unit tests
from tests.support.kopf_runner import OperatorRunner
from vulcan_operator.api.engine import BackupStorage, VulcanEngineSpec
from vulcan_operator.builders import backup as b
from vulcan_operator.builders.common import Owner
from vulcan_operator.cli import main as cli
from vulcan_operator.cli.preview import render
from vulcan_operator.config import Settings

CHECKSUM = "9f" * 32
S3 = {
    "bucket": "vulcan-backups",
    "prefix": "database/",
    "endpoint": "https://s3.eu-west-1.amazonaws.com",
    "credentialsSecretRef": {"name": "s3-creds"},
}
#: A bucket the attacker controls, on a plain-http endpoint, with keys of their own.
EXFILTRATE = {
    "s3": {
        "bucket": "somebody-elses-bucket",
        "endpoint": "http://203.0.113.7:9000",
        "credentialsSecretRef": {"name": "my-own-keys"},
    }
}
SQUAT = {"pvc": {"size": "900Ti", "storageClassName": "premium"}}
REFUSED = (
    "spec.storage: not allowed: a VulcanBackup writes only where its VulcanEngine's "
    "spec.backup.storage says"
)


def engine(namespace: str = "vulcan", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": namespace},
        "spec": {"version": "2.0.0", **spec},
    }


def vulcan_backup(name: str, namespace: str = "vulcan", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanBackup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"engineRef": {"name": "prod"}, **spec},
    }


def write(tmp_path: Path, name: str, *docs: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    pod = job["spec"]["template"]["spec"]
    out: dict[str, Any] = {}
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for item in container["env"]:
            out[item["name"]] = item.get("value", item.get("valueFrom"))
    return out


# --- item 1: a VulcanBackup has no storage of its own --------------------------------------
@pytest.mark.parametrize("storage", [EXFILTRATE, SQUAT], ids=["s3-http-foreign", "pvc-900Ti"])
def test_validate_and_the_crd_refuse_a_backup_with_its_own_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], storage: dict[str, Any]
) -> None:
    doc = vulcan_backup("attack", storage=storage)
    path = write(tmp_path, "attack.yaml", doc)
    assert cli(["validate", path]) == 1
    assert capsys.readouterr().out == f"{path}: VulcanBackup/attack: {REFUSED}\n"
    # At admission: the CEL rule on VulcanBackupSpec (kubectl apply is refused).
    assert cel_errors(doc) == [f"spec: {REFUSED.replace(': not', ' is not', 1)}"]


def test_render_writes_only_to_the_engines_store_and_never_a_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engines = write(tmp_path, "engine.yaml", engine(backup={"storage": {"s3": S3}}))
    attack = write(tmp_path, "attack.yaml", vulcan_backup("attack", storage=EXFILTRATE))
    assert cli(["render", attack, "--engine", engines]) == 1
    assert REFUSED in capsys.readouterr().err
    plain = write(tmp_path, "backup.yaml", vulcan_backup("manual"))
    assert cli(["render", plain, "--engine", engines]) == 0
    (job,) = [o for o in yaml.safe_load_all(capsys.readouterr().out) if o]
    assert job["kind"] == "Job"
    env = env_of(job)
    assert env["S3_BUCKET"] == "vulcan-backups"
    assert env["S3_PREFIX"] == "database/vulcan/prod/on-demand/"
    assert env["S3_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == "s3-creds"
    # An engine on its managed claim: the Job mounts that claim and creates none.
    on_claim = write(tmp_path, "engine-pvc.yaml", engine())
    assert cli(["render", plain, "--engine", on_claim]) == 0
    objs = [o for o in yaml.safe_load_all(capsys.readouterr().out) if o]
    assert [o["kind"] for o in objs] == ["Job"]
    volumes = objs[0]["spec"]["template"]["spec"]["volumes"]
    claims = [
        v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    ]
    assert claims == ["prod-backups"]


@pytest.mark.parametrize("storage", [EXFILTRATE, SQUAT], ids=["s3-http-foreign", "pvc-900Ti"])
async def test_the_operator_refuses_a_backup_with_its_own_storage(
    emulator: Emulator, operator: OperatorRunner, storage: dict[str, Any]
) -> None:
    """With a CRD that let it in (an older one: the emulator evaluates no CEL), the reconcile
    refuses it, naming the field, and creates nothing: no Job, no claim."""
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prod-database", "namespace": "default"},
            "stringData": {"database-url": "postgresql://vulcan:pw@db:5432/vulcan"},
        }
    )
    emulator.create(engine("default", backup={"storage": {"s3": S3}}))
    emulator.create(vulcan_backup("attack", "default", storage=copy.deepcopy(storage)))
    found = await emulator.wait_for(
        lambda: (
            (emulator.get(BACKUPS, "default", "attack").get("status") or {}).get("phase")
            and emulator.get(BACKUPS, "default", "attack")["status"]
        ),
        timeout=60,
    )
    await asyncio.sleep(0.5)  # what the first pass created, if anything
    claims = [c["spec"] for c in emulator.list("persistentvolumeclaims", "default")]
    assert claims == []  # on c37051b: prod-backups, 900Ti, class premium, owned by nobody
    jobs = [
        j for j in emulator.list("jobs", "default") if j["metadata"]["name"].startswith("attack")
    ]
    assert jobs == []  # on c37051b: a Job with DATABASE_URL, uploading to the attacker's bucket
    assert found["phase"] == "Failed"
    assert "spec.storage" in cond(found, "Ready")["message"]


# --- item 2: a restore reads only a backup file of its engine's store -----------------------
PVC = BackupStorage.model_validate({"pvc": {}})
OWN_S3 = BackupStorage.model_validate({"s3": S3})


@pytest.mark.parametrize(
    ("storage", "location", "why"),
    [
        # another engine's folder, same claim
        (PVC, "pvc://prod-backups/vulcan/staging/vulcan_20261129_020000.dump", "not in a backup"),
        # the same engine name in another namespace
        (PVC, "pvc://prod-backups/other/prod/vulcan_20261129_020000.dump", "not in a backup"),
        # another claim of the namespace
        (PVC, "pvc://payroll-data/vulcan/prod/vulcan_20261129_020000.dump", "is not the claim"),
        # out of the folder with '..'
        (PVC, "pvc://prod-backups/vulcan/prod/../../x/vulcan_1.dump", "'..' parts"),
        # another bucket the engine's keys can read
        (OWN_S3, "s3://payroll-exports/database/vulcan/prod/vulcan_1.dump", "is not the bucket"),
        # the right bucket, outside the engine's prefix
        (OWN_S3, "s3://vulcan-backups/other/vulcan/prod/vulcan_1.dump", "not in a backup"),
        # a file that is not one of our backups
        (OWN_S3, "s3://vulcan-backups/database/vulcan/prod/evil.sql", "not a backup file"),
    ],
)
def test_a_restore_location_outside_the_engines_store_is_refused(
    storage: BackupStorage, location: str, why: str
) -> None:
    spec = VulcanEngineSpec.model_validate(
        {"version": "2.0.0", "backup": {"storage": storage.model_dump(exclude_none=True)}}
    )
    restore = Owner(kind="VulcanRestore", name="r", namespace="vulcan", uid="u")
    # The builder the restore reconciler and `render` call: on c37051b it built the Job.
    with pytest.raises(ValueError, match=r"^spec\.location: ") as refused:
        b.build_restore_job(restore, "prod", spec, Settings(), location=location, checksum=CHECKSUM)
    assert why in str(refused.value)
    assert b.restore_source_problem("prod", "vulcan", storage, location) == str(refused.value)


def test_a_restore_location_without_a_checksum_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {
        "apiVersion": API,
        "kind": "VulcanRestore",
        "metadata": {"name": "r", "namespace": "vulcan"},
        "spec": {
            "engineRef": {"name": "prod"},
            "location": "pvc://prod-backups/vulcan/prod/vulcan_20261129_020000.dump",
        },
    }
    path = write(tmp_path, "restore.yaml", doc)
    assert cli(["validate", path]) == 1
    assert f"{path}: VulcanRestore/r: spec.checksum: required with spec.location" in (
        capsys.readouterr().out
    )
    assert cel_errors(doc) and "spec.checksum is required" in cel_errors(doc)[0]


# --- item 3: two engines on one bucket and prefix ------------------------------------------
def test_two_engines_on_one_bucket_get_their_own_keys_and_the_later_is_refused() -> None:
    storage = BackupStorage.model_validate({"s3": S3})
    docs = [engine(ns, backup={"storage": {"s3": S3}}) for ns in ("team-a", "team-b")]
    # The rendered CronJobs (`vulcan-operator render`): on c37051b both uploaded to
    # database/vulcan_<second>.sql.gz, the same key in the same second.
    prefixes = [
        env_of(cronjob["spec"]["jobTemplate"])["S3_PREFIX"]
        for cronjob in render(copy.deepcopy(docs))
        if cronjob["kind"] == "CronJob" and cronjob["metadata"]["name"] == "prod-backup"
    ]
    assert prefixes == ["database/team-a/prod/", "database/team-b/prod/"]
    docs[0]["metadata"]["creationTimestamp"] = "2026-11-01T00:00:00Z"
    docs[1]["metadata"]["creationTimestamp"] = "2026-11-02T00:00:00Z"
    assert b.storage_conflicts("team-a", "prod", "2026-11-01T00:00:00Z", storage, docs) == []
    (problem,) = b.storage_conflicts("team-b", "prod", "2026-11-02T00:00:00Z", storage, docs)
    assert "VulcanEngine 'team-a/prod'" in problem and problem.startswith("spec.backup.storage")


async def test_the_operator_refuses_the_backups_of_the_later_engine_on_one_bucket(
    emulator: Emulator, operator: OperatorRunner
) -> None:
    for namespace in ("team-a", "team-b"):
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        emulator.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "prod-database", "namespace": namespace},
                "stringData": {"database-url": "postgresql://vulcan:pw@db:5432/vulcan"},
            }
        )
        emulator.create(engine(namespace, backup={"storage": {"s3": S3}}))
        await emulator.wait_for(
            lambda ns=namespace: (emulator.get(ENGINES, ns, "prod").get("status") or {}).get(
                "conditions"
            ),
            timeout=60,
        )

    def backup_healthy(namespace: str) -> dict[str, Any]:
        st = emulator.get(ENGINES, namespace, "prod").get("status") or {}
        found = [c for c in st.get("conditions") or [] if c["type"] == "BackupHealthy"]
        return found[0] if found else {}

    await emulator.wait_for(lambda: backup_healthy("team-b"), timeout=60)
    await asyncio.sleep(0.5)
    later = backup_healthy("team-b")
    assert (later["reason"], later["status"]) == ("BackupStorageConflict", "False")
    assert "spec.backup.storage" in later["message"] and "team-a/prod" in later["message"]
    assert emulator.get("cronjobs", "team-b", "prod-backup") is None
    assert emulator.get("cronjobs", "team-a", "prod-backup") is not None
    assert backup_healthy("team-a").get("reason") != "BackupStorageConflict"
