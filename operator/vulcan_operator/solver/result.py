"""The solver-independent result of a solve: statuses are values, not exceptions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of a solve (the names CP-SAT uses)."""

    OPTIMAL = "OPTIMAL"
    """A schedule whose objective is proven best."""
    FEASIBLE = "FEASIBLE"
    """A schedule, not proven best (time limit, stop request)."""
    INFEASIBLE = "INFEASIBLE"
    """Proven: no schedule satisfies every constraint. `explanation` says why."""
    UNKNOWN = "UNKNOWN"
    """Stopped before any schedule was found and before infeasibility was proven."""
    MODEL_INVALID = "MODEL_INVALID"
    """CP-SAT rejected the model: a bug on our side, never the user's problem."""

    @property
    def has_schedule(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where and when one task runs."""

    job: str
    task: str
    machine: str
    operator: str | None
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "task": self.task,
            "machine": self.machine,
            "operator": self.operator,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True, slots=True)
class SolveResult:
    """What a solve produced. `to_dict()` is the public result JSON (docs/design.md)."""

    status: Status
    objective: int | None = None
    bound: int | None = None
    makespan: int | None = None
    wall_seconds: float = 0.0
    explanation: list[str] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    solutions: int = 0
    """Improving schedules found (the dispatch schedule counts as one)."""
    stop_reason: str = ""
    """Why the search ended: optimal, infeasible, timeLimit, interrupted, wallClockGuard,
    noTime, error."""

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "objective": self.objective,
            "bound": self.bound,
            "gap": None if self.gap is None else round(self.gap, 6),
            "makespan": self.makespan,
            "wallSeconds": round(self.wall_seconds, 3),
            "solutions": self.solutions,
            "stopReason": self.stop_reason,
            "explanation": list(self.explanation),
            "assignments": [a.to_dict() for a in self.assignments],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> dict[str, Any]:
        """The short form (no schedule): for the termination log and the CR status."""
        data = self.to_dict()
        del data["assignments"]
        return data


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|objective - bound| / max(1, |objective|), as a fraction (0.05 is 5 %)."""
    if objective is None or bound is None:
        return None
    return abs(objective - bound) / max(1.0, abs(objective))
