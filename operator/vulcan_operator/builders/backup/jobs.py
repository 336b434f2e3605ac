"""The one-off Jobs: a VulcanBackup's backup Job and a VulcanRestore's restore Job.

| child                          | owner          | built by                     |
|--------------------------------|----------------|------------------------------|
| on-demand backup Job           | VulcanBackup   | `build_backup_job`           |
| restore Job                    | VulcanRestore  | `build_restore_job`          |

- One store per engine, the engine's: `spec.backup.storage` of the VulcanEngine. A VulcanBackup
  has no storage of its own (its Job writes to the engine's on-demand folder) and never
  creates a claim: only the engine's reconcile creates the managed `<engine>-backups` claim.
  A restore reads only a backup file of that store (`restore_source_problem`).
- A Job's pod template is immutable, so its name carries a hash of its content.
- Restore Jobs have no ttlSecondsAfterFinished: the operator reads the result, records it and
  deletes the Job itself (a TTL could remove it while the operator is down).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from vulcan_operator import names
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.api.engine import BackupStorage, S3Storage, VulcanEngineSpec
from vulcan_operator.builders.backup.pods import (
    AWS_RESOURCES,
    DEFAULT_AWS_CLI_IMAGE,
    WORK_MOUNT,
    Pod,
    backup_pod,
    base_env,
    claim_volume,
    container,
    database_env,
    env_var,
    job_context,
    s3_env,
    volumes,
)
from vulcan_operator.builders.backup.storage import (
    BACKUP_MOUNT,
    BackupLocation,
    plan_storage,
    restore_source_problem,
)
from vulcan_operator.builders.common import Manifest, Owner, content_hash, finish
from vulcan_operator.config import Settings
from vulcan_operator.templating import render_one

__all__ = [
    "build_backup_job",
    "build_restore_job",
    "build_vulcan_backup_job",
    "build_vulcan_restore_job",
]

TTL_SECONDS_AFTER_FINISHED = 86400  # backup Jobs; the operator has read the result by then


def _named_job(
    template: str,
    name_of: Callable[[str, str], str],
    owner: Owner,
    labels: Mapping[str, str],
    context: Mapping[str, Any],
) -> Manifest:
    """Render a Job whose name carries a hash of its content (and of the owner's uid)."""
    draft = render_one(template, name="draft", **context)
    digest = content_hash({"spec": draft["spec"], "owner": owner.uid}, length=8)
    draft["metadata"]["name"] = name_of(owner.name, digest)
    return finish(draft, owner, labels)


def build_backup_job(
    backup: Owner,
    engine: str,
    storage: BackupStorage,
    database: SecretKeyRef,
    settings: Settings,
    *,
    notify_webhook: SecretKeyRef | None = None,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
) -> list[Manifest]:
    """The Job of one VulcanBackup (owned by it), and nothing else: no claim (the managed one
    is the engine's reconcile's to create).

    `storage` is the engine's spec.backup.storage (a VulcanBackup has none of its own). The
    backup goes to the engine's on-demand folder/prefix, where retention never deletes it.
    """
    labels = names.labels(engine, names.COMPONENT_BACKUP)
    pod = backup_pod(
        engine,
        backup.namespace,
        plan_storage(engine, backup.namespace, storage, on_demand=True),
        database,
        settings,
        retention_days=None,
        webhook=notify_webhook,
        aws_cli_image=aws_cli_image,
    )
    context = {
        "ttl_seconds_after_finished": TTL_SECONDS_AFTER_FINISHED,
        **job_context(names.COMPONENT_BACKUP, labels, pod),
    }
    return [_named_job("backup-job.yaml.j2", names.backup_job, backup, labels, context)]


def build_restore_job(
    restore: Owner,
    engine: str,
    location: str,
    database: SecretKeyRef,
    settings: Settings,
    *,
    expected_sha256: str,
    target_database: str = "",
    s3: S3Storage | None = None,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
) -> list[Manifest]:
    """The Job of one VulcanRestore (owned by it): restore `location` into the engine's
    database, or `target_database`. Only the database part: scaling the engine down, migrating
    and scaling back are the reconciler's steps. No ttlSecondsAfterFinished: the operator
    deletes the Job once it has recorded the result.

    `location` is `pvc://claim/path` (the claim is mounted read-only) or `s3://bucket/key`
    (downloaded by an init container; `s3` gives endpoint, region and credentials: the
    engine's storage.s3). `expected_sha256` (required: the VulcanBackup's status.checksum or
    the VulcanRestore's spec.checksum) is checked before anything is touched. ValueError for
    a bad location or checksum.
    """
    where = BackupLocation.parse(location)
    if not re.fullmatch(r"[0-9a-f]{64}", expected_sha256):
        raise ValueError(
            "the expected sha256 of the backup file is missing or not 64 lowercase hex "
            "characters (the VulcanBackup's status.checksum or spec.checksum)"
        )
    namespace = restore.namespace
    labels = names.labels(engine, names.COMPONENT_RESTORE)
    restore_env = [*base_env(engine, namespace), *database_env(database)]
    restore_env.append(env_var("EXPECTED_SHA256", expected_sha256))
    if target_database:
        restore_env.append(env_var("TARGET_DATABASE", target_database))
    restore_env.append(env_var("BACKUP_LOCATION", str(where)))
    if where.scheme == "pvc":
        restore_env.append(env_var("BACKUP_FILE", posixpath.join(BACKUP_MOUNT, where.path)))
        mounts = [{"name": "backups", "mountPath": BACKUP_MOUNT, "readOnly": True}]
        pod = Pod(
            init_containers=[],
            containers=[
                container("restore", settings.postgres_image, "restore", restore_env, mounts)
            ],
            volumes=volumes(claim_volume(where.root, read_only=True)),
        )
    else:
        if s3 is None:
            raise ValueError(
                f"backup location {location}: an s3:// location needs S3 settings "
                "(endpoint, region, credentials), e.g. the engine's spec.backup.storage.s3"
            )
        work = [{"name": "work", "mountPath": WORK_MOUNT}]
        download_env = [
            *base_env(engine, namespace),
            env_var("S3_LOCATION", str(where)),
            env_var("BACKUP_DIR", WORK_MOUNT),
            *s3_env(s3),
        ]
        restore_env.append(env_var("BACKUP_FILE", posixpath.join(WORK_MOUNT, where.file_name)))
        pod = Pod(
            init_containers=[
                container(
                    "download", aws_cli_image, "s3-download", download_env, work, AWS_RESOURCES
                )
            ],
            containers=[
                container("restore", settings.postgres_image, "restore", restore_env, work)
            ],
            volumes=volumes({"name": "work", "emptyDir": {}}),
        )
    context = job_context(names.COMPONENT_RESTORE, labels, pod)
    return [_named_job("restore-job.yaml.j2", names.restore_job, restore, labels, context)]


# --- as the controllers (and `render`) make them -------------------------------------------
def build_vulcan_backup_job(
    backup: Owner,
    engine: str,
    engine_spec: VulcanEngineSpec,
    settings: Settings,
) -> list[Manifest]:
    """The Job of a VulcanBackup of `engine`: to the engine's own store (on-demand folder),
    with the engine's database and webhook. Never a claim."""
    return build_backup_job(
        backup,
        engine,
        engine_spec.backup.storage,
        engine_spec.database_url_ref(engine),
        settings,
        notify_webhook=engine_spec.backup.notifyWebhookSecretRef,
    )


def build_vulcan_restore_job(
    restore: Owner,
    engine: str,
    engine_spec: VulcanEngineSpec,
    settings: Settings,
    *,
    location: str,
    checksum: str,
    target_database: str = "",
) -> list[Manifest]:
    """The Job of a VulcanRestore of `engine`: `location`, a backup file of the engine's own
    store (see `restore_source_problem`), into the engine's database (or `target_database`),
    checked against `checksum` (required); S3 settings are the engine's. ValueError (one line
    naming the field) for a location or checksum that cannot be restored."""
    storage = engine_spec.backup.storage
    problem = restore_source_problem(engine, restore.namespace, storage, location)
    if problem is not None:
        raise ValueError(problem)
    return build_restore_job(
        restore,
        engine,
        location,
        engine_spec.database_url_ref(engine),
        settings,
        target_database=target_database,
        expected_sha256=checksum,
        s3=storage.s3,
    )
