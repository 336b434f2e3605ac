"""charts/vulcan-operator, checked with real Helm (helm-python-sdk: Helm v4's Go SDK).

Lint clean; every value set of tests.support.chart.VALUE_SETS renders strictly valid objects
(checkov runs over them too, in tests/repo/test_policy.py); the schema refuses wrong types,
unknown keys and bad enums; the CRD and RBAC copies and the README's values table are current;
the default render is, object by object, what `kubectl apply -k manifests/` installs; the
namespace-scoped mode splits the same rules into Roles and a cluster-scoped rest; and the tenant
roles, aggregated as the API server does, give planners what they need and no more.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.support.chart import (
    CHART,
    DIGEST,
    NAMESPACE,
    RELEASE,
    REPO,
    VALUE_SETS,
    Obj,
    chart,
    key,
    only,
    render,
    render_files,
    sync_script,
)
from tests.support.manifests import validate_manifests
from tests.support.rbac import (
    CLUSTER_SCOPED,
    allowed,
    cluster_role_rules,
    cluster_scoped_rules,
    namespaced_rules,
)
from vulcan_operator import cli
from vulcan_operator import main as operator_main
from vulcan_operator.config import Settings
from vulcan_operator.sharding import Shard

MANIFESTS = REPO / "manifests"
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
KEEP = "helm.sh/resource-policy"
CLUSTER_KINDS = {
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
}


def container(objs: list[Obj]) -> Obj:
    (found,) = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def env(objs: list[Obj]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}


def kustomize(folder: Path) -> list[Obj]:
    """`kubectl kustomize FOLDER`: the real kustomize (5.5, built into kubectl)."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def rules_of(obj: Obj) -> set[tuple[str, str, str]]:
    """(group, resource, verb) triples a Role or ClusterRole grants."""
    return {
        (g, r, v)
        for rule in obj["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


# --- Helm itself -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_is_clean(name: str) -> None:
    report = helm_python.lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE)
    assert report["errors"] == [], report
    # Severity 1 is information ("icon is recommended"); 2 warnings, 3 errors.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_the_chart_is_v2_and_ships_no_crds_folder() -> None:
    meta = chart().metadata
    assert (meta["apiVersion"], meta["name"]) == ("v2", "vulcan-operator")
    # Helm's crds/ folder is installed once and never upgraded: ours are templates.
    assert chart().crds == []
    assert not (CHART / "crds").exists()
    # The chart and the operator release together.
    project = (REPO / "pyproject.toml").read_text()
    assert f'version = "{meta["appVersion"]}"' in project


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_is_strictly_valid(name: str) -> None:
    objs = render(VALUE_SETS[name])
    keys = [key(o) for o in objs]
    assert len(keys) == len(set(keys)), "duplicate objects"
    validate_manifests(objs, crd_dir=CHART / "files" / "crds")
    for obj in objs:
        # Argo CD's tracking label is Argo CD's to set.
        assert "app.kubernetes.io/instance" not in obj["metadata"].get("labels", {}), key(obj)
        if obj["kind"] not in CLUSTER_KINDS:
            assert obj["metadata"]["namespace"], key(obj)


def test_notes_name_the_next_commands() -> None:
    notes = render_files()[f"{RELEASE}/templates/NOTES.txt"]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{RELEASE}" in notes
    assert "kubectl get vulcan -A" in notes
    scoped = render_files(VALUE_SETS["namespaced"])[f"{RELEASE}/templates/NOTES.txt"]
    assert "watching only: team-a, team-b" in scoped
    assert "kubectl -n team-a apply -f" in scoped


# --- values.schema.json ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": "2"}, "/replicaCount': got string, want integer"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        ({"logFormat": "xml"}, "/logFormat': value must be one of 'json', 'plain', 'full'"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"image": {"tags": "1"}}, "additional properties 'tags' not allowed"),
        ({"watchNamespaces": "team-a"}, "/watchNamespaces': got string, want array"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
        ({"rbac": {"create": "yes"}}, "/rbac/create': got string, want boolean"),
        ({"monitoring": {"serviceMonitor": {"enabled": True}}}, "/monitoring/serviceMonitor"),
        ({"imagePullSecrets": ["regcred"]}, "/imagePullSecrets/0"),
        ({"nodeSelector": {"zone": 1}}, "/nodeSelector/zone"),
        ({"config": {"resyncSeconds": 0}}, "/config/resyncSeconds"),
        ({"config": {"jobImagePullSecrets": ["Reg_Cred"]}}, "/config/jobImagePullSecrets/0"),
        ({"config": {"allowedImages": ["a,b"]}}, "/config/allowedImages/0"),
        ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ],
)
def test_the_schema_refuses(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=message.replace("[", r"\[")):
        chart().validate_schema(values)
    # Rendering refuses them too (helm install / template run the same check).
    with pytest.raises(helm_python.HelmError):
        render(values)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_schema_accepts_every_value_set(name: str) -> None:
    chart().validate_schema(VALUE_SETS[name])


def test_every_value_in_values_yaml_is_in_the_schema_with_a_description() -> None:
    schema = chart().schema
    assert schema is not None
    assert schema["additionalProperties"] is False

    def walk(values: dict[str, Any], node: dict[str, Any], path: str) -> None:
        for name, value in values.items():
            sub = node.get("properties", {}).get(name)
            assert sub is not None, f"{path}{name} is not in values.schema.json"
            assert sub.get("description"), f"{path}{name}: no description"
            if isinstance(value, dict) and "properties" in sub:
                walk(value, sub, f"{path}{name}.")

    walk(chart().values, schema, "")
    # The names docs/design.md fixes for the chart, all present.
    design = {
        "image.repository", "image.tag", "image.digest", "image.pullPolicy", "imagePullSecrets",
        "replicaCount", "resources", "nodeSelector", "tolerations", "affinity",
        "topologySpreadConstraints", "priorityClassName", "podAnnotations", "podLabels",
        "serviceAccount.create", "serviceAccount.name", "serviceAccount.annotations",
        "rbac.create", "rbac.aggregateClusterRoles", "crds.create", "watchNamespaces",
        "monitoring.serviceMonitor", "monitoring.prometheusRule", "monitoring.grafanaDashboard",
        "networkPolicy.enabled", "podDisruptionBudget.enabled", "webhook.enabled", "logFormat",
    }  # fmt: skip
    for path in design:
        node: Any = chart().values
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"values.yaml lacks {path}"
            node = node[part]


# --- one source of truth -----------------------------------------------------------------------
def test_the_copies_and_the_readme_are_current(update_golden: bool) -> None:
    """files/crds/ (crds/ and Kopf's peering CRDs), files/rbac.yaml (manifests/rbac.yaml) and
    README.md's values table (values.schema.json): scripts/sync_chart.py refreshes them."""
    sync = sync_script()
    if update_golden:
        sync.sync()
    assert sync.stale() == [], "run: python scripts/sync_chart.py"
    assert "| `watchNamespaces` | array | `[]` |" in (CHART / "README.md").read_text()


def test_the_staleness_check_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative control: a hand-edited copy and a stale values table are both found."""
    sync = sync_script()
    fake_chart = tmp_path / "chart"
    shutil.copytree(CHART, fake_chart)
    readme = fake_chart / "README.md"
    monkeypatch.setattr(sync, "CHART", fake_chart)
    monkeypatch.setattr(sync, "README", readme)
    sync.sync()
    assert sync.stale() == []
    (fake_chart / "files" / "rbac.yaml").write_text("# edited by hand\n")
    readme.write_text(readme.read_text().replace("| `logFormat` |", "| `logformat` |"))
    (fake_chart / "files" / "crds" / "extra.yaml").write_text("{}\n")
    assert [Path(p).name for p in sync.stale()] == [
        "rbac.yaml",
        "extra.yaml (no source)",
        "README.md",
    ]


def test_crds_are_the_repositorys_kept_on_uninstall_and_optional() -> None:
    crds = [o for o in render() if o["kind"] == "CustomResourceDefinition"]
    sources = [
        d
        for path in [
            *sorted((REPO / "crds").glob("*.yaml")),
            MANIFESTS / "crds/kopf.dev-peerings.yaml",
        ]
        for d in yaml.safe_load_all(path.read_text())
        if d
    ]
    assert len(crds) == len(sources) == 6
    for crd in crds:
        assert crd["metadata"]["annotations"] == {KEEP: "keep"}
    assert sorted(map(strip_helm, crds), key=key) == sorted(sources, key=key)
    assert not [o for o in render({"crds": {"create": False}}) if o["kind"].endswith("Definition")]


def test_crds_are_rendered_on_upgrade_too() -> None:
    """Templates, not crds/: `helm upgrade` renders (and so applies) them like an install."""
    upgrade = chart().render({}, name=RELEASE, namespace=NAMESPACE, is_upgrade=True, revision=2)
    crds = [
        d
        for d in yaml.safe_load_all(upgrade[f"{RELEASE}/templates/crds.yaml"])
        if d and d["kind"] == "CustomResourceDefinition"
    ]
    assert len(crds) == 6


def strip_helm(obj: Obj) -> Obj:
    """The object without what only Helm adds: its two labels, the CRDs' keep annotation."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for label in HELM_LABELS:
        meta.get("labels", {}).pop(label, None)
    meta.get("annotations", {}).pop(KEEP, None)
    if meta.get("annotations") == {}:
        del meta["annotations"]
    return obj


def compare(chart_objs: list[Obj], kustomized: list[Obj]) -> None:
    ours = {key(o): strip_helm(o) for o in chart_objs}
    theirs = {key(o): o for o in kustomized}
    assert sorted(ours) == sorted(theirs), "the chart and kustomize make different objects"
    differ = sorted(k for k in ours if ours[k] != theirs[k])
    for k in differ:
        assert ours[k] == theirs[k], f"{differ} differ; the chart's {k} (left) and kustomize's"


def test_default_render_is_what_kustomize_installs() -> None:
    """`helm install vulcan-operator ... -n vulcan-system` and `kubectl apply -k manifests/`
    make the same objects, but for the Namespace (Helm's --create-namespace)."""
    installed = [o for o in kustomize(MANIFESTS) if o["kind"] != "Namespace"]
    compare(render(), installed)


def test_monitoring_render_is_what_the_monitoring_overlay_adds() -> None:
    values = {"monitoring": {"serviceMonitor": True, "prometheusRule": True}}
    overlay = kustomize(MANIFESTS / "monitoring")
    monitoring = [o for o in render(values) if o["apiVersion"].startswith("monitoring.coreos.com")]
    compare(monitoring, overlay)


@pytest.mark.parametrize("cert_manager", [False, True])
def test_webhook_render_is_what_the_webhook_components_add(
    cert_manager: bool, tmp_path: Path
) -> None:
    """webhook.enabled (and webhook.certManager.enabled) render what manifests/ with the
    components manifests/webhook/component (and manifests/webhook/cert-manager) installs."""
    (tmp_path / "manifests").symlink_to(MANIFESTS)  # kustomize takes no absolute roots
    components = ["manifests/webhook/component"]
    components += ["manifests/webhook/cert-manager"] if cert_manager else []
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["manifests"], "components": components})
    )
    installed = [o for o in kustomize(tmp_path) if o["kind"] != "Namespace"]
    values = {"webhook": {"enabled": True, "certManager": {"enabled": cert_manager}}}
    compare(render(values), installed)


def test_admission_policy_render_is_the_admission_policy_kustomization() -> None:
    values = {"admissionPolicy": {"enabled": True}}
    policy = [o for o in render(values) if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert len(policy) == 2
    compare(policy, kustomize(MANIFESTS / "admission-policy"))
    # Another release's ServiceAccount is the one the policy holds to the rules.
    other = render(values, name="ops", namespace="platform")
    (vap,) = [o for o in other if o["kind"] == "ValidatingAdmissionPolicy"]
    (condition,) = vap["spec"]["matchConditions"]
    assert "'system:serviceaccount:platform:ops-vulcan-operator'" in condition["expression"]


def test_a_namespace_scoped_webhook_is_sent_only_its_namespaces() -> None:
    values = {"webhook": {"enabled": True}, "watchNamespaces": ["team-a", "team-b"]}
    (config,) = [o for o in render(values) if o["kind"] == "ValidatingWebhookConfiguration"]
    assert len(config["webhooks"]) == 4
    for hook in config["webhooks"]:
        assert hook["namespaceSelector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
        ]


# --- the Deployment ----------------------------------------------------------------------------
def run_args(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `vulcan-operator <args>` would run the operator with."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(operator_main, "run", lambda **kw: seen.update(kw), raising=False)
    assert cli.main(args) == 0
    return seen


def test_the_operator_runs_cluster_wide_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_args(container(render())["args"], monkeypatch)
    assert seen["namespaces"] == []
    assert (seen["peering"], seen["standalone"], seen["log_format"]) == (RELEASE, False, "json")


def test_watch_namespaces_become_n_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = render(VALUE_SETS["namespaced"])
    args = container(objs)["args"]
    assert args[-4:] == ["-n", "team-a", "-n", "team-b"]
    assert run_args(args, monkeypatch)["namespaces"] == ["team-a", "team-b"]


def test_shards_are_deployments_of_their_own_each_with_its_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objs = render(VALUE_SETS["sharded"])
    deployments = [o for o in objs if o["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == [
        f"{RELEASE}-shard-{k}" for k in range(3)
    ]
    selectors = []
    for k, deployment in enumerate(deployments):
        spec = deployment["spec"]
        selector = spec["selector"]["matchLabels"]
        assert selector["vulcan-engine.com/shard"] == str(k)
        assert selector.items() <= spec["template"]["metadata"]["labels"].items()
        selectors.append(selector)
        (box,) = spec["template"]["spec"]["containers"]
        seen = run_args(box["args"], monkeypatch)
        assert (seen["shard"], seen["peering"]) == (Shard(k, 3), RELEASE)
    # No pod of one shard is another's (a Deployment adopts what its selector matches).
    assert len({tuple(sorted(s.items())) for s in selectors}) == 3
    # The PDB, the webhook's Service and the metrics Service select the pods of every shard.
    pdb = only(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert all(pdb.items() <= s.items() for s in selectors)
    # One shard is the plain Deployment of before: no shard label, no --shard.
    plain = only(render({"sharding": {"shards": 1}}), "Deployment")
    assert plain == only(render(), "Deployment")
    assert "vulcan-engine.com/shard" not in plain["spec"]["selector"]["matchLabels"]


def test_settings_are_the_operators_defaults() -> None:
    """The chart's VULCAN_* environment, read by the operator, is its own default settings
    (with the chart's image), and each config value reaches it."""
    objs = render()
    image = container(objs)["image"]
    assert image == f"ghcr.io/vulcan-engine/vulcan-operator:{chart().metadata['appVersion']}"
    assert Settings.from_env(env(objs)) == Settings(operator_image=image)
    custom = {
        "resyncSeconds": 120,
        "pollSeconds": 2.5,
        "problemPollSeconds": 30,
        "solverImage": "registry.example.com/solver:1",
        "postgresImage": "registry.example.com/postgres:16",
        "allowedImages": ["registry.example.com/", "ghcr.io/acme/"],
        "jobImagePullSecrets": ["regcred", "mirror-creds"],
    }
    settings = Settings.from_env(env(render({"config": custom})))
    assert settings.allowed_images == ("registry.example.com/", "ghcr.io/acme/")
    assert settings.image_pull_secrets == ("regcred", "mirror-creds")
    assert (
        settings.resync_seconds,
        settings.poll_seconds,
        settings.problem_poll_seconds,
        settings.operator_image,
        settings.postgres_image,
    ) == (120, 2.5, 30, "registry.example.com/solver:1", "registry.example.com/postgres:16")


def test_a_pinned_digest_wins_over_the_tag_for_the_operator_and_its_solver_pods() -> None:
    objs = render(VALUE_SETS["digest"])
    wanted = f"ghcr.io/vulcan-engine/vulcan-operator@{DIGEST}"
    assert container(objs)["image"] == wanted
    assert container(objs)["imagePullPolicy"] == "Always"
    assert Settings.from_env(env(objs)).operator_image == wanted
    assert container(render({"image": {"tag": "9.9.9"}}))["image"].endswith(":9.9.9")


def test_scheduling_constraints_reach_the_pod() -> None:
    values = VALUE_SETS["scheduling"]
    objs = render(values)
    deployment = only(objs, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    assert deployment["spec"]["replicas"] == 3
    for name in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
        assert spec[name] == values[name], name
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"]["example.com/team"] == "platform"
    assert pod["metadata"]["labels"]["example.com/cost-centre"] == "42"
    assert container(objs)["resources"] == values["resources"]
    assert "--log-format=plain" in container(objs)["args"]
    sa = only(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == values["serviceAccount"]["annotations"]
    # Without an affinity of one's own, the replicas prefer different nodes.
    default = only(render(), "Deployment")["spec"]["template"]["spec"]["affinity"]
    assert "podAntiAffinity" in default


def test_pod_labels_never_replace_the_selector() -> None:
    objs = render({"podLabels": {"app.kubernetes.io/component": "x", "team": "a"}})
    deployment = only(objs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels["team"] == "a"


def test_pods_are_restricted_by_default() -> None:
    spec = only(render(), "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = spec["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}


def test_switches_turn_their_objects_off() -> None:
    kinds = {o["kind"] for o in render()}
    assert {"NetworkPolicy", "PodDisruptionBudget", "ServiceAccount", "ClusterRole"} <= kinds
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds
    off = render(
        {
            "networkPolicy": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "serviceAccount": {"create": False, "name": "existing"},
            "rbac": {"create": False},
            "admissionPolicy": {"enabled": False},
        }
    )
    assert {o["kind"] for o in off} == {"CustomResourceDefinition", "Deployment", "Service"}
    assert only(off, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    with pytest.raises(helm_python.HelmRenderError, match=r"serviceAccount\.name"):
        render({"serviceAccount": {"create": False}})


def test_release_names_name_the_objects_and_the_peering() -> None:
    objs = render(name="ops", namespace="platform")
    deployment = only(objs, "Deployment")
    assert deployment["metadata"]["name"] == "ops-vulcan-operator"
    assert "--peering=ops-vulcan-operator" in container(objs)["args"]
    binding = only(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops-vulcan-operator", "namespace": "platform"}
    ]


# --- RBAC, both modes --------------------------------------------------------------------------
def test_cluster_wide_rbac_is_the_authoritative_rule_list() -> None:
    role = only(render(), "ClusterRole")
    assert role["rules"] == cluster_role_rules()
    assert not [o for o in render() if o["kind"] in ("Role", "RoleBinding")]


def test_namespace_scoped_rbac_splits_the_same_rules() -> None:
    """The same derivation as tests/support/rbac.py's (which the integration fixture checks
    one-namespace tests against): everything namespaced in a Role per watched namespace, the
    cluster peering as a namespaced KopfPeering, the ClusterRole only cluster-scoped rules."""
    objs = render(VALUE_SETS["namespaced"])
    want_cluster = rules_of({"rules": cluster_scoped_rules()})
    want_namespaced = rules_of({"rules": namespaced_rules()})
    cluster_role = only(objs, "ClusterRole")
    assert rules_of(cluster_role) == want_cluster
    # Nothing namespaced cluster-wide: no Secret, no ConfigMap, nothing of ours.
    assert {r for _, r, _ in rules_of(cluster_role)} <= CLUSTER_SCOPED
    assert ("", "secrets", "get") in want_namespaced
    sa = only(objs, "ServiceAccount")["metadata"]
    for namespace in ("team-a", "team-b"):
        role = only(objs, "Role", namespace)
        assert rules_of(role) == want_namespaced
        binding = only(objs, "RoleBinding", namespace)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}
        ]
    assert {o["metadata"]["namespace"] for o in objs if o["kind"] == "Role"} == {"team-a", "team-b"}


def test_namespace_scoped_rbac_agrees_with_the_namespaced_kustomization() -> None:
    """manifests/namespaced/ (kubectl kustomize) grants, in its watched namespace, what the
    chart's Roles grant, and cluster-wide what the chart's ClusterRole grants."""
    folder = MANIFESTS / "namespaced"
    if not (folder / "kustomization.yaml").is_file():
        pytest.skip("no manifests/namespaced/ yet")
    built = kustomize(folder)
    namespaces = [o["metadata"]["namespace"] for o in built if o["kind"] == "Role"]
    objs = render({"watchNamespaces": namespaces})
    for namespace in namespaces:
        assert rules_of(only(built, "Role", namespace)) == rules_of(only(objs, "Role", namespace))
    theirs = set().union(*(rules_of(o) for o in built if o["kind"] == "ClusterRole"))
    assert theirs == rules_of(only(objs, "ClusterRole"))


# --- tenant roles ------------------------------------------------------------------------------
# The built-in roles' aggregation, as kube-apiserver bootstraps them: admin selects
# aggregate-to-admin, edit aggregate-to-edit, view aggregate-to-view; `edit` carries
# aggregate-to-admin and `view` aggregate-to-edit, so each level includes the one below.
BUILTIN: dict[str, dict[str, Any]] = {
    "admin": {"selects": "aggregate-to-admin", "labels": {}},
    "edit": {"selects": "aggregate-to-edit", "labels": {"aggregate-to-admin"}},
    "view": {"selects": "aggregate-to-view", "labels": {"aggregate-to-edit"}},
}
PREFIX = "rbac.authorization.k8s.io/"


def aggregate(cluster_roles: list[Obj]) -> dict[str, set[tuple[str, str, str]]]:
    """What view, edit and admin grant on our group once the controller has aggregated the
    chart's ClusterRoles into them (to a fixed point, as it does)."""
    labels = {
        o["metadata"]["name"]: {
            k.removeprefix(PREFIX)
            for k, v in o["metadata"].get("labels", {}).items()
            if k.startswith(PREFIX) and v == "true"
        }
        for o in cluster_roles
    }
    own = {o["metadata"]["name"]: rules_of(o) for o in cluster_roles}
    for name, role in BUILTIN.items():
        labels[name], own[name] = role["labels"], set()
    granted = {name: set(own[name]) for name in BUILTIN}
    changed = True
    while changed:
        changed = False
        for name, role in BUILTIN.items():
            for other, other_labels in labels.items():
                if role["selects"] in other_labels:
                    extra = (granted.get(other) or own[other]) - granted[name]
                    if extra:
                        granted[name] |= extra
                        changed = True
    return granted


KINDS = ["vulcanengines", "schedulingproblems", "vulcanbackups", "vulcanrestores"]
WRITES = ["create", "update", "patch", "delete", "deletecollection"]


def may(grants: set[tuple[str, str, str]], verb: str, resource: str) -> bool:
    return allowed((verb, "vulcan-engine.com", resource, "", "plant-a"), _as_rules(grants))


def _as_rules(grants: set[tuple[str, str, str]]) -> list[dict[str, list[str]]]:
    return [{"apiGroups": [g], "resources": [r], "verbs": [v]} for g, r, v in grants]


def test_tenant_roles_aggregate_into_view_edit_and_admin() -> None:
    objs = render(VALUE_SETS["aggregated-roles"])
    tenant = [o for o in objs if o["kind"] == "ClusterRole" and o["metadata"]["name"] != RELEASE]
    names = ["vulcan-admin", "vulcan-edit", "vulcan-view"]
    assert sorted(o["metadata"]["name"] for o in tenant) == names
    roles = aggregate(tenant)
    view, edit, admin = roles["view"], roles["edit"], roles["admin"]
    for kind in KINDS:
        for verb in ("get", "list", "watch"):
            assert may(view, verb, kind) and may(edit, verb, kind) and may(admin, verb, kind)
        for verb in WRITES:
            assert not may(view, verb, kind), (verb, kind)
    # A planner with `edit`: problems and backups, all of it.
    for kind in ("schedulingproblems", "vulcanbackups"):
        for verb in WRITES:
            assert may(edit, verb, kind), (verb, kind)
    # ...but neither engines (Secrets read with the operator's rights, image, migrations) nor
    # restores (they overwrite the database): the namespace's admin decides those.
    for kind in ("vulcanengines", "vulcanrestores"):
        for verb in WRITES:
            assert not may(edit, verb, kind), (verb, kind)
            assert may(admin, verb, kind), (verb, kind)
    # Status is the operator's record: nobody writes it through these roles.
    for grants in (view, edit, admin):
        for kind in KINDS:
            for verb in WRITES:
                assert not may(grants, verb, f"{kind}/status"), (verb, kind)
    # Only our group, and no escalation verbs.
    for obj in tenant:
        assert {g for g, _, _ in rules_of(obj)} == {"vulcan-engine.com"}
        assert not {v for _, _, v in rules_of(obj)} & {"bind", "escalate", "impersonate", "*"}


def test_tenant_roles_are_off_by_default() -> None:
    names = [o["metadata"]["name"] for o in render() if o["kind"] == "ClusterRole"]
    assert names == [RELEASE]


def test_the_aggregation_model_follows_labels_not_names() -> None:
    """The negative control: a role without an aggregation label adds nothing."""
    role = {
        "metadata": {"name": "x", "labels": {}},
        "rules": [{"apiGroups": ["vulcan-engine.com"], "resources": KINDS, "verbs": ["*"]}],
    }
    assert aggregate([role])["admin"] == set()
    role["metadata"]["labels"] = {PREFIX + "aggregate-to-view": "true"}
    assert ("vulcan-engine.com", "vulcanengines", "*") in aggregate([role])["admin"]


def test_the_readme_states_the_tenant_decision() -> None:
    text = (CHART / "README.md").read_text()
    for phrase in ("VulcanEngine", "VulcanRestore", "`edit`", "`admin`", "overwrites its database"):
        assert phrase in text
