"""The restore drill CronJob: the engine's claim mounted read-only, or (S3) the newest backup
downloaded by an aws CLI init container with the engine's own S3 settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.manifests import validate_manifests
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders import backup as b
from vulcan_operator.config import Settings
from vulcan_operator.jobscripts import program
from vulcan_operator.reconcile.engine import secret_refs

ENGINE = b.EngineRef(name="prod", namespace="vulcan", uid="11111111-2222-3333-4444-555555555555")
SETTINGS = Settings(operator_image="op:1", postgres_image="registry.local/postgres:15.8-alpine")
S3 = {
    "bucket": "vulcan-backups",
    "prefix": "/database",
    "endpoint": "https://minio.example.com",
    "region": "eu-west-1",
    "credentialsSecretRef": {"name": "s3-creds"},
}


def spec(**backup: Any) -> VulcanEngineSpec:
    return VulcanEngineSpec.model_validate(
        {"version": "2.0.0", "backup": {"drill": {"enabled": True}, **backup}}
    )


def drill_pod(engine_spec: VulcanEngineSpec) -> dict[str, Any]:
    children = b.build_engine_backup_children(ENGINE, engine_spec, SETTINGS, aws_cli_image="aws:t")
    validate_manifests(children)
    (cronjob,) = [c for c in children if c["metadata"]["name"] == "prod-drill"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert isinstance(pod, dict)
    return pod


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value, or ("secret", name, key) for a secretKeyRef."""
    out: dict[str, Any] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            out[item["name"]] = ("secret", ref["name"], ref["key"])
        else:
            out[item["name"]] = item["value"]
    return out


def test_a_drill_of_a_claim_mounts_it_read_only() -> None:
    pod = drill_pod(spec())
    assert "initContainers" not in pod or not pod["initContainers"]
    (drill,) = pod["containers"]
    env = env_of(drill)
    assert drill["command"][2] == program("drill")
    assert env["BACKUP_DIR"] == "/backups/vulcan/prod"
    assert env["DRILL_LOCATION_PREFIX"] == "pvc://prod-backups/vulcan/prod"
    assert env["DATABASE_URL"] == ("secret", "prod-database", "database-url")
    claim = pod["volumes"][-1]["persistentVolumeClaim"]
    assert claim == {"claimName": "prod-backups", "readOnly": True}


def test_a_drill_of_s3_downloads_the_newest_backup_with_the_engines_settings() -> None:
    pod = drill_pod(spec(storage={"s3": S3}))
    (download,) = pod["initContainers"]
    (drill,) = pod["containers"]
    assert download["image"] == "aws:t" and download["command"][2] == program("s3-drill-download")
    assert drill["image"] == SETTINGS.postgres_image and drill["command"][2] == program("drill")
    down, env = env_of(download), env_of(drill)
    assert down["S3_BUCKET"] == "vulcan-backups"
    assert down["S3_PREFIX"] == "database/vulcan/prod/"  # the engine's own folder
    assert down["S3_ENDPOINT_URL"] == "https://minio.example.com"
    assert down["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert down["AWS_SECRET_ACCESS_KEY"] == ("secret", "s3-creds", "AWS_SECRET_ACCESS_KEY")
    assert down["BACKUP_DIR"] == env["BACKUP_DIR"] == "/work"
    assert env["DRILL_LOCATION_PREFIX"] == "s3://vulcan-backups/database/vulcan/prod"
    # Least privilege: the download never sees the database, the drill never the S3 keys.
    assert "DATABASE_URL" not in down and "AWS_SECRET_ACCESS_KEY" not in env
    assert {v["name"]: v for v in pod["volumes"]}["work"] == {"name": "work", "emptyDir": {}}
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])


def test_drills_of_s3_backups_are_accepted() -> None:
    assert spec(storage={"s3": S3}).backup.drill.enabled


def test_a_drill_into_another_server_gets_only_that_servers_url() -> None:
    other = {"name": "drill-server", "key": "url"}
    for storage in ({"pvc": {}}, {"s3": S3}):
        engine_spec = spec(storage=storage, drill={"enabled": True, "serverUrlSecretRef": other})
        env = env_of(drill_pod(engine_spec)["containers"][0])
        assert env["DATABASE_URL"] == ("secret", "drill-server", "url")
        assert ("secret", "prod-database", "database-url") not in env.values()
    refs = secret_refs("prod", spec(drill={"enabled": True, "serverUrlSecretRef": other}))
    assert ("drill server URL", "drill-server", "url") in refs  # waited for, as the others
    off = spec(drill={"enabled": False, "serverUrlSecretRef": other})
    assert "drill server URL" not in [what for what, _, _ in secret_refs("prod", off)]


def test_the_drill_server_secret_is_a_key_of_the_engines_namespace() -> None:
    with pytest.raises(ValidationError) as refused:
        spec(drill={"enabled": True, "serverUrlSecretRef": {"name": "x", "namespace": "other"}})
    assert "backup.drill.serverUrlSecretRef.namespace" in str(refused.value)
