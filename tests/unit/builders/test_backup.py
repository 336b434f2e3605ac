"""Backup, maintenance and restore builders: strict-valid manifests, policies, security,
secret references, and the packaged programs in the commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.manifests import validate_manifest, validate_manifests
from vulcan_operator import names
from vulcan_operator.api.common import SecretKeyRef, SecretRef
from vulcan_operator.api.engine import (
    Backup,
    BackupStorage,
    Maintenance,
    PvcStorage,
    S3Storage,
    VulcanEngineSpec,
)
from vulcan_operator.builders import backup as b
from vulcan_operator.builders.common import Owner, content_hash, hashable_content
from vulcan_operator.config import Settings
from vulcan_operator.jobscripts import program
from vulcan_operator.reconcile.jobs import parse_backup_result, parse_restore_result, parse_result

ENGINE = b.EngineRef(name="prod", namespace="vulcan", uid="11111111-2222-3333-4444-555555555555")
SETTINGS = Settings(operator_image="op:1", postgres_image="registry.local/postgres:15.8-alpine")
DB = SecretKeyRef(name="vulcan-db", key="database-url")
HOOK = SecretKeyRef(name="slack", key="url")
S3 = S3Storage(
    bucket="vulcan-backups",
    prefix="/database",
    endpoint="https://minio.example.com",
    region="eu-west-1",
    credentialsSecretRef=SecretRef(name="s3-creds"),
)
S3_STORAGE = BackupStorage(s3=S3)
VB = Owner(kind="VulcanBackup", name="prod-before-2-1-0", namespace="vulcan", uid="vb-uid")
VR = Owner(kind="VulcanRestore", name="prod-restore", namespace="vulcan", uid="vr-uid")
LOCATION = "pvc://prod-backups/vulcan/prod/vulcan_20261129_020000.dump"
S3_LOCATION = "s3://vulcan-backups/database/vulcan/prod/vulcan_20261129_020000.dump"
SHA = "ab" * 32


def spec(**fields: Any) -> VulcanEngineSpec:
    return VulcanEngineSpec.model_validate({"version": "2.0.0", **fields})


def engine_spec(
    storage: BackupStorage | None = None,
    *,
    database: SecretKeyRef = DB,
    hook: SecretKeyRef | None = None,
) -> VulcanEngineSpec:
    """An engine's spec with this store (the default: the managed claim), database and hook."""
    backup: dict[str, Any] = {}
    if storage is not None:
        backup["storage"] = storage.model_dump(exclude_none=True)
    if hook is not None:
        backup["notifyWebhookSecretRef"] = hook.model_dump()
    return spec(database={"urlSecretRef": database.model_dump()}, backup=backup)


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def job_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec_ = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    assert isinstance(spec_, dict)
    return spec_


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    pod = job_spec(obj)["template"]["spec"]
    assert isinstance(pod, dict)
    return pod


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = pod_spec(obj)
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value, or ("secret", name, key[, optional]) for a secretKeyRef."""
    out: dict[str, Any] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            out[item["name"]] = ("secret", ref["name"], ref["key"], ref.get("optional", False))
        else:
            out[item["name"]] = item["value"]
    return out


def all_variants() -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    objs += b.build_engine_backup_children(ENGINE, spec(), SETTINGS)
    objs += b.build_engine_backup_children(
        ENGINE,
        spec(
            backup={
                "storage": {"pvc": {"claimName": "shared", "size": "5Gi"}},
                "notifyWebhookSecretRef": HOOK.model_dump(),
            }
        ),
        SETTINGS,
    )
    objs += b.build_engine_backup_children(
        ENGINE, spec(backup={"storage": S3_STORAGE.model_dump(exclude_none=True)}), SETTINGS
    )
    objs += b.build_backup_job(VB, "prod", engine_spec(), SETTINGS)
    objs += b.build_backup_job(VB, "prod", engine_spec(S3_STORAGE, hook=HOOK), SETTINGS)
    objs += b.build_restore_job(
        VR, "prod", engine_spec(), SETTINGS, location=LOCATION, target_database="copy", checksum=SHA
    )
    objs += b.build_restore_job(
        VR, "prod", engine_spec(S3_STORAGE), SETTINGS, location=S3_LOCATION, checksum=SHA
    )
    return objs


def test_every_variant_passes_strict_validation() -> None:
    objs = all_variants()
    assert {o["kind"] for o in objs} == {"CronJob", "Job", "PersistentVolumeClaim"}
    validate_manifests(objs)


def test_engine_children_by_default() -> None:
    objs = b.build_engine_backup_children(ENGINE, spec(), SETTINGS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("PersistentVolumeClaim", "prod-backups"),
        ("CronJob", "prod-backup"),
        ("CronJob", "prod-maintenance"),
    ]
    for obj in objs:
        assert obj["metadata"]["namespace"] == "vulcan"


@pytest.mark.parametrize("kind", ["CronJob", "Job"])
def test_jobs_are_bounded_and_never_overlap(kind: str) -> None:
    for obj in by_kind(all_variants(), kind):
        js = job_spec(obj)
        assert 0 <= js["backoffLimit"] <= 1
        assert 0 < js["activeDeadlineSeconds"] <= 6 * 3600
        assert pod_spec(obj)["restartPolicy"] == "Never"
        rules = js["podFailurePolicy"]["rules"]
        assert {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2, 3]}} in rules
        if kind == "CronJob":
            cron = obj["spec"]
            assert cron["concurrencyPolicy"] == "Forbid"
            assert cron["successfulJobsHistoryLimit"] == 3
            assert cron["failedJobsHistoryLimit"] == 3
            assert cron["startingDeadlineSeconds"] > 0
            assert cron["timeZone"] == "Etc/UTC"
            assert "ttlSecondsAfterFinished" not in js  # the history limits keep them
        elif obj["metadata"]["labels"][names.LABEL_COMPONENT] == "restore":
            # The operator records the result, then deletes the Job: no TTL may take it first.
            assert "ttlSecondsAfterFinished" not in js
        else:
            assert js["ttlSecondsAfterFinished"] > 0


def test_pods_are_restricted() -> None:
    for obj in by_kind(all_variants(), "CronJob") + by_kind(all_variants(), "Job"):
        pod = pod_spec(obj)
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == 70 and ctx["runAsGroup"] == 70  # postgres in the alpine image
        assert ctx["fsGroup"] == 70  # the backup volume is writable
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
        for container in containers(obj):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["runAsNonRoot"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
            assert "memory" in container["resources"]["limits"]


def test_the_commands_are_the_packaged_programs() -> None:
    cronjob = b.build_backup_cronjob(ENGINE, Backup(), DB, SETTINGS)[0]
    (container,) = containers(cronjob)
    assert container["command"] == ["sh", "-c", program("backup"), "vulcan-backup"]
    assert container["image"] == SETTINGS.postgres_image
    maintenance = b.build_maintenance_cronjob(ENGINE, Maintenance(), DB, SETTINGS)[0]
    (container,) = containers(maintenance)
    assert container["command"] == ["sh", "-c", program("maintenance"), "vulcan-maintenance"]
    restore = b.build_restore_job(
        VR, "prod", engine_spec(), SETTINGS, location=LOCATION, checksum=SHA
    )[0]
    assert containers(restore)[0]["command"][2] == program("restore")


def test_secrets_are_referenced_never_inlined() -> None:
    for obj in all_variants():
        for container in containers(obj) if obj["kind"] != "PersistentVolumeClaim" else []:
            env = env_of(container)
            for name in (
                "DATABASE_URL",
                "NOTIFY_WEBHOOK_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ):
                if name in env:
                    assert env[name][0] == "secret", (obj["metadata"]["name"], name)
    cronjob = b.build_backup_cronjob(ENGINE, Backup(), DB, SETTINGS)[0]
    assert env_of(containers(cronjob)[0])["DATABASE_URL"] == (
        "secret",
        "vulcan-db",
        "database-url",
        False,
    )


def test_the_default_database_secret_is_the_engines() -> None:
    ref = spec().database_url_ref("prod")
    assert (ref.name, ref.key) == (names.default_database_secret("prod"), names.DATABASE_URL_KEY)
    objs = b.build_engine_backup_children(ENGINE, spec(), SETTINGS)
    for cronjob in by_kind(objs, "CronJob"):
        assert env_of(containers(cronjob)[0])["DATABASE_URL"] == (
            "secret",
            "prod-database",
            "database-url",
            False,
        )
    custom = spec(database={"urlSecretRef": {"name": "my-db", "key": "url"}})
    for cronjob in by_kind(b.build_engine_backup_children(ENGINE, custom, SETTINGS), "CronJob"):
        assert env_of(containers(cronjob)[0])["DATABASE_URL"][1:3] == ("my-db", "url")


def test_schedule_and_retention_come_from_the_spec() -> None:
    backup = Backup(schedule="15 1 * * *", retentionDays=7, notifyWebhookSecretRef=HOOK)
    cronjob = b.build_backup_cronjob(ENGINE, backup, DB, SETTINGS)[0]
    assert cronjob["spec"]["schedule"] == "15 1 * * *"
    env = env_of(containers(cronjob)[0])
    assert env["RETENTION_DAYS"] == "7"
    assert env["BACKUP_DIR"] == "/backups/vulcan/prod"
    assert env["BACKUP_LOCATION"] == "pvc://prod-backups/vulcan/prod"
    assert env["NOTIFY_WEBHOOK_URL"] == ("secret", "slack", "url", False)
    assert env["VULCAN_ENGINE"] == "prod"
    assert env["VULCAN_NAMESPACE"] == "vulcan"
    maintenance = b.build_maintenance_cronjob(
        ENGINE, Maintenance(schedule="30 4 * * 6"), DB, SETTINGS, reindex=True
    )[0]
    assert maintenance["spec"]["schedule"] == "30 4 * * 6"
    assert env_of(containers(maintenance)[0])["MAINTENANCE_REINDEX"] == "true"


def _hash(obj: dict[str, Any]) -> str:
    value = obj["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH]
    assert isinstance(value, str)
    return value


def test_changing_the_schedule_changes_the_cronjob() -> None:
    first = b.build_backup_cronjob(ENGINE, Backup(), DB, SETTINGS)[0]
    same = b.build_backup_cronjob(ENGINE, Backup(), DB, SETTINGS)[0]
    moved = b.build_backup_cronjob(ENGINE, Backup(schedule="0 4 * * *"), DB, SETTINGS)[0]
    assert first == same and _hash(first) == _hash(same)
    assert _hash(moved) != _hash(first)
    assert moved["metadata"]["name"] == first["metadata"]["name"]
    kept_longer = b.build_backup_cronjob(ENGINE, Backup(retentionDays=90), DB, SETTINGS)[0]
    assert _hash(kept_longer) != _hash(first)
    m1 = b.build_maintenance_cronjob(ENGINE, Maintenance(), DB, SETTINGS)[0]
    m2 = b.build_maintenance_cronjob(ENGINE, Maintenance(schedule="0 5 * * 0"), DB, SETTINGS)[0]
    assert _hash(m1) != _hash(m2)


def test_cronjobs_are_owned_by_the_engine_and_labelled() -> None:
    for cronjob in by_kind(b.build_engine_backup_children(ENGINE, spec(), SETTINGS), "CronJob"):
        (ref,) = cronjob["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"]) == ("VulcanEngine", "prod", ENGINE.uid)
        assert ref["controller"] is True
        component = "backup" if cronjob["metadata"]["name"].endswith("backup") else "maintenance"
        labels = names.labels("prod", component)
        assert cronjob["metadata"]["labels"] == labels
        assert cronjob["spec"]["jobTemplate"]["metadata"]["labels"] == labels
        assert job_spec(cronjob)["template"]["metadata"]["labels"] == labels


def test_the_backup_pvc_is_kept_when_the_engine_goes() -> None:
    (pvc,) = b.build_backup_pvc(ENGINE, BackupStorage(pvc=PvcStorage(size="50Gi")))
    assert pvc["metadata"]["name"] == "prod-backups"
    assert "ownerReferences" not in pvc["metadata"]  # data first: no garbage collection
    assert pvc["metadata"]["labels"] == names.labels("prod", "backup")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"]  # the cluster default
    assert _hash(pvc) == content_hash(hashable_content(pvc))
    (fast,) = b.build_backup_pvc(ENGINE, BackupStorage(pvc=PvcStorage(storageClassName="fast")))
    assert fast["spec"]["storageClassName"] == "fast"
    validate_manifest(fast)


def test_no_pvc_for_an_existing_claim_or_s3() -> None:
    shared = BackupStorage(pvc=PvcStorage(claimName="shared-backups"))
    assert b.build_backup_pvc(ENGINE, shared) == []
    assert b.build_backup_pvc(ENGINE, S3_STORAGE) == []
    cronjob = b.build_backup_cronjob(ENGINE, Backup(storage=shared), DB, SETTINGS)[0]
    volumes = {v["name"]: v for v in pod_spec(cronjob)["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "shared-backups"}
    assert env_of(containers(cronjob)[0])["BACKUP_LOCATION"] == "pvc://shared-backups/vulcan/prod"


def test_disabled_backups_and_maintenance_build_only_the_store() -> None:
    objs = b.build_engine_backup_children(
        ENGINE, spec(backup={"enabled": False}, maintenance={"enabled": False}), SETTINGS
    )
    # The claim stays: VulcanBackups (on-demand, pre-upgrade) write there and never create it.
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("PersistentVolumeClaim", "prod-backups")
    ]
    s3_off = spec(
        backup={"enabled": False, "storage": S3_STORAGE.model_dump(exclude_none=True)},
        maintenance={"enabled": False},
    )
    assert b.build_engine_backup_children(ENGINE, s3_off, SETTINGS) == []


def test_s3_backups_dump_in_an_init_container_and_upload_with_the_aws_cli() -> None:
    backup = Backup(storage=S3_STORAGE, retentionDays=14, notifyWebhookSecretRef=HOOK)
    cronjob = b.build_backup_cronjob(ENGINE, backup, DB, SETTINGS, aws_cli_image="aws:test")[0]
    pod = pod_spec(cronjob)
    (dump,) = pod["initContainers"]
    (upload,) = pod["containers"]
    assert dump["image"] == SETTINGS.postgres_image and dump["command"][2] == program("backup")
    assert upload["image"] == "aws:test" and upload["command"][2] == program("s3-upload")
    dump_env, upload_env = env_of(dump), env_of(upload)
    assert dump_env["BACKUP_DIR"] == upload_env["BACKUP_DIR"] == "/work"
    assert dump_env["BACKUP_LOCATION"] == "s3://vulcan-backups/database/vulcan/prod"
    assert dump_env["NOTIFY_ON_SUCCESS"] == "false"
    assert "RETENTION_DAYS" not in dump_env and upload_env["RETENTION_DAYS"] == "14"
    assert "DATABASE_URL" in dump_env and "DATABASE_URL" not in upload_env  # least privilege
    assert "AWS_SECRET_ACCESS_KEY" not in dump_env
    assert upload_env["S3_BUCKET"] == "vulcan-backups"
    assert upload_env["S3_PREFIX"] == "database/vulcan/prod/"
    assert dump_env["VULCAN_NAMESPACE"] == upload_env["VULCAN_NAMESPACE"] == "vulcan"
    assert upload_env["S3_ENDPOINT_URL"] == "https://minio.example.com"
    assert upload_env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert upload_env["AWS_ACCESS_KEY_ID"] == ("secret", "s3-creds", "AWS_ACCESS_KEY_ID", False)
    assert upload_env["AWS_SECRET_ACCESS_KEY"] == (
        "secret",
        "s3-creds",
        "AWS_SECRET_ACCESS_KEY",
        False,
    )
    assert upload_env["AWS_SESSION_TOKEN"][3] is True  # optional
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["work"] == {"name": "work", "emptyDir": {}}
    assert "backups" not in volumes


def test_an_on_demand_backup_job() -> None:
    objs = b.build_backup_job(VB, "prod", engine_spec(hook=HOOK), SETTINGS)
    (job,) = objs  # never a claim: the managed one is the engine's reconcile's to create
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "prod-backups"}
    (ref,) = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("VulcanBackup", VB.name, VB.uid)
    assert job["metadata"]["name"].startswith("prod-before-2-1-0-backup-")
    assert len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["labels"] == names.labels("prod", "backup")
    env = env_of(containers(job)[0])
    assert env["BACKUP_DIR"] == "/backups/vulcan/prod/on-demand"  # out of retention's reach
    assert env["BACKUP_LOCATION"] == "pvc://prod-backups/vulcan/prod/on-demand"
    assert env["VULCAN_NAMESPACE"] == "vulcan"
    assert "RETENTION_DAYS" not in env
    assert env["NOTIFY_WEBHOOK_URL"][0] == "secret"
    (s3_job,) = b.build_backup_job(VB, "prod", engine_spec(S3_STORAGE), SETTINGS)
    upload_env = env_of(pod_spec(s3_job)["containers"][0])
    assert upload_env["S3_PREFIX"] == "database/vulcan/prod/on-demand/"
    assert "RETENTION_DAYS" not in upload_env


def test_one_off_job_names_carry_a_hash_of_their_inputs() -> None:
    name = b.build_backup_job(VB, "prod", engine_spec(), SETTINGS)[-1]["metadata"]["name"]
    assert b.build_backup_job(VB, "prod", engine_spec(), SETTINGS)[-1]["metadata"]["name"] == name
    other_db = engine_spec(database=SecretKeyRef(name="other-db", key="url"))
    other_owner = Owner(kind=VB.kind, name=VB.name, namespace=VB.namespace, uid="new-uid")
    for variant in (
        b.build_backup_job(VB, "prod", engine_spec(S3_STORAGE), SETTINGS),
        b.build_backup_job(VB, "prod", other_db, SETTINGS),
        b.build_backup_job(
            VB, "prod", engine_spec(), Settings(postgres_image="postgres:16-alpine")
        ),
        b.build_backup_job(other_owner, "prod", engine_spec(), SETTINGS),
    ):
        assert variant[-1]["metadata"]["name"] != name
    r1 = b.build_restore_job(VR, "prod", engine_spec(), SETTINGS, location=LOCATION, checksum=SHA)[
        0
    ]
    r2 = b.build_restore_job(
        VR, "prod", engine_spec(), SETTINGS, location=LOCATION, checksum=SHA, target_database="x"
    )[0]
    r1 = r1["metadata"]["name"]
    assert r1 != r2["metadata"]["name"] and r1.startswith("prod-restore-restore-")


def test_a_restore_job_from_a_volume() -> None:
    (job,) = b.build_restore_job(
        VR, "prod", engine_spec(), SETTINGS, location=LOCATION, target_database="copy", checksum=SHA
    )
    (ref,) = job["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"]) == ("VulcanRestore", "prod-restore")
    assert job["metadata"]["labels"] == names.labels("prod", "restore")
    assert job["spec"]["backoffLimit"] == 0
    pod = pod_spec(job)
    assert "initContainers" not in pod
    (container,) = pod["containers"]
    env = env_of(container)
    assert env["BACKUP_FILE"] == "/backups/vulcan/prod/vulcan_20261129_020000.dump"
    assert env["BACKUP_LOCATION"] == LOCATION
    assert env["TARGET_DATABASE"] == "copy"
    assert env["EXPECTED_SHA256"] == SHA
    assert (env["VULCAN_ENGINE"], env["VULCAN_NAMESPACE"]) == ("prod", "vulcan")
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert env["DATABASE_URL"] == ("secret", "vulcan-db", "database-url", False)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {
        "claimName": "prod-backups",
        "readOnly": True,
    }
    assert {"name": "backups", "mountPath": "/backups", "readOnly": True} in container[
        "volumeMounts"
    ]
    (plain,) = b.build_restore_job(
        VR, "prod", engine_spec(), SETTINGS, location=LOCATION, checksum=SHA
    )
    assert "TARGET_DATABASE" not in env_of(pod_spec(plain)["containers"][0])


@pytest.mark.parametrize("checksum", ["", "AB" * 32, "ab" * 31, "g" * 64, "ab" * 32 + "\n"])
def test_a_restore_job_needs_the_expected_checksum(checksum: str) -> None:
    with pytest.raises(ValueError, match="expected sha256"):
        b.build_restore_job(
            VR, "prod", engine_spec(), SETTINGS, location=LOCATION, checksum=checksum
        )


def test_a_restore_job_from_s3_downloads_first() -> None:
    (job,) = b.build_restore_job(
        VR,
        "prod",
        engine_spec(S3_STORAGE),
        SETTINGS,
        location=S3_LOCATION,
        checksum=SHA,
        aws_cli_image="aws:test",
    )
    pod = pod_spec(job)
    (download,) = pod["initContainers"]
    (restore,) = pod["containers"]
    assert download["image"] == "aws:test" and download["command"][2] == program("s3-download")
    assert restore["image"] == SETTINGS.postgres_image
    d_env, r_env = env_of(download), env_of(restore)
    assert d_env["S3_LOCATION"] == S3_LOCATION and d_env["BACKUP_DIR"] == "/work"
    assert d_env["AWS_SECRET_ACCESS_KEY"][0] == "secret"
    assert "DATABASE_URL" not in d_env
    assert r_env["BACKUP_FILE"] == "/work/vulcan_20261129_020000.dump"
    assert "AWS_SECRET_ACCESS_KEY" not in r_env
    assert d_env["VULCAN_NAMESPACE"] == r_env["VULCAN_NAMESPACE"] == "vulcan"
    # An s3:// file for an engine whose store is a claim: no S3 settings to download it with.
    with pytest.raises(ValueError, match="keeps its backups in a volume claim"):
        b.build_restore_job(VR, "prod", engine_spec(), SETTINGS, location=S3_LOCATION, checksum=SHA)


@pytest.mark.parametrize(
    "location",
    [
        "pvc://prod-backups/../etc/passwd",
        "pvc://prod-backups/prod//x.sql.gz",
        "pvc://Prod/x.sql.gz",
        "s3://bucket/",
        "http://bucket/x.sql.gz",
        "/backups/x.sql.gz",
        "",
    ],
)
def test_bad_locations_are_refused(location: str) -> None:
    with pytest.raises(ValueError, match="backup location"):
        b.build_restore_job(
            VR, "prod", engine_spec(S3_STORAGE), SETTINGS, location=location, checksum=SHA
        )


def test_locations_parse_both_ways() -> None:
    where = b.BackupLocation.parse(LOCATION)
    assert (where.scheme, where.root, where.path) == (
        "pvc",
        "prod-backups",
        "vulcan/prod/vulcan_20261129_020000.dump",
    )
    assert where.file_name == "vulcan_20261129_020000.dump" and str(where) == LOCATION
    assert str(b.BackupLocation.parse(S3_LOCATION)) == S3_LOCATION


def test_the_layout_carries_namespace_and_engine() -> None:
    pvc = spec().backup.storage
    assert b.plan_storage("prod", "vulcan", pvc).location == "pvc://prod-backups/vulcan/prod"
    on_demand = b.plan_storage("prod", "vulcan", pvc, on_demand=True)
    assert on_demand.location == "pvc://prod-backups/vulcan/prod/on-demand"
    assert on_demand.backup_dir == "/backups/vulcan/prod/on-demand"
    assert b.plan_storage("prod", "vulcan", S3_STORAGE).prefix == "database/vulcan/prod/"
    assert b.plan_storage("prod", "other", S3_STORAGE, on_demand=True).location == (
        "s3://vulcan-backups/database/other/prod/on-demand"
    )
    bare = BackupStorage(s3=S3.model_copy(update={"prefix": ""}))
    assert b.plan_storage("prod", "vulcan", bare).prefix == "vulcan/prod/"


@pytest.mark.parametrize(
    ("storage", "location"),
    [
        (BackupStorage(pvc=PvcStorage()), LOCATION),
        (BackupStorage(pvc=PvcStorage()), "pvc://prod-backups/vulcan/prod/on-demand/vulcan_x.dump"),
        (
            BackupStorage(pvc=PvcStorage(claimName="shared")),
            "pvc://shared/vulcan/prod/vulcan_1.dump",
        ),
        (S3_STORAGE, S3_LOCATION),
        (S3_STORAGE, "s3://vulcan-backups/database/vulcan/prod/on-demand/vulcan_1.dump"),
    ],
)
def test_a_backup_file_of_the_engines_store_may_be_restored(
    storage: BackupStorage, location: str
) -> None:
    assert b.restore_source_problem("prod", "vulcan", storage, location) is None


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("s3://vulcan-backups/database/vulcan/prod/x.dump", "keeps its backups in a volume"),
        ("pvc://other-claim/vulcan/prod/vulcan_1.dump", "claim 'other-claim' is not the claim"),
        ("pvc://prod-backups/vulcan/staging/vulcan_1.dump", "not in a backup folder"),
        ("pvc://prod-backups/other/prod/vulcan_1.dump", "not in a backup folder"),
        ("pvc://prod-backups/prod/vulcan_1.sql.gz", "not in a backup folder"),
        ("pvc://prod-backups/vulcan/prod/vulcan_1.sql.gz", "restored by hand"),
        ("pvc://prod-backups/vulcan/prod/vulcan_1.dump.sha256", "not a backup file"),
        ("pvc://prod-backups/vulcan/prod/x/vulcan_1.dump", "not in a backup folder"),
        ("pvc://prod-backups/vulcan/prod/../staging/vulcan_1.dump", "'..' parts"),
        ("pvc://prod-backups/vulcan/prod/on-demand/../../staging/vulcan_1.dump", "'..' parts"),
        ("ftp://prod-backups/vulcan/prod/vulcan_1.dump", "expected s3://bucket/key"),
    ],
)
def test_anything_else_is_refused_naming_the_field(location: str, why: str) -> None:
    problem = b.restore_source_problem("prod", "vulcan", BackupStorage(pvc=PvcStorage()), location)
    assert problem is not None and why in problem
    assert problem.startswith("spec.location: ") and "\n" not in problem
    assert problem.endswith(
        "allowed: pvc://prod-backups/vulcan/prod/vulcan_<time>.dump or "
        "pvc://prod-backups/vulcan/prod/on-demand/vulcan_<time>.dump"
    )


def test_the_restore_job_is_only_built_for_the_engines_store() -> None:
    engine_spec = spec(backup={"storage": S3_STORAGE.model_dump(exclude_none=True)})
    (job,) = b.build_restore_job(
        VR, "prod", engine_spec, SETTINGS, location=S3_LOCATION, checksum=SHA
    )
    download = env_of(pod_spec(job)["initContainers"][0])
    assert download["S3_ENDPOINT_URL"] == "https://minio.example.com"  # the engine's settings
    foreign = "s3://attacker-bucket/database/vulcan/prod/vulcan_20261129_020000.dump"
    with pytest.raises(ValueError, match=r"^spec\.location: bucket 'attacker-bucket'"):
        b.build_restore_job(VR, "prod", engine_spec, SETTINGS, location=foreign, checksum=SHA)
    with pytest.raises(ValueError, match="expected sha256"):
        b.build_restore_job(VR, "prod", engine_spec, SETTINGS, location=S3_LOCATION, checksum="")


def engine_doc(
    name: str, namespace: str, created: str, storage: dict[str, Any] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"version": "2.0.0"},
    }
    if storage is not None:
        doc["spec"]["backup"] = {"storage": storage}
    return doc


def test_two_engines_may_not_share_a_store() -> None:
    s3 = S3_STORAGE.model_dump(exclude_none=True)
    first = engine_doc("prod", "team-a", "2026-11-01T00:00:00Z", s3)
    second = engine_doc("prod", "team-b", "2026-11-02T00:00:00Z", s3)
    engines = [first, second]
    # The engine created first keeps its store; the later one is refused, naming the first.
    assert b.storage_conflicts("team-a", "prod", "2026-11-01T00:00:00Z", S3_STORAGE, engines) == []
    (problem,) = b.storage_conflicts("team-b", "prod", "2026-11-02T00:00:00Z", S3_STORAGE, engines)
    assert problem.startswith("spec.backup.storage: S3 bucket 'vulcan-backups'")
    assert "VulcanEngine 'team-a/prod'" in problem
    assert "s3-creds" not in problem and "minio" not in problem  # no settings beyond the bucket
    # A prefix inside the other's is the same store; another prefix, bucket or endpoint is not.
    inner = BackupStorage(s3=S3.model_copy(update={"prefix": "database/team-b/"}))
    assert b.storage_conflicts("team-b", "prod", "2026-11-02T00:00:00Z", inner, engines)
    for other in (
        S3.model_copy(update={"prefix": "database2/"}),
        S3.model_copy(update={"bucket": "team-b-backups"}),
        S3.model_copy(update={"endpoint": "https://s3.other.example.com"}),
    ):
        mine = BackupStorage(s3=other)
        assert b.storage_conflicts("team-b", "prod", "2026-11-02T00:00:00Z", mine, engines) == []
    # Same creation time: namespace and name decide, so exactly one of them is refused.
    tie = [engine_doc("prod", ns, "2026-11-01T00:00:00Z", s3) for ns in ("a", "b")]
    refused = [
        ns
        for ns in ("a", "b")
        if b.storage_conflicts(ns, "prod", "2026-11-01T00:00:00Z", S3_STORAGE, tie)
    ]
    assert refused == ["b"]


def test_two_engines_may_not_share_a_claim() -> None:
    managed = engine_doc("prod", "vulcan", "2026-11-01T00:00:00Z")  # the default: prod-backups
    squatter = BackupStorage(pvc=PvcStorage(claimName="prod-backups"))
    (problem,) = b.storage_conflicts(
        "vulcan", "staging", "2026-11-02T00:00:00Z", squatter, [managed]
    )
    assert "claim 'prod-backups'" in problem and "VulcanEngine 'prod'" in problem
    # A claim of the same name in another namespace is another claim.
    assert (
        b.storage_conflicts("other", "staging", "2026-11-02T00:00:00Z", squatter, [managed]) == []
    )
    # Being deleted, invalid, or itself: no conflict.
    gone = engine_doc("prod", "vulcan", "2026-11-01T00:00:00Z")
    gone["metadata"]["deletionTimestamp"] = "2026-11-03T00:00:00Z"
    broken = engine_doc("x", "vulcan", "2026-11-01T00:00:00Z", {"pvc": {}, "s3": {}})
    me = engine_doc("staging", "vulcan", "2026-11-02T00:00:00Z", squatter.model_dump())
    assert (
        b.storage_conflicts(
            "vulcan", "staging", "2026-11-02T00:00:00Z", squatter, [gone, broken, me]
        )
        == []
    )


def test_long_engine_names_fit_cronjob_limits() -> None:
    long = "e" * 60
    engine = b.EngineRef(name=long, namespace="vulcan", uid="u")
    objs = b.build_engine_backup_children(engine, spec(), SETTINGS)
    for cronjob in by_kind(objs, "CronJob"):
        assert len(cronjob["metadata"]["name"]) <= 52
    assert names.backup_cronjob(long) != names.maintenance_cronjob(long)
    validate_manifests(objs)
    vb = Owner(kind="VulcanBackup", name="b" * 200, namespace="vulcan", uid="u")
    job = b.build_backup_job(vb, long, engine_spec(S3_STORAGE), SETTINGS)[-1]
    assert len(job["metadata"]["name"]) <= 63
    validate_manifest(job)


# --- results --------------------------------------------------------------------------------
SUCCESS = {
    "kind": "vulcan-backup",
    "outcome": "Succeeded",
    "engine": "prod",
    "database": "vulcan",
    "location": "pvc://prod-backups/prod/vulcan_20261129_020000.sql.gz",
    "file": "vulcan_20261129_020000.sql.gz",
    "sizeBytes": 123456,
    "checksum": "ab" * 32,
    "checksumAlgorithm": "sha256",
    "databaseRevision": "4f2a9c1d7e3b",
    "format": "plain+gzip",
    "startedAt": "2026-11-29T02:00:00Z",
    "finishedAt": "2026-11-29T02:00:09Z",
    "retention": {"days": 30, "deleted": [], "kept": 3},
}


def test_parse_a_successful_backup() -> None:
    result = parse_backup_result(json.dumps(SUCCESS) + "\n")
    assert result == {
        "outcome": "Succeeded",
        "message": "",
        "step": None,
        "exitCode": None,
        "location": SUCCESS["location"],
        "sizeBytes": 123456,
        "checksum": "ab" * 32,
        "databaseRevision": "4f2a9c1d7e3b",
        "serverVersion": None,
        "clientVersion": None,
        "parts": {},
        "startedAt": "2026-11-29T02:00:00Z",
        "finishedAt": "2026-11-29T02:00:09Z",
    }


def test_parse_the_parts_and_versions_of_a_backup_set_keeping_only_well_formed_ones() -> None:
    part = {"file": "vulcan_20261129_020000.data.tar.gz", "sizeBytes": 9, "checksum": "cd" * 32}
    line = {
        **SUCCESS,
        "serverVersion": "17.6",
        "clientVersion": "17.6",
        "parts": {
            "data": part,
            "uploads": {**part, "file": "../../etc/passwd.uploads.tar.gz"},  # not a set file
            "redis": {**part, "file": "vulcan_20261129_020000.redis.rdb", "checksum": "no"},
            "other": part,  # not a part
        },
    }
    result = parse_backup_result(json.dumps(line) + "\n")
    assert result["parts"] == {"data": part}
    assert (result["serverVersion"], result["clientVersion"]) == ("17.6", "17.6")
    hostile = parse_backup_result(json.dumps({**line, "serverVersion": "17; DROP"}) + "\n")
    assert hostile["serverVersion"] is None


def test_parse_a_failure_from_the_logs_fallback() -> None:
    # FallbackToLogsOnError: the termination message is the log tail, result line last.
    failure = {
        "kind": "vulcan-backup",
        "outcome": "Failed",
        "exitCode": 1,
        "step": "dump",
        "message": "pg_dump failed (exit 1): connection refused",
        "startedAt": "2026-11-29T02:00:00Z",
        "finishedAt": "2026-11-29T02:00:01Z",
        "location": "pvc://x/y/vulcan_20261129_020000.sql.gz",
    }
    logs = (
        "2026-11-29T02:00:00Z backup: backing up database 'vulcan'\n"
        '{"kind":"vulcan-backup","outcome":"Succeeded"}\n'  # an older line is not the last
        "2026-11-29T02:00:01Z backup: error: pg_dump failed\n" + json.dumps(failure) + "\n"
    )
    result = parse_backup_result(logs)
    assert result["outcome"] == "Failed"
    assert result["step"] == "dump" and result["exitCode"] == 1
    assert "connection refused" in result["message"]
    assert result["sizeBytes"] is None and result["checksum"] is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "OOMKilled",
        '{"kind": "something-else", "outcome": "Succeeded"}',
        "{not json",
        '{"kind":"vulcan-backup","outcome":"Succeeded","sizeBy',
    ],  # cut at 4096 bytes
)
def test_parse_without_a_result_is_unknown(text: str) -> None:
    result = parse_backup_result(text)
    assert result["outcome"] == "Unknown"
    assert "no backup result" in result["message"]
    assert result["location"] is None


def test_parse_ignores_fields_of_the_wrong_type() -> None:
    odd = dict(SUCCESS, sizeBytes="big", checksum=7, outcome="Maybe")
    result = parse_backup_result(json.dumps(odd))
    assert result["sizeBytes"] is None and result["checksum"] is None
    assert result["outcome"] == "Unknown"


def test_parse_restore_and_maintenance_results() -> None:
    restore = {
        "kind": "vulcan-restore",
        "outcome": "Succeeded",
        "database": "vulcan",
        "location": LOCATION,
        "databaseRevision": "abc",
        "rowCounts": {"jobs": 600, "tasks": 3000, "bad": "x"},
    }
    result = parse_restore_result(json.dumps(restore))
    assert result["outcome"] == "Succeeded" and result["database"] == "vulcan"
    assert result["rowCounts"] == {"jobs": 600, "tasks": 3000}
    refused = {
        "kind": "vulcan-restore",
        "outcome": "Failed",
        "exitCode": 3,
        "step": "verify",
        "message": "backup refused, database untouched: checksum mismatch",
    }
    assert parse_restore_result(json.dumps(refused))["exitCode"] == 3
    download = {
        "kind": "vulcan-restore-download",
        "outcome": "Failed",
        "exitCode": 3,
        "step": "verify",
        "message": "backup refused: s3://b/k does not exist",
    }
    assert parse_restore_result(json.dumps(download))["message"].endswith("does not exist")
    assert parse_result("nothing") is None
