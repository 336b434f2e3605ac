"""SchedulingProblem: one scheduling problem, solved by CP-SAT in its own pod."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vulcan_operator.api.common import (
    DnsLabel,
    DnsSubdomain,
    ObjectMeta,
    Status,
    Strict,
    cel,
)
from vulcan_operator.solver.problem import Objective, ProblemData, SolverSettings


class ProblemRef(Strict):
    """A problem too large for the spec, kept in a ConfigMap of the same namespace."""

    configMapName: DnsSubdomain = Field(description="ConfigMap holding the problem.")
    key: str = Field(
        "problem.yaml",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key of the ConfigMap whose value is the problem (YAML or JSON).",
    )


class EngineReference(Strict):
    """The VulcanEngine that solves a problem: in the problem's namespace, or in `namespace`
    when that engine accepts problems from here (its spec.solver.acceptFrom)."""

    name: DnsSubdomain = Field(description="Name of the VulcanEngine.")
    namespace: DnsLabel | None = Field(
        None,
        description="Namespace of the VulcanEngine (default: the problem's own). An engine "
        "in another namespace solves the problem only when its spec.solver.acceptFrom admits "
        "this namespace; the problem's solver pod still runs here.",
    )

    def namespace_for(self, own: str) -> str:
        """The engine's namespace, for a problem in `own`."""
        return self.namespace or own


#: Most pods one problem may race (spec.solver.parallelism).
MAX_PARALLELISM = 8


class SolverOverrides(Strict):
    """Per-problem solver settings; unset fields come from the engine's spec.solver."""

    maxTimeSeconds: float | None = Field(None, gt=0, le=86_400, description="Time limit (s).")
    numWorkers: int | None = Field(None, ge=1, le=64, description="Search workers = pod CPUs.")
    memoryLimitMB: int | None = Field(
        None, ge=256, le=1_048_576, description="Pod memory limit (MiB), also given to CP-SAT."
    )
    useLNS: bool | None = Field(None, description="Use Large Neighborhood Search.")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Random seed.")
    logSearch: bool | None = Field(
        None,
        description="Write CP-SAT's search log (and one line per dispatch rule and per "
        "neighbourhood repair) to the solver pod's log.",
    )
    parallelism: int | None = Field(
        None,
        ge=1,
        le=MAX_PARALLELISM,
        description="Solver pods racing on this problem (default 1): an Indexed Job whose pod "
        "k runs portfolio member k (its own seed and search strategy) with the same limits; "
        "the best schedule wins (status.result.foundBy names its member). Each pod gets "
        "numWorkers CPUs and memoryLimitMB; the problem takes this many of its engine's "
        "spec.solver.maxConcurrentJobs slots, and may not ask for more.",
    )

    @property
    def pods(self) -> int:
        """Solver pods of one solve (parallelism, default 1)."""
        return self.parallelism or 1

    def over(self, base: SolverSettings) -> SolverSettings:
        """These overrides applied on top of `base` (the solve's settings; logSearch is how
        the pod reports, not a setting of the search; parallelism is how many pods search)."""
        return SolverSettings.model_validate(
            base.model_dump(include=set(SolverSettings.model_fields))
            | self.model_dump(exclude_none=True, exclude={"logSearch", "parallelism"})
        )


class SchedulingProblemSpec(ProblemData):
    """A scheduling problem: inline machines and jobs, or a problemRef."""

    model_config = cel(
        (
            "has(self.problemRef) ? !(has(self.jobs) && size(self.jobs) > 0)"
            " && !(has(self.machines) && size(self.machines) > 0)"
            " : (has(self.jobs) && size(self.jobs) > 0)",
            "give the problem either inline (jobs, machines) or as problemRef, not both",
        ),
    )

    engineRef: EngineReference = Field(
        description="The VulcanEngine whose solver defaults and database are used "
        "(cannot change once created: the schedule rows went to its database).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "engineRef cannot change once created: the problem's schedules "
                    "belong to that engine; create a new SchedulingProblem for another engine",
                }
            ]
        },
    )
    # No default here (unlike ProblemData): a problemRef ConfigMap's own objective must not
    # be overridden by a default the API server filled in.
    objective: Objective | None = Field(  # type: ignore[assignment]
        None, description="What to minimise (default: makespan, or the problemRef's own)."
    )
    solver: SolverOverrides = Field(SolverOverrides(), description="Solver overrides.")
    problemRef: ProblemRef | None = Field(
        None, description="Take machines, operators and jobs from a ConfigMap instead."
    )

    @model_validator(mode="after")
    def _inline_or_ref(self) -> SchedulingProblemSpec:
        inline = bool(self.jobs or self.machines)
        if (self.problemRef is not None and inline) or (self.problemRef is None and not self.jobs):
            raise ValueError(
                "give the problem either inline (jobs, machines) or as problemRef, not both"
            )
        return self

    def problem(self) -> ProblemData:
        """The inline problem (objective, horizon, machines, operators, jobs)."""
        fields = set(ProblemData.model_fields)
        return ProblemData.model_validate(self.model_dump(include=fields, exclude_none=True))


class Progress(BaseModel):
    """Live progress of a running solve."""

    objective: float | None = Field(None, description="Best objective so far.")
    bound: float | None = Field(None, description="Best proven bound.")
    gap: float | None = Field(None, description="Relative gap between objective and bound.")
    elapsedSeconds: float | None = Field(None, description="Seconds since the solve started.")
    solutions: int | None = Field(None, description="Improving solutions found.")


class Result(BaseModel):
    """Summary of a finished solve."""

    status: Literal["OPTIMAL", "FEASIBLE", "INFEASIBLE", "UNKNOWN", "MODEL_INVALID"] | None = Field(
        None, description="CP-SAT status."
    )
    objective: float | None = Field(None, description="Objective value.")
    bound: float | None = Field(None, description="Best bound.")
    makespan: int | None = Field(None, description="End of the last task.")
    wallSeconds: float | None = Field(None, description="Solve time.")
    explanation: list[str] = Field(default_factory=list, description="Why, in plain words.")
    finishedAt: str | None = Field(None, description="When the solve finished.")
    foundBy: int | None = Field(
        None,
        ge=0,
        description="With spec.solver.parallelism above 1: the portfolio member (the pod's "
        "completion index) whose schedule this is.",
    )


class SolutionRef(BaseModel):
    """Where the full schedule is."""

    configMapName: str | None = Field(None, description="ConfigMap holding the schedule.")
    scheduleId: str | None = Field(None, description="Schedule id in the engine's database.")


class SchedulingProblemStatus(Status):
    """Observed state of the problem."""

    jobName: str | None = Field(None, description="Solver Job.")
    queuePosition: int | None = Field(None, description="Position in the engine's queue.")
    progress: Progress | None = Field(None, description="Live progress while running.")
    result: Result | None = Field(None, description="Result of the latest solve.")
    solutionRef: SolutionRef | None = Field(None, description="Where the schedule is.")
    history: list[Result] = Field(
        default_factory=list, max_length=10, description="Earlier results, newest first."
    )


class SchedulingProblem(BaseModel):
    """A scheduling problem resource."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["vulcan-engine.com/v1alpha1"]
    kind: Literal["SchedulingProblem"]
    metadata: ObjectMeta
    spec: SchedulingProblemSpec
    status: SchedulingProblemStatus | None = None
