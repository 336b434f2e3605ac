"""The core children of a VulcanEngine, built from its spec: pure functions, no I/O.

`build(inputs)` returns, dependencies first: ServiceAccount, ConfigMap, keys Secret (unless
the user brings both keys), Deployment, Service, HPA (when autoscaling owns the replica
count) and PodDisruptionBudget. The NetworkPolicies are in `builders.network`, the Ingresses
in `builders.ingress`; `builders.core_children` puts the three together.

The builder takes no decisions that need the cluster or the clock: the version to run, the
key values (see `builders.keys`), the rotation request and a forced replica count are inputs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from vulcan_operator import kinds, names
from vulcan_operator.api.common import LabelSelector, SecretKeyRef
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.common import Owner, content_hash, finish, pull_secrets
from vulcan_operator.builders.keys import JWT_SECRET_KEY, SECRET_KEY, generated_key_names
from vulcan_operator.builders.volumes import app_volumes
from vulcan_operator.config import Settings
from vulcan_operator.templating import render_one

__all__ = [
    "KIND",
    "EngineInputs",
    "build",
    "build_deployment",
]

Manifest = dict[str, Any]

KIND = kinds.ENGINE.kind

CONTAINER_NAME = "backend"
CONTAINER_PORT = 8000
PORT_NAME = "http"
SERVICE_PORT = 80
HEALTH_PATH = "/api/v1/health"
READY_PATH = "/api/v1/health/ready"
API_V1_STR = "/api/v1"
PROJECT_NAME = "Vulcan Engine"
METRICS_PORT = 9090  # the guide's METRICS_PORT; Prometheus scrapes /api/v1/metrics on :8000
DEFAULT_JAEGER_AGENT_HOST = "localhost"
API_PAGE_SIZE = 20
API_MAX_PAGE_SIZE = 100
API_RESPONSE_CACHE_TTL = 60

RUN_AS_USER = 10001
RUN_AS_GROUP = 10001
TERMINATION_GRACE_SECONDS = 30
REVISION_HISTORY_LIMIT = 5
MAX_SURGE = "25%"
MAX_UNAVAILABLE = 0
TMP_MOUNT = "/tmp"  # an emptyDir: the only writable path of the container

# Probes: liveness and readiness as the guide has them; a startup probe gives a slow first
# start (migrations check, cache warm-up) up to 5 minutes before liveness counts.
LIVENESS = {
    "initialDelaySeconds": 30,
    "periodSeconds": 10,
    "timeoutSeconds": 10,
    "failureThreshold": 3,
}
READINESS = {
    "initialDelaySeconds": 5,
    "periodSeconds": 5,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}
STARTUP = {"periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 60}

ZONE_KEY = "topology.kubernetes.io/zone"
HOSTNAME_KEY = "kubernetes.io/hostname"


@dataclass(frozen=True)
class EngineInputs:
    """Everything the engine builder needs; the reconciler fills it in."""

    name: str
    namespace: str
    uid: str
    spec: VulcanEngineSpec
    #: The version the Deployment runs (spec.version, unless an upgrade says otherwise).
    run_version: str
    #: SECRET_KEY / JWT_SECRET_KEY values for the keys the user does not reference; None when
    #: both are referenced. Read them back from the existing Secret; generate (see
    #: `builders.keys.ensure_keys`) only when it is missing or a rotation is asked for.
    keys: Mapping[str, str] | None = None
    #: The engine's `vulcan-engine.com/rotate-secrets` annotation value ("" when unset).
    rotation: str = ""
    #: Force this replica count and drop the HPA (0 while a restore runs).
    replicas_override: int | None = None
    #: Suspend the backup and maintenance CronJobs (while a restore runs).
    suspend_cronjobs: bool = False
    settings: Settings = field(default_factory=Settings)
    #: Whether the cluster serves the Prometheus Operator CRDs (monitoring.coreos.com/v1):
    #: read by the monitoring builder (`builders.engine_children`), not by `build`.
    monitoring: bool = True

    @classmethod
    def from_resource(
        cls,
        body: Mapping[str, Any],
        *,
        keys: Mapping[str, str] | None = None,
        run_version: str | None = None,
        replicas_override: int | None = None,
        settings: Settings | None = None,
        monitoring: bool = True,
    ) -> EngineInputs:
        """Inputs from a VulcanEngine object (a dict); validates its spec.

        Only name, namespace, uid and the rotate-secrets annotation are read from metadata:
        the engine's own labels and annotations never reach its children.
        """
        metadata = body.get("metadata") or {}
        spec = VulcanEngineSpec.model_validate(body.get("spec") or {})
        annotations = metadata.get("annotations") or {}
        return cls(
            name=metadata["name"],
            namespace=metadata.get("namespace") or "default",
            uid=metadata.get("uid") or "",
            spec=spec,
            run_version=run_version or spec.version,
            keys=keys,
            rotation=str(annotations.get(names.ANNOTATION_ROTATE_SECRETS, "")),
            replicas_override=replicas_override,
            settings=settings or Settings(),
            monitoring=monitoring,
        )

    @property
    def owner(self) -> Owner:
        """The engine as the owner of its children."""
        return Owner(kind=KIND, name=self.name, namespace=self.namespace, uid=self.uid)

    @property
    def image(self) -> str:
        """The backend image the Deployment runs."""
        return f"{self.spec.image}:{self.run_version}"


# --- decisions ------------------------------------------------------------------------------


def hpa_enabled(inputs: EngineInputs) -> bool:
    """True when an HPA owns the replica count (autoscaling on and no forced count)."""
    return inputs.replicas_override is None and inputs.spec.autoscaling.enabled


def desired_replicas(inputs: EngineInputs) -> int | None:
    """The Deployment's `replicas`, or None when the HPA owns it (the field is left out)."""
    if inputs.replicas_override is not None:
        return inputs.replicas_override
    if inputs.spec.autoscaling.enabled:
        return None
    return inputs.spec.replicas


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def config_data(spec: VulcanEngineSpec) -> dict[str, str]:
    """The backend's non-secret settings (the guide's .env), every value a string."""
    db, redis, jwt, solver = spec.database, spec.redis, spec.jwt, spec.solver
    monitoring = spec.monitoring
    data = {
        "API_V1_STR": API_V1_STR,
        "PROJECT_NAME": PROJECT_NAME,
        "ENVIRONMENT": spec.environment,
        "DEBUG": _bool(spec.environment == "development"),
        "DATABASE_POOL_SIZE": str(db.poolSize),
        "DATABASE_MAX_OVERFLOW": str(db.maxOverflow),
        "DATABASE_POOL_TIMEOUT": str(db.poolTimeoutSeconds),
        "DATABASE_POOL_RECYCLE": str(db.poolRecycleSeconds),
        "REDIS_MAX_CONNECTIONS": str(redis.maxConnections),
        "REDIS_CACHE_TTL": str(redis.cacheTTLSeconds),
        "JWT_ALGORITHM": jwt.algorithm,
        "JWT_ACCESS_TOKEN_EXPIRE_MINUTES": str(jwt.accessTokenExpireMinutes),
        "JWT_REFRESH_TOKEN_EXPIRE_DAYS": str(jwt.refreshTokenExpireDays),
        "BACKEND_CORS_ORIGINS": json.dumps(list(spec.cors.origins)),
        "ENABLE_METRICS": "true",
        "ENABLE_TRACING": _bool(monitoring.enableTracing),
        "METRICS_PORT": str(METRICS_PORT),
        "JAEGER_AGENT_HOST": monitoring.jaegerAgentHost or DEFAULT_JAEGER_AGENT_HOST,
        "JAEGER_AGENT_PORT": str(monitoring.jaegerAgentPort),
        "SOLVER_MAX_TIME_SECONDS": _number(solver.maxTimeSeconds),
        "SOLVER_NUM_WORKERS": str(solver.numWorkers),
        "SOLVER_MEMORY_LIMIT_MB": str(solver.memoryLimitMB),
        "SOLVER_USE_LNS": _bool(solver.useLNS),
        "SOLVER_PARALLEL_SEARCH": _bool(solver.numWorkers > 1),
        "RATE_LIMIT_ENABLED": _bool(spec.rateLimit.enabled),
        "RATE_LIMIT_REQUESTS_PER_MINUTE": str(spec.rateLimit.requestsPerMinute),
        "API_PAGE_SIZE": str(API_PAGE_SIZE),
        "API_MAX_PAGE_SIZE": str(API_MAX_PAGE_SIZE),
        "API_RESPONSE_CACHE_TTL": str(API_RESPONSE_CACHE_TTL),
    }
    email = spec.email
    if email is not None:
        data["SMTP_HOST"] = email.smtpHost
        data["SMTP_PORT"] = str(email.smtpPort)
        if email.smtpUser:
            data["SMTP_USER"] = email.smtpUser
        if email.fromEmail:
            data["EMAILS_FROM_EMAIL"] = email.fromEmail
        data["EMAILS_FROM_NAME"] = email.fromName
    return data


def config_hash(data: Mapping[str, str], rotation: str) -> str:
    """The pod template's config checksum: ConfigMap data and the rotation request.

    Secret values are never part of it; a rotation changes it, so the pods restart and read
    the new keys (with your own Secrets, bumping the annotation restarts the pods likewise).
    """
    return content_hash({"config": dict(data), "rotation": rotation})


# --- children -------------------------------------------------------------------------------


def _finish(inputs: EngineInputs, obj: Manifest) -> Manifest:
    return finish(obj, inputs.owner, names.labels(inputs.name, names.COMPONENT_BACKEND))


def build_service_account(inputs: EngineInputs) -> Manifest:
    """ServiceAccount of the backend pods; no API token is mounted."""
    return _finish(
        inputs,
        render_one("serviceaccount.yaml.j2", name=names.engine_service_account(inputs.name)),
    )


def build_configmap(inputs: EngineInputs) -> Manifest:
    """ConfigMap with the non-secret settings; the pods load all of it as env."""
    return _finish(
        inputs,
        render_one(
            "configmap.yaml.j2",
            name=names.engine_config(inputs.name),
            data=config_data(inputs.spec),
        ),
    )


def build_secret(inputs: EngineInputs) -> Manifest | None:
    """The generated keys (base64 `data`), or None when the user references both keys.

    Annotated with the rotation request the keys belong to, so a new request changes the
    Secret's spec-hash (values themselves are not hashed).
    """
    wanted = generated_key_names(inputs.spec)
    if not wanted:
        return None
    keys = inputs.keys or {}
    missing = [key for key in wanted if not keys.get(key)]
    if missing:
        raise ValueError(
            f"VulcanEngine {inputs.name}: no value given for {', '.join(missing)}; "
            "pass the existing keys or keys.generate_keys()"
        )
    data = {key: base64.b64encode(keys[key].encode("utf-8")).decode("ascii") for key in wanted}
    return _finish(
        inputs,
        render_one(
            "secret.yaml.j2",
            name=names.engine_keys_secret(inputs.name),
            annotations={names.ANNOTATION_SECRETS_ROTATION: inputs.rotation},
            data=data,
        ),
    )


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _env(inputs: EngineInputs) -> list[dict[str, Any]]:
    """Container env: secrets by reference only (values never appear), then spec.env.

    A spec.env entry replaces an entry of ours with the same name (no duplicate names).
    """
    spec = inputs.spec
    keys_secret = names.engine_keys_secret(inputs.name)
    ours = [_secret_env("DATABASE_URL", spec.database_url_ref(inputs.name))]
    if spec.redis.urlSecretRef is not None:
        ours.append(_secret_env("REDIS_URL", spec.redis.urlSecretRef))
    for key, ref in (
        (SECRET_KEY, spec.secrets.secretKeyRef),
        (JWT_SECRET_KEY, spec.secrets.jwtSecretKeyRef),
    ):
        ours.append(_secret_env(key, ref or SecretKeyRef(name=keys_secret, key=key)))
    if spec.monitoring.sentryDsnSecretRef is not None:
        ours.append(_secret_env("SENTRY_DSN", spec.monitoring.sentryDsnSecretRef))
    if spec.email is not None and spec.email.passwordSecretRef is not None:
        ours.append(_secret_env("SMTP_PASSWORD", spec.email.passwordSecretRef))
    extra: dict[str, dict[str, Any]] = {}
    for var in spec.env:
        extra[var.name] = var.model_dump(mode="json", exclude_none=True)
    return [item for item in ours if item["name"] not in extra] + list(extra.values())


def _dump(model: BaseModel) -> dict[str, Any]:
    """A spec model as the Kubernetes object it mirrors (no empty or unset fields)."""
    return model.model_dump(mode="json", exclude_defaults=True, exclude_none=True)


def _selector(selector: LabelSelector) -> dict[str, Any]:
    return _dump(selector)


def max_replicas(spec: VulcanEngineSpec) -> int:
    """The most backend replicas the spec lets run (the HPA's maximum when it owns them)."""
    return spec.autoscaling.maxReplicas if spec.autoscaling.enabled else spec.replicas


def _topology_spread(spec: VulcanEngineSpec, selector: Mapping[str, str]) -> list[dict[str, Any]]:
    """spec.topologySpreadConstraints (a constraint without labelSelector counts the
    backend's pods), or by default, when more than one replica may run, across nodes and
    zones (ScheduleAnyway: a single-zone cluster still schedules). Never from the forced
    replica count of a restore, so a restore does not change the pod template."""
    ours = {"matchLabels": dict(selector)}
    if spec.topologySpreadConstraints:
        return [
            {**_dump(c), "labelSelector": _dump(c)["labelSelector"] if c.labelSelector else ours}
            for c in spec.topologySpreadConstraints
        ]
    if max_replicas(spec) <= 1:
        return []
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": ours,
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in (HOSTNAME_KEY, ZONE_KEY)
    ]


def placement(spec: VulcanEngineSpec) -> dict[str, Any]:
    """Where the backend pods run, as template variables: node_selector, tolerations,
    affinity, priority_class_name (empty when the spec leaves them unset)."""
    return {
        "node_selector": dict(spec.nodeSelector),
        "tolerations": [_dump(t) for t in spec.tolerations],
        "affinity": _dump(spec.affinity) if spec.affinity is not None else {},
        "priority_class_name": spec.priorityClassName,
    }


def build_deployment(inputs: EngineInputs) -> Manifest:
    """The backend Deployment (zero-downtime rolling update, restricted pods)."""
    spec = inputs.spec
    selector = names.selector(inputs.name, names.COMPONENT_BACKEND)
    # spec.podAnnotations and podLabels never carry our keys (the model refuses them); ours
    # are written last all the same.
    pod_annotations = {
        **spec.podAnnotations,
        names.ANNOTATION_CONFIG_HASH: config_hash(config_data(spec), inputs.rotation),
        names.ANNOTATION_DEFAULT_CONTAINER: CONTAINER_NAME,
    }
    resources = {
        section: {key: str(value) for key, value in sorted(quantities.items())}
        for section, quantities in (
            ("requests", spec.resources.requests),
            ("limits", spec.resources.limits),
        )
        if quantities
    }
    return _finish(
        inputs,
        render_one(
            "deployment.yaml.j2",
            name=names.engine_deployment(inputs.name),
            replicas=desired_replicas(inputs),
            revision_history_limit=REVISION_HISTORY_LIMIT,
            progress_deadline_seconds=spec.upgrade.progressDeadlineSeconds,
            max_surge=MAX_SURGE,
            max_unavailable=MAX_UNAVAILABLE,
            selector=selector,
            pod_labels={
                **spec.podLabels,
                **names.labels(inputs.name, names.COMPONENT_BACKEND),
            },
            pod_annotations=pod_annotations,
            service_account=names.engine_service_account(inputs.name),
            image_pull_secrets=pull_secrets(ref.name for ref in spec.imagePullSecrets),
            **placement(spec),
            termination_grace_seconds=TERMINATION_GRACE_SECONDS,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_GROUP,
            topology_spread=_topology_spread(spec, selector),
            container_name=CONTAINER_NAME,
            image=inputs.image,
            image_pull_policy=spec.imagePullPolicy,
            port_name=PORT_NAME,
            container_port=CONTAINER_PORT,
            config_map=names.engine_config(inputs.name),
            env=_env(inputs),
            resources=resources,
            health_path=HEALTH_PATH,
            ready_path=READY_PATH,
            liveness=LIVENESS,
            readiness=READINESS,
            startup=STARTUP,
            tmp_mount=TMP_MOUNT,
            app_volumes=[
                {"name": v.name, "path": v.path, "claim": v.claim}
                for v in app_volumes(inputs.name, spec)
            ],
        ),
    )


def build_service(inputs: EngineInputs) -> Manifest:
    """The Service (spec.service.type, ClusterIP by default; its annotations), port 80
    (`http`) to the pods' 8000."""
    service = inputs.spec.service
    return _finish(
        inputs,
        render_one(
            "service.yaml.j2",
            name=names.engine_service(inputs.name),
            type=service.type,
            annotations=dict(service.annotations),
            selector=names.selector(inputs.name, names.COMPONENT_BACKEND),
            port_name=PORT_NAME,
            port=SERVICE_PORT,
            target_port=PORT_NAME,
        ),
    )


def build_hpa(inputs: EngineInputs) -> Manifest | None:
    """autoscaling/v2 HPA on CPU and memory, or None when it must not own the replicas."""
    if not hpa_enabled(inputs):
        return None
    autoscaling = inputs.spec.autoscaling
    return _finish(
        inputs,
        render_one(
            "hpa.yaml.j2",
            name=names.engine_hpa(inputs.name),
            deployment=names.engine_deployment(inputs.name),
            min_replicas=autoscaling.minReplicas,
            max_replicas=autoscaling.maxReplicas,
            cpu_utilization=autoscaling.targetCPUUtilizationPercentage,
            memory_utilization=autoscaling.targetMemoryUtilizationPercentage,
        ),
    )


def build_pdb(inputs: EngineInputs) -> Manifest:
    """PodDisruptionBudget: `maxUnavailable: 1`, whatever the replica count.

    Voluntary evictions go one pod at a time, and a drain is never blocked for good: with one
    replica (or a scale to zero) the single pod may still be evicted, where `minAvailable: 1`
    would refuse forever. Unhealthy pods may always be evicted (`AlwaysAllow`), so a
    crash-looping pod does not block a drain either.
    """
    return _finish(
        inputs,
        render_one(
            "pdb.yaml.j2",
            name=names.engine_pdb(inputs.name),
            selector=names.selector(inputs.name, names.COMPONENT_BACKEND),
            max_unavailable=1,
        ),
    )


def build(inputs: EngineInputs) -> list[Manifest]:
    """Every core child of the engine, dependencies first."""
    children = [
        build_service_account(inputs),
        build_configmap(inputs),
        build_secret(inputs),
        build_deployment(inputs),
        build_service(inputs),
        build_hpa(inputs),
        build_pdb(inputs),
    ]
    return [child for child in children if child is not None]
