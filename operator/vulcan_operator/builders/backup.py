"""Backup, maintenance and restore children: pure builders, no I/O, no clock.

What they build, and who owns it:

| child                          | owner          | built by                     |
|--------------------------------|----------------|------------------------------|
| backup CronJob                 | VulcanEngine   | `build_backup_cronjob`       |
| maintenance CronJob            | VulcanEngine   | `build_maintenance_cronjob`  |
| backup PVC (operator-made)     | nobody         | `build_backup_pvc`           |
| on-demand backup Job           | VulcanBackup   | `build_backup_job`           |
| restore Job                    | VulcanRestore  | `build_restore_job`          |

Decisions (see also `vulcan_operator.jobscripts`):

- Scripts are inlined in the container command (`sh -c <program> <name>`): each Job carries the
  exact program it runs, its name hash covers it, an operator upgrade that changes a script
  changes the CronJob's spec-hash (so it is re-applied), and no ConfigMap has to be kept in step.
- Data first (as CloudNativePG): the PVC the operator creates for backups has NO
  ownerReference, so deleting the engine never deletes its backups; the operator never deletes
  it either (`possible_backup_children` leaves it out). Apply it create-only: a claim's spec is
  immutable except for growing `resources.requests.storage`.
- One store per engine, the engine's: `spec.backup.storage` of the VulcanEngine. A VulcanBackup
  has no storage of its own (its Job writes to the engine's on-demand folder) and never
  creates a claim: only the engine's reconcile creates the managed `<engine>-backups` claim.
  A restore reads only a backup file of that store (`restore_source_problem`). Two engines
  may not share a store (`storage_conflicts`: the later-created one is refused).
- Layout: every backup of an engine lives under `<namespace>/<engine>/` of the store, the
  on-demand ones under `<namespace>/<engine>/on-demand/` (out of reach of retention: a
  pre-upgrade backup stays until someone deletes it). Files are `vulcan_YYYYmmdd_HHMMSS.dump`
  (PostgreSQL custom format) with `.sha256` and `.json` sidecars.
  PVC (mounted at /backups): `pvc://<claim>/<namespace>/<engine>/[on-demand/]<file>`.
  S3: `s3://<bucket>/<prefix><namespace>/<engine>/[on-demand/]<file>`.
- S3: postgres:15-alpine has no aws CLI, so the pod runs the dump as an init container
  (postgres image) into an emptyDir and uploads from the main container (aws CLI image); a
  restore downloads in an init container and restores in the main one.
- Pods: uid/gid 70 (`postgres` in the alpine image), fsGroup 70 so the volume is writable,
  RuntimeDefault seccomp, no capabilities, read-only root with an emptyDir /tmp, no service
  account token. `restartPolicy: Never` and a podFailurePolicy: exit 2 (bad settings) and 3
  (backup file refused) fail the Job at once; evictions do not count as failures.
- Secrets only by reference: DATABASE_URL, the webhook URL and the S3 keys come from
  `secretKeyRef`s; no value ever appears in a manifest.
- Restore Jobs have no ttlSecondsAfterFinished: the operator reads the result, records it and
  deletes the Job itself (a TTL could remove it while the operator is down).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from vulcan_operator import jobscripts, names
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.api.engine import (
    Backup,
    BackupStorage,
    Database,
    Maintenance,
    PvcStorage,
    S3Storage,
    VulcanEngineSpec,
)
from vulcan_operator.builders.common import Owner, content_hash, finish, hashable_content
from vulcan_operator.config import Settings
from vulcan_operator.templating import render_one

__all__ = [
    "ACTIVE_DEADLINE_SECONDS",
    "BACKUP_MOUNT",
    "COMPONENT_BACKUP",
    "COMPONENT_MAINTENANCE",
    "COMPONENT_RESTORE",
    "DEFAULT_AWS_CLI_IMAGE",
    "ON_DEMAND_DIR",
    "RUN_AS_USER",
    "BackupLocation",
    "EngineRef",
    "StoragePlan",
    "backup_cronjob_name",
    "backup_job_name",
    "backup_pvc_name",
    "build_backup_cronjob",
    "build_backup_job",
    "build_backup_pvc",
    "build_engine_backup_children",
    "build_maintenance_cronjob",
    "build_restore_job",
    "build_vulcan_backup_job",
    "build_vulcan_restore_job",
    "database_secret_ref",
    "maintenance_cronjob_name",
    "parse_backup_result",
    "parse_maintenance_result",
    "parse_restore_result",
    "parse_result",
    "plan_storage",
    "possible_backup_children",
    "restore_job_name",
    "restore_source_problem",
    "storage_conflicts",
]

Manifest = dict[str, Any]

KIND_ENGINE = "VulcanEngine"
KIND_BACKUP = "VulcanBackup"
KIND_RESTORE = "VulcanRestore"

COMPONENT_BACKUP = "backup"
COMPONENT_MAINTENANCE = "maintenance"
COMPONENT_RESTORE = "restore"

#: The aws CLI image of the S3 containers (v2.17: before the default integrity checksums of
#: 2.23 that some S3-compatible stores reject). Should become a Settings field.
DEFAULT_AWS_CLI_IMAGE = "amazon/aws-cli:2.17.0"

#: uid and gid of `postgres` in the postgres:*-alpine images.
RUN_AS_USER = 70
RUN_AS_GROUP = 70

BACKUP_MOUNT = "/backups"  # the backup claim
WORK_MOUNT = "/work"  # the emptyDir shared by the two containers of an S3 pod
TMP_MOUNT = "/tmp"
ON_DEMAND_DIR = "on-demand"

CRONJOB_NAME_MAX = 52  # the CronJob controller appends "-<11 digits>" to Job names
TIME_ZONE = "Etc/UTC"
CONCURRENCY_POLICY = "Forbid"
STARTING_DEADLINE_SECONDS = 3600  # a backup an hour late is still worth taking
SUCCESSFUL_JOBS_HISTORY_LIMIT = 3
FAILED_JOBS_HISTORY_LIMIT = 3
BACKOFF_LIMIT = 1  # one retry for a transient failure (node loss, connection reset)
RESTORE_BACKOFF_LIMIT = 0  # a restore is retried by a person (or the operator), not blindly
ACTIVE_DEADLINE_SECONDS = {
    COMPONENT_BACKUP: 3 * 3600,
    COMPONENT_MAINTENANCE: 3 * 3600,
    COMPONENT_RESTORE: 6 * 3600,
}
TTL_SECONDS_AFTER_FINISHED = 86400  # one-off Jobs; the operator has read the result by then
PVC_ACCESS_MODES = ["ReadWriteOnce"]

#: A CPU limit too, so a backup at night cannot starve the node's other pods (checkov
#: CKV_K8S_11); 1 CPU is what pg_dump | gzip or the aws CLI use.
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
AWS_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}

POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_GROUP,
    "fsGroup": RUN_AS_GROUP,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
#: Deterministic failures (bad settings, a refused backup file) fail the Job at once; a pod
#: evicted or preempted is not counted against backoffLimit.
POD_FAILURE_POLICY = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {
            "action": "FailJob",
            "onExitCodes": {
                "operator": "In",
                "values": [jobscripts.EXIT_CONFIG, jobscripts.EXIT_REFUSED],
            },
        },
    ]
}

AWS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"


# --- names (to move into names.py) ----------------------------------------------------------
def backup_cronjob_name(engine: str) -> str:
    """CronJob of the scheduled backups (at most 52 characters, as CronJob names must be)."""
    return names.dns_name(engine, "backup", max_length=CRONJOB_NAME_MAX)


def maintenance_cronjob_name(engine: str) -> str:
    """CronJob of the scheduled maintenance."""
    return names.dns_name(engine, "maintenance", max_length=CRONJOB_NAME_MAX)


def backup_pvc_name(engine: str) -> str:
    """The PersistentVolumeClaim the operator creates for an engine's backups."""
    return names.dns_name(engine, "backups")


def backup_job_name(backup: str, digest: str) -> str:
    """Job of one VulcanBackup; `digest` is a short hash of the Job's inputs."""
    return names.dns_name(backup, "backup", digest)


def restore_job_name(restore: str, digest: str) -> str:
    """Job of one VulcanRestore; `digest` is a short hash of the Job's inputs."""
    return names.dns_name(restore, "restore", digest)


# --- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineRef:
    """The engine a child belongs to: name, namespace and uid (for ownerReferences)."""

    name: str
    namespace: str
    uid: str

    @property
    def owner(self) -> Owner:
        return Owner(kind=KIND_ENGINE, name=self.name, namespace=self.namespace, uid=self.uid)


def database_secret_ref(engine: str, database: Database) -> SecretKeyRef:
    """Where DATABASE_URL is: spec.database.urlSecretRef, else the default Secret
    `<engine>-database`, key `database-url`."""
    return database.urlSecretRef or SecretKeyRef(
        name=names.default_database_secret(engine), key=names.DATABASE_URL_KEY
    )


@dataclass(frozen=True)
class StoragePlan:
    """Where one engine's backups of one kind (scheduled or on-demand) are kept."""

    kind: Literal["pvc", "s3"]
    #: pvc: the claim to mount (the operator's own when `managed`).
    claim: str = ""
    managed: bool = False
    #: pvc: the folder inside the claim, e.g. "vulcan/prod" or "vulcan/prod/on-demand".
    folder: str = ""
    #: s3: the settings, and the key prefix ("database/vulcan/prod/" or
    #: "database/vulcan/prod/on-demand/").
    s3: S3Storage | None = None
    prefix: str = ""

    @property
    def location(self) -> str:
        """The location prefix of the backup files: pvc://claim/folder or s3://bucket/prefix."""
        if self.kind == "pvc":
            return f"pvc://{self.claim}/{self.folder}"
        assert self.s3 is not None
        return f"s3://{self.s3.bucket}/{self.prefix}".rstrip("/")

    @property
    def backup_dir(self) -> str:
        """pvc: the folder as the pod sees it."""
        return posixpath.join(BACKUP_MOUNT, self.folder)


def _s3_prefix(prefix: str) -> str:
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def plan_storage(
    engine: str, namespace: str, storage: BackupStorage, *, on_demand: bool = False
) -> StoragePlan:
    """Where the backups of engine `namespace`/`engine` go: its own folder of its store (see
    the module docstring for the layout); `on_demand`: the on-demand folder."""
    folder = posixpath.join(namespace, engine, *([ON_DEMAND_DIR] if on_demand else []))
    if storage.pvc is not None:
        managed = not storage.pvc.claimName
        claim = backup_pvc_name(engine) if managed else storage.pvc.claimName
        return StoragePlan(kind="pvc", claim=claim, managed=managed, folder=folder)
    assert storage.s3 is not None  # BackupStorage guarantees exactly one
    prefix = f"{_s3_prefix(storage.s3.prefix)}{folder}/"
    return StoragePlan(kind="s3", s3=storage.s3, prefix=prefix)


#: The name of a backup file the programs write: vulcan_<YYYYmmdd_HHMMSS>.dump.
BACKUP_FILE = re.compile(r"^vulcan_[0-9A-Za-z_-]+\.dump$")


def restore_source_problem(
    engine: str, namespace: str, storage: BackupStorage, location: str
) -> str | None:
    """None when `location` is a backup file of engine `namespace`/`engine`'s own store (its
    scheduled or on-demand folder, a `vulcan_*.dump` file), else one line naming
    spec.location, what is wrong and what is allowed."""
    plans = [plan_storage(engine, namespace, storage, on_demand=d) for d in (False, True)]
    allowed = " or ".join(f"{p.location}/vulcan_<time>.dump" for p in plans)
    try:
        where = BackupLocation.parse(location)
    except ValueError as exc:
        return f"spec.location: {exc}; allowed: {allowed}"
    plan = plans[0]
    folder, _, file_name = where.path.rpartition("/")
    if where.scheme != plan.kind:
        store = "a volume claim" if plan.kind == "pvc" else "S3"
        problem = f"VulcanEngine '{engine}' keeps its backups in {store} (spec.backup.storage)"
    elif where.root != (plan.s3.bucket if plan.s3 is not None else plan.claim):
        what = "claim" if plan.kind == "pvc" else "bucket"
        problem = f"{what} '{where.root}' is not the {what} of VulcanEngine '{engine}'"
    elif not any((p.folder if p.kind == "pvc" else p.prefix.rstrip("/")) == folder for p in plans):
        problem = f"not in a backup folder of VulcanEngine '{engine}' ({namespace}/{engine}/)"
    elif not BACKUP_FILE.match(file_name):
        problem = (
            f"'{file_name}' is not a backup file of this operator (vulcan_<time>.dump; an "
            "older .sql.gz backup must be restored by hand)"
        )
    else:
        return None
    return f"spec.location: {problem}; allowed: {allowed}"


def _store(namespace: str, engine: str, storage: BackupStorage) -> tuple[str, str, str]:
    """(kind, where, key prefix) of an engine's store: a claim is namespaced, a bucket is not."""
    plan = plan_storage(engine, namespace, storage)
    if plan.kind == "pvc":
        return "pvc", f"{namespace}/{plan.claim}", ""
    assert plan.s3 is not None
    endpoint = plan.s3.endpoint.rstrip("/").lower()
    return "s3", f"{endpoint} {plan.s3.bucket}", _s3_prefix(plan.s3.prefix)


def storage_conflicts(
    namespace: str,
    engine: str,
    created: str,
    storage: BackupStorage,
    engines: Iterable[Mapping[str, Any]],
) -> list[str]:
    """Why engine `namespace`/`engine` (created at `created`, an RFC 3339 time) may not use
    `storage`: one line per engine of `engines` (VulcanEngine objects, e.g. a list of every
    namespace) created before it that uses the same store: the same claim of the same
    namespace, or the same S3 endpoint and bucket with a prefix that is the same or contains
    the other. [] when there is none. The engine created first keeps its store; ties go by
    namespace and name."""
    kind, where, prefix = _store(namespace, engine, storage)
    me = (created, namespace, engine)
    found = []
    for other in engines:
        meta = other.get("metadata") or {}
        other_ns, other_name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if meta.get("deletionTimestamp") or (other_ns, other_name) == (namespace, engine):
            continue
        if (str(meta.get("creationTimestamp") or ""), other_ns, other_name) >= me:
            continue  # the later one is refused, not this one
        raw = ((other.get("spec") or {}).get("backup") or {}).get("storage")
        try:
            theirs = BackupStorage.model_validate(raw) if raw else BackupStorage(pvc=PvcStorage())
        except ValidationError:
            continue  # an invalid engine runs no backups
        other_kind, other_where, other_prefix = _store(other_ns, other_name, theirs)
        if (other_kind, other_where) != (kind, where):
            continue
        if kind == "pvc":
            claim = where.split("/", 1)[1]
            found.append(
                f"spec.backup.storage: claim '{claim}' is already the backup store of "
                f"VulcanEngine '{other_name}' (created earlier): give each engine its own claim"
            )
        elif prefix.startswith(other_prefix) or other_prefix.startswith(prefix):
            found.append(
                f"spec.backup.storage: S3 bucket '{where.split(' ', 1)[1]}' with prefix "
                f"'{prefix}' shares keys with prefix '{other_prefix}' of VulcanEngine "
                f"'{other_ns}/{other_name}' (created earlier): give each engine its own "
                "bucket or prefix"
            )
    return found


_LOCATION = re.compile(r"^(?P<scheme>s3|pvc)://(?P<root>[a-z0-9][-a-z0-9.]*)/(?P<path>\S+)$")


@dataclass(frozen=True)
class BackupLocation:
    """A backup file: `s3://bucket/key` or `pvc://claim/path` (path inside the claim)."""

    scheme: Literal["pvc", "s3"]
    root: str  # bucket or claim
    path: str  # key or path inside the claim

    @classmethod
    def parse(cls, location: str) -> BackupLocation:
        """Parse and check a location; ValueError says what is wrong with it."""
        found = _LOCATION.match(location)
        if found is None:
            raise ValueError(
                f"backup location {location!r}: expected s3://bucket/key or pvc://claim/path"
            )
        path = found["path"]
        parts = path.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(
                f"backup location {location!r}: the path may not contain empty, '.' or '..' parts"
            )
        scheme: Literal["pvc", "s3"] = "s3" if found["scheme"] == "s3" else "pvc"
        return cls(scheme=scheme, root=found["root"], path=path)

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.root}/{self.path}"


# --- pieces ---------------------------------------------------------------------------------
def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _base_env(engine: str, namespace: str) -> list[dict[str, Any]]:
    return [
        _env("VULCAN_ENGINE", engine),
        _env("VULCAN_NAMESPACE", namespace),
        _env("HOME", TMP_MOUNT),
        _env("TMPDIR", TMP_MOUNT),
    ]


def _database_env(ref: SecretKeyRef) -> list[dict[str, Any]]:
    return [_secret_env("DATABASE_URL", ref.name, ref.key)]


def _webhook_env(ref: SecretKeyRef | None) -> list[dict[str, Any]]:
    return [] if ref is None else [_secret_env("NOTIFY_WEBHOOK_URL", ref.name, ref.key)]


def _s3_env(s3: S3Storage, *, bucket_and_prefix: str | None = None) -> list[dict[str, Any]]:
    """Endpoint, region and the keys (by reference) for the aws CLI; bucket/prefix if given."""
    env: list[dict[str, Any]] = []
    if bucket_and_prefix is not None:
        env += [_env("S3_BUCKET", s3.bucket), _env("S3_PREFIX", bucket_and_prefix)]
    if s3.endpoint:
        env.append(_env("S3_ENDPOINT_URL", s3.endpoint))
    if s3.region:
        env.append(_env("AWS_DEFAULT_REGION", s3.region))
    secret = s3.credentialsSecretRef.name
    env += [
        _secret_env(AWS_KEY_ID, secret, AWS_KEY_ID),
        _secret_env(AWS_SECRET_KEY, secret, AWS_SECRET_KEY),
        _secret_env(AWS_SESSION_TOKEN, secret, AWS_SESSION_TOKEN, optional=True),
    ]
    return env


def _container(
    name: str,
    image: str,
    program: str,
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    resources: Mapping[str, Any] = RESOURCES,
) -> dict[str, Any]:
    """A container running one of the packaged programs, restricted, result in its
    termination message."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", jobscripts.program(program), f"vulcan-{program}"],
        "env": env,
        "resources": dict(resources),
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_MOUNT}, *mounts],
    }


def _volumes(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "tmp", "emptyDir": {}}, *extra]


def _claim_volume(claim: str, *, read_only: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": "backups", "persistentVolumeClaim": source}


@dataclass(frozen=True)
class _Pod:
    init_containers: list[dict[str, Any]]
    containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]]


def _backup_pod(
    engine: str,
    namespace: str,
    plan: StoragePlan,
    database: SecretKeyRef,
    settings: Settings,
    *,
    retention_days: int | None,
    webhook: SecretKeyRef | None,
    aws_cli_image: str,
) -> _Pod:
    """pvc: one container (backup, retention). s3: dump (init) + upload (main, retention)."""
    retention = [] if retention_days is None else [_env("RETENTION_DAYS", str(retention_days))]
    if plan.kind == "pvc":
        env = [
            *_base_env(engine, namespace),
            *_database_env(database),
            _env("BACKUP_DIR", plan.backup_dir),
            _env("BACKUP_LOCATION", plan.location),
            *retention,
            *_webhook_env(webhook),
        ]
        mounts = [{"name": "backups", "mountPath": BACKUP_MOUNT}]
        return _Pod(
            init_containers=[],
            containers=[_container("backup", settings.postgres_image, "backup", env, mounts)],
            volumes=_volumes(_claim_volume(plan.claim)),
        )
    assert plan.s3 is not None
    work = [{"name": "work", "mountPath": WORK_MOUNT}]
    dump_env = [
        *_base_env(engine, namespace),
        *_database_env(database),
        _env("BACKUP_DIR", WORK_MOUNT),
        _env("BACKUP_LOCATION", plan.location),
        _env("NOTIFY_ON_SUCCESS", "false"),  # the upload container reports success
        *_webhook_env(webhook),
    ]
    upload_env = [
        *_base_env(engine, namespace),
        _env("BACKUP_DIR", WORK_MOUNT),
        *_s3_env(plan.s3, bucket_and_prefix=plan.prefix),
        *retention,
        *_webhook_env(webhook),
    ]
    return _Pod(
        init_containers=[_container("dump", settings.postgres_image, "backup", dump_env, work)],
        containers=[
            _container("upload", aws_cli_image, "s3-upload", upload_env, work, AWS_RESOURCES)
        ],
        volumes=_volumes({"name": "work", "emptyDir": {}}),
    )


def _job_context(component: str, labels: Mapping[str, str], pod: _Pod) -> dict[str, Any]:
    return {
        "labels": dict(labels),
        "backoff_limit": RESTORE_BACKOFF_LIMIT if component == COMPONENT_RESTORE else BACKOFF_LIMIT,
        "active_deadline_seconds": ACTIVE_DEADLINE_SECONDS[component],
        "pod_failure_policy": POD_FAILURE_POLICY,
        "pod_security_context": POD_SECURITY_CONTEXT,
        "init_containers": pod.init_containers,
        "containers": pod.containers,
        "volumes": pod.volumes,
    }


def _cron_context(schedule: str, *, suspend: bool = False) -> dict[str, Any]:
    return {
        "schedule": schedule,
        "time_zone": TIME_ZONE,
        "concurrency_policy": CONCURRENCY_POLICY,
        "starting_deadline_seconds": STARTING_DEADLINE_SECONDS,
        "successful_jobs_history_limit": SUCCESSFUL_JOBS_HISTORY_LIMIT,
        "failed_jobs_history_limit": FAILED_JOBS_HISTORY_LIMIT,
        "suspend": suspend,
    }


def _without_owner(child: Manifest) -> Manifest:
    """`child` (made by finish) with no ownerReferences, its spec-hash recomputed."""
    metadata = child["metadata"]
    metadata.pop("ownerReferences", None)
    annotations = metadata.setdefault("annotations", {})
    annotations.pop(names.ANNOTATION_SPEC_HASH, None)
    annotations[names.ANNOTATION_SPEC_HASH] = content_hash(hashable_content(child))
    return child


# --- engine children ------------------------------------------------------------------------
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
    return [_without_owner(finish(pvc, engine.owner, names.labels(engine.name, COMPONENT_BACKUP)))]


def build_backup_cronjob(
    engine: EngineRef,
    backup: Backup,
    database: SecretKeyRef,
    settings: Settings,
    *,
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE,
    suspend: bool = False,
) -> list[Manifest]:
    """The scheduled-backup CronJob (owned by the engine), or [] when backups are disabled.

    Each run dumps, verifies, stores and applies `retentionDays` to the scheduled backups, and
    tells `notifyWebhookSecretRef`'s URL (when set) of the outcome. `suspend` (while a restore
    runs) keeps it from starting new runs.
    """
    if not backup.enabled:
        return []
    labels = names.labels(engine.name, COMPONENT_BACKUP)
    pod = _backup_pod(
        engine.name,
        engine.namespace,
        plan_storage(engine.name, engine.namespace, backup.storage),
        database,
        settings,
        retention_days=backup.retentionDays,
        webhook=backup.notifyWebhookSecretRef,
        aws_cli_image=aws_cli_image,
    )
    cronjob = render_one(
        "backup-cronjob.yaml.j2",
        name=backup_cronjob_name(engine.name),
        **_cron_context(backup.schedule, suspend=suspend),
        **_job_context(COMPONENT_BACKUP, labels, pod),
    )
    return [finish(cronjob, engine.owner, labels)]


def build_maintenance_cronjob(
    engine: EngineRef,
    maintenance: Maintenance,
    database: SecretKeyRef,
    settings: Settings,
    *,
    reindex: bool = False,
    suspend: bool = False,
) -> list[Manifest]:
    """The maintenance CronJob (VACUUM ANALYZE; REINDEX with `reindex`), or [] when disabled;
    `suspend` keeps it from starting new runs."""
    if not maintenance.enabled:
        return []
    labels = names.labels(engine.name, COMPONENT_MAINTENANCE)
    env = [
        *_base_env(engine.name, engine.namespace),
        *_database_env(database),
        _env("MAINTENANCE_REINDEX", "true" if reindex else "false"),
    ]
    pod = _Pod(
        init_containers=[],
        containers=[_container("maintenance", settings.postgres_image, "maintenance", env, [])],
        volumes=_volumes(),
    )
    cronjob = render_one(
        "maintenance-cronjob.yaml.j2",
        name=maintenance_cronjob_name(engine.name),
        **_cron_context(maintenance.schedule, suspend=suspend),
        **_job_context(COMPONENT_MAINTENANCE, labels, pod),
    )
    return [finish(cronjob, engine.owner, labels)]


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
    database = database_secret_ref(engine.name, spec.database)
    # The engine's store exists whether or not scheduled backups run: VulcanBackups (on-demand,
    # pre-upgrade) write there, and they never create a claim themselves.
    pvc = build_backup_pvc(engine, spec.backup.storage)
    return [
        *pvc,
        *build_backup_cronjob(
            engine, spec.backup, database, settings, aws_cli_image=aws_cli_image, suspend=suspend
        ),
        *build_maintenance_cronjob(engine, spec.maintenance, database, settings, suspend=suspend),
    ]


def possible_backup_children(engine: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of the children to delete when the spec no longer wants them:
    the two CronJobs. Never the backup PVC (data first: it is kept, see the module doc)."""
    return [
        ("batch/v1", "CronJob", backup_cronjob_name(engine)),
        ("batch/v1", "CronJob", maintenance_cronjob_name(engine)),
    ]


# --- one-off Jobs ---------------------------------------------------------------------------
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
    labels = names.labels(engine, COMPONENT_BACKUP)
    pod = _backup_pod(
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
        **_job_context(COMPONENT_BACKUP, labels, pod),
    }
    return [_named_job("backup-job.yaml.j2", backup_job_name, backup, labels, context)]


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
    labels = names.labels(engine, COMPONENT_RESTORE)
    restore_env = [*_base_env(engine, namespace), *_database_env(database)]
    restore_env.append(_env("EXPECTED_SHA256", expected_sha256))
    if target_database:
        restore_env.append(_env("TARGET_DATABASE", target_database))
    restore_env.append(_env("BACKUP_LOCATION", str(where)))
    if where.scheme == "pvc":
        restore_env.append(_env("BACKUP_FILE", posixpath.join(BACKUP_MOUNT, where.path)))
        mounts = [{"name": "backups", "mountPath": BACKUP_MOUNT, "readOnly": True}]
        pod = _Pod(
            init_containers=[],
            containers=[
                _container("restore", settings.postgres_image, "restore", restore_env, mounts)
            ],
            volumes=_volumes(_claim_volume(where.root, read_only=True)),
        )
    else:
        if s3 is None:
            raise ValueError(
                f"backup location {location}: an s3:// location needs S3 settings "
                "(endpoint, region, credentials), e.g. the engine's spec.backup.storage.s3"
            )
        work = [{"name": "work", "mountPath": WORK_MOUNT}]
        download_env = [
            *_base_env(engine, namespace),
            _env("S3_LOCATION", str(where)),
            _env("BACKUP_DIR", WORK_MOUNT),
            *_s3_env(s3),
        ]
        restore_env.append(_env("BACKUP_FILE", posixpath.join(WORK_MOUNT, where.file_name)))
        pod = _Pod(
            init_containers=[
                _container(
                    "download", aws_cli_image, "s3-download", download_env, work, AWS_RESOURCES
                )
            ],
            containers=[
                _container("restore", settings.postgres_image, "restore", restore_env, work)
            ],
            volumes=_volumes({"name": "work", "emptyDir": {}}),
        )
    context = _job_context(COMPONENT_RESTORE, labels, pod)
    return [_named_job("restore-job.yaml.j2", restore_job_name, restore, labels, context)]


# --- as the controllers (and `render`) make them ------------------------------------------------
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
        database_secret_ref(engine, engine_spec.database),
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
        database_secret_ref(engine, engine_spec.database),
        settings,
        target_database=target_database,
        expected_sha256=checksum,
        s3=storage.s3,
    )


# --- results --------------------------------------------------------------------------------
RESULT_KINDS = frozenset(
    {
        "vulcan-backup",
        "vulcan-restore",
        "vulcan-maintenance",
        "vulcan-retention",
        "vulcan-restore-download",
    }
)


def parse_result(text: str, kind: str | None = None) -> dict[str, Any] | None:
    """The last result line of a program in `text` (a termination message or logs), or None.

    With `kind` (e.g. "vulcan-backup"), only a line of that kind counts.
    """
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if not isinstance(value, dict) or value.get("kind") not in RESULT_KINDS:
            continue
        if kind is None or value.get("kind") == kind:
            return value
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _common(found: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if found is None:
        return {
            "outcome": "Unknown",
            "message": f"no {what} result in the termination message (killed, OOM, deadline?)",
            "step": None,
            "exitCode": None,
            "location": None,
            "startedAt": None,
            "finishedAt": None,
        }
    outcome = found.get("outcome")
    return {
        "outcome": outcome if outcome in ("Succeeded", "Failed") else "Unknown",
        "message": _str(found.get("message")) or "",
        "step": _str(found.get("step")),
        "exitCode": _int(found.get("exitCode")),
        "location": _str(found.get("location")),
        "startedAt": _str(found.get("startedAt")),
        "finishedAt": _str(found.get("finishedAt")),
    }


def parse_backup_result(termination_message: str) -> dict[str, Any]:
    """What a backup pod reported, shaped for VulcanBackup/engine status. Never raises.

    Keys: outcome ("Succeeded", "Failed" or "Unknown" when no result line was found), message,
    step, exitCode, location, sizeBytes, checksum, databaseRevision, startedAt, finishedAt
    (None when not reported). Read the main container's termination message; in an S3 pod
    whose init (dump) container failed, that container's.
    """
    found = parse_result(termination_message, "vulcan-backup")
    result = _common(found, "backup")
    found = found or {}
    result.update(
        sizeBytes=_int(found.get("sizeBytes")),
        checksum=_str(found.get("checksum")),
        databaseRevision=_str(found.get("databaseRevision")),
    )
    return result


def parse_restore_result(termination_message: str) -> dict[str, Any]:
    """What a restore pod reported: the common keys (see `parse_backup_result`) plus database,
    databaseRevision and rowCounts ({table: rows}; {} when not reported)."""
    found = parse_result(termination_message, "vulcan-restore")
    if found is None:
        found = parse_result(termination_message, "vulcan-restore-download")
    result = _common(found, "restore")
    found = found or {}
    counts = found.get("rowCounts")
    result.update(
        database=_str(found.get("database")),
        databaseRevision=_str(found.get("databaseRevision")),
        rowCounts=(
            {str(k): v for k, v in counts.items() if _int(v) is not None}
            if isinstance(counts, dict)
            else {}
        ),
    )
    return result


def parse_maintenance_result(termination_message: str) -> dict[str, Any]:
    """What a maintenance pod reported: the common keys plus tables [{table, bytes, size}]."""
    found = parse_result(termination_message, "vulcan-maintenance")
    result = _common(found, "maintenance")
    tables = (found or {}).get("tables")
    result["tables"] = (
        [t for t in tables if isinstance(t, dict)] if isinstance(tables, list) else []
    )
    return result
