"""manifests/: what `kubectl apply -k manifests/` installs, built and validated strictly.

The kustomizations use plain `resources:` lists only, so a small resolver here builds them the
way kustomize does (files must lie under the kustomization's root; directories are
kustomizations of their own). When `kubectl` is on the PATH, `kubectl kustomize` must agree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import promql_parser
import pytest
import yaml

from tests.support.manifests import kustomize, validate_manifests
from vulcan_operator import cli
from vulcan_operator import main as operator_main
from vulcan_operator.api.engine import Monitoring
from vulcan_operator.builders import engine_children
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.keys import generate_keys
from vulcan_operator.builders.monitoring import monitoring_children
from vulcan_operator.reconcile.engine import PRUNABLE

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CRDS = REPO / "crds"
IMAGE = "ghcr.io/vulcan-engine/vulcan-operator:0.1.0"
NAMESPACE = "vulcan-system"
WILDCARD = "*"

Obj = dict[str, Any]


def key(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def only(objs: Iterable[Obj], kind: str) -> Obj:
    (found,) = [o for o in objs if o["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def installed() -> list[Obj]:
    return kustomize(MANIFESTS)


@pytest.fixture(scope="module")
def deployment(installed: list[Obj]) -> Obj:
    return only(installed, "Deployment")


@pytest.fixture(scope="module")
def cluster_role(installed: list[Obj]) -> Obj:
    return only(installed, "ClusterRole")


# --- what is installed ------------------------------------------------------------------------
def test_install_has_every_piece(installed: list[Obj]) -> None:
    keys = [key(o) for o in installed]
    assert len(keys) == len(set(keys)), "duplicate objects"
    kinds = sorted(o["kind"] for o in installed)
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 6
        + [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    crds = {o["metadata"]["name"] for o in installed if o["kind"] == "CustomResourceDefinition"}
    assert crds == {
        "vulcanengines.vulcan-engine.com",
        "schedulingproblems.vulcan-engine.com",
        "vulcanbackups.vulcan-engine.com",
        "vulcanrestores.vulcan-engine.com",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    cluster_scoped = ("Namespace", "CustomResourceDefinition", "ValidatingAdmissionPolicy")
    for obj in installed:
        if not obj["kind"].startswith(("Cluster", *cluster_scoped)):
            assert obj["metadata"]["namespace"] == NAMESPACE, key(obj)
        # Argo CD's tracking label is Argo CD's to set.
        assert "app.kubernetes.io/instance" not in obj["metadata"].get("labels", {}), key(obj)


@pytest.mark.parametrize("folder", ["", "monitoring"])
def test_every_object_is_valid(folder: str) -> None:
    validate_manifests(kustomize(MANIFESTS / folder), crd_dir=MANIFESTS / "crds")


def test_the_resolver_refuses_what_it_does_not_model(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\nnamespace: x\n")
    with pytest.raises(AssertionError, match="plain resources"):
        kustomize(tmp_path)
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "kustomization.yaml").write_text("resources: [../a.yaml]\n")
    with pytest.raises(AssertionError, match="outside the kustomization root"):
        kustomize(inner)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("folder", ["", "monitoring"])
def test_kubectl_kustomize_agrees(folder: str) -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / folder)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert sorted(built, key=key) == sorted(kustomize(MANIFESTS / folder), key=key)


def test_crd_copies_are_fresh(update_golden: bool) -> None:
    """manifests/crds/ holds copies of crds/ (kustomize cannot reach outside manifests/)."""
    sources = sorted(CRDS.glob("*.yaml"))
    assert len(sources) == 4
    listed = yaml.safe_load((MANIFESTS / "crds" / "kustomization.yaml").read_text())["resources"]
    stale = []
    for source in sources:
        copy = MANIFESTS / "crds" / source.name
        assert source.name in listed, f"manifests/crds/kustomization.yaml lacks {source.name}"
        if update_golden:
            shutil.copyfile(source, copy)
        elif not copy.is_file() or copy.read_text() != source.read_text():
            stale.append(source.name)
    assert not stale, (
        f"manifests/crds/ is stale for {stale}: run "
        "`vulcan-operator crds --output-dir manifests/crds` (or UPDATE_GOLDEN=1 pytest ...)"
    )


# --- the Deployment ---------------------------------------------------------------------------
def container(deployment: Obj) -> Obj:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def test_deployment_runs_the_operator_image_with_peering(deployment: Obj) -> None:
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    c = container(deployment)
    assert c["image"] == IMAGE
    assert c["args"] == ["run", "--peering=vulcan-operator", "--log-format=json"]
    env = {e["name"]: e for e in c["env"]}
    assert env["VULCAN_OPERATOR_IMAGE"]["value"] == IMAGE
    # Kopf's peering identity is the pod's name.
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_deployment_args_are_what_the_cli_expects(
    deployment: Obj, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(operator_main, "run", lambda **kw: seen.update(kw), raising=False)
    assert cli.main(container(deployment)["args"]) == 0
    assert seen["peering"] == "vulcan-operator"
    assert seen["standalone"] is False
    assert seen["namespaces"] == []  # cluster-wide: the ClusterRole and ClusterKopfPeering
    # The probes hit the liveness endpoint the CLI serves by default.
    liveness = urlparse(seen["liveness"])
    c = container(deployment)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        http = c[probe]["httpGet"]
        assert (http["path"], http["port"]) == (liveness.path, liveness.port), probe


def test_the_operator_may_create_its_peering_object(cluster_role: Obj) -> None:
    """No separate step: the operator creates ClusterKopfPeering `--peering` at start-up
    (main.ensure_peering), so the one `kubectl apply -k manifests/` holds no peering object."""
    assert {"get", "create"} <= verbs(cluster_role, "kopf.dev", "clusterkopfpeerings")
    assert not (MANIFESTS / "peering").exists()


def test_deployment_is_restricted_and_bounded(deployment: Obj) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(deployment)
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert "memory" in c["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/tmp"] in {v["name"] for v in pod["volumes"] if "emptyDir" in v}


def test_metrics_port_and_service(installed: list[Obj], deployment: Obj) -> None:
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    assert ports["metrics"] == 9090
    service = only(installed, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9090, "metrics")


def test_service_account_is_bound_to_the_cluster_role(installed: list[Obj]) -> None:
    sa = only(installed, "ServiceAccount")
    binding = only(installed, "ClusterRoleBinding")
    role = only(installed, "ClusterRole")
    pod = only(installed, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]


def test_namespace_enforces_the_restricted_pod_security_standard(installed: list[Obj]) -> None:
    ns = only(installed, "Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- RBAC -------------------------------------------------------------------------------------
# (apiVersion, kind) of a child → (API group, resource).
RESOURCES = {
    ("v1", "ConfigMap"): ("", "configmaps"),
    ("v1", "Secret"): ("", "secrets"),
    ("v1", "Service"): ("", "services"),
    ("v1", "ServiceAccount"): ("", "serviceaccounts"),
    ("v1", "PersistentVolumeClaim"): ("", "persistentvolumeclaims"),
    ("apps/v1", "Deployment"): ("apps", "deployments"),
    ("batch/v1", "Job"): ("batch", "jobs"),
    ("batch/v1", "CronJob"): ("batch", "cronjobs"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("autoscaling", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networking.k8s.io", "networkpolicies"),
    ("networking.k8s.io/v1", "Ingress"): ("networking.k8s.io", "ingresses"),
    ("rbac.authorization.k8s.io/v1", "Role"): ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rbac.authorization.k8s.io", "rolebindings"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("monitoring.coreos.com", "servicemonitors"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("monitoring.coreos.com", "prometheusrules"),
    ("vulcan-engine.com/v1alpha1", "VulcanBackup"): ("vulcan-engine.com", "vulcanbackups"),
}
# Children docs/design.md names that not every builder renders yet: solver/migration/backup Jobs,
# backup and maintenance CronJobs, the backup PVC, the solver pods' Role and RoleBinding, the
# pre-upgrade VulcanBackup.
DESIGN_CHILDREN = [
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "PersistentVolumeClaim"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("vulcan-engine.com/v1alpha1", "VulcanBackup"),
]


def grants(role: Obj) -> set[tuple[str, str, str]]:
    """(group, resource, verb) triples of a role."""
    out = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def verbs(role: Obj, group: str, resource: str) -> set[str]:
    return {v for g, r, v in grants(role) if (g, r) == (group, resource)}


def test_cluster_role_has_no_wildcards_and_no_repeats(cluster_role: Obj) -> None:
    seen: set[tuple[str, str, str]] = set()
    for rule in cluster_role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no nonResourceURLs
        for field in ("apiGroups", "resources", "verbs"):
            assert WILDCARD not in rule[field], rule
            assert all(WILDCARD not in item for item in rule[field]), rule
        for triple in grants({"rules": [rule]}):
            assert triple not in seen, f"granted twice: {triple}"
            seen.add(triple)
        assert len(rule["apiGroups"]) == 1, "one API group per rule, for reading"
    # No powers the operator never uses.
    all_verbs = {v for _, _, v in seen}
    assert all_verbs <= {"get", "list", "watch", "create", "patch", "delete"}, all_verbs


def test_secrets_are_never_listed_watched_or_deleted(cluster_role: Obj) -> None:
    assert verbs(cluster_role, "", "secrets") == {"get", "create", "patch"}


def test_our_kinds_and_their_status(cluster_role: Obj) -> None:
    plurals = []
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["spec"]["group"] == "vulcan-engine.com"
        plurals.append(crd["spec"]["names"]["plural"])
    assert len(plurals) == 4
    for plural in plurals:
        # Kopf lists, watches and patches (finalizers, annotations); status via the subresource.
        assert {"get", "list", "watch", "patch"} <= verbs(cluster_role, "vulcan-engine.com", plural)
        assert "update" not in verbs(cluster_role, "vulcan-engine.com", plural)
        assert verbs(cluster_role, "vulcan-engine.com", f"{plural}/status") == {"patch"}


def example_engine() -> EngineInputs:
    body = yaml.safe_load((REPO / "examples" / "vulcanengine.yaml").read_text())
    body["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001"
    body["spec"]["ingress"]["enabled"] = True
    return EngineInputs.from_resource(body, keys=generate_keys())


def test_every_child_kind_can_be_created_read_and_patched(cluster_role: Obj) -> None:
    inputs = example_engine()
    built = engine_children(inputs) + monitoring_children(
        inputs.name, inputs.namespace, inputs.uid, Monitoring()
    )
    kinds = {(o["apiVersion"], o["kind"]) for o in built} | set(DESIGN_CHILDREN)
    assert ("apps/v1", "Deployment") in kinds and ("v1", "Secret") in kinds
    for api_version, kind in sorted(kinds):
        assert (api_version, kind) in RESOURCES, f"add {kind} to RESOURCES and to rbac.yaml"
        group, resource = RESOURCES[(api_version, kind)]
        have = verbs(cluster_role, group, resource)
        # Jobs and the backup claim are created once and never patched (apply create_only).
        create_only = kind in ("Job", "PersistentVolumeClaim")
        needed = {"get", "create"} if create_only else {"get", "create", "patch"}
        assert needed <= have, f"{kind}: has only {sorted(have)}"


def test_every_prunable_kind_can_be_listed_and_deleted(cluster_role: Obj) -> None:
    assert PRUNABLE
    for api_version, kind in PRUNABLE:
        group, resource = RESOURCES[(api_version, kind)]
        assert {"list", "delete"} <= verbs(cluster_role, group, resource), kind


def test_what_kopf_itself_needs(cluster_role: Obj) -> None:
    crds = verbs(cluster_role, "apiextensions.k8s.io", "customresourcedefinitions")
    assert crds == {"list", "watch"}
    # Cluster-wide, Kopf never lists namespaces (only namespace patterns would; one is read by
    # name for acceptFrom), and it posts core v1 Events only.
    assert not {"list", "watch"} & verbs(cluster_role, "", "namespaces")
    assert verbs(cluster_role, "", "events") == {"create"}
    assert verbs(cluster_role, "events.k8s.io", "events") == set()
    assert {"list", "watch", "patch"} <= verbs(cluster_role, "kopf.dev", "clusterkopfpeerings")
    assert verbs(cluster_role, "kopf.dev", "kopfpeerings") == set()  # namespaced installs only
    # Solver and backup pods are listed by their Job's label, never changed.
    assert verbs(cluster_role, "", "pods") == {"list"}


# --- the operator's own monitoring ------------------------------------------------------------
def test_operator_service_monitor_scrapes_the_metrics_service(installed: list[Obj]) -> None:
    objs = kustomize(MANIFESTS / "monitoring")
    sm = only(objs, "ServiceMonitor")
    service = only(installed, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The per-engine gauges keep their own `namespace` label (see vulcan_operator.metrics).
    assert endpoint["honorLabels"] is True


def test_operator_alerts_parse_and_use_the_operators_metrics() -> None:
    rule = only(kustomize(MANIFESTS / "monitoring"), "PrometheusRule")
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name or "")

    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            promql_parser.walk(promql_parser.parse(r["expr"]), pre_visit=visit)
            assert r["labels"]["severity"] in {"critical", "warning", "info"}
    assert {"up", "vulcan_operator_reconcile_errors_total", "vulcan_operator_queue_depth"} <= names


# --- kind-config.yaml (the e2e cluster) -------------------------------------------------------
def test_kind_config_is_a_pinned_two_node_cluster() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["name"]
    assert sorted(n["role"] for n in config["nodes"]) == ["control-plane", "worker"]
    for node in config["nodes"]:
        match = re.fullmatch(r"kindest/node:v1\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}", node["image"])
        assert match, f"pin the node image by version and digest: {node['image']}"
        assert int(match.group(1)) >= 30
