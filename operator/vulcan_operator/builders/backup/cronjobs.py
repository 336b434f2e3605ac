"""An engine's backup children: the backup claim and the backup and maintenance CronJobs.

| child                          | owner          | built by                     |
|--------------------------------|----------------|------------------------------|
| backup CronJob                 | VulcanEngine   | `build_backup_cronjob`       |
| maintenance CronJob            | VulcanEngine   | `build_maintenance_cronjob`  |
| restore drill CronJob          | VulcanEngine   | `build_drill_cronjob`        |
| backup PVC (operator-made)     | nobody         | `build_backup_pvc`           |

Data first (as CloudNativePG): the PVC the operator creates for backups has NO
ownerReference, so deleting the engine never deletes its backups; the operator never deletes
it either. Apply it create-only: a claim's spec is immutable except for growing
`resources.requests.storage`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vulcan_operator import kinds, names
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.api.engine import Backup, BackupStorage, Maintenance, VulcanEngineSpec
from vulcan_operator.builders.backup.pods import (
    AWS_RESOURCES,
    DEFAULT_AWS_CLI_IMAGE,
    NO_PARTS,
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
from vulcan_operator.builders.backup.storage import BACKUP_MOUNT, plan_storage
from vulcan_operator.builders.common import (
    Manifest,
    Owner,
    finish,
    job_pull_secrets,
)
from vulcan_operator.builders.volumes import without_owner
from vulcan_operator.config import Settings
from vulcan_operator.templating import render_one

__all__ = [
    "EngineRef",
    "build_backup_cronjob",
    "build_backup_pvc",
    "build_drill_cronjob",
    "build_engine_backup_children",
    "build_maintenance_cronjob",
]

KIND_ENGINE = kinds.ENGINE.kind

TIME_ZONE = "Etc/UTC"
CONCURRENCY_POLICY = "Forbid"
STARTING_DEADLINE_SECONDS = 3600  # a backup an hour late is still worth taking
SUCCESSFUL_JOBS_HISTORY_LIMIT = 3
FAILED_JOBS_HISTORY_LIMIT = 3
PVC_ACCESS_MODES = ["ReadWriteOnce"]


@dataclass(frozen=True)
class EngineRef:
    """The engine a child belongs to: name, namespace and uid (for ownerReferences)."""

    name: str
    namespace: str
    uid: str

    @property
    def owner(self) -> Owner:
        return Owner(kind=KIND_ENGINE, name=self.name, namespace=self.namespace, uid=self.uid)


def build_backup_pvc(engine: EngineRef, storage: BackupStorage) -> list[Manifest]:
    """The claim for the engine's backups, when the operator is to create one: storage.pvc
    without a claimName. No ownerReference: it outlives the engine. [] otherwise. Only the
    engine's reconcile applies it (a VulcanBackup never creates a claim)."""
    plan = plan_storage(engine.name, engine.namespace, storage)
    if plan.kind != "pvc" or not plan.managed:
        return []
    assert storage.pvc is not None
    pvc = render_one(
        "backup-pvc.yaml.j2",
        name=plan.claim,
        access_modes=PVC_ACCESS_MODES,
        storage_class_name=storage.pvc.storageClassName,
        size=str(storage.pvc.size),
    )
    labels = names.labels(engine.name, names.COMPONENT_BACKUP)
    return [without_owner(finish(pvc, engine.owner, labels))]


def _cronjob(
    engine: EngineRef,
    component: str,
    name: str,
    schedule: str,
    pod: Pod,
    *,
    suspend: bool,
    pull_secrets: Sequence[dict[str, str]],
) -> Manifest:
    """A CronJob of the engine (owned by it) running `pod` on `schedule`, one run at a time."""
    labels = names.labels(engine.name, component)
    context: dict[str, Any] = {
        "schedule": schedule,
        "time_zone": TIME_ZONE,
        "concurrency_policy": CONCURRENCY_POLICY,
        "starting_deadline_seconds": STARTING_DEADLINE_SECONDS,
        "successful_jobs_history_limit": SUCCESSFUL_JOBS_HISTORY_LIMIT,
        "failed_jobs_history_limit": FAILED_JOBS_HISTORY_LIMIT,
        "suspend": suspend,
    }
    cronjob = render_one(
        "cronjob.yaml.j2",
        name=name,
        **context,
        **job_context(component, labels, pod, list(pull_secrets)),
    )
    return finish(cronjob, engine.owner, labels)


def build_backup_cronjob(
    engine: EngineRef,
    backup: Backup,
    database: SecretKeyRef,
    settings: Settings,
    *,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
    suspend: bool = False,
    pull_secrets: Sequence[dict[str, str]] = (),
    parts: SetParts = NO_PARTS,
) -> list[Manifest]:
    """The scheduled-backup CronJob (owned by the engine), or [] when backups are disabled;
    `parts`: the engine's volumes and Redis snapshot in each backup set.

    Each run dumps, verifies, stores and applies `retentionDays` to the scheduled backups, and
    tells `notifyWebhookSecretRef`'s URL (when set) of the outcome. `suspend` (while a restore
    runs) keeps it from starting new runs.
    """
    if not backup.enabled:
        return []
    pod = backup_pod(
        engine.name,
        engine.namespace,
        plan_storage(engine.name, engine.namespace, backup.storage),
        database,
        settings,
        retention_days=backup.retentionDays,
        webhook=backup.notifyWebhookSecretRef,
        aws_cli_image=aws_cli_image,
        parts=parts,
    )
    name = names.backup_cronjob(engine.name)
    component = names.COMPONENT_BACKUP
    return [
        _cronjob(
            engine,
            component,
            name,
            backup.schedule,
            pod,
            suspend=suspend,
            pull_secrets=pull_secrets,
        )
    ]


def build_maintenance_cronjob(
    engine: EngineRef,
    maintenance: Maintenance,
    database: SecretKeyRef,
    settings: Settings,
    *,
    reindex: bool = False,
    suspend: bool = False,
    pull_secrets: Sequence[dict[str, str]] = (),
) -> list[Manifest]:
    """The maintenance CronJob (VACUUM ANALYZE; REINDEX with `reindex`), or [] when disabled;
    `suspend` keeps it from starting new runs."""
    if not maintenance.enabled:
        return []
    env = [
        *base_env(engine.name, engine.namespace),
        *database_env(database),
        env_var("MAINTENANCE_REINDEX", "true" if reindex else "false"),
    ]
    pod = Pod(
        init_containers=[],
        containers=[container("maintenance", settings.postgres_image, "maintenance", env, [])],
        volumes=volumes(),
    )
    name = names.maintenance_cronjob(engine.name)
    component = names.COMPONENT_MAINTENANCE
    return [
        _cronjob(
            engine,
            component,
            name,
            maintenance.schedule,
            pod,
            suspend=suspend,
            pull_secrets=pull_secrets,
        )
    ]


def build_drill_cronjob(
    engine: EngineRef,
    spec: VulcanEngineSpec,
    settings: Settings,
    *,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
    suspend: bool = False,
    pull_secrets: Sequence[dict[str, str]] = (),
) -> list[Manifest]:
    """The restore drill CronJob (`spec.backup.drill`), or [] when drills are off: the drill
    program with the engine's DATABASE_URL, or the URL of `drill.serverUrlSecretRef` (drill.sh:
    the newest backup into <database>_drill, checked, dropped). pvc: the engine's backup folder
    on the claim, read-only. s3: an init container (aws CLI, the engine's S3 settings) downloads
    the newest backup of the engine's folder and its manifest into an emptyDir the drill
    reads."""
    drill = spec.backup.drill
    if not drill.enabled:
        return []
    plan = plan_storage(engine.name, engine.namespace, spec.backup.storage)
    # Another server (drill.serverUrlSecretRef): its URL is the drill's only database
    # credential; the engine's own DATABASE_URL is not handed to the Job then.
    server = drill.serverUrlSecretRef or spec.database_url_ref(engine.name)
    env = [
        *base_env(engine.name, engine.namespace),
        *database_env(server),
        env_var("DRILL_LOCATION_PREFIX", plan.location),
    ]
    if plan.kind == "pvc":
        env.append(env_var("BACKUP_DIR", plan.backup_dir))
        mounts = [{"name": "backups", "mountPath": BACKUP_MOUNT, "readOnly": True}]
        pod = Pod(
            init_containers=[],
            containers=[container("drill", settings.postgres_image, "drill", env, mounts)],
            volumes=volumes(claim_volume(plan.claim, read_only=True)),
        )
    else:
        assert plan.s3 is not None
        env.append(env_var("BACKUP_DIR", WORK_MOUNT))
        work = [{"name": "work", "mountPath": WORK_MOUNT}]
        download_env = [
            *base_env(engine.name, engine.namespace),
            env_var("BACKUP_DIR", WORK_MOUNT),
            *s3_env(plan.s3, bucket_and_prefix=plan.prefix),
        ]
        download = container(
            "download", aws_cli_image, "s3-drill-download", download_env, work, AWS_RESOURCES
        )
        pod = Pod(
            init_containers=[download],
            containers=[container("drill", settings.postgres_image, "drill", env, work)],
            volumes=volumes({"name": "work", "emptyDir": {}}),
        )
    return [
        _cronjob(
            engine,
            names.COMPONENT_DRILL,
            names.drill_cronjob(engine.name),
            drill.schedule,
            pod,
            suspend=suspend,
            pull_secrets=pull_secrets,
        )
    ]


def build_engine_backup_children(
    engine: EngineRef,
    spec: VulcanEngineSpec,
    settings: Settings,
    *,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
    suspend: bool = False,
) -> list[Manifest]:
    """Backup PVC (when the operator makes it, scheduled backups on or not), backup CronJob and
    maintenance CronJob of an engine, as its spec asks; `suspend` suspends both CronJobs
    (while a restore runs: no dump or VACUUM of a database being replaced)."""
    database = spec.database_url_ref(engine.name)
    # The engine's store exists whether or not scheduled backups run: VulcanBackups (on-demand,
    # pre-upgrade) write there, and they never create a claim themselves.
    pvc = build_backup_pvc(engine, spec.backup.storage)
    secrets = job_pull_secrets(spec, settings)
    return [
        *pvc,
        *build_backup_cronjob(
            engine,
            spec.backup,
            database,
            settings,
            aws_cli_image=aws_cli_image,
            suspend=suspend,
            pull_secrets=secrets,
            parts=SetParts.of(engine.name, spec),
        ),
        *build_maintenance_cronjob(
            engine, spec.maintenance, database, settings, suspend=suspend, pull_secrets=secrets
        ),
        *build_drill_cronjob(
            engine,
            spec,
            settings,
            aws_cli_image=aws_cli_image,
            suspend=suspend,
            pull_secrets=secrets,
        ),
    ]
