"""VulcanEngine: one Vulcan Engine installation. Defaults follow the operations guide."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vulcan_operator import names, quantity
from vulcan_operator.api.common import (
    Cron,
    DnsLabel,
    DnsSubdomain,
    LabelSelector,
    LocalObjectReference,
    ObjectMeta,
    Quantity,
    SecretKeyRef,
    SecretRef,
    Status,
    Strict,
    cel,
)
from vulcan_operator.api.pods import (
    Affinity,
    Annotations,
    NodeSelector,
    PodAnnotations,
    PodLabels,
    PriorityClassName,
    Tolerations,
    TopologySpreadConstraint,
    ingress_annotation_problem,
)
from vulcan_operator.solver.problem import SolverSettings

#: The label every namespace carries with its own name (set by the API server).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class Autoscaling(Strict):
    """HorizontalPodAutoscaler settings (autoscaling/v2)."""

    model_config = cel(
        ("self.minReplicas <= self.maxReplicas", "minReplicas must be <= maxReplicas"),
    )

    enabled: bool = Field(True, description="Let an HPA own the replica count.")
    minReplicas: int = Field(3, ge=1, le=1000, description="Fewest replicas.")
    maxReplicas: int = Field(10, ge=1, le=1000, description="Most replicas.")
    targetCPUUtilizationPercentage: int = Field(
        70, ge=1, le=100, description="Average CPU utilisation to aim for (% of requests)."
    )
    targetMemoryUtilizationPercentage: int = Field(
        80, ge=1, le=100, description="Average memory utilisation to aim for (% of requests)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.minReplicas > self.maxReplicas:
            raise ValueError(
                f"minReplicas ({self.minReplicas}) must be <= maxReplicas ({self.maxReplicas})"
            )
        return self


class Resources(Strict):
    """Container resources of the backend pods."""

    requests: dict[Literal["cpu", "memory", "ephemeral-storage"], Quantity] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "2Gi"},  # type: ignore[arg-type]
        description="Requested resources.",
    )
    limits: dict[Literal["cpu", "memory", "ephemeral-storage"], Quantity] = Field(
        default_factory=lambda: {"cpu": "2", "memory": "4Gi"},  # type: ignore[arg-type]
        description="Resource limits.",
    )

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        # The API server refuses a pod whose request exceeds its limit (also when the request
        # is our default: a spec lowering only limits.cpu below 1 would break the Deployment).
        for name, limit in self.limits.items():
            request = self.requests.get(name)
            if request is not None and quantity.parse(request) > quantity.parse(limit):
                raise ValueError(
                    f"requests.{name}: {request} is more than limits.{name} ({limit}), which "
                    "the API server refuses; a side not given takes its default (requests: "
                    "cpu 1, memory 2Gi; limits: cpu 2, memory 4Gi)"
                )
        return self


class Database(Strict):
    """PostgreSQL connection of the engine (SQLAlchemy pool settings from the guide)."""

    urlSecretRef: SecretKeyRef | None = Field(
        None,
        description="Secret key holding DATABASE_URL (postgresql://...). "
        "Default: Secret '<engine>-database', key 'database-url'.",
    )
    poolSize: int = Field(20, ge=5, le=100, description="DATABASE_POOL_SIZE, 5..100.")
    maxOverflow: int = Field(40, ge=0, le=500, description="DATABASE_MAX_OVERFLOW.")
    poolTimeoutSeconds: int = Field(30, ge=1, le=3600, description="DATABASE_POOL_TIMEOUT.")
    poolRecycleSeconds: int = Field(3600, ge=60, le=86400, description="DATABASE_POOL_RECYCLE.")


class Redis(Strict):
    """Redis cache of the engine."""

    urlSecretRef: SecretKeyRef | None = Field(
        None, description="Secret key holding REDIS_URL; without it the engine runs uncached."
    )
    maxConnections: int = Field(50, ge=1, le=10000, description="REDIS_MAX_CONNECTIONS.")
    cacheTTLSeconds: int = Field(300, ge=0, le=86400, description="REDIS_CACHE_TTL.")


class Secrets(Strict):
    """Application keys. Generated (once, kept forever) unless references are given."""

    secretKeyRef: SecretKeyRef | None = Field(
        None, description="Bring your own SECRET_KEY; otherwise one is generated."
    )
    jwtSecretKeyRef: SecretKeyRef | None = Field(
        None, description="Bring your own JWT_SECRET_KEY; otherwise one is generated."
    )


class Jwt(Strict):
    """JSON Web Token settings."""

    algorithm: Literal["HS256", "HS384", "HS512"] = Field(
        "HS256", description="JWT_ALGORITHM: HS256, HS384 or HS512 (never 'none')."
    )
    accessTokenExpireMinutes: int = Field(30, ge=1, le=1440, description="Access token life.")
    refreshTokenExpireDays: int = Field(7, ge=1, le=365, description="Refresh token life.")


Origin = Annotated[
    str,
    Field(
        max_length=2048,
        pattern=r"^https?://[^\s/]+$",
        description="An origin: scheme://host[:port], no path.",
    ),
]


class Cors(Strict):
    """Cross-origin settings (BACKEND_CORS_ORIGINS)."""

    origins: list[Origin] = Field(
        default_factory=lambda: ["https://app.vulcan-engine.com"],
        max_length=100,
        description="Allowed origins, e.g. https://app.example.com.",
    )


class RateLimit(Strict):
    """API rate limiting."""

    enabled: bool = Field(True, description="RATE_LIMIT_ENABLED.")
    requestsPerMinute: int = Field(
        60, ge=1, le=1_000_000, description="RATE_LIMIT_REQUESTS_PER_MINUTE."
    )


def _at_most(field: str, default: int, cap: str, cap_default: int) -> str:
    """CEL: `field` <= `cap`, each taken at its default when absent."""
    return (
        f"(has(self.{field}) ? self.{field} : {default}) <= "
        f"(has(self.{cap}) ? self.{cap} : {cap_default})"
    )


class AcceptFrom(Strict):
    """Which namespaces' SchedulingProblems this engine solves, besides its own (as Gateway
    API's ReferenceGrant): a namespace listed in `namespaces` or one whose labels match
    `namespaceSelector`. Both empty (the default): its own namespace only."""

    namespaces: list[DnsLabel] = Field(
        default_factory=list,
        max_length=1000,
        description="Namespaces whose problems this engine accepts.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    namespaceSelector: LabelSelector | None = Field(
        None,
        description="Accept problems from the namespaces whose labels match (an empty "
        "selector, {}, matches every namespace). Namespace labels are set by whoever may edit "
        "namespaces: select on labels only they control (kubernetes.io/metadata.name is the "
        "namespace's name and cannot be changed).",
    )

    def admits(self, own: str, namespace: str, labels: Mapping[str, str] | None) -> bool:
        """Whether a problem in `namespace` may use an engine in `own`. `labels` are the
        namespace's labels (None: not read; then only the list and the own namespace count)."""
        if namespace == own or namespace in self.namespaces:
            return True
        return (
            self.namespaceSelector is not None
            and labels is not None
            and self.namespaceSelector.matches(labels)
        )


class EngineSolver(SolverSettings):
    """Solver defaults for this engine's SchedulingProblems, their concurrency, and the most
    one problem may ask for."""

    # Written with the defaults, so a rule holds with or without the server's defaulting.
    model_config = cel(
        (_at_most("numWorkers", 4, "maxWorkers", 16), "numWorkers must be <= maxWorkers"),
        (
            _at_most("memoryLimitMB", 8192, "maxMemoryMB", 32_768),
            "memoryLimitMB must be <= maxMemoryMB",
        ),
    )

    maxConcurrentJobs: int = Field(
        4, ge=1, le=1000, description="Solver pods of this engine running at once."
    )
    queueName: str = Field(
        "",
        max_length=63,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
        description="Kueue LocalQueue for solver Jobs; empty: no Kueue.",
    )
    maxWorkers: int = Field(
        16,
        ge=1,
        le=64,
        description="Most search workers (= pod CPUs) a SchedulingProblem of this engine may "
        "ask for (spec.solver.numWorkers); a problem asking for more fails.",
    )
    maxMemoryMB: int = Field(
        32_768,
        ge=256,
        le=1_048_576,
        description="Most memory (MiB) a SchedulingProblem of this engine may ask for "
        "(spec.solver.memoryLimitMB); a problem asking for more fails.",
    )

    nodeSelector: NodeSelector = Field(
        default_factory=dict,
        description="Node labels the solver pods must run on (e.g. compute nodes); the "
        "backend's spec.nodeSelector does not apply to them.",
    )
    tolerations: Tolerations = Field(
        default_factory=list, description="Taints the solver pods tolerate."
    )
    acceptFrom: AcceptFrom = Field(
        AcceptFrom(),
        description="Namespaces whose SchedulingProblems this engine solves, besides its own "
        "(default: its own only). Their solver pods run in their own namespaces and never "
        "get this engine's database credentials.",
    )

    @model_validator(mode="after")
    def _defaults_within_caps(self) -> EngineSolver:
        issues = [
            f"{field}: {value} is more than {cap} ({limit}), the most a problem of this engine "
            f"may ask for; lower {field} or raise {cap}"
            for field, value, cap, limit in (
                ("numWorkers", self.numWorkers, "maxWorkers", self.maxWorkers),
                ("memoryLimitMB", self.memoryLimitMB, "maxMemoryMB", self.maxMemoryMB),
            )
            if value > limit
        ]
        if issues:
            raise ValueError("\n".join(issues))
        return self


class PvcStorage(Strict):
    """Backups on a PersistentVolumeClaim."""

    size: Quantity = Field("20Gi", description="Size of the claim the operator creates.")
    storageClassName: str = Field(
        "", max_length=253, description="Storage class; empty: the cluster default."
    )
    claimName: str = Field(
        "",
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$",
        description="Use this existing claim instead of creating one.",
    )


class S3Storage(Strict):
    """Backups in S3-compatible object storage."""

    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
        description="Bucket name.",
    )
    prefix: str = Field("database/", max_length=512, pattern=r"^[^\s]*$", description="Key prefix.")
    endpoint: str = Field(
        "",
        max_length=2048,
        pattern=r"^(https?://\S+)?$",
        description="S3 endpoint URL; empty: AWS.",
    )
    region: str = Field("", max_length=64, description="Region; empty: the tool's default.")
    credentialsSecretRef: SecretRef = Field(
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )


#: An image reference with a tag or digest: [registry[:port]/]path(:tag|@sha256:digest).
IMAGE_REFERENCE = (
    r"^(([a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(:[0-9]+)?/)?"
    r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64}))?$"
)


class BackupRedis(Strict):
    """A snapshot of the engine's Redis with each backup (spec.redis.urlSecretRef)."""

    enabled: bool = Field(
        False,
        description="Take `redis-cli --rdb` of the engine's Redis (spec.redis.urlSecretRef) "
        "beside each backup; it is kept with the backup set, restored by hand.",
    )
    image: str = Field(
        "redis:7-alpine",
        min_length=1,
        max_length=512,
        pattern=IMAGE_REFERENCE,
        description="Image with redis-cli for the snapshot container.",
    )


class Volume(Strict):
    """A volume of the backend pods: a claim the operator creates, or an existing one."""

    enabled: bool = Field(False, description="Mount a volume at this path.")
    size: Quantity = Field("10Gi", description="Size of the claim the operator creates.")
    storageClassName: str = Field(
        "", max_length=253, description="Storage class; empty: the cluster default."
    )
    accessMode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        "ReadWriteOnce",
        description="Access mode of the claim the operator creates. With more than one "
        "replica, ReadWriteOnce works only while every pod runs on one node: use "
        "ReadWriteMany. (Not ReadWriteOncePod: backup pods mount the claim too.)",
    )
    existingClaim: str = Field(
        "",
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$",
        description="Use this claim of the engine's namespace instead of creating one.",
    )


class Persistence(Strict):
    """The guide's volumes of the backend pods; kept when the engine is deleted."""

    data: Volume = Field(Volume(), description="Mounted at /app/data.")
    uploads: Volume = Field(Volume(), description="Mounted at /app/uploads.")


class BackupStorage(Strict):
    """Where backups go: exactly one of pvc or s3."""

    model_config = cel(
        ("has(self.pvc) != has(self.s3)", "set exactly one of pvc or s3"),
    )

    pvc: PvcStorage | None = Field(None, description="Store backups on a volume claim.")
    s3: S3Storage | None = Field(None, description="Store backups in object storage.")

    @model_validator(mode="after")
    def _one(self) -> BackupStorage:
        if (self.pvc is None) == (self.s3 is None):
            raise ValueError("set exactly one of pvc or s3")
        return self


class Drill(Strict):
    """Scheduled restore drills: the newest backup of the engine's store (its claim or its S3
    folder) restored into a scratch database (<database>_drill) of the same server (or of the
    one serverUrlSecretRef names), checked (row counts and alembic revision as the backup
    recorded them) and dropped; the outcome in status.lastDrill and RestoreVerified."""

    enabled: bool = Field(False, description="Run restore drills.")
    schedule: Cron = Field("0 4 * * 0", description="Cron schedule (default Sunday 04:00).")
    degradeOnFailure: bool = Field(
        False,
        description="Argo CD shows the engine Degraded while the last drill failed or is "
        "too old (RestoreVerified=False); by default a failed drill changes no health.",
    )
    serverUrlSecretRef: SecretKeyRef | None = Field(
        None,
        description="Drill into another server: a Secret key of the engine's namespace "
        "holding a postgresql:// URL (user, password, host, database); the drill connects "
        "there and creates, restores into and drops <that database>_drill (the role needs "
        "CREATEDB); the drill Job then never gets the engine's DATABASE_URL. Default: the "
        "engine's own server (spec.database.urlSecretRef).",
    )


class Backup(Strict):
    """Scheduled database backups (pg_dump | gzip)."""

    enabled: bool = Field(True, description="Run scheduled backups.")
    schedule: Cron = Field("0 2 * * *", description="Cron schedule (default daily 02:00).")
    retentionDays: int = Field(30, ge=1, le=3650, description="Delete backups older than this.")
    storage: BackupStorage = Field(
        BackupStorage(pvc=PvcStorage()), description="Where backups are kept."
    )
    notifyWebhookSecretRef: SecretKeyRef | None = Field(
        None, description="Secret key holding a webhook URL (e.g. Slack) told of each backup."
    )
    clientImage: str = Field(
        "",
        max_length=512,
        pattern=IMAGE_REFERENCE,
        description="Image of the PostgreSQL client (pg_dump, pg_restore, psql) of backup, "
        "restore and maintenance pods; empty: the operator's postgres image with the server's "
        "major version as its tag (postgres:<major>-alpine by default), read from the server "
        "(status.database.serverVersion).",
    )
    redis: BackupRedis = Field(
        BackupRedis(), description="A Redis snapshot beside each backup (redis-cli --rdb)."
    )
    drill: Drill = Field(Drill(), description="Scheduled restore drills.")


class Maintenance(Strict):
    """Scheduled database maintenance (VACUUM ANALYZE)."""

    enabled: bool = Field(True, description="Run scheduled maintenance.")
    schedule: Cron = Field("0 3 * * 0", description="Cron schedule (default Sunday 03:00).")


class Upgrade(Strict):
    """How version changes are carried out."""

    preUpgradeBackup: bool = Field(True, description="Back up the database before migrating.")
    autoRollback: bool = Field(True, description="Return to the last good version on failure.")
    progressDeadlineSeconds: int = Field(
        600, ge=30, le=86400, description="How long a rollout may take."
    )
    migrationCommand: list[str] = Field(
        default_factory=lambda: ["alembic", "upgrade", "head"],
        min_length=1,
        description="Command run with the new image before the rollout.",
    )
    downgradeCommand: list[str] = Field(
        default_factory=lambda: ["alembic", "downgrade"],
        min_length=1,
        description="Command run, with the target revision appended, to bring the schema back.",
    )
    rollbackStrategy: Literal["downgrade", "restore"] = Field(
        "downgrade",
        description="On a failed upgrade: downgrade migration, or restore the pre-upgrade backup.",
    )


class Monitoring(Strict):
    """Monitoring objects (created only when the Prometheus Operator CRDs exist)."""

    serviceMonitor: bool = Field(True, description="Create a ServiceMonitor.")
    prometheusRule: bool = Field(True, description="Create a PrometheusRule with the alerts.")
    grafanaDashboard: bool = Field(True, description="Create a Grafana dashboard ConfigMap.")
    scrapeInterval: str = Field(
        "15s", pattern=r"^[0-9]+(ms|s|m|h)$", description="Scrape interval."
    )
    enableTracing: bool = Field(True, description="ENABLE_TRACING.")
    jaegerAgentHost: str = Field("", max_length=253, description="JAEGER_AGENT_HOST.")
    jaegerAgentPort: int = Field(6831, ge=1, le=65535, description="JAEGER_AGENT_PORT.")
    sentryDsnSecretRef: SecretKeyRef | None = Field(
        None, description="Secret key holding SENTRY_DSN."
    )


class IngressTls(Strict):
    """TLS of the Ingress, issued by cert-manager."""

    enabled: bool = Field(True, description="Serve HTTPS with this certificate.")
    secretName: DnsSubdomain = Field("vulcan-engine-tls", description="Certificate Secret.")
    clusterIssuer: str = Field(
        "letsencrypt-prod", max_length=253, description="cert-manager ClusterIssuer; empty: none."
    )


class Ingress(Strict):
    """Public HTTP(S) entry."""

    enabled: bool = Field(False, description="Create an Ingress.")
    className: str = Field("nginx", max_length=253, description="IngressClass.")
    host: DnsSubdomain = Field("api.vulcan-engine.com", description="Host name.")
    tls: IngressTls = Field(IngressTls(), description="TLS settings.")
    annotations: Annotations = Field(
        default_factory=dict,
        description="Added to the operator's own annotations of the Ingress (and of the /solve "
        "Ingress of an nginx class). Refused: the operator's own keys, *-snippet(s) keys, and "
        "nginx annotation values with newlines, ';', braces, quotes, backslash or backquote.",
    )

    @field_validator("annotations")
    @classmethod
    def _safe_annotations(cls, value: dict[str, str]) -> dict[str, str]:
        problems = [p for key, v in value.items() if (p := ingress_annotation_problem(key, v))]
        if problems:
            raise ValueError("; ".join(problems))
        return value


class Service(Strict):
    """The backend Service."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP",
        description="ClusterIP, NodePort or LoadBalancer. NodePort and LoadBalancer expose the "
        "API outside the cluster: the NetworkPolicy then admits any source on the API port.",
    )
    annotations: Annotations = Field(
        default_factory=dict,
        description="Annotations of the Service (e.g. a cloud load balancer's settings).",
    )


def _namespace_named(namespace: str) -> LabelSelector:
    return LabelSelector(matchLabels={NAMESPACE_NAME_LABEL: namespace})


class PolicyPeer(Strict):
    """Pods admitted by the NetworkPolicy: those matching podSelector in the namespaces
    matching namespaceSelector (an empty selector, {}, matches all)."""

    namespaceSelector: LabelSelector = Field(
        LabelSelector(), description="Their namespaces ({}: every namespace)."
    )
    podSelector: LabelSelector = Field(
        LabelSelector(), description="The pods in those namespaces ({}: every pod)."
    )


class Egress(Strict):
    """An egress NetworkPolicy for the engine's pods."""

    enabled: bool = Field(
        False,
        description="Allow the engine's pods (backend, migration, backup, restore, "
        "maintenance) only DNS, PostgreSQL (5432), Redis (6379), SMTP (spec.email.smtpPort), "
        "HTTPS (443: object storage, the Kubernetes API) and the Jaeger agent port.",
    )


class NetworkPolicy(Strict):
    """Restrict traffic to the backend pods."""

    enabled: bool = Field(True, description="Create a NetworkPolicy.")
    ingressNamespaces: list[DnsLabel] = Field(
        default_factory=list,
        max_length=50,
        description="Extra namespaces allowed to reach the API (e.g. the ingress controller's).",
    )
    prometheus: PolicyPeer = Field(
        PolicyPeer(namespaceSelector=_namespace_named("monitoring")),
        description="The Prometheus pods, admitted to the API port while the operator makes a "
        "ServiceMonitor (default: every pod of namespace 'monitoring').",
    )
    ingressController: PolicyPeer = Field(
        PolicyPeer(namespaceSelector=_namespace_named("ingress-nginx")),
        description="The ingress controller's pods, admitted to the API port while the "
        "operator makes an Ingress (default: every pod of namespace 'ingress-nginx').",
    )
    egress: Egress = Field(
        Egress(),
        description="Also restrict the engine's pods' outgoing traffic (clusters that deny "
        "egress by default).",
    )


class Email(Strict):
    """Optional e-mail notifications of the engine."""

    smtpHost: str = Field(min_length=1, max_length=253, description="SMTP_HOST.")
    smtpPort: int = Field(587, ge=1, le=65535, description="SMTP_PORT.")
    smtpUser: str = Field("", max_length=253, description="SMTP_USER.")
    passwordSecretRef: SecretKeyRef | None = Field(None, description="SMTP_PASSWORD.")
    fromEmail: str = Field(
        "", max_length=253, pattern=r"^([^@\s]+@[^@\s]+)?$", description="EMAILS_FROM_EMAIL."
    )
    fromName: str = Field("Vulcan Engine", max_length=253, description="EMAILS_FROM_NAME.")


class EnvVar(BaseModel):
    """An extra container environment variable, passed through as given."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        description="Variable name.",
    )
    value: str | None = Field(None, description="Value.")


class VulcanEngineSpec(Strict):
    """Desired state of one Vulcan Engine installation."""

    version: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        description="Image tag to run: the upgrade and rollback lever.",
    )
    image: str = Field(
        "vulcan-engine",
        min_length=1,
        max_length=512,
        # [registry[:port]/]path, no tag or digest (the tag is spec.version).
        pattern=r"^([a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(:[0-9]+)?/)?"
        r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$",
        description="Image repository, without a tag; the Deployment runs image:version.",
    )
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )
    imagePullSecrets: list[LocalObjectReference] = Field(
        default_factory=list,
        max_length=20,
        description="Registry credentials (Secrets of the pod's namespace) of every pod the "
        "engine makes: backend, migration, backup, restore, maintenance and solver pods.",
    )
    nodeSelector: NodeSelector = Field(
        default_factory=dict, description="Node labels the backend pods must run on."
    )
    tolerations: Tolerations = Field(
        default_factory=list,
        description="Taints the backend pods tolerate (never the control plane's).",
    )
    affinity: Affinity | None = Field(None, description="Affinity of the backend pods.")
    topologySpreadConstraints: list[TopologySpreadConstraint] = Field(
        default_factory=list,
        max_length=20,
        description="Spread of the backend pods; empty: across nodes and zones "
        "(ScheduleAnyway) whenever more than one replica may run.",
    )
    priorityClassName: PriorityClassName = ""
    podAnnotations: PodAnnotations = Field(
        default_factory=dict,
        description="Added to the backend pods' annotations (not vulcan-engine.com/* nor "
        "Kubernetes' own domains but for cluster-autoscaler's safe-to-evict).",
    )
    podLabels: PodLabels = Field(
        default_factory=dict,
        description="Added to the backend pods' labels (never the operator's selector and "
        "ownership labels, nor Kubernetes' own domains).",
    )
    service: Service = Field(Service(), description="The backend Service.")
    environment: Literal["production", "staging", "development"] = Field(
        "production", description="ENVIRONMENT; development also turns DEBUG on."
    )
    replicas: int = Field(3, ge=1, le=1000, description="Replicas when autoscaling is off.")
    autoscaling: Autoscaling = Field(Autoscaling(), description="Horizontal autoscaling.")
    resources: Resources = Field(Resources(), description="Backend container resources.")
    database: Database = Field(Database(), description="PostgreSQL connection.")
    redis: Redis = Field(Redis(), description="Redis cache.")
    secrets: Secrets = Field(Secrets(), description="Application keys.")
    jwt: Jwt = Field(Jwt(), description="JWT settings.")
    cors: Cors = Field(Cors(), description="CORS settings.")
    rateLimit: RateLimit = Field(RateLimit(), description="Rate limiting.")
    solver: EngineSolver = Field(EngineSolver(), description="Solver defaults and concurrency.")
    backup: Backup = Field(Backup(), description="Scheduled backups.")
    persistence: Persistence = Field(
        Persistence(), description="Volumes at /app/data and /app/uploads (in every backup)."
    )
    maintenance: Maintenance = Field(Maintenance(), description="Scheduled maintenance.")
    upgrade: Upgrade = Field(Upgrade(), description="Upgrade and rollback behaviour.")
    monitoring: Monitoring = Field(Monitoring(), description="Monitoring objects and telemetry.")
    ingress: Ingress = Field(Ingress(), description="Ingress with TLS.")
    networkPolicy: NetworkPolicy = Field(NetworkPolicy(), description="Network policy.")
    email: Email | None = Field(None, description="E-mail notifications (optional).")
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=200,
        description="Extra container env, passed through.",
    )
    paused: bool = Field(False, description="Stop all changes to the installation.")
    hibernate: bool = Field(
        False,
        description="Run no backend pods and no HPA, hold solver Jobs; the database, the "
        "backups and every other child are kept. false brings the same replicas back.",
    )

    @model_validator(mode="after")
    def _redis_snapshot_needs_redis(self) -> VulcanEngineSpec:
        if self.backup.redis.enabled and self.redis.urlSecretRef is None:
            raise ValueError(
                "backup.redis.enabled: a Redis snapshot needs the engine's Redis "
                "(spec.redis.urlSecretRef)"
            )
        return self

    def database_url_ref(self, engine: str) -> SecretKeyRef:
        """Where DATABASE_URL is: spec.database.urlSecretRef, else the conventional Secret
        `<engine>-database`, key `database-url` (as CloudNativePG's application Secret)."""
        return self.database.urlSecretRef or SecretKeyRef(
            name=names.default_database_secret(engine), key=names.DATABASE_URL_KEY
        )


class LastMaintenance(BaseModel):
    """The newest maintenance run (VACUUM ANALYZE) of the engine's database."""

    time: str | None = Field(None, description="When it finished.")
    outcome: str | None = Field(None, description="Succeeded or Failed.")
    vacuumed: bool | None = Field(None, description="VACUUM ANALYZE ran.")
    reindexed: bool | None = Field(None, description="REINDEX ran too.")
    databaseBytes: int | None = Field(None, description="The database's size afterwards.")
    reason: str | None = Field(None, description="Why it failed (the step, or how its Job died).")
    message: str | None = Field(None, description="What went wrong, when it failed.")
    job: str | None = Field(None, description="The Job that ran it.")


class LastDrill(BaseModel):
    """The newest restore drill of the engine."""

    time: str | None = Field(None, description="When it finished.")
    backup: str | None = Field(None, description="The backup file it restored.")
    durationSeconds: int | None = Field(None, description="How long it took.")
    outcome: str | None = Field(None, description="Succeeded or Failed.")
    rowCounts: dict[str, int] = Field(
        default_factory=dict, description="Rows per table of the restored backup."
    )
    reason: str | None = Field(
        None,
        description="Why it failed: RestoreFailed, RowCountMismatch, RevisionMismatch, "
        "NoBackup, NoRowCounts, ScratchDatabaseTaken, DownloadFailed (S3), or how its Job "
        "died.",
    )
    message: str | None = Field(None, description="What went wrong, when it failed.")
    job: str | None = Field(None, description="The Job that ran it.")


class LastBackup(BaseModel):
    """The newest backup run of the engine, scheduled or on-demand."""

    time: str | None = Field(None, description="When it finished.")
    location: str | None = Field(None, description="Where it is.")
    outcome: str | None = Field(None, description="Succeeded or Failed.")
    job: str | None = Field(None, description="The Job that ran it.")
    reason: str | None = Field(
        None, description="Why it failed, in CamelCase (e.g. DumpFailed, OOMKilled)."
    )
    message: str | None = Field(None, description="What went wrong, when it failed.")


class EngineRestore(BaseModel):
    """The restore lock: the VulcanRestore holding the engine (written by the restore
    controller with a resourceVersion precondition; one restore at a time)."""

    name: str = Field(description="The VulcanRestore.")
    uid: str | None = Field(None, description="Its uid.")
    step: Literal["ScaleDown", "Restore", "Migrate", "ScaleUp", "Hold"] = Field(
        description="ScaleDown, Restore, Migrate: scaled to zero; ScaleUp: back to `replicas`; "
        "Hold: kept at zero after a failure that made serving unsafe."
    )
    replicas: int | None = Field(None, ge=0, description="Replicas to scale back to.")
    message: str | None = Field(None, description="Why the engine is held (step Hold).")
    database: str | None = Field(
        None, description="A side restore's target database: the engine keeps serving."
    )


class HistoryEntry(BaseModel):
    """One version the engine ran, or tried to."""

    version: str = Field(description="Version (image tag).")
    image: str | None = Field(None, description="Full image.")
    databaseRevision: str | None = Field(None, description="Alembic revision it ran with.")
    backup: str | None = Field(None, description="Pre-upgrade backup used.")
    startedAt: str | None = Field(None, description="When the change started.")
    finishedAt: str | None = Field(None, description="When it finished.")
    outcome: str | None = Field(None, description="Succeeded, Failed or RolledBack.")


class DatabaseStatus(BaseModel):
    """The engine's PostgreSQL server, as the operator last read it."""

    serverVersion: str | None = Field(
        None, description="PostgreSQL version (e.g. 17.6); backup clients use its major."
    )
    maxConnections: int | None = Field(None, description="The server's max_connections.")


class NetworkPolicyStatus(BaseModel):
    """What the engine's NetworkPolicies admit, in words."""

    ingressFrom: list[str] = Field(
        default_factory=list, description="Sources admitted to the backend's API port."
    )
    egressTo: list[str] | None = Field(
        None, description="Destinations the engine's pods may reach (egress policy on only)."
    )


class VulcanEngineStatus(Status):
    """Observed state of the installation."""

    currentVersion: str | None = Field(None, description="Version running and healthy.")
    targetVersion: str | None = Field(None, description="Version being rolled out.")
    failedVersion: str | None = Field(None, description="A version that failed; not retried.")
    replicas: int | None = Field(None, description="Desired backend replicas.")
    readyReplicas: int | None = Field(None, description="Ready backend replicas.")
    databaseRevision: str | None = Field(None, description="Alembic revision of the database.")
    database: DatabaseStatus | None = Field(None, description="The PostgreSQL server.")
    lastBackup: LastBackup | None = Field(None, description="Newest backup.")
    lastDrill: LastDrill | None = Field(None, description="Newest restore drill.")
    lastMaintenance: LastMaintenance | None = Field(
        None, description="Newest maintenance run (VACUUM ANALYZE)."
    )
    networkPolicy: NetworkPolicyStatus | None = Field(
        None, description="Who may reach the backend, and where the pods may connect."
    )
    restore: EngineRestore | None = Field(
        None, description="A restore in progress (the engine is scaled to zero meanwhile)."
    )
    history: list[HistoryEntry] = Field(default_factory=list, description="Versions run.")
    hibernatedReplicas: int | None = Field(
        None, ge=0, description="While spec.hibernate: the replicas to come back to."
    )
    upgrade: dict[str, Any] | None = Field(
        None,
        description="State of an upgrade in progress (step, versions, backup, revisions).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


#: The backup store may not switch while a restore holds the engine (status.restore): the
#: restore reads from it. A rule at the root, as it reads the status (written only by the
#: operator, through the status subresource).
STORAGE_WHILE_RESTORING = (
    "!has(oldSelf.status) || !has(oldSelf.status.restore) || "
    "(has(self.spec.backup) == has(oldSelf.spec.backup) && (!has(self.spec.backup) || "
    "(has(self.spec.backup.storage) == has(oldSelf.spec.backup.storage) && "
    "(!has(self.spec.backup.storage) || "
    "self.spec.backup.storage == oldSelf.spec.backup.storage))))"
)


class VulcanEngine(BaseModel):
    """A Vulcan Engine installation."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": STORAGE_WHILE_RESTORING,
                    "message": "spec.backup.storage cannot change while a VulcanRestore holds "
                    "the engine (status.restore): wait for it to end, or delete it",
                }
            ]
        },
    )

    apiVersion: Literal["vulcan-engine.com/v1alpha1"]
    kind: Literal["VulcanEngine"]
    metadata: ObjectMeta
    spec: VulcanEngineSpec
    status: VulcanEngineStatus | None = None
