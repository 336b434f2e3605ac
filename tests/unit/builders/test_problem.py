"""builders.problem: the solver Job of a SchedulingProblem and what comes with it.

The golden file golden/problem-ft06.yaml pins the whole output for the ft06 example (fixed uid);
`pytest tests/unit/builders/test_problem.py --update-golden` rewrites it. Every
variant's output passes kubernetes-validate in strict mode.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import validate_manifests
from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders.problem import (
    GRACE_SECONDS,
    KUEUE_QUEUE_LABEL,
    PROBLEM_MOUNT,
    ProblemInputs,
    build,
    build_job,
    cap_issues,
    resolve_settings,
)
from vulcan_operator.cli import main as cli
from vulcan_operator.cli.preview import RenderError, render
from vulcan_operator.config import Settings

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent / "golden" / "problem-ft06.yaml"
UID = "3b9f1c2a-7d4e-4f5a-8b6c-1d2e3f4a5b6c"
SETTINGS = Settings(operator_image="ghcr.io/vulcan-engine/vulcan-operator:test")


def ft06() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ft06.yaml").read_text())
    doc["metadata"].update(namespace="plant-a", uid=UID, generation=1)
    return doc


def inputs(
    doc: dict[str, Any] | None = None, engine: dict[str, Any] | None = None, generation: int = 1
) -> ProblemInputs:
    doc = doc or ft06()
    return ProblemInputs(
        name=doc["metadata"]["name"],
        namespace="plant-a",
        uid=UID,
        generation=generation,
        spec=SchedulingProblem.model_validate(doc).spec,
        engine=VulcanEngineSpec.model_validate({"version": "2.0.0", **(engine or {})}),
        settings=SETTINGS,
    )


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objs}


def container(job: dict[str, Any]) -> dict[str, Any]:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def arg(job: dict[str, Any], flag: str) -> str:
    args = container(job)["args"]
    return str(args[args.index(flag) + 1])


def test_golden_ft06(update_golden: bool) -> None:
    text = yaml.safe_dump_all(build(inputs()), sort_keys=False, width=100)
    if update_golden:
        GOLDEN.write_text(text)
        return
    assert GOLDEN.is_file(), f"{GOLDEN} missing: run pytest {__file__} --update-golden"
    expected = GOLDEN.read_text()
    assert text == expected, "".join(
        difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "golden", "now")
    )


VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "inline": ({}, {}),
    "overrides": ({"solver": {"maxTimeSeconds": 12.5, "numWorkers": 8, "seed": 3}}, {}),
    "kueue": ({}, {"solver": {"queueName": "team-a"}}),
    "database-ref": ({}, {"database": {"urlSecretRef": {"name": "pg", "key": "url"}}}),
    "problem-ref": (
        {"problemRef": {"configMapName": "big-problem", "key": "problem.json"}},
        {},
    ),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_is_valid_kubernetes(variant: str) -> None:
    spec, engine = VARIANTS[variant]
    doc = ft06()
    if "problemRef" in spec:
        doc["spec"] = {"engineRef": {"name": "prod"}}
    doc["spec"].update(spec)
    objs = build(inputs(doc, engine))
    validate_manifests(objs)
    assert [o["kind"] for o in objs] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Job",
    ]
    for obj in objs:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("SchedulingProblem", "ft06", UID)
        assert obj["metadata"]["namespace"] == "plant-a"
        labels = obj["metadata"]["labels"]
        assert labels[names.LABEL_COMPONENT] == "solver"
        assert labels[names.LABEL_PROBLEM] == "ft06" and labels[names.LABEL_ENGINE] == "prod"
        assert names.ANNOTATION_SPEC_HASH in obj["metadata"]["annotations"]


def test_the_job_runs_the_solver_pod_with_exact_resources_and_no_retries() -> None:
    job = build_job(inputs(engine={"solver": {"numWorkers": 3, "memoryLimitMB": 3000}}))
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    assert "suspend" not in spec
    # ft06 overrides maxTimeSeconds: 10 and numWorkers: 2 (examples/ft06.yaml).
    assert spec["activeDeadlineSeconds"] == 10 + GRACE_SECONDS
    c = container(job)
    assert c["image"] == SETTINGS.operator_image
    assert c["command"] == ["python", "-m", "vulcan_operator.solverpod"]
    assert c["resources"] == {
        "requests": {"cpu": "2", "memory": "3000Mi"},
        "limits": {"cpu": "2", "memory": "3000Mi"},
    }
    assert arg(job, "--memory-limit") == "3000" and arg(job, "--workers") == "2"
    assert arg(job, "--time-limit") == "10" and arg(job, "--generation") == "1"
    assert arg(job, "--problem") == "ft06" and arg(job, "--namespace") == "plant-a"
    assert arg(job, "--schedule-configmap") == "ft06-schedule"
    assert arg(job, "--job") == job["metadata"]["name"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e for e in c["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "prod-database",
        "key": "database-url",
        "optional": True,
    }


def test_the_pod_is_restricted_and_uses_its_own_account() -> None:
    job = build_job(inputs())
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ft06-solver"
    assert pod["automountServiceAccountToken"] is True
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(job)["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"] for m in container(job)["volumeMounts"]}
    assert mounts == {"/tmp"}  # the only writable path


def test_the_role_allows_only_this_problem_and_its_schedule_configmap() -> None:
    objs = by_kind(build(inputs()))
    rules = objs["Role"]["rules"]
    assert {
        (tuple(r["resources"]), tuple(r["resourceNames"]), tuple(r["verbs"])) for r in rules
    } == {
        (("schedulingproblems",), ("ft06",), ("get",)),
        (("schedulingproblems/status",), ("ft06",), ("patch",)),
        (("configmaps",), ("ft06-schedule",), ("patch",)),
    }
    binding = objs["RoleBinding"]
    assert binding["roleRef"]["name"] == "ft06-solver"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ft06-solver", "namespace": "plant-a"}
    ]
    assert objs["ServiceAccount"]["automountServiceAccountToken"] is False
    assert objs["ConfigMap"]["data"] == {}


def test_settings_come_from_the_problem_then_the_engine_then_the_defaults() -> None:
    doc = ft06()
    doc["spec"]["solver"] = {"numWorkers": 6}
    problem = SchedulingProblem.model_validate(doc).spec
    engine = VulcanEngineSpec.model_validate(
        {"version": "1", "solver": {"maxTimeSeconds": 45, "numWorkers": 2, "useLNS": False}}
    )
    settings = resolve_settings(problem, engine)
    assert settings.numWorkers == 6  # the problem's override
    assert settings.maxTimeSeconds == 45 and settings.useLNS is False  # the engine's
    assert settings.memoryLimitMB == 8192 and settings.seed == 0  # the defaults
    job = build_job(inputs(doc, {"solver": {"useLNS": False}}))
    assert "--no-lns" in container(job)["args"]


def test_a_kueue_queue_makes_a_suspended_labelled_job() -> None:
    job = build_job(inputs(engine={"solver": {"queueName": "team-a"}}))
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a"
    assert KUEUE_QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]


def test_a_problem_ref_mounts_the_configmap_key_read_only() -> None:
    doc = ft06()
    doc["spec"] = {
        "engineRef": {"name": "prod"},
        "problemRef": {"configMapName": "big-problem", "key": "week.json"},
    }
    job = build_job(inputs(doc))
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["problem"]["configMap"] == {
        "name": "big-problem",
        "items": [{"key": "week.json", "path": "problem.yaml"}],
    }
    mount = next(m for m in container(job)["volumeMounts"] if m["name"] == "problem")
    assert mount == {"name": "problem", "mountPath": PROBLEM_MOUNT, "readOnly": True}
    assert arg(job, "--problem-file") == f"{PROBLEM_MOUNT}/problem.yaml"


def test_job_names_are_per_generation_stable_and_valid() -> None:
    first, again, second = (build_job(inputs(generation=g))["metadata"]["name"] for g in (1, 1, 2))
    assert first == again and first != second
    assert first.startswith("ft06-solve-")
    doc = ft06()
    doc["metadata"]["name"] = "week-48." + "x" * 200
    long_name = build_job(inputs(doc))["metadata"]["name"]
    assert len(long_name) <= 63 and long_name.endswith(first.rsplit("-", 1)[1])


def test_render_prints_the_job_and_what_comes_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = tmp_path / "engine.yaml"
    engine.write_text(
        "apiVersion: vulcan-engine.com/v1alpha1\nkind: VulcanEngine\n"
        "metadata: {name: prod}\nspec: {version: '2.0.0'}\n"
    )
    assert cli(["render", str(ROOT / "examples" / "ft06.yaml"), "--engine", str(engine)]) == 0
    objs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [o["kind"] for o in objs] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Job",
    ]
    validate_manifests(objs)
    ref = ROOT / "tests" / "data" / "valid" / "problem-ref-configmap.yaml"
    assert cli(["render", str(ref), "--engine", str(engine)]) == 0
    assert capsys.readouterr().out.count("kind: Job") == 1


def test_render_needs_the_engine() -> None:
    doc = ft06()
    with pytest.raises(RenderError, match=r"needs its VulcanEngine 'prod'.*--engine"):
        render([doc])
    other: dict[str, Any] = {
        "apiVersion": "vulcan-engine.com/v1alpha1",
        "kind": "VulcanEngine",
        "metadata": {"name": "staging"},
        "spec": {"version": "1"},
    }
    with pytest.raises(RenderError, match="needs its VulcanEngine 'prod'"):
        render([doc], engines=[other], namespace="plant-a")


def test_the_operator_holds_every_permission_it_grants_to_solver_pods() -> None:
    """Kubernetes refuses a Role granting more than its creator holds (no `escalate`)."""
    docs = yaml.safe_load_all((ROOT / "manifests" / "rbac.yaml").read_text())
    cluster_role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    held = {
        (group, resource, verb)
        for rule in cluster_role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    role = by_kind(build(inputs()))["Role"]
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert (group, resource, verb) in held, (group, resource, verb)
    # A queued solver Job's Kueue Workload is listed by the Job's uid (reconcile/problem.py).
    assert ("kueue.x-k8s.io", "workloads", "list") in held


def test_a_problem_over_its_engines_caps_is_named_field_value_and_cap() -> None:
    doc = ft06()
    doc["spec"]["solver"] = {"numWorkers": 17, "memoryLimitMB": 40_000}
    problem = SchedulingProblem.model_validate(doc).spec
    engine = VulcanEngineSpec.model_validate({"version": "2.0.0"})
    assert cap_issues(problem, engine) == [
        "spec.solver.numWorkers: 17 is more than engine 'prod' allows (16, its "
        "spec.solver.maxWorkers)",
        "spec.solver.memoryLimitMB: 40000 is more than engine 'prod' allows (32768, its "
        "spec.solver.maxMemoryMB)",
    ]
    roomy = VulcanEngineSpec.model_validate(
        {"version": "2.0.0", "solver": {"maxWorkers": 17, "maxMemoryMB": 40_000}}
    )
    assert cap_issues(problem, roomy) == []
    # The engine's defaults are within its caps: a problem without overrides always fits.
    doc["spec"]["solver"] = {}
    assert cap_issues(SchedulingProblem.model_validate(doc).spec, engine) == []
