"""The children of a SchedulingProblem: pure builders, no I/O, no clock.

`build(inputs)` returns, in apply order, everything one solve needs:

| child                                   | name                      | kept                     |
|-----------------------------------------|---------------------------|--------------------------|
| ServiceAccount of the solver pod        | `<problem>-solver`        | per problem              |
| Role: get the problem, patch its status | `<problem>-solver`        | per problem              |
|   and the schedule ConfigMap            |                           |                          |
| RoleBinding of the two                  | `<problem>-solver`        | per problem              |
| schedule ConfigMap (empty; the pod      | `<problem>-schedule`      | per problem, create-only |
|   writes the schedule into it)          |                           |                          |
| solver Job                              | `<problem>-solve-<hash>`  | per generation           |

All are owned by the problem (deleting it deletes them, and so cancels a running pod).

Decisions:

- The pod runs `python -m vulcan_operator.solverpod` from the operator's own image. It reads
  the problem from the API (its own SchedulingProblem, checked against the generation the Job
  was made for), so an inline problem is never copied into a second object; a problemRef
  ConfigMap is mounted read-only at `PROBLEM_MOUNT`.
- Resources are exact (Guaranteed QoS): CPU = solver workers, memory = `memoryLimitMB` MiB;
  the solver is told the same limit and keeps its own headroom below it.
- `backoffLimit: 0` (a deterministic failure is not retried), `activeDeadlineSeconds` = the
  time limit + `GRACE_SECONDS` (start-up, writing the schedule), a TTL after it finishes.
- A problem may not ask for more than its engine allows (`spec.solver.maxWorkers`,
  `maxMemoryMB`): `cap_issues` names the field, the value and the cap; the reconcile fails
  such a problem (InvalidSpec) before building anything.
- A problem may name an engine of another namespace (`engineRef.namespace`, admitted by that
  engine's `spec.solver.acceptFrom`: `acceptance_issue` says why not). Its children are made in
  the problem's namespace all the same, and its pod gets no DATABASE_URL at all (a Secret
  reference reads the pod's own namespace): the operator writes its schedule rows
  (`reconcile.schedulerows`).
- With `solver.parallelism` N > 1 the Job is an Indexed Job (completions = parallelism = N):
  pod k reads JOB_COMPLETION_INDEX and runs portfolio member k (`solver.portfolio`), and its
  Role may also get the schedule ConfigMap (members store a schedule only when it is better
  than the stored one: compare-and-swap on its resourceVersion). No retries, counted per
  member (`backoffLimitPerIndex: 0`, Kubernetes 1.29+): a failing member (out of memory, a
  crash) fails only its own index, and the others run on to their time limit; the Job then
  ends Failed (FailedIndexes) and the verdict is the best that the others found.
  With N = 1 the Job and Role are exactly what they were before the field.
- With `solver.queueName`, the Job is created suspended with Kueue's queue label: Kueue
  admits it (unsuspends it); the operator's own per-engine limit does not apply then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vulcan_operator import GROUP, kinds, names
from vulcan_operator.api.engine import AcceptFrom, VulcanEngineSpec
from vulcan_operator.api.problem import ProblemRef, SchedulingProblemSpec
from vulcan_operator.builders.common import Owner, finish, job_pull_secrets
from vulcan_operator.config import Settings
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.templating import render_one

__all__ = [
    "CONTAINER_NAME",
    "GRACE_SECONDS",
    "KIND",
    "KUEUE_QUEUE_LABEL",
    "PROBLEM_FILE",
    "PROBLEM_MOUNT",
    "TTL_SECONDS_AFTER_FINISHED",
    "ProblemInputs",
    "acceptance_issue",
    "active_deadline_seconds",
    "build",
    "build_job",
    "build_role",
    "build_role_binding",
    "build_schedule_configmap",
    "build_service_account",
    "cap_issues",
    "resolve_settings",
    "solver_labels",
]

Manifest = dict[str, Any]

KIND = kinds.PROBLEM.kind
CONTAINER_NAME = "solver"
MODULE = "vulcan_operator.solverpod"
#: Seconds the pod gets beyond the solver's time limit: start-up, writing the schedule.
GRACE_SECONDS = 60
#: A finished Job (and its pod, with the logs) stays this long; the status keeps the result.
TTL_SECONDS_AFTER_FINISHED = 3600
TERMINATION_GRACE_SECONDS = 30  # SIGTERM stops the search; the best schedule is still written
RUN_AS_USER = 10001  # the image's `vulcan` user
RUN_AS_GROUP = 10001
TMP_MOUNT = "/tmp"
TMP_SIZE_LIMIT = "256Mi"
PROBLEM_MOUNT = "/var/run/vulcan/problem"
PROBLEM_FILE = "problem.yaml"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@dataclass(frozen=True)
class ProblemInputs:
    """Everything the problem builder needs; the reconciler fills it in."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: SchedulingProblemSpec
    #: The referenced engine's spec (solver defaults, queue, database).
    engine: VulcanEngineSpec
    settings: Settings = field(default_factory=Settings)
    #: The engine's namespace ('' : the problem's own).
    engine_namespace: str = ""

    @property
    def foreign(self) -> bool:
        """The engine lives in another namespace: its Secrets are not readable from here, so
        the pod gets no DATABASE_URL (the operator writes the schedule rows)."""
        return self.engine_namespace not in ("", self.namespace)

    @property
    def owner(self) -> Owner:
        return Owner(kind=KIND, name=self.name, namespace=self.namespace, uid=self.uid)

    @property
    def engine_name(self) -> str:
        return self.spec.engineRef.name

    @property
    def solver(self) -> SolverSettings:
        return resolve_settings(self.spec, self.engine)

    @property
    def job_name(self) -> str:
        return names.problem_job(self.name, self.uid, self.generation)

    @property
    def account(self) -> str:
        return names.problem_solver_account(self.name)

    @property
    def schedule_configmap(self) -> str:
        return names.problem_schedule_configmap(self.name)

    @property
    def parallelism(self) -> int:
        """Pods racing on the problem (1: a plain Job, as without the field)."""
        return self.spec.solver.pods

    @property
    def queue_name(self) -> str:
        return self.engine.solver.queueName


# --- decisions ------------------------------------------------------------------------------


def resolve_settings(spec: SchedulingProblemSpec, engine: VulcanEngineSpec) -> SolverSettings:
    """The problem's solver overrides over the engine's `spec.solver` (itself defaulted)."""
    base = SolverSettings.model_validate(
        engine.solver.model_dump(include=set(SolverSettings.model_fields))
    )
    return spec.solver.over(base)


def cap_issues(spec: SchedulingProblemSpec, engine: VulcanEngineSpec) -> list[str]:
    """What the problem asks for beyond its engine's caps, one line per field ([]: fits).

    The engine's own defaults fit its caps (the engine model checks that), so only the
    problem's overrides can go over. numWorkers and memoryLimitMB are per pod, each of the
    `parallelism` pods within maxWorkers and maxMemoryMB; the pods together count against
    maxConcurrentJobs (the queue gives a problem `parallelism` slots), so parallelism may not
    exceed it."""
    caps = engine.solver
    asked = spec.solver
    lines = []
    for name, value, cap, limit in (
        ("numWorkers", asked.numWorkers, "maxWorkers", caps.maxWorkers),
        ("memoryLimitMB", asked.memoryLimitMB, "maxMemoryMB", caps.maxMemoryMB),
    ):
        if value is not None and value > limit:
            lines.append(
                f"spec.solver.{name}: {value} is more than engine '{spec.engineRef.name}' "
                f"allows ({limit}, its spec.solver.{cap})"
            )
    if asked.pods > caps.maxConcurrentJobs:  # each pod takes a slot: it would wait forever
        lines.append(
            f"spec.solver.parallelism: {asked.pods} is more than engine "
            f"'{spec.engineRef.name}' allows ({caps.maxConcurrentJobs}, its "
            "spec.solver.maxConcurrentJobs: each pod of a problem takes one of its slots)"
        )
    return lines


def acceptance_issue(
    namespace: str,
    engine: str,
    engine_namespace: str,
    accept: AcceptFrom,
    namespace_labels: Mapping[str, str] | None,
) -> str | None:
    """Why engine `engine_namespace`/`engine` does not solve problems of `namespace`, naming
    the engine field that would allow it; None when it does (its own namespace always).
    `namespace_labels`: the problem namespace's labels (None: not read)."""
    if accept.admits(engine_namespace, namespace, namespace_labels):
        return None
    selector = (
        "; its spec.solver.acceptFrom.namespaceSelector does not match this namespace's labels"
        if accept.namespaceSelector is not None
        else ""
    )
    return (
        f"VulcanEngine '{engine}' in namespace '{engine_namespace}' does not accept problems "
        f"from namespace '{namespace}': its owner can allow it by adding '{namespace}' to its "
        f"spec.solver.acceptFrom.namespaces (or a spec.solver.acceptFrom.namespaceSelector "
        f"matching this namespace){selector}; then change this problem (or create it again) "
        "to solve it"
    )


def active_deadline_seconds(settings: SolverSettings) -> int:
    """The pod's deadline: the solver's time limit plus the grace for start-up and results."""
    return math.ceil(settings.maxTimeSeconds) + GRACE_SECONDS


def solver_labels(inputs: ProblemInputs) -> dict[str, str]:
    """Labels of every child: ours for the engine's solver component, plus the problem."""
    return {
        **names.labels(inputs.engine_name, names.COMPONENT_SOLVER),
        names.LABEL_PROBLEM: names.label_value(inputs.name),
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def solver_args(inputs: ProblemInputs) -> list[str]:
    """The pod's arguments: which problem (and generation), where to write, the settings."""
    s = inputs.solver
    args = [
        "--namespace",
        inputs.namespace,
        "--problem",
        inputs.name,
        "--generation",
        str(inputs.generation),
        "--job",
        inputs.job_name,
        "--schedule-configmap",
        inputs.schedule_configmap,
        "--time-limit",
        _number(s.maxTimeSeconds),
        "--workers",
        str(s.numWorkers),
        "--memory-limit",
        str(s.memoryLimitMB),
        "--seed",
        str(s.seed),
        "--lns" if s.useLNS else "--no-lns",
    ]
    if inputs.spec.solver.logSearch:
        args.append("--log-search")
    if inputs.parallelism > 1:  # pod k (JOB_COMPLETION_INDEX) is portfolio member k
        args += ["--parallelism", str(inputs.parallelism)]
    if inputs.spec.problemRef is not None:
        args += ["--problem-file", f"{PROBLEM_MOUNT}/{PROBLEM_FILE}"]
    return args


def _env(inputs: ProblemInputs) -> list[dict[str, Any]]:
    db = inputs.engine.database_url_ref(inputs.engine_name)
    # Optional: an engine whose database Secret is missing still gets its schedule solved
    # (into the ConfigMap only). None for an engine of another namespace: a secretKeyRef
    # reads the pod's own namespace, where the engine's Secret is not (and a Secret of that
    # name there is the planner's, not the engine's).
    database = (
        []
        if inputs.foreign
        else [
            {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": db.name, "key": db.key, "optional": True}},
            }
        ]
    )
    return [
        *database,
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "TMPDIR", "value": TMP_MOUNT},
        {"name": "HOME", "value": TMP_MOUNT},
    ]


def _volumes(ref: ProblemRef | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_MOUNT}]
    if ref is not None:
        volumes.append(
            {
                "name": "problem",
                "configMap": {
                    "name": ref.configMapName,
                    "items": [{"key": ref.key, "path": PROBLEM_FILE}],
                },
            }
        )
        mounts.append({"name": "problem", "mountPath": PROBLEM_MOUNT, "readOnly": True})
    return volumes, mounts


# --- children -------------------------------------------------------------------------------


def _finish(inputs: ProblemInputs, obj: Mapping[str, Any]) -> Manifest:
    return finish(obj, inputs.owner, solver_labels(inputs))


def build_service_account(inputs: ProblemInputs) -> Manifest:
    return _finish(inputs, render_one("solver-serviceaccount.yaml.j2", name=inputs.account))


def build_role(inputs: ProblemInputs) -> Manifest:
    return _finish(
        inputs,
        render_one(
            "solver-role.yaml.j2",
            name=inputs.account,
            group=GROUP,
            problem=inputs.name,
            schedule_configmap=inputs.schedule_configmap,
            # Racing pods read the stored best before replacing it (compare-and-swap).
            read_schedule=inputs.parallelism > 1,
        ),
    )


def build_role_binding(inputs: ProblemInputs) -> Manifest:
    return _finish(
        inputs,
        render_one(
            "solver-rolebinding.yaml.j2",
            name=inputs.account,
            role=inputs.account,
            service_account=inputs.account,
            namespace=inputs.namespace,
        ),
    )


def build_schedule_configmap(inputs: ProblemInputs) -> Manifest:
    """The empty ConfigMap the pod fills; apply it create-only (the pod owns its data)."""
    return _finish(
        inputs,
        render_one("solver-schedule-configmap.yaml.j2", name=inputs.schedule_configmap, data={}),
    )


def build_job(inputs: ProblemInputs) -> Manifest:
    """The solver Job (immutable: create it once, never patch it)."""
    s = inputs.solver
    labels = solver_labels(inputs)
    job_labels = dict(labels)
    if inputs.queue_name:
        job_labels[KUEUE_QUEUE_LABEL] = inputs.queue_name
    volumes, mounts = _volumes(inputs.spec.problemRef)
    quantities = {"cpu": str(s.numWorkers), "memory": f"{s.memoryLimitMB}Mi"}
    return _finish(
        inputs,
        render_one(
            "solver-job.yaml.j2",
            name=inputs.job_name,
            job_labels=job_labels,
            suspend=bool(inputs.queue_name),
            parallelism=inputs.parallelism,
            active_deadline_seconds=active_deadline_seconds(s),
            ttl_seconds_after_finished=TTL_SECONDS_AFTER_FINISHED,
            pod_labels=labels,
            pod_annotations={names.ANNOTATION_DEFAULT_CONTAINER: CONTAINER_NAME},
            service_account=inputs.account,
            image_pull_secrets=job_pull_secrets(inputs.engine, inputs.settings),
            node_selector=dict(inputs.engine.solver.nodeSelector),
            tolerations=[
                t.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
                for t in inputs.engine.solver.tolerations
            ],
            termination_grace_seconds=TERMINATION_GRACE_SECONDS,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_GROUP,
            container_name=CONTAINER_NAME,
            image=inputs.settings.operator_image,
            image_pull_policy="IfNotPresent",
            command=["python", "-m", MODULE],
            args=solver_args(inputs),
            env=_env(inputs),
            resources={"requests": dict(quantities), "limits": dict(quantities)},
            volume_mounts=mounts,
            volumes=volumes,
        ),
    )


def build(inputs: ProblemInputs) -> list[Manifest]:
    """Every child of one solve, dependencies first (the Job last). The caller checks
    `cap_issues` first (the reconcile fails such a problem, InvalidSpec)."""
    return [
        build_service_account(inputs),
        build_role(inputs),
        build_role_binding(inputs),
        build_schedule_configmap(inputs),
        build_job(inputs),
    ]
