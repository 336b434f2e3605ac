"""builders.engine: the core children of a VulcanEngine, for every variant in tests/data/engines.

Golden files in golden/engine-<variant>.yaml pin the whole output (fixed uid, fixed keys);
`pytest tests/unit/builders/test_engine.py --update-golden` rewrites them.
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import validate_manifests
from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngine, VulcanEngineSpec
from vulcan_operator.builders import core_children as build
from vulcan_operator.builders import engine_children
from vulcan_operator.builders.common import content_hash, hashable_content
from vulcan_operator.builders.engine import (
    EngineInputs,
    build_pdb,
    build_secret,
    config_data,
)
from vulcan_operator.builders.keys import ensure_keys, generate_keys, keys_from_secret_data
from vulcan_operator.config import Settings
from vulcan_operator.reconcile.engine import PRUNABLE

ROOT = Path(__file__).resolve().parents[3]
ENGINES = ROOT / "tests" / "data" / "engines"
EXAMPLE = ROOT / "examples" / "vulcanengine.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden"

UID = "6f1c2b8e-4d3a-4e5f-9a7b-0c1d2e3f4a5b"
KEYS = {
    "SECRET_KEY": "unit-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "JWT_SECRET_KEY": "unit-test-jwt-secret-key-0123456789abcdefghijklmnopqrstuvwxyzABCD",
}
ENGINE_LABELS = {"app.kubernetes.io/instance": "argo-app", "team": "x"}
ENGINE_ANNOTATIONS = {"example.com/owner": "platform-team"}
SETTINGS = Settings(operator_image="ghcr.io/vulcan-engine/vulcan-operator:test")

VARIANTS: dict[str, Path] = {
    "production": EXAMPLE,
    **{path.stem: path for path in sorted(ENGINES.glob("*.yaml"))},
}
KIND_ORDER = [
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- helpers ----------------------------------------------------------------------------


def engine_body(variant: str) -> dict[str, Any]:
    """The variant's VulcanEngine, with a uid and the labels a GitOps tool would add."""
    body: dict[str, Any] = yaml.safe_load(VARIANTS[variant].read_text())
    metadata = body["metadata"]
    metadata["uid"] = UID
    metadata["labels"] = {**(metadata.get("labels") or {}), **ENGINE_LABELS}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **ENGINE_ANNOTATIONS}
    VulcanEngine.model_validate(body)  # every variant is a valid resource
    return body


def inputs_for(variant: str, **changes: Any) -> EngineInputs:
    inputs = EngineInputs.from_resource(engine_body(variant), keys=KEYS, settings=SETTINGS)
    return replace(inputs, **changes) if changes else inputs


def with_spec(inputs: EngineInputs, **spec_changes: Any) -> EngineInputs:
    data = inputs.spec.model_dump(mode="json", exclude_none=True)
    for dotted, value in spec_changes.items():
        target = data
        *path, last = dotted.split("__")
        for key in path:
            target = target.setdefault(key, {})
        target[last] = value
    return replace(inputs, spec=VulcanEngineSpec.model_validate(data))


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first object of each kind (the main one: the backend's ConfigMap, NetworkPolicy
    and Ingress come before the security-headers ConfigMap, the egress policy and the /solve
    Ingress); no two objects share a kind and name."""
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in objs]
    assert len(keys) == len(set(keys)), keys
    first: dict[str, dict[str, Any]] = {}
    for obj in objs:
        first.setdefault(obj["kind"], obj)
    return first


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of nested mappings, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    (backend,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(backend)


def env_by_name(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    env = container(deployment)["env"]
    names_ = [item["name"] for item in env]
    assert len(names_) == len(set(names_)), f"duplicate env names: {names_}"
    return {item["name"]: item for item in env}


def secret_ref(env: Mapping[str, Any]) -> tuple[str, str]:
    ref = env["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def config_hash_of(objs: list[dict[str, Any]]) -> str:
    template = by_kind(objs)["Deployment"]["spec"]["template"]
    return str(template["metadata"]["annotations"][names.ANNOTATION_CONFIG_HASH])


def disruptions_allowed(pdb: Mapping[str, Any], replicas: int) -> int:
    """What the disruption controller allows with `replicas` healthy pods (integer budgets)."""
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        return replicas - max(0, replicas - int(spec["maxUnavailable"]))
    return replicas - int(spec["minAvailable"])


# --- every variant ------------------------------------------------------------------------


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_there_are_enough_variants() -> None:
    assert len(VARIANTS) >= 7
    for required in ("minimal", "production", "fixed-replicas", "ingress-tls", "byo-secrets"):
        assert required in VARIANTS


def test_every_object_is_valid_in_strict_mode(variant: str) -> None:
    validate_manifests(build(inputs_for(variant)))


def test_golden(variant: str, update_golden: bool) -> None:
    objs = build(inputs_for(variant))
    text = yaml.safe_dump_all(objs, sort_keys=False, width=100)
    path = GOLDEN / f"engine-{variant}.yaml"
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.is_file(), f"{path} missing: run pytest {__file__} --update-golden"
    expected = path.read_text()
    if list(yaml.safe_load_all(expected)) != objs:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), text.splitlines(), str(path), "built", lineterm=""
            )
        )
        pytest.fail(f"output differs from {path.name} (review, then --update-golden):\n{diff}")


def test_children_come_dependencies_first(variant: str) -> None:
    kinds = list(dict.fromkeys(obj["kind"] for obj in build(inputs_for(variant))))
    assert kinds == [kind for kind in KIND_ORDER if kind in kinds]
    assert kinds[:2] == ["ServiceAccount", "ConfigMap"]
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)


def test_engine_children_are_the_core_children_then_monitoring_then_backups() -> None:
    inputs = inputs_for("production")
    core = build(inputs)
    everything = engine_children(inputs)
    assert everything[: len(core)] == core
    extra = [obj["kind"] for obj in everything[len(core) :]]
    backups = ["PersistentVolumeClaim", "CronJob", "CronJob"]
    assert extra[-3:] == backups
    assert set(extra[:-3]) == {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    without_crds = engine_children(replace(inputs, monitoring=False))
    assert [obj["kind"] for obj in without_crds[len(core) :]] == ["ConfigMap", *backups]
    suspended = engine_children(replace(inputs, suspend_cronjobs=True))
    assert [c["spec"]["suspend"] for c in suspended if c["kind"] == "CronJob"] == [True, True]
    assert [c["spec"]["suspend"] for c in everything if c["kind"] == "CronJob"] == [False, False]
    validate_manifests(everything)
    names_ = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in everything]
    assert len(names_) == len(set(names_))


def test_owner_references_namespace_and_labels(variant: str) -> None:
    inputs = inputs_for(variant)
    for obj in build(inputs):
        metadata = obj["metadata"]
        assert metadata["namespace"] == "vulcan"
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": "vulcan-engine.com/v1alpha1",
                "kind": "VulcanEngine",
                "name": inputs.name,
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert metadata["labels"] == names.labels(inputs.name, names.COMPONENT_BACKEND)
        assert DNS_LABEL.fullmatch(metadata["name"]) and len(metadata["name"]) <= 63


def test_no_argo_instance_label_and_nothing_copied_from_the_engine(variant: str) -> None:
    objs = build(inputs_for(variant))
    for key, _ in walk(objs):
        assert key != "app.kubernetes.io/instance"
        assert key not in ENGINE_LABELS
        assert key not in ENGINE_ANNOTATIONS
        assert not key.startswith("argocd.argoproj.io/")
    text = json.dumps(objs)
    assert "argo-app" not in text
    assert "platform-team" not in text


def test_restricted_security_context(variant: str) -> None:
    deployment = by_kind(build(inputs_for(variant)))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsGroup"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    backend = container(deployment)
    context = backend["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context
    (mount,) = backend["volumeMounts"]
    assert mount["mountPath"] == "/tmp"
    (volume,) = pod["volumes"]
    assert volume == {"name": mount["name"], "emptyDir": {}}


def test_spec_hash_is_stable_and_covers_the_content(variant: str) -> None:
    first = build(inputs_for(variant))
    second = build(inputs_for(variant))
    assert first == second
    for obj in first:
        stored = obj["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH]
        assert stored == content_hash(hashable_content(obj))
        assert re.fullmatch(r"[0-9a-f]{16}", stored)


def test_secret_values_appear_only_in_the_secret(variant: str) -> None:
    objs = build(inputs_for(variant))
    forbidden = [
        *KEYS.values(),
        *(base64.b64encode(value.encode()).decode() for value in KEYS.values()),
    ]
    for obj in objs:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for value in forbidden:
            assert value not in text, f"{obj['kind']} carries a secret value"
    for obj in objs:
        hash_ = obj["metadata"]["annotations"][names.ANNOTATION_SPEC_HASH]
        assert hash_ not in KEYS.values()


# --- replicas and autoscaling ---------------------------------------------------------------


def test_no_replicas_field_when_the_hpa_owns_scaling() -> None:
    children = by_kind(build(inputs_for("minimal")))
    assert "replicas" not in children["Deployment"]["spec"]
    hpa = children["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": children["Deployment"]["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    targets = {
        metric["resource"]["name"]: metric["resource"]["target"]
        for metric in hpa["spec"]["metrics"]
    }
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }


def test_fixed_replicas_when_autoscaling_is_off() -> None:
    children = by_kind(build(inputs_for("fixed-replicas")))
    assert children["Deployment"]["spec"]["replicas"] == 2
    assert "HorizontalPodAutoscaler" not in children


@pytest.mark.parametrize("variant_name", ["minimal", "fixed-replicas"])
def test_replicas_override_zero_scales_down_and_drops_the_hpa(variant_name: str) -> None:
    objs = build(inputs_for(variant_name, replicas_override=0))
    children = by_kind(objs)
    assert children["Deployment"]["spec"]["replicas"] == 0
    assert "HorizontalPodAutoscaler" not in children
    validate_manifests(objs)


def test_replicas_override_wins_over_spec_replicas() -> None:
    children = by_kind(build(inputs_for("fixed-replicas", replicas_override=5)))
    assert children["Deployment"]["spec"]["replicas"] == 5


def test_rolling_update_never_drops_below_the_desired_count() -> None:
    spec = by_kind(build(inputs_for("production")))["Deployment"]["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["revisionHistoryLimit"] >= 1


# --- PodDisruptionBudget ----------------------------------------------------------------


def test_pdb_sets_exactly_one_budget(variant: str) -> None:
    pdb = by_kind(build(inputs_for(variant)))["PodDisruptionBudget"]
    assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    deployment = by_kind(build(inputs_for(variant)))["Deployment"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


@pytest.mark.parametrize("replicas", [1, 2, 3, 10])
def test_pdb_never_blocks_a_drain(replicas: int) -> None:
    pdb = by_kind(build(inputs_for("single-replica")))["PodDisruptionBudget"]
    assert disruptions_allowed(pdb, replicas) >= 1
    # ... and with more than one replica, only one pod goes at a time.
    assert disruptions_allowed(pdb, replicas) == 1


def test_pdb_is_the_same_whatever_the_replica_count() -> None:
    single = build_pdb(inputs_for("single-replica"))
    production = build_pdb(inputs_for("production"))
    assert single["spec"]["maxUnavailable"] == production["spec"]["maxUnavailable"] == 1


# --- config and its hash ------------------------------------------------------------------


def test_configmap_holds_the_guides_settings_as_strings() -> None:
    children = by_kind(build(inputs_for("production")))
    data = children["ConfigMap"]["data"]
    assert all(isinstance(value, str) for value in data.values())
    assert data["API_V1_STR"] == "/api/v1"
    assert data["PROJECT_NAME"] == "Vulcan Engine"
    assert data["ENVIRONMENT"] == "production"
    assert data["DEBUG"] == "false"
    assert data["DATABASE_POOL_SIZE"] == "20"
    assert data["DATABASE_MAX_OVERFLOW"] == "40"
    assert data["DATABASE_POOL_TIMEOUT"] == "30"
    assert data["DATABASE_POOL_RECYCLE"] == "3600"
    assert data["REDIS_MAX_CONNECTIONS"] == "50"
    assert data["REDIS_CACHE_TTL"] == "300"
    assert data["JWT_ALGORITHM"] == "HS256"
    assert data["JWT_ACCESS_TOKEN_EXPIRE_MINUTES"] == "30"
    assert data["JWT_REFRESH_TOKEN_EXPIRE_DAYS"] == "7"
    assert json.loads(data["BACKEND_CORS_ORIGINS"]) == ["https://app.vulcan-engine.com"]
    assert data["ENABLE_METRICS"] == "true"
    assert data["ENABLE_TRACING"] == "true"
    assert data["METRICS_PORT"] == "9090"
    assert data["JAEGER_AGENT_HOST"] == "localhost"
    assert data["JAEGER_AGENT_PORT"] == "6831"
    assert data["SOLVER_MAX_TIME_SECONDS"] == "300"
    assert data["SOLVER_NUM_WORKERS"] == "4"
    assert data["SOLVER_MEMORY_LIMIT_MB"] == "8192"
    assert data["SOLVER_USE_LNS"] == "true"
    assert data["SOLVER_PARALLEL_SEARCH"] == "true"
    assert data["RATE_LIMIT_ENABLED"] == "true"
    assert data["RATE_LIMIT_REQUESTS_PER_MINUTE"] == "60"
    assert (data["API_PAGE_SIZE"], data["API_MAX_PAGE_SIZE"]) == ("20", "100")
    assert data["API_RESPONSE_CACHE_TTL"] == "60"
    for secret_name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JWT_SECRET_KEY"):
        assert secret_name not in data
    assert not any(key.startswith(("SMTP_", "EMAILS_")) for key in data)
    deployment = children["Deployment"]
    assert container(deployment)["envFrom"] == [
        {"configMapRef": {"name": children["ConfigMap"]["metadata"]["name"]}}
    ]


def test_development_turns_debug_on() -> None:
    data = by_kind(build(inputs_for("development")))["ConfigMap"]["data"]
    assert data["DEBUG"] == "true"
    assert data["ENVIRONMENT"] == "development"
    assert data["SOLVER_MAX_TIME_SECONDS"] == "30.5"
    assert data["SOLVER_PARALLEL_SEARCH"] == "false"
    assert data["ENABLE_TRACING"] == "false"
    assert data["JAEGER_AGENT_HOST"] == "jaeger-agent.observability"
    assert json.loads(data["BACKEND_CORS_ORIGINS"]) == [
        "http://localhost:3000",
        "http://127.0.0.1:3000",
    ]
    staging = config_data(with_spec(inputs_for("minimal"), environment="staging").spec)
    assert staging["DEBUG"] == "false"


def test_email_settings_in_the_config_password_by_reference() -> None:
    children = by_kind(build(inputs_for("email")))
    data = children["ConfigMap"]["data"]
    assert data["SMTP_HOST"] == "smtp.gmail.com"
    assert data["SMTP_PORT"] == "587"
    assert data["SMTP_USER"] == "notifications@vulcan-engine.com"
    assert data["EMAILS_FROM_EMAIL"] == "notifications@vulcan-engine.com"
    assert data["EMAILS_FROM_NAME"] == "Vulcan Engine"
    assert "SMTP_PASSWORD" not in data
    env = env_by_name(children["Deployment"])
    assert secret_ref(env["SMTP_PASSWORD"]) == ("vulcan-smtp", "password")


def test_config_hash_follows_the_config_and_the_rotation_only() -> None:
    base = inputs_for("minimal")
    reference = config_hash_of(build(base))
    changed_config = with_spec(base, database__poolSize=30)
    assert config_hash_of(build(changed_config)) != reference
    assert config_hash_of(build(with_spec(base, jwt__algorithm="HS512"))) != reference
    assert config_hash_of(build(replace(base, rotation="2026-11-29T10:00:00Z"))) != reference
    # Not the config: same hash.
    assert config_hash_of(build(replace(base, run_version="2.1.0"))) == reference
    assert config_hash_of(build(replace(base, replicas_override=0))) == reference
    assert config_hash_of(build(with_spec(base, replicas=7))) == reference
    other_keys = {key: value[::-1] for key, value in KEYS.items()}
    assert config_hash_of(build(replace(base, keys=other_keys))) == reference


def test_spec_hash_changes_only_for_the_object_that_changed() -> None:
    base = inputs_for("production")
    before = {o["kind"]: o["metadata"]["annotations"] for o in build(base)}
    after = {
        o["kind"]: o["metadata"]["annotations"] for o in build(replace(base, run_version="2.1.0"))
    }
    changed = {kind for kind in before if before[kind] != after[kind]}
    assert changed == {"Deployment"}


# --- secrets ------------------------------------------------------------------------------


def test_generated_secret_holds_both_keys_base64() -> None:
    children = by_kind(build(inputs_for("minimal")))
    secret = children["Secret"]
    assert secret["type"] == "Opaque"
    assert "stringData" not in secret
    assert keys_from_secret_data(secret["data"]) == KEYS
    assert secret["metadata"]["name"] == names.engine_keys_secret("minimal")
    assert secret["metadata"]["annotations"][names.ANNOTATION_SECRETS_ROTATION] == ""
    env = env_by_name(children["Deployment"])
    assert secret_ref(env["SECRET_KEY"]) == ("minimal-keys", "SECRET_KEY")
    assert secret_ref(env["JWT_SECRET_KEY"]) == ("minimal-keys", "JWT_SECRET_KEY")


def test_secret_spec_hash_ignores_values_but_not_the_rotation() -> None:
    base = inputs_for("minimal")
    reference = build_secret(base)
    assert reference is not None
    other_values = build_secret(replace(base, keys={k: v + "x" for k, v in KEYS.items()}))
    rotated = build_secret(replace(base, rotation="1"))
    assert other_values is not None and rotated is not None
    annotation = names.ANNOTATION_SPEC_HASH
    assert other_values["data"] != reference["data"]
    assert (
        other_values["metadata"]["annotations"][annotation]
        == reference["metadata"]["annotations"][annotation]
    )
    assert (
        rotated["metadata"]["annotations"][annotation]
        != reference["metadata"]["annotations"][annotation]
    )
    assert rotated["metadata"]["annotations"][names.ANNOTATION_SECRETS_ROTATION] == "1"


def test_rotation_is_read_from_the_engine_annotation() -> None:
    body = engine_body("minimal")
    body["metadata"]["annotations"][names.ANNOTATION_ROTATE_SECRETS] = "2026-11-29"
    inputs = EngineInputs.from_resource(body, keys=KEYS)
    assert inputs.rotation == "2026-11-29"
    assert inputs.run_version == "2.0.0"


def test_bring_your_own_secrets() -> None:
    objs = build(inputs_for("byo-secrets"))
    children = by_kind(objs)
    assert "Secret" not in children
    env = env_by_name(children["Deployment"])
    assert secret_ref(env["SECRET_KEY"]) == ("vulcan-app-keys", "secret-key")
    assert secret_ref(env["JWT_SECRET_KEY"]) == ("vulcan-app-keys", "jwt-secret-key")
    assert secret_ref(env["DATABASE_URL"]) == ("vulcan-db", "database-url")
    assert secret_ref(env["REDIS_URL"]) == ("vulcan-redis", "redis-url")
    assert secret_ref(env["SENTRY_DSN"]) == ("vulcan-sentry", "dsn")
    text = json.dumps(objs)
    for value in KEYS.values():
        assert value not in text
    assert names.engine_keys_secret("byo") not in text
    # keys are not needed at all
    assert build(inputs_for("byo-secrets", keys=None)) == objs


def test_one_key_brought_one_generated() -> None:
    inputs = with_spec(
        inputs_for("minimal"), secrets={"secretKeyRef": {"name": "mine", "key": "sk"}}
    )
    children = by_kind(build(replace(inputs, keys={"JWT_SECRET_KEY": KEYS["JWT_SECRET_KEY"]})))
    assert set(children["Secret"]["data"]) == {"JWT_SECRET_KEY"}
    env = env_by_name(children["Deployment"])
    assert secret_ref(env["SECRET_KEY"]) == ("mine", "sk")
    assert secret_ref(env["JWT_SECRET_KEY"]) == ("minimal-keys", "JWT_SECRET_KEY")


def test_missing_key_values_are_an_error_not_a_random_secret() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        build(inputs_for("minimal", keys=None))
    with pytest.raises(ValueError, match="JWT_SECRET_KEY"):
        build(inputs_for("minimal", keys={"SECRET_KEY": "only-one"}))


def test_generate_keys_is_strong_and_fresh() -> None:
    first, second = generate_keys(), generate_keys()
    assert set(first) == {"SECRET_KEY", "JWT_SECRET_KEY"}
    for value in first.values():
        padded = value + "=" * (-len(value) % 4)
        assert len(base64.urlsafe_b64decode(padded)) * 8 >= 256
    assert first["SECRET_KEY"] != first["JWT_SECRET_KEY"]
    assert first != second


def test_ensure_keys_keeps_existing_and_fills_gaps() -> None:
    spec = inputs_for("minimal").spec
    kept = ensure_keys(spec, {"SECRET_KEY": "old"})
    assert kept is not None
    assert kept["SECRET_KEY"] == "old"
    assert len(kept["JWT_SECRET_KEY"]) >= 43
    rotated = ensure_keys(spec, KEYS, rotate=True)
    assert rotated is not None
    assert not set(rotated.values()) & set(KEYS.values())
    assert ensure_keys(inputs_for("byo-secrets").spec, KEYS) is None


def test_keys_from_secret_data_skips_garbage() -> None:
    data = {"SECRET_KEY": "not base64!", "JWT_SECRET_KEY": base64.b64encode(b"jwt").decode()}
    assert keys_from_secret_data(data) == {"JWT_SECRET_KEY": "jwt"}
    assert keys_from_secret_data(None) == {}


# --- deployment details -------------------------------------------------------------------


def test_database_url_defaults_to_the_conventional_secret() -> None:
    env = env_by_name(by_kind(build(inputs_for("minimal")))["Deployment"])
    assert secret_ref(env["DATABASE_URL"]) == ("minimal-database", "database-url")
    assert "REDIS_URL" not in env
    assert "SENTRY_DSN" not in env
    assert "SMTP_PASSWORD" not in env
    assert all("value" not in item for item in env.values())


def test_container_image_ports_probes_and_resources() -> None:
    inputs = inputs_for("production", run_version="2.1.0")
    deployment = by_kind(build(inputs))["Deployment"]
    backend = container(deployment)
    assert backend["name"] == "backend"
    assert backend["image"] == "vulcan-engine:2.1.0"
    assert backend["imagePullPolicy"] == "IfNotPresent"
    assert backend["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    liveness, readiness = backend["livenessProbe"], backend["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert (liveness["initialDelaySeconds"], liveness["periodSeconds"]) == (30, 10)
    assert (liveness["timeoutSeconds"], liveness["failureThreshold"]) == (10, 3)
    assert readiness["httpGet"] == {"path": "/api/v1/health/ready", "port": "http"}
    assert (readiness["initialDelaySeconds"], readiness["periodSeconds"]) == (5, 5)
    assert backend["startupProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert backend["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == names.engine_service_account("prod")
    assert pod["terminationGracePeriodSeconds"] > 0


def test_image_repository_and_pull_policy_from_the_spec() -> None:
    backend = container(by_kind(build(inputs_for("ingress-tls")))["Deployment"])
    assert backend["image"] == "registry.example.com/vulcan-engine:2.1.0"
    assert backend["imagePullPolicy"] == "Always"


def test_selectors_and_topology_spread() -> None:
    children = by_kind(build(inputs_for("production")))
    deployment, service = children["Deployment"], children["Service"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == names.selector("prod", names.COMPONENT_BACKEND)
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert service["spec"]["selector"] == selector
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for constraint in spread:
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"] == {"matchLabels": selector}


def test_user_env_is_passed_through_after_ours() -> None:
    deployment = by_kind(build(inputs_for("development")))["Deployment"]
    env = container(deployment)["env"]
    assert [item["name"] for item in env][-2:] == ["LOG_LEVEL", "POD_NAME"]
    assert env[-2] == {"name": "LOG_LEVEL", "value": "debug"}
    assert env[-1] == {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }


def test_user_env_replaces_ours_without_duplicates() -> None:
    inputs = with_spec(inputs_for("minimal"), env=[{"name": "DATABASE_URL", "value": "sqlite://"}])
    env = env_by_name(by_kind(build(inputs))["Deployment"])
    assert env["DATABASE_URL"] == {"name": "DATABASE_URL", "value": "sqlite://"}


def test_service_is_cluster_ip_80_to_http() -> None:
    service = by_kind(build(inputs_for("production")))["Service"]
    assert service["metadata"]["name"] == "prod"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


# --- network policy and ingress -------------------------------------------------------------


def test_network_policy_opens_the_api_port_to_the_namespace_and_listed_namespaces() -> None:
    children = by_kind(build(inputs_for("ingress-tls")))
    policy = children["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert "egress" not in policy
    assert policy["podSelector"] == {"matchLabels": names.selector("public", "backend")}
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    listed = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in ("ingress-nginx", "monitoring")
    ]
    # the listed namespaces are also Prometheus' and the ingress controller's by their default
    # selectors (a ServiceMonitor and an Ingress are made): each peer once
    assert rule["from"] == [{"podSelector": {}}, *listed]


def test_network_policy_off() -> None:
    assert "NetworkPolicy" not in by_kind(build(inputs_for("no-network-policy")))


def test_ingress_with_tls_and_cert_manager() -> None:
    children = by_kind(build(inputs_for("ingress-tls")))
    ingress = children["Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert not any("snippet" in key for key in annotations)
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": ["api.vulcan-engine.com"], "secretName": "vulcan-engine-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == "api.vulcan-engine.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"] == {
        "service": {"name": children["Service"]["metadata"]["name"], "port": {"name": "http"}}
    }


def test_ingress_without_tls_has_no_tls_annotations() -> None:
    ingress = by_kind(build(inputs_for("no-network-policy")))["Ingress"]
    assert "tls" not in ingress["spec"]
    assert set(ingress["metadata"]["annotations"]) == {names.ANNOTATION_SPEC_HASH}
    assert ingress["spec"]["ingressClassName"] == "traefik"


def test_ingress_tls_without_issuer_has_no_cert_manager_annotation() -> None:
    inputs = with_spec(inputs_for("ingress-tls"), ingress__tls__clusterIssuer="")
    ingress = by_kind(build(inputs))["Ingress"]
    assert "cert-manager.io/cluster-issuer" not in ingress["metadata"]["annotations"]
    assert ingress["spec"]["tls"]


def test_ingress_off_by_default() -> None:
    assert "Ingress" not in by_kind(build(inputs_for("minimal")))


# --- names --------------------------------------------------------------------------------


def test_long_engine_names_give_valid_shortened_child_names() -> None:
    inputs = inputs_for("long-name")
    assert len(inputs.name) > 63
    objs = build(inputs)
    for obj in objs:
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and DNS_LABEL.fullmatch(name), name
    value = objs[0]["metadata"]["labels"][names.LABEL_ENGINE]
    assert len(value) <= 63


def test_every_child_the_spec_can_turn_off_is_prunable() -> None:
    """The reconciler prunes by kind (`reconcile.engine.PRUNABLE`): every kind of child that one
    spec makes and another does not is in it, except the keys Secret (generated keys are kept
    for the engine's lifetime) and the backup volume (data first: never pruned)."""
    built: list[set[tuple[str, str]]] = []
    for variant in VARIANTS:
        for monitoring in (True, False):
            base = inputs_for(variant, monitoring=monitoring)
            for inputs in (
                base,
                with_spec(base, backup__enabled=False, maintenance__enabled=False),
            ):
                built.append({(o["apiVersion"], o["kind"]) for o in engine_children(inputs)})
    optional = set.union(*built) - set.intersection(*built)
    kept = {("v1", "Secret"), ("v1", "PersistentVolumeClaim")}
    assert ("v1", "Secret") in optional and not kept & set(PRUNABLE)
    assert {kind for _, kind in optional - kept} >= {
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Ingress",
        "CronJob",
        "ServiceMonitor",
        "PrometheusRule",
    }
    assert optional - kept <= set(PRUNABLE)
    # Every spec makes one PDB (maxUnavailable 1 at any replica count): never pruned, so the
    # operator needs no `list`/`delete` on PDBs (manifests/rbac.yaml).
    for variant in VARIANTS:
        pdbs = [
            o for o in engine_children(inputs_for(variant)) if o["kind"] == "PodDisruptionBudget"
        ]
        assert len(pdbs) == 1, variant
    assert ("policy/v1", "PodDisruptionBudget") not in PRUNABLE


def test_inputs_do_not_mutate() -> None:
    inputs = inputs_for("production")
    snapshot = copy.deepcopy(inputs.spec.model_dump())
    build(inputs)
    assert inputs.spec.model_dump() == snapshot
