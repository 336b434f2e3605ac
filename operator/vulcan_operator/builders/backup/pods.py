"""The pods of backup, maintenance and restore Jobs: env, containers, volumes, security.

- Scripts are inlined in the container command (`sh -c <program> <name>`): each Job carries the
  exact program it runs, its name hash covers it, an operator upgrade that changes a script
  changes the CronJob's spec-hash (so it is re-applied), and no ConfigMap has to be kept in step.
- S3: postgres:15-alpine has no aws CLI, so the pod runs the dump as an init container
  (postgres image) into an emptyDir and uploads from the main container (aws CLI image); a
  restore downloads in an init container and restores in the main one.
- Pods: uid/gid 70 (`postgres` in the alpine image), fsGroup 70 so the volume is writable,
  RuntimeDefault seccomp, no capabilities, read-only root with an emptyDir /tmp, no service
  account token. `restartPolicy: Never` and a podFailurePolicy: exit 2 (bad settings) and 3
  (backup file refused) fail the Job at once; evictions do not count as failures.
- Secrets only by reference: DATABASE_URL, the webhook URL and the S3 keys come from
  `secretKeyRef`s; no value ever appears in a manifest.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vulcan_operator import jobscripts, names
from vulcan_operator.api.common import SecretKeyRef
from vulcan_operator.api.engine import Backup, S3Storage, VulcanEngineSpec
from vulcan_operator.builders.backup.storage import BACKUP_MOUNT, StoragePlan
from vulcan_operator.builders.engine import RUN_AS_GROUP as BACKEND_GROUP
from vulcan_operator.builders.volumes import AppVolume, app_volumes
from vulcan_operator.config import Settings

__all__ = [
    "ACTIVE_DEADLINE_SECONDS",
    "AWS_RESOURCES",
    "DEFAULT_AWS_CLI_IMAGE",
    "NO_PARTS",
    "RUN_AS_USER",
    "TMP_MOUNT",
    "WORK_MOUNT",
    "Pod",
    "SetParts",
    "backup_pod",
    "base_env",
    "claim_volume",
    "client_image",
    "container",
    "database_env",
    "env_var",
    "job_context",
    "s3_env",
    "server_major",
    "volumes",
    "with_client_image",
]

#: The aws CLI image of the S3 containers (v2.17: before the default integrity checksums of
#: 2.23 that some S3-compatible stores reject). Should become a Settings field.
DEFAULT_AWS_CLI_IMAGE = "amazon/aws-cli:2.17.0"

#: uid and gid of `postgres` in the postgres:*-alpine images.
RUN_AS_USER = 70
RUN_AS_GROUP = 70

WORK_MOUNT = "/work"  # the emptyDir shared by the two containers of an S3 pod
TMP_MOUNT = "/tmp"

BACKOFF_LIMIT = 1  # one retry for a transient failure (node loss, connection reset)
RESTORE_BACKOFF_LIMIT = 0  # a restore is retried by a person (or the operator), not blindly
ACTIVE_DEADLINE_SECONDS = {
    names.COMPONENT_BACKUP: 3 * 3600,
    names.COMPONENT_MAINTENANCE: 3 * 3600,
    names.COMPONENT_RESTORE: 6 * 3600,
    names.COMPONENT_DRILL: 6 * 3600,
}


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


# --- pieces ---------------------------------------------------------------------------------
#: An image whose tag starts with a PostgreSQL major: postgres:15-alpine, repo/pg:16.4.
_MAJOR_TAG = re.compile(r"^(?P<repo>[^@]+):(?P<major>[0-9]+)(\.[0-9]+)*(?P<suffix>-[^:/@]+)?$")


def server_major(server_version: str | None) -> int | None:
    """The major of a status.database.serverVersion ('17.6' -> 17), or None."""
    head = (server_version or "").split(".", 1)[0]
    return int(head) if head.isdigit() and 0 < int(head) < 1000 else None


def client_image(backup: Backup, default: str, server_version: str | None) -> str:
    """The PostgreSQL client image of an engine's backup, restore and maintenance pods.

    `spec.backup.clientImage` when set; else `default` (the operator's postgres image,
    postgres:15-alpine) with its tag's major replaced by the server's (postgres:17-alpine for
    a 17.6 server; a mirror such as registry.corp/postgres:15-alpine keeps its registry).
    `default` as it is when the server's version is unknown or its tag names no major.
    pg_dump refuses a server of a newer major, so the client follows the server.
    """
    if backup.clientImage:
        return backup.clientImage
    major = server_major(server_version)
    found = _MAJOR_TAG.match(default)
    if major is None or found is None:
        return default
    return f"{found['repo']}:{major}{found['suffix'] or ''}"


def with_client_image(settings: Settings, backup: Backup, server_version: str | None) -> Settings:
    """`settings` whose postgres_image is the engine's client image (see `client_image`)."""
    image = client_image(backup, settings.postgres_image, server_version)
    return dataclasses.replace(settings, postgres_image=image)


def env_var(name: str, value: str) -> dict[str, Any]:
    """One plain env entry."""
    return {"name": name, "value": value}


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def base_env(engine: str, namespace: str) -> list[dict[str, Any]]:
    """What every program is told: which engine, and where it may write (the /tmp emptyDir)."""
    return [
        env_var("VULCAN_ENGINE", engine),
        env_var("VULCAN_NAMESPACE", namespace),
        env_var("HOME", TMP_MOUNT),
        env_var("TMPDIR", TMP_MOUNT),
    ]


def database_env(ref: SecretKeyRef) -> list[dict[str, Any]]:
    """DATABASE_URL, by reference."""
    return [_secret_env("DATABASE_URL", ref.name, ref.key)]


def _webhook_env(ref: SecretKeyRef | None) -> list[dict[str, Any]]:
    return [] if ref is None else [_secret_env("NOTIFY_WEBHOOK_URL", ref.name, ref.key)]


def s3_env(s3: S3Storage, *, bucket_and_prefix: str | None = None) -> list[dict[str, Any]]:
    """Endpoint, region and the keys (by reference) for the aws CLI; bucket/prefix if given."""
    env: list[dict[str, Any]] = []
    if bucket_and_prefix is not None:
        env += [env_var("S3_BUCKET", s3.bucket), env_var("S3_PREFIX", bucket_and_prefix)]
    if s3.endpoint:
        env.append(env_var("S3_ENDPOINT_URL", s3.endpoint))
    if s3.region:
        env.append(env_var("AWS_DEFAULT_REGION", s3.region))
    secret = s3.credentialsSecretRef.name
    env += [
        _secret_env(AWS_KEY_ID, secret, AWS_KEY_ID),
        _secret_env(AWS_SECRET_KEY, secret, AWS_SECRET_KEY),
        _secret_env(AWS_SESSION_TOKEN, secret, AWS_SESSION_TOKEN, optional=True),
    ]
    return env


def container(
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


def volumes(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's volumes: the /tmp emptyDir, then `extra`."""
    return [{"name": "tmp", "emptyDir": {}}, *extra]


def claim_volume(claim: str, *, read_only: bool = False) -> dict[str, Any]:
    """The backup claim as the volume `backups`."""
    source: dict[str, Any] = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": "backups", "persistentVolumeClaim": source}


@dataclass(frozen=True)
class Pod:
    """The containers and volumes of a Job's pod (the rest of the pod is the template's)."""

    init_containers: list[dict[str, Any]]
    containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    security_context: Mapping[str, Any] = field(default_factory=lambda: POD_SECURITY_CONTEXT)
    affinity: Mapping[str, Any] | None = None


#: Where backup and restore pods mount the engine's /app/data and /app/uploads volumes.
PARTS_MOUNT = "/vulcan"
REDIS_SNAPSHOT = posixpath.join(WORK_MOUNT, "redis.rdb")


@dataclass(frozen=True)
class SetParts:
    """What an engine's backup set holds besides the dump: its volumes, its Redis snapshot."""

    volumes: tuple[AppVolume, ...] = ()
    redis_url: SecretKeyRef | None = None
    redis_image: str = ""
    engine: str = ""

    @classmethod
    def of(cls, engine: str, spec: VulcanEngineSpec) -> SetParts:
        redis = spec.redis.urlSecretRef if spec.backup.redis.enabled else None
        return cls(tuple(app_volumes(engine, spec)), redis, spec.backup.redis.image, engine)

    def affinity(self) -> Mapping[str, Any] | None:
        """With volumes: rather on a node of a backend pod. A ReadWriteOnce claim is attached
        to one node; a backup pod elsewhere would wait for it. Preferred, not required: with
        the engine at zero replicas any node will do."""
        if not self.volumes:
            return None
        term = {
            "labelSelector": {"matchLabels": names.selector(self.engine, names.COMPONENT_BACKEND)},
            "topologyKey": "kubernetes.io/hostname",
        }
        preferred = [{"weight": 100, "podAffinityTerm": term}]
        return {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}

    def mounts(self, *, read_only: bool) -> list[dict[str, Any]]:
        return [
            {"name": v.name, "mountPath": self.path(v), **({"readOnly": True} if read_only else {})}
            for v in self.volumes
        ]

    def claims(self, *, read_only: bool) -> list[dict[str, Any]]:
        return [
            {
                "name": v.name,
                "persistentVolumeClaim": {
                    "claimName": v.claim,
                    **({"readOnly": True} if read_only else {}),
                },
            }
            for v in self.volumes
        ]

    @staticmethod
    def path(volume: AppVolume) -> str:
        return posixpath.join(PARTS_MOUNT, volume.part)

    def security_context(self) -> Mapping[str, Any]:
        """With volumes: the backend's group too, so files only it may read are readable."""
        if not self.volumes:
            return POD_SECURITY_CONTEXT
        return {**POD_SECURITY_CONTEXT, "supplementalGroups": [BACKEND_GROUP]}


NO_PARTS = SetParts()


def backup_pod(
    engine: str,
    namespace: str,
    plan: StoragePlan,
    database: SecretKeyRef,
    settings: Settings,
    *,
    retention_days: int | None,
    webhook: SecretKeyRef | None,
    aws_cli_image: str,
    parts: SetParts = NO_PARTS,
) -> Pod:
    """pvc: one container (backup, retention). s3: dump (init) + upload (main, retention).
    With `parts`: the volumes mounted read-only into the dump container, and a Redis snapshot
    (init container, redis image) into the shared emptyDir before the dump."""
    retention = [] if retention_days is None else [env_var("RETENTION_DAYS", str(retention_days))]
    work = [{"name": "work", "mountPath": WORK_MOUNT}]
    part_env = [env_var(f"PART_{v.part.upper()}_DIR", parts.path(v)) for v in parts.volumes] + (
        [env_var("PART_REDIS_FILE", REDIS_SNAPSHOT)] if parts.redis_url else []
    )
    snapshot = []
    if parts.redis_url is not None:
        redis_env = [
            *base_env(engine, namespace),
            _secret_env("REDIS_URL", parts.redis_url.name, parts.redis_url.key),
            env_var("REDIS_SNAPSHOT_FILE", REDIS_SNAPSHOT),
        ]
        snapshot = [container("redis", parts.redis_image, "redis-snapshot", redis_env, work)]
    shared = work if plan.kind == "s3" or snapshot else []
    part_mounts = [*shared, *parts.mounts(read_only=True)]
    part_volumes = [
        *([{"name": "work", "emptyDir": {}}] if shared else []),
        *parts.claims(read_only=True),
    ]
    if plan.kind == "pvc":
        env = [
            *base_env(engine, namespace),
            *database_env(database),
            env_var("BACKUP_DIR", plan.backup_dir),
            env_var("BACKUP_LOCATION", plan.location),
            *retention,
            *_webhook_env(webhook),
            *part_env,
        ]
        mounts = [{"name": "backups", "mountPath": BACKUP_MOUNT}, *part_mounts]
        return Pod(
            init_containers=snapshot,
            containers=[container("backup", settings.postgres_image, "backup", env, mounts)],
            volumes=volumes(claim_volume(plan.claim), *part_volumes),
            security_context=parts.security_context(),
            affinity=parts.affinity(),
        )
    assert plan.s3 is not None
    dump_env = [
        *base_env(engine, namespace),
        *database_env(database),
        env_var("BACKUP_DIR", WORK_MOUNT),
        env_var("BACKUP_LOCATION", plan.location),
        env_var("NOTIFY_ON_SUCCESS", "false"),  # the upload container reports success
        *_webhook_env(webhook),
        *part_env,
    ]
    upload_env = [
        *base_env(engine, namespace),
        env_var("BACKUP_DIR", WORK_MOUNT),
        *s3_env(plan.s3, bucket_and_prefix=plan.prefix),
        *retention,
        *_webhook_env(webhook),
    ]
    return Pod(
        init_containers=[
            *snapshot,
            container("dump", settings.postgres_image, "backup", dump_env, part_mounts),
        ],
        containers=[
            container("upload", aws_cli_image, "s3-upload", upload_env, work, AWS_RESOURCES)
        ],
        volumes=volumes(*part_volumes),
        security_context=parts.security_context(),
        affinity=parts.affinity(),
    )


def job_context(
    component: str,
    labels: Mapping[str, str],
    pod: Pod,
    pull_secrets: list[dict[str, str]],
) -> dict[str, Any]:
    """The template variables of a Job spec (of a Job or of a CronJob's jobTemplate);
    `pull_secrets`: its imagePullSecrets (`builders.common.job_pull_secrets`)."""
    return {
        "labels": dict(labels),
        "image_pull_secrets": pull_secrets,
        "backoff_limit": RESTORE_BACKOFF_LIMIT
        if component == names.COMPONENT_RESTORE
        else BACKOFF_LIMIT,
        "active_deadline_seconds": ACTIVE_DEADLINE_SECONDS[component],
        "pod_failure_policy": POD_FAILURE_POLICY,
        "pod_security_context": dict(pod.security_context),
        "affinity": dict(pod.affinity or {}),
        "init_containers": pod.init_containers,
        "containers": pod.containers,
        "volumes": pod.volumes,
    }
