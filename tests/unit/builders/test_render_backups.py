"""`vulcan-operator render` for backups and restores: an engine's CronJobs and volume, a
VulcanBackup's Job, a VulcanRestore's Jobs; every object valid in strict mode."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import validate_manifests
from vulcan_operator.cli import main as cli
from vulcan_operator.cli.preview import PLACEHOLDER_UID, RenderError, render

ROOT = Path(__file__).resolve().parents[3]
API = "vulcan-engine.com/v1alpha1"
LOCATION = "pvc://prod-backups/vulcan/prod/on-demand/vulcan_20261129_020000.dump"
CHECKSUM = "9f" * 32
S3 = {"bucket": "vulcan-backups", "credentialsSecretRef": {"name": "s3-creds"}}


def engine(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": "vulcan"},
        "spec": {"version": "2.0.0", **spec},
    }


def custom(
    kind: str, name: str, status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": API,
        "kind": kind,
        "metadata": {"name": name, "namespace": "vulcan"},
        "spec": {"engineRef": {"name": "prod"}, **spec},
    }
    if status is not None:
        doc["status"] = status
    return doc


def succeeded(name: str = "manual-1", **spec: Any) -> dict[str, Any]:
    return custom(
        "VulcanBackup",
        name,
        {"phase": "Succeeded", "location": LOCATION, "checksum": CHECKSUM},
        **spec,
    )


def kinds(objs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in objs]


def env(job: dict[str, Any], container: str) -> dict[str, Any]:
    pod = job["spec"]["template"]["spec"]
    (found,) = [
        c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == container
    ]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in found["env"]}


def test_an_engine_renders_its_backup_volume_and_cronjobs() -> None:
    objs = render([engine()])
    backups = [o for o in objs if o["kind"] in ("PersistentVolumeClaim", "CronJob")]
    assert kinds(backups) == [
        ("PersistentVolumeClaim", "prod-backups"),
        ("CronJob", "prod-backup"),
        ("CronJob", "prod-maintenance"),
    ]
    pvc, backup, maintenance = backups
    assert "ownerReferences" not in pvc["metadata"]
    assert backup["metadata"]["ownerReferences"][0]["uid"] == PLACEHOLDER_UID
    assert (backup["spec"]["schedule"], maintenance["spec"]["schedule"]) == (
        "0 2 * * *",
        "0 3 * * 0",
    )
    validate_manifests(objs)
    off = render([engine(backup={"enabled": False}, maintenance={"enabled": False})])
    # No CronJob; the claim stays, as the store of the engine's VulcanBackups.
    assert kinds([o for o in off if o["kind"] in ("PersistentVolumeClaim", "CronJob")]) == [
        ("PersistentVolumeClaim", "prod-backups")
    ]


def test_a_backup_renders_its_job_with_the_engine() -> None:
    objs = render([custom("VulcanBackup", "manual-1")], engines=[engine()])
    (kind, name) = kinds(objs)[0]  # only the Job: the claim is the engine's to create
    assert kind == "Job" and name.startswith("manual-1-backup-") and len(objs) == 1
    job = objs[0]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "VulcanBackup"
    assert env(job, "backup")["BACKUP_DIR"] == "/backups/vulcan/prod/on-demand"
    validate_manifests(objs)
    # An engine keeping its backups in object storage: the backup goes there, no volume.
    s3 = render(
        [custom("VulcanBackup", "archive")], engines=[engine(backup={"storage": {"s3": S3}})]
    )
    assert [o["kind"] for o in s3] == ["Job"]
    assert env(s3[0], "upload")["S3_BUCKET"] == "vulcan-backups"
    assert env(s3[0], "upload")["S3_PREFIX"] == "database/vulcan/prod/on-demand/"
    validate_manifests(s3)
    # Its own storage: refused, naming the field.
    with pytest.raises(RenderError, match=r"VulcanBackup/archive: spec\.storage: not allowed"):
        render([custom("VulcanBackup", "archive", storage={"s3": S3})], engines=[engine()])
    # Finished: nothing more to create.
    assert render([succeeded()], engines=[engine()]) == []


def test_a_restore_renders_the_restore_job_and_the_migration() -> None:
    restore = custom("VulcanRestore", "r1", backupRef={"name": "manual-1"})
    objs = render([succeeded(), restore], engines=[engine()])
    assert [k for k, _ in kinds(objs)] == ["Job", "Job"]
    job, migration = objs
    assert job["metadata"]["name"].startswith("r1-restore-")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "VulcanRestore"
    values = env(job, "restore")
    assert values["EXPECTED_SHA256"] == CHECKSUM
    assert values["BACKUP_FILE"] == "/backups/vulcan/prod/on-demand/vulcan_20261129_020000.dump"
    assert "ttlSecondsAfterFinished" not in job["spec"]
    (container,) = migration["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["alembic", "upgrade", "head"]
    assert container["image"] == "vulcan-engine:2.0.0"
    validate_manifests(objs)

    side = custom(
        "VulcanRestore", "r2", location=LOCATION, checksum=CHECKSUM, targetDatabase="vulcan_inspect"
    )
    (only,) = render([side], engines=[engine()])
    assert env(only, "restore")["TARGET_DATABASE"] == "vulcan_inspect"
    assert env(only, "restore")["EXPECTED_SHA256"] == CHECKSUM
    no_migration = custom(
        "VulcanRestore", "r3", location=LOCATION, checksum=CHECKSUM, migrate=False
    )
    assert [o["kind"] for o in render([no_migration], engines=[engine()])] == ["Job"]


def test_a_restore_from_s3_downloads_with_the_engines_settings() -> None:
    location = "s3://vulcan-backups/database/vulcan/prod/vulcan_20261129_020000.dump"
    restore = custom("VulcanRestore", "r1", location=location, checksum=CHECKSUM, migrate=False)
    (job,) = render([restore], engines=[engine(backup={"storage": {"s3": S3}})])
    assert env(job, "download")["S3_LOCATION"] == location
    validate_manifests([job])
    with pytest.raises(RenderError, match="keeps its backups in a volume claim"):
        render([restore], engines=[engine()])


def test_a_restore_needs_what_it_refers_to() -> None:
    restore = custom("VulcanRestore", "r1", backupRef={"name": "manual-1"})
    with pytest.raises(RenderError, match=r"needs its VulcanEngine 'prod'.*--engine"):
        render([restore])
    with pytest.raises(RenderError, match="VulcanBackup 'manual-1' is known once it has succeeded"):
        render([restore], engines=[engine()])
    pending = copy.deepcopy(succeeded())
    pending["status"] = {"phase": "Running"}
    with pytest.raises(RenderError, match="kubectl get vulcanbackup manual-1 -o yaml"):
        render([pending, restore], engines=[engine()])
    other_engine = copy.deepcopy(succeeded())
    other_engine["spec"]["engineRef"]["name"] = "staging"
    with pytest.raises(RenderError, match="is a backup of VulcanEngine 'staging', not of 'prod'"):
        render([restore], engines=[engine(), other_engine])
    wrong = custom("VulcanRestore", "r1", backupRef={"name": "manual-1"}, checksum="ab" * 32)
    with pytest.raises(RenderError, match=r"spec\.checksum is not the recorded checksum"):
        render([succeeded(), wrong], engines=[engine()])


def test_the_command_line_renders_the_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = ROOT / "examples"
    args = [
        "render",
        str(examples / "vulcanbackup.yaml"),
        "--engine",
        str(examples / "vulcanengine.yaml"),
    ]
    assert cli(args) == 0
    objs = [o for o in yaml.safe_load_all(capsys.readouterr().out) if o]
    assert [o["kind"] for o in objs][-1] == "Job"
    validate_manifests(objs)
    restore = tmp_path / "restore.yaml"
    backup = yaml.safe_load((examples / "vulcanbackup.yaml").read_text())
    backup["status"] = {"phase": "Succeeded", "location": LOCATION, "checksum": CHECKSUM}
    restore.write_text(
        yaml.safe_dump_all([backup, yaml.safe_load((examples / "vulcanrestore.yaml").read_text())])
    )
    assert cli(["render", str(restore), "--engine", str(examples / "vulcanengine.yaml")]) == 0
    objs = [o for o in yaml.safe_load_all(capsys.readouterr().out) if o]
    assert [o["kind"] for o in objs] == ["Job", "Job"]
    validate_manifests(objs)
