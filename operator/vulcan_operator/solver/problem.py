"""The scheduling problem: machines, operators, jobs of ordered tasks, an objective.

These models are the public problem format (docs/design.md, "The problem format"): the field names
are the YAML names. They validate structure (types, bounds) and references (unknown machine,
skill nobody has, duplicate names) so the solver only ever sees a consistent problem.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

MAX_TIME = 10**9
"""Upper bound of every time value; keeps sums of durations far inside CP-SAT's int64."""

# Size limits of every list (maxItems in the CRD), well above the public benchmarks (Taillard
# up to 100 jobs x 20 machines, Brandimarte up to 20 x 15 with 5 eligible machines a task) and
# a 20,000-task plant (2,000 jobs x 10 tasks, 200 machines, 500 operators). The byte caps
# bound the total as well: a problem comes from the API (an object is at most ~1.5 MiB) or a
# ConfigMap (1 MiB).
MAX_MACHINES = 1_000
MAX_OPERATORS = 2_000
MAX_SKILLS = 100
"""Skills of one operator."""
MAX_JOBS = 10_000
MAX_TASKS = 1_000
"""Tasks of one job."""
MAX_ELIGIBLE = MAX_MACHINES
"""Eligible machines (and machineDurations entries) of one task."""
MAX_WINDOWS = 1_000
"""Unavailable windows of one machine."""

Name = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[^\s]+$", description="Name, no whitespace."),
]
Time = Annotated[int, Field(ge=0, le=MAX_TIME)]


class Strict(BaseModel):
    """Base of every model: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class Window(Strict):
    """A time window [start, end) in the problem's time unit."""

    start: Time = Field(description="First time unit of the window.")
    end: Time = Field(description="First time unit after the window; must be > start.")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class Machine(Strict):
    """A machine that runs one task at a time."""

    name: Name = Field(description="Machine name, unique among machines.")
    zone: str = Field("", max_length=253, description="Zone or hall of the plant (informative).")
    unavailable: list[Window] = Field(
        default_factory=list,
        max_length=MAX_WINDOWS,
        description="Maintenance windows during which the machine runs no task.",
    )


class Operator(Strict):
    """A person who can attend one task at a time, for tasks that need one of their skills."""

    name: Name = Field(description="Operator name, unique among operators.")
    skills: list[Name] = Field(
        default_factory=list, max_length=MAX_SKILLS, description="Skills this operator has."
    )


class Task(Strict):
    """One step of a job, run on one of its eligible machines."""

    name: Name = Field(description="Task name, unique within its job.")
    duration: int = Field(
        ge=1, le=MAX_TIME, description="Duration on every eligible machine (unless overridden)."
    )
    machines: list[Name] = Field(
        min_length=1,
        max_length=MAX_ELIGIBLE,
        description="Eligible machines; the solver chooses exactly one.",
    )
    machineDurations: dict[str, Annotated[int, Field(ge=1, le=MAX_TIME)]] = Field(
        default_factory=dict,
        max_length=MAX_ELIGIBLE,
        description="Per-machine duration overrides; keys must be eligible machines.",
    )
    skill: Name | None = Field(
        None,
        description="Required skill: one operator with it is held for the whole task.",
    )

    def duration_on(self, machine: str) -> int:
        return self.machineDurations.get(machine, self.duration)


class Job(Strict):
    """An order: tasks that run in the listed order, each after the previous one ends."""

    name: Name = Field(description="Job name, unique among jobs.")
    priority: int = Field(1, ge=1, le=1000, description="Weight in weighted tardiness.")
    releaseDate: Time = Field(0, description="Earliest start of the job's first task.")
    dueDate: Time | None = Field(None, description="Due date; lateness past it is tardiness.")
    tasks: list[Task] = Field(
        min_length=1, max_length=MAX_TASKS, description="Tasks, run in this order."
    )


class ObjectiveWeights(Strict):
    """Weights of the weightedSum objective."""

    makespan: int = Field(1, ge=0, le=1_000_000, description="Weight of the makespan.")
    tardiness: int = Field(1, ge=0, le=1_000_000, description="Weight of weighted tardiness.")


class Objective(Strict):
    """What the solver minimises."""

    type: Literal["makespan", "weightedTardiness", "weightedSum"] = Field(
        "makespan",
        description="makespan | weightedTardiness (priority x lateness) | weightedSum of both.",
    )
    weights: ObjectiveWeights = Field(
        default_factory=ObjectiveWeights, description="Only used by weightedSum."
    )


class SolverSettings(Strict):
    """CP-SAT settings for one solve."""

    maxTimeSeconds: float = Field(300, gt=0, le=86_400, description="Wall-clock time limit.")
    numWorkers: int = Field(4, ge=1, le=64, description="CP-SAT search workers (= pod CPUs).")
    memoryLimitMB: int = Field(
        8192, ge=256, le=1_048_576, description="Memory limit of the solver (MiB)."
    )
    useLNS: bool = Field(True, description="Use Large Neighborhood Search workers.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed, for reproducible runs.")


MAX_PARALLELISM = 64
"""Pods racing on one problem, at most (an engine may cap it lower)."""


class ProblemSettings(SolverSettings):
    """A SchedulingProblem's `spec.solver`: the settings of one solve, and how it runs."""

    parallelism: int = Field(
        1,
        ge=1,
        le=MAX_PARALLELISM,
        description="Solver pods racing on this problem, each with its own seed and search "
        "strategy; the best schedule wins.",
    )
    logSearch: bool = Field(
        False, description="Write CP-SAT's search log to the solver's log (the pod log)."
    )


def _duplicates(names: Iterable[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


#: Names listed in one message, and messages reported, at most: a message must not grow with
#: the problem (10,000 tasks naming an unknown machine among 1,000 long names would otherwise
#: build gigabytes of text).
LISTED_NAMES = 10
MAX_ISSUES = 50


def _listing(names: Iterable[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:LISTED_NAMES]) or "none"
    more = len(ordered) - LISTED_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


class ProblemData(Strict):
    """The problem itself: what an inline spec or a problemRef ConfigMap holds."""

    objective: Objective = Field(default_factory=Objective, description="What to minimise.")
    horizon: Time | None = Field(None, description="Optional upper bound on any end time.")
    machines: list[Machine] = Field(
        default_factory=list, max_length=MAX_MACHINES, description="The machines."
    )
    operators: list[Operator] = Field(
        default_factory=list,
        max_length=MAX_OPERATORS,
        description="Operators, for tasks that need a skill.",
    )
    jobs: list[Job] = Field(
        default_factory=list, max_length=MAX_JOBS, description="The jobs to schedule."
    )

    @model_validator(mode="after")
    def _references(self) -> ProblemData:
        issues = self.reference_issues()
        if issues:
            raise ValueError("\n".join(issues))
        return self

    def reference_issues(self) -> list[str]:
        """Each broken reference or duplicate name as '<path>: <what is wrong>'."""
        issues: list[str] = []
        for field, names in (
            ("machines", [m.name for m in self.machines]),
            ("operators", [o.name for o in self.operators]),
            ("jobs", [j.name for j in self.jobs]),
        ):
            for dup in _duplicates(names):
                issues.append(f"{field}: duplicate name '{dup}'; names must be unique")
        machines = {m.name for m in self.machines}
        skills = {s for o in self.operators for s in o.skills}
        known_machines, known_skills = _listing(machines), _listing(skills)
        for j, job in enumerate(self.jobs):
            if len(issues) >= MAX_ISSUES:
                issues = issues[:MAX_ISSUES]
                issues.append(f"jobs[{j}]: further problems from here on are not listed")
                break
            where, who = f"jobs[{j}]", f"job '{job.name}'"
            for dup in _duplicates(t.name for t in job.tasks):
                issues.append(f"{where}.tasks: duplicate task name '{dup}' in {who}")
            if job.dueDate is not None and job.dueDate < job.releaseDate:
                issues.append(
                    f"{where}.dueDate: {job.dueDate} is before releaseDate "
                    f"{job.releaseDate} ({who})"
                )
            for t, task in enumerate(job.tasks):
                at, who = f"jobs[{j}].tasks[{t}]", f"job '{job.name}', task '{task.name}'"
                for m, machine in enumerate(task.machines):
                    if machine not in machines:
                        issues.append(
                            f"{at}.machines[{m}]: unknown machine '{machine}' ({who}); "
                            f"known machines: {known_machines}"
                        )
                for dup in _duplicates(task.machines):
                    issues.append(f"{at}.machines: machine '{dup}' listed twice ({who})")
                for machine in task.machineDurations:
                    if machine not in task.machines:
                        issues.append(
                            f"{at}.machineDurations: '{machine}' is not one of the eligible "
                            f"machines ({_listing(task.machines)}) of {who}"
                        )
                if task.skill is not None and task.skill not in skills:
                    issues.append(
                        f"{at}.skill: no operator has skill '{task.skill}' ({who}); "
                        f"skills available: {known_skills}"
                    )
        return issues


_SUBPATH = re.compile(r"^([A-Za-z]\w*(\[\d+\])*(\.[A-Za-z]\w*(\[\d+\])*)*): (.*)$", re.S)


def field_path(loc: Iterable[int | str]) -> str:
    """('spec', 'jobs', 0, 'name') → 'spec.jobs[0].name'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def error_lines(exc: ValidationError | list[ErrorDetails], prefix: str = "") -> list[str]:
    """Each pydantic error as '<field path>: <what is wrong>'.

    A model-level check may name a sub-field by starting its message with 'sub.path: '
    (as `ProblemData.reference_issues` does); the sub-path is joined to the model's path.
    """
    lines = []
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc
    for err in errors:
        path = ".".join(p for p in (prefix, field_path(err["loc"])) if p)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        for line in msg.splitlines():
            sub = _SUBPATH.match(line)
            if sub:
                full = f"{path}.{sub.group(1)}" if path else sub.group(1)
                lines.append(f"{full}: {sub.group(5)}")
            else:
                lines.append(f"{path}: {line}" if path else line)
    return lines
