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
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.backup.pods import (
    AWS_RESOURCES,
    DEFAULT_AWS_CLI_IMAGE,
    WORK_MOUNT,
    Pod,
    SetParts,
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
from vulcan_operator.builders.common import (
    Manifest,
    Owner,
    content_hash,
    finish,
    job_pull_secrets,
)
from vulcan_operator.builders.volumes import AppVolume
from vulcan_operator.config import Settings
from vulcan_operator.templating import render_one

__all__ = [
    "build_backup_job",
    "build_restore_job",
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
    engine_spec: VulcanEngineSpec,
    settings: Settings,
    *,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
) -> list[Manifest]:
    """The Job of one VulcanBackup of `engine` (owned by the VulcanBackup), and nothing else:
    no claim (the managed one is the engine's reconcile's to create).

    Everything comes from the engine's spec (a VulcanBackup has no storage of its own): its
    store, where the backup goes to the on-demand folder/prefix that retention never touches,
    its database and its webhook.
    """
    labels = names.labels(engine, names.COMPONENT_BACKUP)
    pod = backup_pod(
        engine,
        backup.namespace,
        plan_storage(engine, backup.namespace, engine_spec.backup.storage, on_demand=True),
        engine_spec.database_url_ref(engine),
        settings,
        retention_days=None,
        webhook=engine_spec.backup.notifyWebhookSecretRef,
        aws_cli_image=aws_cli_image,
        parts=SetParts.of(engine, engine_spec),
    )
    context = {
        "ttl_seconds_after_finished": TTL_SECONDS_AFTER_FINISHED,
        **job_context(names.COMPONENT_BACKUP, labels, pod, job_pull_secrets(engine_spec, settings)),
    }
    return [_named_job("backup-job.yaml.j2", names.backup_job, backup, labels, context)]


def _restored_volumes(
    engine: str,
    spec: VulcanEngineSpec,
    where: BackupLocation,
    parts: Mapping[str, Mapping[str, Any]] | None,
    target_database: str,
) -> tuple[AppVolume, ...]:
    """The engine's volumes a restore puts back: those the backup set recorded (a file beside
    the dump, named after it, with a sha256); none for a side restore. ValueError for a
    recorded part that is not such a file."""
    if target_database or not parts:
        return ()
    base = where.file_name.removesuffix(".dump")
    chosen = []
    for volume in SetParts.of(engine, spec).volumes:
        recorded = parts.get(volume.part)
        if recorded is None:
            continue
        if recorded.get("file") != f"{base}.{volume.part}.tar.gz" or not re.fullmatch(
            r"[0-9a-f]{64}", str(recorded.get("checksum"))
        ):
            raise ValueError(
                f"the backup's {volume.part} part is not {base}.{volume.part}.tar.gz with a "
                "sha256 (the VulcanBackup's status.parts)"
            )
        chosen.append(volume)
    return tuple(chosen)


def build_restore_job(
    restore: Owner,
    engine: str,
    engine_spec: VulcanEngineSpec,
    settings: Settings,
    *,
    location: str,
    checksum: str,
    target_database: str = "",
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
    parts: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Manifest]:
    """The Job of one VulcanRestore of `engine` (owned by the VulcanRestore): restore
    `location`, a backup file of the engine's own store (see `restore_source_problem`), into
    the engine's database, or `target_database`. Only the database part: scaling the engine
    down, migrating and scaling back are the reconciler's steps. No ttlSecondsAfterFinished:
    the operator deletes the Job once it has recorded the result.

    A `pvc://claim/path` is mounted read-only; an `s3://bucket/key` is downloaded by an init
    container with the engine's S3 settings. `checksum` (required: the VulcanBackup's
    status.checksum or the VulcanRestore's spec.checksum) is checked before anything is
    touched. ValueError (one line naming the field) for a location or checksum that cannot be
    restored.

    `parts` ({"data": {"file", "checksum"}, ...}, as the VulcanBackup recorded them): the
    engine's volumes (spec.persistence) among them are put back too, mounted read-write (the
    engine is at zero replicas), each checked against its recorded checksum; never for a side
    restore (`target_database`), which leaves the live files alone.
    """
    storage = engine_spec.backup.storage
    problem = restore_source_problem(engine, restore.namespace, storage, location)
    if problem is not None:
        raise ValueError(problem)
    where = BackupLocation.parse(location)
    if not re.fullmatch(r"[0-9a-f]{64}", checksum):
        raise ValueError(
            "the expected sha256 of the backup file is missing or not 64 lowercase hex "
            "characters (the VulcanBackup's status.checksum or spec.checksum)"
        )
    namespace = restore.namespace
    labels = names.labels(engine, names.COMPONENT_RESTORE)
    restore_env = [
        *base_env(engine, namespace),
        *database_env(engine_spec.database_url_ref(engine)),
    ]
    restore_env.append(env_var("EXPECTED_SHA256", checksum))
    if target_database:
        restore_env.append(env_var("TARGET_DATABASE", target_database))
    restore_env.append(env_var("BACKUP_LOCATION", str(where)))
    folder = posixpath.join(BACKUP_MOUNT, posixpath.dirname(where.path))
    if where.scheme == "s3":
        folder = WORK_MOUNT
    files = SetParts(_restored_volumes(engine, engine_spec, where, parts, target_database))
    for volume in files.volumes:
        recorded = (parts or {})[volume.part]
        key = f"PART_{volume.part.upper()}"
        restore_env += [
            env_var(f"{key}_ARCHIVE", posixpath.join(folder, str(recorded["file"]))),
            env_var(f"{key}_SHA256", str(recorded["checksum"])),
            env_var(f"{key}_DIR", files.path(volume)),
        ]
    if where.scheme == "pvc":
        restore_env.append(env_var("BACKUP_FILE", posixpath.join(BACKUP_MOUNT, where.path)))
        mounts = [
            {"name": "backups", "mountPath": BACKUP_MOUNT, "readOnly": True},
            *files.mounts(read_only=False),
        ]
        pod = Pod(
            init_containers=[],
            containers=[
                container("restore", settings.postgres_image, "restore", restore_env, mounts)
            ],
            volumes=volumes(
                claim_volume(where.root, read_only=True), *files.claims(read_only=False)
            ),
        )
    else:
        assert storage.s3 is not None  # restore_source_problem: an s3:// file of an S3 store
        work = [{"name": "work", "mountPath": WORK_MOUNT}]
        download_env = [
            *base_env(engine, namespace),
            env_var("S3_LOCATION", str(where)),
            env_var("BACKUP_DIR", WORK_MOUNT),
            *s3_env(storage.s3),
        ]
        if files.volumes:
            names_of = [str((parts or {})[v.part]["file"]) for v in files.volumes]
            download_env.append(env_var("S3_PARTS", " ".join(names_of)))
        restore_env.append(env_var("BACKUP_FILE", posixpath.join(WORK_MOUNT, where.file_name)))
        pod = Pod(
            init_containers=[
                container(
                    "download", aws_cli_image, "s3-download", download_env, work, AWS_RESOURCES
                )
            ],
            containers=[
                container(
                    "restore",
                    settings.postgres_image,
                    "restore",
                    restore_env,
                    [*work, *files.mounts(read_only=False)],
                )
            ],
            volumes=volumes({"name": "work", "emptyDir": {}}, *files.claims(read_only=False)),
        )
    pull = job_pull_secrets(engine_spec, settings)
    context = job_context(names.COMPONENT_RESTORE, labels, pod, pull)
    return [_named_job("restore-job.yaml.j2", names.restore_job, restore, labels, context)]
