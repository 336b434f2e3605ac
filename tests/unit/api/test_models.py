"""The pydantic API models: the guide's defaults (as literal numbers from docs/design.md, not the
models' own), the public field names, examples that survive a round trip, the same defaults in
the models and the CRDs, and SolverOverrides.over."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from tests.support.crds import (
    API_VERSION,
    EXAMPLES,
    apply_defaults,
    ids,
    our_documents,
    root_schema,
)
from vulcan_operator.api.backup import VulcanBackup, VulcanRestore
from vulcan_operator.api.engine import EngineSolver, VulcanEngine, VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem, SchedulingProblemSpec, SolverOverrides
from vulcan_operator.cli.validate import MODELS
from vulcan_operator.solver.problem import ProblemData, SolverSettings

# docs/design.md, "Defaults follow the guide where a field is left out", as literal values.
GUIDE_DEFAULTS: dict[str, Any] = {
    "image": "vulcan-engine",
    "replicas": 3,
    "environment": "production",
    "autoscaling.enabled": True,
    "autoscaling.minReplicas": 3,
    "autoscaling.maxReplicas": 10,
    "autoscaling.targetCPUUtilizationPercentage": 70,
    "autoscaling.targetMemoryUtilizationPercentage": 80,
    "database.poolSize": 20,
    "database.maxOverflow": 40,
    "database.poolTimeoutSeconds": 30,
    "database.poolRecycleSeconds": 3600,
    "redis.maxConnections": 50,
    "redis.cacheTTLSeconds": 300,
    "jwt.algorithm": "HS256",
    "jwt.accessTokenExpireMinutes": 30,
    "jwt.refreshTokenExpireDays": 7,
    "rateLimit.enabled": True,
    "rateLimit.requestsPerMinute": 60,
    "solver.maxTimeSeconds": 300,
    "solver.numWorkers": 4,
    "solver.memoryLimitMB": 8192,
    "solver.useLNS": True,
    "solver.maxConcurrentJobs": 4,
    "backup.enabled": True,
    "backup.schedule": "0 2 * * *",
    "backup.retentionDays": 30,
    "backup.storage.pvc.size": "20Gi",
    "maintenance.enabled": True,
    "maintenance.schedule": "0 3 * * 0",
    "upgrade.preUpgradeBackup": True,
    "upgrade.autoRollback": True,
    "upgrade.progressDeadlineSeconds": 600,
    "upgrade.migrationCommand": ["alembic", "upgrade", "head"],
    "monitoring.serviceMonitor": True,
    "monitoring.prometheusRule": True,
    "monitoring.grafanaDashboard": True,
    "networkPolicy.enabled": True,
    "ingress.enabled": False,
    "paused": False,
    "env": [],
}

MINIMAL_ENGINE = {
    "apiVersion": API_VERSION,
    "kind": "VulcanEngine",
    "metadata": {"name": "prod", "namespace": "vulcan"},
    "spec": {"version": "2.0.0"},
}


def get(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        value = value[part]
    return value


# -- defaults --------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "expected"), GUIDE_DEFAULTS.items(), ids=list(GUIDE_DEFAULTS))
def test_model_defaults_follow_the_guide(field: str, expected: Any) -> None:
    spec = VulcanEngineSpec(version="2.0.0").model_dump(mode="json")
    assert get(spec, field) == expected
    assert type(get(spec, field)) is type(expected) or isinstance(expected, int)


@pytest.mark.parametrize(("field", "expected"), GUIDE_DEFAULTS.items(), ids=list(GUIDE_DEFAULTS))
def test_crd_defaults_follow_the_guide(field: str, expected: Any) -> None:
    # What the API server stores for a spec that only says `version`.
    doc = apply_defaults(copy.deepcopy(MINIMAL_ENGINE), root_schema("VulcanEngine"))
    assert get(doc["spec"], field) == expected


def test_backup_storage_defaults_to_a_pvc_not_s3() -> None:
    storage = VulcanEngineSpec(version="1").backup.storage
    assert storage.s3 is None
    assert storage.pvc is not None
    assert (storage.pvc.claimName, storage.pvc.storageClassName) == ("", "")


def test_jwt_algorithm_none_is_never_allowed() -> None:
    for algorithm in ("none", "None", "NONE", "RS256", ""):
        with pytest.raises(ValidationError):
            VulcanEngineSpec.model_validate({"version": "1", "jwt": {"algorithm": algorithm}})


@pytest.mark.parametrize(
    "kind", ["VulcanEngine", "SchedulingProblem", "VulcanBackup", "VulcanRestore"]
)
def test_model_and_crd_default_the_same_way(kind: str) -> None:
    """A resource with only its required fields: the model's full dump equals what the CRD's
    defaults make of it, so the operator sees what `kubectl get -o yaml` shows."""
    minimal = {
        "VulcanEngine": MINIMAL_ENGINE,
        "SchedulingProblem": {
            "apiVersion": API_VERSION,
            "kind": "SchedulingProblem",
            "metadata": {"name": "p"},
            "spec": {"engineRef": {"name": "prod"}, "problemRef": {"configMapName": "cm"}},
        },
        "VulcanBackup": {
            "apiVersion": API_VERSION,
            "kind": "VulcanBackup",
            "metadata": {"name": "b"},
            "spec": {"engineRef": {"name": "prod"}},
        },
        "VulcanRestore": {
            "apiVersion": API_VERSION,
            "kind": "VulcanRestore",
            "metadata": {"name": "r"},
            "spec": {"engineRef": {"name": "prod"}, "backupRef": {"name": "b"}},
        },
    }[kind]
    from_model = MODELS[kind].model_validate(minimal).model_dump(mode="json", exclude_none=True)
    from_crd = apply_defaults(copy.deepcopy(minimal), root_schema(kind))
    assert from_model == from_crd


def test_defaults_are_not_shared_between_objects() -> None:
    one, two = VulcanEngineSpec(version="1"), VulcanEngineSpec(version="1")
    one.cors.origins.append("https://other.example.com")
    assert one.backup.storage.pvc is not None
    one.backup.storage.pvc.size = "1Gi"
    one.upgrade.migrationCommand.append("--sql")
    assert two.cors.origins == ["https://app.vulcan-engine.com"]
    assert two.backup.storage.pvc is not None and two.backup.storage.pvc.size == "20Gi"
    assert VulcanEngineSpec(version="1").upgrade.migrationCommand == ["alembic", "upgrade", "head"]


# -- public names (docs/design.md "Spec shape" and "The problem format") --------------------------
DESIGN_ENGINE = """
apiVersion: vulcan-engine.com/v1alpha1
kind: VulcanEngine
metadata: {name: prod, namespace: vulcan}
spec:
  version: "2.0.0"
  image: vulcan-engine
  environment: production
  replicas: 3
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 10,
                targetCPUUtilizationPercentage: 70, targetMemoryUtilizationPercentage: 80}
  resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "2", memory: 4Gi}}
  database:
    urlSecretRef: {name: vulcan-db, key: database-url}
    poolSize: 20
    maxOverflow: 40
    poolTimeoutSeconds: 30
    poolRecycleSeconds: 3600
  redis: {urlSecretRef: {name: vulcan-redis, key: redis-url}, maxConnections: 50,
          cacheTTLSeconds: 300}
  secrets: {}
  jwt: {algorithm: HS256, accessTokenExpireMinutes: 30, refreshTokenExpireDays: 7}
  cors: {origins: ["https://app.vulcan-engine.com"]}
  rateLimit: {enabled: true, requestsPerMinute: 60}
  solver: {maxTimeSeconds: 300, numWorkers: 4, memoryLimitMB: 8192, useLNS: true,
           maxConcurrentJobs: 4, queueName: ""}
  backup:
    enabled: true
    schedule: "0 2 * * *"
    retentionDays: 30
    storage:
      pvc: {size: 20Gi, storageClassName: ""}
  maintenance: {enabled: true, schedule: "0 3 * * 0"}
  upgrade: {preUpgradeBackup: true, autoRollback: true, progressDeadlineSeconds: 600,
            migrationCommand: ["alembic", "upgrade", "head"]}
  monitoring: {serviceMonitor: true, prometheusRule: true, grafanaDashboard: true}
  ingress: {enabled: false, className: nginx, host: api.vulcan-engine.com,
            tls: {secretName: vulcan-engine-tls, clusterIssuer: letsencrypt-prod}}
  networkPolicy: {enabled: true}
  env: []
  paused: false
"""
DESIGN_ALTERNATIVES = {  # the commented-out alternatives of the spec shape
    "s3": {"bucket": "vulcan-backups", "prefix": "database/", "endpoint": "",
           "credentialsSecretRef": {"name": "s3-creds"}},
    "secrets": {"secretKeyRef": {"name": "k", "key": "secret-key"},
                "jwtSecretKeyRef": {"name": "k", "key": "jwt-secret-key"}},
}  # fmt: skip
DESIGN_PROBLEM = """
apiVersion: vulcan-engine.com/v1alpha1
kind: SchedulingProblem
metadata: {name: week-48, namespace: plant-a}
spec:
  engineRef: {name: prod}
  objective:
    type: makespan
    weights: {makespan: 1, tardiness: 1}
  horizon: 10000
  machines:
    - name: lathe-1
      zone: hall-a
      unavailable: [{start: 100, end: 160}]
  operators:
    - name: alice
      skills: [welding, turning]
  jobs:
    - name: order-1
      priority: 3
      releaseDate: 0
      dueDate: 480
      tasks:
        - name: cut
          duration: 45
          machines: [lathe-1, lathe-2]
          machineDurations: {lathe-2: 60}
          skill: turning
  solver: {maxTimeSeconds: 60, numWorkers: 2, memoryLimitMB: 2048, seed: 0}
  problemRef: {configMapName: big-problem, key: problem.yaml}
"""
DESIGN_BACKUP = "{apiVersion: vulcan-engine.com/v1alpha1, kind: VulcanBackup, metadata: {name: b}, spec: {engineRef: {name: prod}}}"  # noqa: E501
DESIGN_RESTORE = """
apiVersion: vulcan-engine.com/v1alpha1
kind: VulcanRestore
metadata: {name: r}
spec:
  engineRef: {name: prod}
  backupRef: {name: prod-before-2-1-0}
  targetDatabase: ""
"""


def test_the_designed_engine_spec_is_valid_as_written() -> None:
    doc = yaml.safe_load(DESIGN_ENGINE)
    engine = VulcanEngine.model_validate(doc)
    assert engine.model_dump(mode="json", exclude_unset=True) == doc
    alternative = copy.deepcopy(doc)
    alternative["spec"]["backup"]["storage"] = {"s3": DESIGN_ALTERNATIVES["s3"]}
    alternative["spec"]["secrets"] = DESIGN_ALTERNATIVES["secrets"]
    VulcanEngine.model_validate(alternative)


def test_the_designed_backup_and_restore_are_valid() -> None:
    VulcanBackup.model_validate(yaml.safe_load(DESIGN_BACKUP))
    VulcanRestore.model_validate(yaml.safe_load(DESIGN_RESTORE))
    restore = yaml.safe_load(DESIGN_RESTORE)
    del restore["spec"]["backupRef"]
    restore["spec"]["location"] = "s3://vulcan-backups/database/vulcan/prod/vulcan_1.dump"
    restore["spec"]["checksum"] = "9f" * 32
    VulcanRestore.model_validate(restore)


def field_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a YAML value, lists flattened: 'spec.jobs.tasks.name'."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, sub in value.items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            out |= field_paths(sub, path)
    elif isinstance(value, list):
        for item in value:
            out |= field_paths(item, prefix)
    return out


def model_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        if "dict[" in str(info.annotation):
            out.add(f"{path}.*")  # free keys: requests.cpu, machineDurations.lathe-2
        for sub in _models_in(info.annotation):
            out |= model_fields(sub, path)
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


@pytest.mark.parametrize(
    ("text", "model"),
    [(DESIGN_ENGINE, VulcanEngine), (DESIGN_PROBLEM, SchedulingProblem)],
    ids=["engine", "problem"],
)
def test_every_designed_field_name_exists(text: str, model: type[BaseModel]) -> None:
    designed = {p for p in field_paths(yaml.safe_load(text)) if p.startswith("spec")}
    known = model_fields(model)
    unknown = {p for p in designed - known if f"{p.rsplit('.', 1)[0]}.*" not in known}
    assert unknown == set()
    assert len(designed) > 30


def test_the_designed_problem_is_refused_only_for_its_deliberate_mixture() -> None:
    # The DESIGN snippet shows every field at once: both problemRef and inline jobs, and a
    # lathe-2 it never declares. Each is reported, nothing else.
    with pytest.raises(ValidationError) as exc:
        SchedulingProblem.model_validate(yaml.safe_load(DESIGN_PROBLEM))
    text = str(exc.value)
    assert "unknown machine 'lathe-2'" in text
    fixed = yaml.safe_load(DESIGN_PROBLEM)
    fixed["spec"]["machines"].append({"name": "lathe-2"})
    with pytest.raises(ValidationError, match="either inline"):
        SchedulingProblem.model_validate(fixed)
    del fixed["spec"]["problemRef"]
    problem = SchedulingProblem.model_validate(fixed)
    assert problem.spec.problem().jobs[0].tasks[0].duration_on("lathe-2") == 60


def test_status_shape_names() -> None:
    # docs/design.md "Status shape": a public contract.
    from vulcan_operator.api.backup import VulcanBackupStatus, VulcanRestoreStatus
    from vulcan_operator.api.engine import VulcanEngineStatus
    from vulcan_operator.api.problem import SchedulingProblemStatus

    common = {"phase", "observedGeneration", "conditions"}
    expected = {
        VulcanEngineStatus: {"currentVersion", "targetVersion", "failedVersion", "replicas",
                             "readyReplicas", "databaseRevision", "lastBackup", "history"},
        SchedulingProblemStatus: {"jobName", "queuePosition", "progress", "result",
                                  "solutionRef", "history"},
        VulcanBackupStatus: {"location", "sizeBytes", "checksum", "databaseRevision",
                             "startedAt", "finishedAt"},
        VulcanRestoreStatus: {"step", "rowCounts", "startedAt", "finishedAt"},
    }  # fmt: skip
    for model, names in expected.items():
        assert common | names <= set(model.model_fields), model.__name__
    fields = model_fields(VulcanEngineStatus) | model_fields(SchedulingProblemStatus)
    assert {"lastBackup.time", "lastBackup.location", "lastBackup.outcome"} <= fields
    assert {f"history.{n}" for n in ("version", "image", "databaseRevision", "backup")} <= fields
    assert {f"progress.{n}" for n in ("objective", "bound", "gap", "elapsedSeconds")} <= fields
    assert {f"result.{n}" for n in ("status", "objective", "makespan", "wallSeconds")} <= fields
    assert {"solutionRef.configMapName", "solutionRef.scheduleId"} <= fields


# -- examples round-trip ---------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_examples_round_trip(path: Path) -> None:
    docs = our_documents(path)
    for doc in docs:
        model = MODELS[doc["kind"]]
        obj = model.model_validate(doc)
        # Nothing the user wrote is lost or changed...
        assert obj.model_dump(mode="json", exclude_unset=True) == doc
        # ...and the full object (defaults included) reads back as the same object.
        full = obj.model_dump(mode="json", exclude_none=True)
        assert model.model_validate(full) == obj
        assert model.model_validate_json(obj.model_dump_json(exclude_none=True)) == obj


# -- SolverOverrides.over ---------------------------------------------------------------------
ENGINE_SOLVER = EngineSolver(
    maxTimeSeconds=120, numWorkers=8, memoryLimitMB=4096, useLNS=True, seed=5, maxConcurrentJobs=2
)


def test_over_without_overrides_gives_the_engines_settings() -> None:
    result = SolverOverrides().over(ENGINE_SOLVER)
    assert type(result) is SolverSettings  # no engine-only fields such as maxConcurrentJobs
    assert result.model_dump() == {
        "maxTimeSeconds": 120,
        "numWorkers": 8,
        "memoryLimitMB": 4096,
        "useLNS": True,
        "seed": 5,
    }


def test_over_takes_each_set_field_and_keeps_the_rest() -> None:
    result = SolverOverrides(maxTimeSeconds=10, numWorkers=2).over(ENGINE_SOLVER)
    assert (result.maxTimeSeconds, result.numWorkers) == (10, 2)
    assert (result.memoryLimitMB, result.useLNS, result.seed) == (4096, True, 5)


@pytest.mark.parametrize(
    ("field", "value"), [("useLNS", False), ("seed", 0)], ids=["useLNS-false", "seed-0"]
)
def test_over_honours_falsy_overrides(field: str, value: Any) -> None:
    # False and 0 are settings, not "unset".
    result = SolverOverrides(**{field: value}).over(ENGINE_SOLVER)
    assert getattr(result, field) == value


def test_over_leaves_the_base_alone() -> None:
    before = ENGINE_SOLVER.model_dump()
    SolverOverrides(maxTimeSeconds=1, seed=9).over(ENGINE_SOLVER)
    assert ENGINE_SOLVER.model_dump() == before


def test_over_on_plain_settings_and_with_the_guides_defaults() -> None:
    result = SolverOverrides(memoryLimitMB=2048).over(SolverSettings())
    assert result.model_dump() == {
        "maxTimeSeconds": 300,
        "numWorkers": 4,
        "memoryLimitMB": 2048,
        "useLNS": True,
        "seed": 0,
    }


def test_overrides_are_bounded_like_the_settings() -> None:
    for bad in ({"maxTimeSeconds": 0}, {"numWorkers": 65}, {"memoryLimitMB": 255}, {"seed": -1}):
        with pytest.raises(ValidationError):
            SolverOverrides.model_validate(bad)
    with pytest.raises(ValidationError, match="Extra inputs"):
        SolverOverrides.model_validate({"maxConcurrentJobs": 3})


TASK = {"name": "t", "duration": 3, "machines": ["m1"]}


def test_spec_problem_is_the_inline_problem() -> None:
    spec = SchedulingProblemSpec.model_validate(
        {
            "engineRef": {"name": "prod"},
            "objective": {"type": "weightedTardiness"},
            "horizon": 50,
            "machines": [{"name": "m1"}],
            "jobs": [{"name": "j", "dueDate": 5, "tasks": [TASK]}],
            "solver": {"seed": 3},
        }
    )  # fmt: skip
    problem = spec.problem()
    assert type(problem) is ProblemData
    assert problem.objective.type == "weightedTardiness"
    assert (problem.horizon, problem.jobs[0].dueDate) == (50, 5)


# -- EngineSolver caps -------------------------------------------------------------------------
def test_engine_caps_default_to_16_workers_and_32_gib() -> None:
    solver = EngineSolver()
    assert (solver.maxWorkers, solver.maxMemoryMB) == (16, 32_768)
    # The engine's own defaults fit its caps.
    assert solver.numWorkers <= solver.maxWorkers
    assert solver.memoryLimitMB <= solver.maxMemoryMB


def test_engine_defaults_above_its_caps_are_refused_naming_both_fields() -> None:
    with pytest.raises(ValidationError) as refused:
        VulcanEngineSpec.model_validate(
            {"version": "2.0.0", "solver": {"numWorkers": 32, "memoryLimitMB": 65_536}}
        )
    text = str(refused.value)
    assert "numWorkers: 32 is more than maxWorkers (16)" in text
    assert "memoryLimitMB: 65536 is more than maxMemoryMB (32768)" in text
    raised = {"numWorkers": 32, "maxWorkers": 32, "memoryLimitMB": 65_536, "maxMemoryMB": 65_536}
    assert VulcanEngineSpec.model_validate({"version": "2.0.0", "solver": raised}).solver == (
        EngineSolver(**raised)
    )


@pytest.mark.parametrize(
    "bad",
    [{"maxWorkers": 0}, {"maxWorkers": 65}, {"maxMemoryMB": 255}, {"maxMemoryMB": 1_048_577}],
    ids=["workers-0", "workers-65", "memory-255", "memory-above-1TiB"],
)
def test_engine_caps_are_bounded(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        EngineSolver.model_validate({"numWorkers": 1, "memoryLimitMB": 256, **bad})


def test_problem_lists_are_bounded() -> None:
    machines = [{"name": f"m{i}"} for i in range(1_001)]
    job = {"name": "j", "tasks": [{"name": "t", "duration": 1, "machines": ["m0"]}]}
    with pytest.raises(ValidationError, match="at most 1000 items"):
        ProblemData.model_validate({"machines": machines, "jobs": [job]})
    ProblemData.model_validate({"machines": machines[:1000], "jobs": [job]})


def test_the_solver_cap_rules_use_the_models_defaults() -> None:
    """The CEL rules spell out the defaults (so they hold before the server's defaulting):
    they must be the model's."""
    from vulcan_operator.api.engine import EngineSolver

    rules = " ".join(
        r["rule"]
        for r in EngineSolver.model_config["json_schema_extra"]["x-kubernetes-validations"]
    )  # type: ignore[index]
    fields = EngineSolver.model_fields
    for name in ("numWorkers", "maxWorkers", "memoryLimitMB", "maxMemoryMB"):
        assert f"self.{name} : {fields[name].default})" in rules, name
