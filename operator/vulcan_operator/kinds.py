"""Our four custom resource kinds, in one table: kind, plural, short name, printer columns.

The CRD generator, the client's plurals, the handlers and every kind literal read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vulcan_operator import API_VERSION, GROUP

Column = tuple[str, str, str]  # (name, type, jsonPath) of a `kubectl get` column


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short: str
    columns: tuple[Column, ...]
    api_version: str = API_VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


AGE: Column = ("Age", "date", ".metadata.creationTimestamp")
PHASE: Column = ("Phase", "string", ".status.phase")
ENGINE_REF: Column = ("Engine", "string", ".spec.engineRef.name")

ENGINE = Kind(
    "VulcanEngine",
    "vulcanengines",
    "ve",
    (
        ("Version", "string", ".spec.version"),
        PHASE,
        ("Ready", "integer", ".status.readyReplicas"),
        ("Replicas", "integer", ".status.replicas"),
        ("Current", "string", ".status.currentVersion"),
        AGE,
    ),
)
PROBLEM = Kind(
    "SchedulingProblem",
    "schedulingproblems",
    "sp",
    (
        PHASE,
        ("Status", "string", ".status.result.status"),
        ("Objective", "number", ".status.progress.objective"),
        ("Gap", "number", ".status.progress.gap"),
        ENGINE_REF,
        AGE,
    ),
)
BACKUP = Kind(
    "VulcanBackup",
    "vulcanbackups",
    "vb",
    (
        ENGINE_REF,
        PHASE,
        ("Location", "string", ".status.location"),
        ("Size", "integer", ".status.sizeBytes"),
        AGE,
    ),
)
RESTORE = Kind(
    "VulcanRestore",
    "vulcanrestores",
    "vr",
    (ENGINE_REF, PHASE, ("Step", "string", ".status.step"), AGE),
)

ALL = (ENGINE, PROBLEM, BACKUP, RESTORE)
