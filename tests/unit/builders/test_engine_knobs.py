"""The production knobs of a VulcanEngine (issue 15, defects 4 and 5): registry credentials on
every pod the engine makes, placement (nodeSelector, tolerations, affinity, topology spread,
priority), extra pod metadata, the Service type, Ingress annotations and the nginx hardening;
and what the spec may not say (our own labels and annotations, snippets, the control plane's
taints, system priority classes), refused with the field named.

Every rendered object goes through strict validation (tests.support.manifests).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tests.support.manifests import validate_manifests
from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders import backup as backup_builders
from vulcan_operator.builders import core_children as build
from vulcan_operator.builders import engine_children
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.ingress import SECURITY_HEADERS, SOLVE_PATH
from vulcan_operator.builders.migration import migration_job
from vulcan_operator.builders.problem import ProblemInputs
from vulcan_operator.builders.problem import build as build_problem
from vulcan_operator.config import Settings

ROOT = Path(__file__).resolve().parents[3]
KNOBS = ROOT / "tests" / "data" / "engines" / "knobs.yaml"
MINIMAL = ROOT / "tests" / "data" / "engines" / "minimal.yaml"
UID = "6f1c2b8e-4d3a-4e5f-9a7b-0c1d2e3f4a5b"
KEYS = {"SECRET_KEY": "k" * 64, "JWT_SECRET_KEY": "j" * 64}
SETTINGS = Settings(
    operator_image="ghcr.io/vulcan-engine/vulcan-operator:test",
    image_pull_secrets=("operator-registry", "regcred"),
)
SHA = "9f" * 32

Obj = dict[str, Any]


def body(path: Path = KNOBS, **spec: Any) -> Obj:
    doc: Obj = yaml.safe_load(path.read_text())
    doc["metadata"]["uid"] = UID
    doc["spec"].update(copy.deepcopy(spec))
    return doc


def inputs(doc: Obj | None = None) -> EngineInputs:
    return EngineInputs.from_resource(doc or body(), keys=KEYS, settings=SETTINGS)


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


def pod_of(obj: Obj) -> Obj:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: Obj = spec["template"]["spec"]
    return pod


def spec_error(**spec: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        VulcanEngineSpec.model_validate({"version": "1.0.0", **spec})
    return str(caught.value)


# --- every pod the engine makes ---------------------------------------------------------------
def every_pod_owner() -> dict[str, Obj]:
    """One object per kind of pod the engine makes, with knobs.yaml's spec."""
    engine = inputs()
    spec = engine.spec
    children = engine_children(engine)
    problem = SchedulingProblem.model_validate(
        yaml.safe_load((ROOT / "examples" / "ft06.yaml").read_text())
    )
    backup_owner = Owner(kind="VulcanBackup", name="b1", namespace="vulcan", uid="u-b1")
    restore_owner = Owner(kind="VulcanRestore", name="r1", namespace="vulcan", uid="u-r1")
    location = "s3://vulcan-backups/database/vulcan/knobs/vulcan_20261129_020000.dump"
    return {
        "backend": one(children, "Deployment"),
        "migration": migration_job(engine, "2.1.0", ["alembic", "upgrade", "head"], "migrate"),
        "backup": one(children, "CronJob", names.backup_cronjob("knobs")),
        "maintenance": one(children, "CronJob", names.maintenance_cronjob("knobs")),
        "on-demand backup": backup_builders.build_backup_job(backup_owner, "knobs", spec, SETTINGS)[
            0
        ],
        "restore": backup_builders.build_restore_job(
            restore_owner, "knobs", spec, SETTINGS, location=location, checksum=SHA
        )[0],
        "solver": one(
            build_problem(
                ProblemInputs(
                    name="ft06",
                    namespace="vulcan",
                    uid="u-p1",
                    generation=1,
                    spec=problem.spec,
                    engine=spec,
                    settings=SETTINGS,
                )
            ),
            "Job",
        ),
    }


@pytest.fixture(scope="module")
def pods() -> dict[str, Obj]:
    return every_pod_owner()


def test_every_pod_kind_is_strictly_valid(pods: dict[str, Obj]) -> None:
    validate_manifests(pods.values())
    validate_manifests(engine_children(inputs()))


def test_every_pod_pulls_with_the_engines_registry_credentials(pods: dict[str, Obj]) -> None:
    for what, obj in pods.items():
        secrets = [s["name"] for s in pod_of(obj).get("imagePullSecrets", [])]
        assert secrets[:1] == ["regcred"], what
        assert len(secrets) == len(set(secrets)), (what, secrets)  # regcred named twice: once


def test_the_operators_own_credentials_go_to_its_own_jobs_only(pods: dict[str, Obj]) -> None:
    """The operator's Jobs run its image and the client images: they also get
    VULCAN_IMAGE_PULL_SECRETS; the backend and its migrations run the engine's image only."""
    for what, obj in pods.items():
        secrets = [s["name"] for s in pod_of(obj)["imagePullSecrets"]]
        engine_image = what in ("backend", "migration")
        assert secrets == (["regcred"] if engine_image else ["regcred", "operator-registry"]), what


def test_no_pull_secrets_unless_asked(pods: dict[str, Obj]) -> None:
    plain = EngineInputs.from_resource(body(MINIMAL), keys=KEYS)
    for obj in engine_children(plain):
        if obj["kind"] in ("Deployment", "CronJob"):
            assert "imagePullSecrets" not in pod_of(obj), obj["metadata"]["name"]


def test_settings_read_the_pull_secrets_from_the_environment() -> None:
    env = {"VULCAN_IMAGE_PULL_SECRETS": " mirror, regcred ,mirror,"}
    assert Settings.from_env(env).image_pull_secrets == ("mirror", "regcred")
    assert Settings.from_env({}).image_pull_secrets == ()
    with pytest.raises(ValueError, match="VULCAN_IMAGE_PULL_SECRETS: 'Bad_Name'"):
        Settings.from_env({"VULCAN_IMAGE_PULL_SECRETS": "Bad_Name"})


# --- placement -------------------------------------------------------------------------------
def test_backend_placement_from_the_spec(pods: dict[str, Obj]) -> None:
    pod = pod_of(pods["backend"])
    assert pod["nodeSelector"] == {"node-pool": "api"}
    assert pod["tolerations"] == [{"key": "dedicated", "value": "api", "effect": "NoSchedule"}]
    assert (
        pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
            "weight"
        ]
        == 50
    )
    assert pod["priorityClassName"] == "business-critical"
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "DoNotSchedule" and spread["minDomains"] == 3
    # a constraint without labelSelector counts the backend's own pods
    assert spread["labelSelector"] == {"matchLabels": names.selector("knobs", "backend")}


def test_migrations_run_where_the_backend_runs(pods: dict[str, Obj]) -> None:
    backend, migration = pod_of(pods["backend"]), pod_of(pods["migration"])
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert migration[key] == backend[key], key
    assert "topologySpreadConstraints" not in migration


def test_solver_pods_go_to_their_own_nodes(pods: dict[str, Obj]) -> None:
    pod = pod_of(pods["solver"])
    assert pod["nodeSelector"] == {"node-pool": "compute"}
    assert pod["tolerations"] == [{"key": "dedicated", "value": "solver", "effect": "NoSchedule"}]
    assert "affinity" not in pod and "priorityClassName" not in pod


def test_backup_pods_keep_no_backend_placement(pods: dict[str, Obj]) -> None:
    for what in ("backup", "maintenance", "on-demand backup", "restore"):
        pod = pod_of(pods[what])
        assert "nodeSelector" not in pod and "tolerations" not in pod, what


@pytest.mark.parametrize(
    ("spec", "spread"),
    [
        ({"replicas": 1, "autoscaling": {"enabled": False}}, False),
        ({"replicas": 2, "autoscaling": {"enabled": False}}, True),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1}}, False),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4}}, True),
    ],
)
def test_default_spread_only_when_more_than_one_replica_may_run(spec: Obj, spread: bool) -> None:
    engine = EngineInputs.from_resource(body(MINIMAL, **spec), keys=KEYS)
    pod = pod_of(one(build(engine), "Deployment"))
    constraints = pod.get("topologySpreadConstraints", [])
    assert {c["topologyKey"] for c in constraints} == (
        {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} if spread else set()
    )
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in constraints)


def test_a_restore_does_not_change_the_pod_template() -> None:
    """Scaling to zero for a restore must not roll the pods: the template ignores it."""
    engine = inputs()
    held = EngineInputs.from_resource(body(), keys=KEYS, settings=SETTINGS, replicas_override=0)
    template = one(build(engine), "Deployment")["spec"]["template"]
    assert one(build(held), "Deployment")["spec"]["template"] == template


# --- pod metadata --------------------------------------------------------------------------
def test_pod_metadata_is_added_and_ours_kept(pods: dict[str, Obj]) -> None:
    meta = pods["backend"]["spec"]["template"]["metadata"]
    assert meta["labels"]["example.com/tier"] == "api"
    assert names.selector("knobs", "backend").items() <= meta["labels"].items()
    assert meta["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    assert meta["annotations"]["example.com/cost-centre"] == "planning"
    assert names.ANNOTATION_CONFIG_HASH in meta["annotations"]
    # the Deployment's own metadata and selector carry none of them
    deployment = pods["backend"]
    assert "example.com/tier" not in deployment["metadata"]["labels"]
    assert "example.com/tier" not in deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("podLabels", {"app.kubernetes.io/name": "other"}, "operator's own labels"),
        ("podLabels", {"vulcan-engine.com/engine": "other"}, "operator's own labels"),
        ("podLabels", {"app.kubernetes.io/component": "x"}, "operator's own labels"),
        ("podLabels", {"pod-template-hash": "x"}, "operator's own labels"),
        ("podLabels", {"node-role.kubernetes.io/x": ""}, "Kubernetes domain"),
        ("podLabels", {"team": "a b"}, "not a valid label value"),
        ("podLabels", {"-team": "x"}, "not a valid key"),
        ("podAnnotations", {"vulcan-engine.com/config-hash": "x"}, "operator's own"),
        ("podAnnotations", {"kubectl.kubernetes.io/default-container": "x"}, "operator's own"),
        (
            "podAnnotations",
            {"container.apparmor.security.beta.kubernetes.io/backend": "unconfined"},
            "Kubernetes domain",
        ),
        ("podAnnotations", {"seccomp.security.alpha.kubernetes.io/pod": "x"}, "Kubernetes domain"),
    ],
)
def test_pod_metadata_never_takes_ours_or_kubernetes_own(field: str, value: Obj, says: str) -> None:
    message = spec_error(**{field: value})
    assert field in message and says in message, message


# --- Service ----------------------------------------------------------------------------------
def test_service_type_and_annotations() -> None:
    service = one(build(inputs()), "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    plain = one(build(EngineInputs.from_resource(body(MINIMAL), keys=KEYS)), "Service")
    assert plain["spec"]["type"] == "ClusterIP"
    assert set(plain["metadata"]["annotations"]) == {names.ANNOTATION_SPEC_HASH}
    assert "type" in spec_error(service={"type": "ExternalName"})


# --- Ingress ------------------------------------------------------------------------------------
def test_ingress_annotations_are_added_to_ours() -> None:
    children = build(inputs())
    main = one(children, "Ingress", names.engine_ingress("knobs"))
    annotations = main["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] == "10.0.0.0/8"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert "nginx.ingress.kubernetes.io/limit-rpm" not in annotations


def test_nginx_limits_solve_requests_in_an_ingress_of_its_own() -> None:
    children = build(inputs())
    solve = one(children, "Ingress", names.engine_solve_ingress("knobs"))
    annotations = solve["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/limit-rpm"] == "10"  # the guide's 10/minute
    # the user's allow-list and our TLS settings hold on /solve too
    assert annotations["nginx.ingress.kubernetes.io/whitelist-source-range"] == "10.0.0.0/8"
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    (rule,) = solve["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path == {
        "path": SOLVE_PATH,
        "pathType": "Prefix",
        "backend": {"service": {"name": "knobs", "port": {"name": "http"}}},
    }
    main = one(children, "Ingress", names.engine_ingress("knobs"))
    assert solve["spec"]["tls"] == main["spec"]["tls"]
    assert rule["host"] == main["spec"]["rules"][0]["host"]


def test_nginx_security_headers_configmap() -> None:
    headers = one(build(inputs()), "ConfigMap", names.engine_security_headers("knobs"))
    assert headers["data"] == SECURITY_HEADERS
    assert headers["data"]["X-Frame-Options"] == "DENY"
    assert headers["data"]["Content-Security-Policy"] == "default-src 'self'"


def test_no_nginx_extras_for_another_class() -> None:
    doc = body(ingress={"enabled": True, "className": "traefik", "host": "api.example.com"})
    children = build(inputs(doc))
    assert [o["metadata"]["name"] for o in children if o["kind"] == "Ingress"] == ["knobs"]
    assert names.engine_security_headers("knobs") not in {
        o["metadata"]["name"] for o in children if o["kind"] == "ConfigMap"
    }


@pytest.mark.parametrize(
    ("annotations", "says"),
    [
        ({"nginx.ingress.kubernetes.io/configuration-snippet": "return 200;"}, "snippet"),
        ({"nginx.ingress.kubernetes.io/server-snippet": "x"}, "snippet"),
        ({"nginx.ingress.kubernetes.io/auth-snippet": "x"}, "snippet"),
        ({"nginx.org/location-snippets": "x"}, "snippet"),
        (
            {"nginx.ingress.kubernetes.io/auth-url": "http://a/;\nlocation /x { return 200; }"},
            "inject nginx configuration",
        ),
        ({"nginx.ingress.kubernetes.io/auth-tls-match-cn": "CN=a'}"}, "inject nginx"),
        ({"nginx.ingress.kubernetes.io/mirror-target": "http://a/$x;"}, "inject nginx"),
        ({"cert-manager.io/cluster-issuer": "other"}, "spec.ingress.tls"),
        ({"nginx.ingress.kubernetes.io/ssl-ciphers": "NULL"}, "spec.ingress.tls"),
        ({"vulcan-engine.com/spec-hash": "x"}, "operator's own domain"),
    ],
)
def test_ingress_annotations_that_are_refused(annotations: Obj, says: str) -> None:
    message = spec_error(ingress={"enabled": True, "annotations": annotations})
    assert "ingress.annotations" in message and says in message, message


def test_ordinary_ingress_annotations_are_accepted() -> None:
    spec = VulcanEngineSpec.model_validate(
        {
            "version": "1.0.0",
            "ingress": {
                "enabled": True,
                "annotations": {
                    "nginx.ingress.kubernetes.io/proxy-body-size": "10m",
                    "nginx.ingress.kubernetes.io/auth-url": "https://auth.example.com/check",
                    "nginx.ingress.kubernetes.io/auth-signin": "https://a.example.com/?rd=$uri",
                    "external-dns.alpha.kubernetes.io/hostname": "api.example.com",
                },
            },
        }
    )
    assert len(spec.ingress.annotations) == 4


# --- other refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"tolerations": [{"operator": "Exists"}]}, "every taint"),
        (
            {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
                ]
            },
            "control-plane",
        ),
        ({"solver": {"tolerations": [{"operator": "Exists"}]}}, "every taint"),
        ({"tolerations": [{"key": "a", "operator": "Exists", "value": "b"}]}, "no value"),
        ({"tolerations": [{"key": "a", "tolerationSeconds": 5}]}, "NoExecute"),
        ({"priorityClassName": "system-node-critical"}, "system-*"),
        ({"priorityClassName": "system-cluster-critical"}, "system-*"),
        ({"nodeSelector": {"node-pool": "a b"}}, "not a valid label value"),
        (
            {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "minDomains": 2,
                    }
                ]
            },
            "minDomains",
        ),
        (
            {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
            ("nodeSelectorTerms"),
        ),
        ({"affinity": {"podAffinity": {"unknown": []}}}, "unknown"),
    ],
)
def test_placement_refusals_name_the_field(spec: Obj, says: str) -> None:
    message = spec_error(**spec)
    assert says in message, message
    assert next(iter(spec)) in message, message


def test_the_knobs_example_is_a_valid_engine() -> None:
    spec = inputs().spec
    assert spec.imagePullSecrets[0].name == "regcred"
    assert spec.networkPolicy.egress.enabled
