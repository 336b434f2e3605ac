"""manifests/namespaced/: the namespaced install, built with real kubectl (kustomize 5.5) and
validated strictly. Its rules are those derived from manifests/rbac.yaml (the authoritative
list), its example watches exactly the namespaces it grants, and apart from RBAC and the
operator's `--namespace` arguments it installs what `kubectl apply -k manifests/` installs.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import validate_manifests
from tests.support.rbac import (
    CLUSTER_SCOPED,
    cluster_role_rules,
    cluster_scoped_rules,
    grants,
    namespaced_rules,
)

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
Obj = dict[str, Any]
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
SERVICE_ACCOUNT = {
    "kind": "ServiceAccount",
    "name": "vulcan-operator",
    "namespace": "vulcan-system",
}

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def build(folder: Path) -> list[Obj]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def namespaced() -> list[Obj]:
    return build(MANIFESTS / "namespaced")


@pytest.fixture(scope="module")
def clusterwide() -> list[Obj]:
    return build(MANIFESTS)


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def args(objs: list[Obj]) -> list[str]:
    (deployment,) = of_kind(objs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


def test_it_builds_and_every_object_is_valid(namespaced: list[Obj]) -> None:
    validate_manifests(namespaced, crd_dir=MANIFESTS / "crds")


def as_yaml(rules: list[Any]) -> str:
    return yaml.safe_dump(rules, default_flow_style=None, sort_keys=False, width=100)


def test_the_roles_hold_the_derived_rules(namespaced: list[Obj]) -> None:
    roles = of_kind(namespaced, "Role")
    assert roles
    for role in roles:
        assert role["rules"] == namespaced_rules(), (
            "manifests/namespaced/role/role.yaml differs from the rules derived from "
            f"manifests/rbac.yaml; its rules should be:\n{as_yaml(namespaced_rules())}"
        )
    (cluster_role,) = of_kind(namespaced, "ClusterRole")
    assert cluster_role["rules"] == cluster_scoped_rules(), (
        "manifests/namespaced/cluster-role.yaml differs from the rules derived from "
        f"manifests/rbac.yaml; its rules should be:\n{as_yaml(cluster_scoped_rules())}"
    )


def test_nothing_namespaced_is_granted_cluster_wide(namespaced: list[Obj]) -> None:
    (cluster_role,) = of_kind(namespaced, "ClusterRole")
    assert {r.split("/")[0] for _, r, _ in grants(cluster_role["rules"])} <= CLUSTER_SCOPED
    assert not [r for _, r, _ in grants(namespaced_rules()) if r.split("/")[0] in CLUSTER_SCOPED]
    # Secrets included, in each watched namespace; the peering there too.
    assert ("", "secrets", "get") in grants(namespaced_rules())
    assert ("kopf.dev", "kopfpeerings", "patch") in grants(namespaced_rules())
    # Every cluster-wide grant is in one of the halves, or is one a namespaced operator does
    # not need (the cluster peering and the CRD watch).
    halves = grants(namespaced_rules()) | grants(cluster_scoped_rules())
    left_out = {(g, r, v) for g, r, v in grants(cluster_role_rules())} - halves
    assert {r for _, r, _ in left_out} == {"clusterkopfpeerings", "customresourcedefinitions"}


def test_the_example_watches_exactly_the_namespaces_it_grants(namespaced: list[Obj]) -> None:
    granted = sorted(o["metadata"]["namespace"] for o in of_kind(namespaced, "Role"))
    bound = sorted(o["metadata"]["namespace"] for o in of_kind(namespaced, "RoleBinding"))
    watched = sorted(
        a.removeprefix("--namespace=")
        for a in args(namespaced)
        if "=" in a and a.startswith("--namespace=")
    )
    assert granted == bound == watched == ["default"]
    for binding in of_kind(namespaced, "RoleBinding") + of_kind(namespaced, "ClusterRoleBinding"):
        assert binding["subjects"] == [SERVICE_ACCOUNT]
        assert binding["roleRef"]["name"] in {
            o["metadata"]["name"] for o in namespaced if o["kind"] == binding["roleRef"]["kind"]
        }


def test_apart_from_rbac_it_installs_what_the_cluster_wide_install_does(
    namespaced: list[Obj], clusterwide: list[Obj]
) -> None:
    def key(o: Obj) -> tuple[str, str, str]:
        return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

    def rest(objs: list[Obj]) -> dict[tuple[str, str, str], Obj]:
        return {key(o): o for o in objs if o["kind"] not in RBAC_KINDS}

    ours, theirs = rest(namespaced), rest(clusterwide)
    policy = {k for k in ours if k[0].startswith("ValidatingAdmissionPolicy")}
    assert len(policy) == 2, "the admission policy is part of the namespaced install"
    assert sorted(set(ours) - policy) == sorted(set(theirs) - policy)
    assert args(namespaced) == [*args(clusterwide), "--namespace=default"]
    for k, obj in ours.items():
        if k in theirs:
            mine, other = copy.deepcopy(obj), copy.deepcopy(theirs[k])
            if k[0] == "Deployment":
                for deployment in (mine, other):
                    deployment["spec"]["template"]["spec"]["containers"][0].pop("args")
            assert mine == other, k
    assert not [
        o
        for o in namespaced
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "vulcan-operator"
    ]
