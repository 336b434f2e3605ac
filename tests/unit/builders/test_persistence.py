"""spec.persistence and the backup set in the rendered objects (issue 15, defect 3): the claims
the operator makes outlive the engine, the backend mounts them at the guide's paths, backup
pods only read them, and the Redis snapshot image obeys the operator's image allow-list."""

from __future__ import annotations

from typing import Any

import pytest

from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders import engine_children
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.keys import ensure_keys
from vulcan_operator.checks import image_problems


def _children(**spec: Any) -> list[dict[str, Any]]:
    body = {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": "prod", "namespace": "shop", "uid": "u-1"},
        "spec": {"version": "1.0", **spec},
    }
    probe = EngineInputs.from_resource(body)
    return engine_children(EngineInputs.from_resource(body, keys=ensure_keys(probe.spec, None)))


def _pod(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    spec = found["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
    return dict(template["spec"])


def pod_labels(children: list[dict[str, Any]]) -> dict[str, str]:
    (deployment,) = [c for c in children if c["kind"] == "Deployment"]
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_no_persistence_renders_no_claim_and_no_mount() -> None:
    children = _children()
    assert not [
        c
        for c in children
        if c["kind"] == "PersistentVolumeClaim" and "backups" not in c["metadata"]["name"]
    ]
    pod = _pod(children, "Deployment", "prod")
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_the_claims_outlive_the_engine_and_are_mounted_at_the_guides_paths() -> None:
    children = _children(
        persistence={
            "data": {
                "enabled": True,
                "size": "50Gi",
                "storageClassName": "fast",
                "accessMode": "ReadWriteMany",
            },
            "uploads": {"enabled": True, "existingClaim": "shared-uploads"},
        }
    )
    claims = {c["metadata"]["name"]: c for c in children if c["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {"prod-data", "prod-backups"}  # an existing claim is never made
    data = claims["prod-data"]
    assert "ownerReferences" not in data["metadata"]  # deleting the engine keeps the data
    assert data["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "50Gi"}},
    }
    pod = _pod(children, "Deployment", "prod")
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    claim_of = {
        v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]
    }
    assert claim_of[mounts["/app/data"]] == "prod-data"
    assert claim_of[mounts["/app/uploads"]] == "shared-uploads"
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True

    backup = _pod(children, "CronJob", "prod-backup")
    for volume in backup["volumes"]:
        if volume["name"].startswith("app-"):
            assert volume["persistentVolumeClaim"]["readOnly"] is True
    for container in backup["containers"]:
        for mount in container["volumeMounts"]:
            if mount["name"].startswith("app-"):
                assert mount["readOnly"] is True
    assert backup["securityContext"]["supplementalGroups"] == [pod["securityContext"]["runAsGroup"]]
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in backup["containers"])
    # A ReadWriteOnce claim is attached to one node: the backup pod prefers a backend's node.
    (preferred,) = backup["affinity"]["podAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels(children).items()
    assert "affinity" not in _pod(_children(), "CronJob", "prod-backup")


def test_read_write_once_pod_is_refused_for_the_backups_sake() -> None:
    with pytest.raises(ValueError, match="accessMode"):
        VulcanEngineSpec(version="1", persistence={"data": {"accessMode": "ReadWriteOncePod"}})


def test_a_redis_snapshot_needs_the_engines_redis() -> None:
    with pytest.raises(ValueError, match=r"spec\.redis\.urlSecretRef"):
        VulcanEngineSpec(version="1", backup={"redis": {"enabled": True}})


def test_the_redis_image_obeys_the_allow_list_only_when_it_runs() -> None:
    allowed = ("registry.corp", "vulcan-engine")
    off = VulcanEngineSpec(version="1")
    assert image_problems(off, allowed) == []  # the default redis image never runs
    on = VulcanEngineSpec(
        version="1",
        redis={"urlSecretRef": {"name": "r", "key": "url"}},
        backup={"redis": {"enabled": True}},
    )
    (problem,) = image_problems(on, allowed)
    assert problem.startswith("spec.backup.redis.image: image 'redis:7-alpine' is not allowed")
