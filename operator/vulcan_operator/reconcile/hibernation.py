"""`spec.hibernate`: an engine that keeps everything but runs nothing.

While it hibernates, the engine reconcile renders the Deployment with 0 replicas and no HPA
(the restore's scale-down, `EngineInputs.replicas_override`), version changes wait (as during
a restore: an upgrade's rollout to zero pods proves nothing), and its SchedulingProblems wait
in Queued (reason EngineHibernated). The database, the Secrets, the backup volume, the
Service, the CronJobs (backups keep running as `spec.backup` says) and every other child stay.
`hibernate: false` gives the Deployment back the replicas it had (recorded in
`status.hibernatedReplicas` when it went to sleep), then the HPA owns the count again.

Status: phase Hibernated; Ready=False and Progressing=False with reason Hibernated; the
`Hibernated` condition True (False, reason Awake, once it has been True); one Event each way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vulcan_operator.status import condition, get_condition

HIBERNATED = "Hibernated"
MESSAGE = (
    "spec.hibernate is true: no backend pods and no HPA, version changes and solver Jobs wait; "
    "the database, the backups and every other child are kept"
)
AWAKE = "spec.hibernate is false: the engine runs its spec's replicas"


@dataclass
class Hibernation:
    """What hibernation asks of the engine reconcile now."""

    on: bool
    #: The Deployment's replicas (None: as the spec says).
    replicas: int | None = None
    #: status.hibernatedReplicas: the count to come back to (None: not hibernated).
    record: int | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)


def hibernation(
    on: bool, old: dict[str, Any], generation: int | None, running: int | None
) -> Hibernation:
    """`running`: the Deployment's replicas now (None: no Deployment yet). The count is
    recorded when hibernation starts and given back explicitly when it ends (an HPA does not
    scale a Deployment up from zero), for one pass; then the HPA, if any, owns it again."""
    record = old.get("hibernatedReplicas")
    if on:
        return Hibernation(
            on=True,
            replicas=0,
            record=record if record is not None else running,
            conditions=[
                condition(HIBERNATED, True, HIBERNATED, MESSAGE, generation),
                condition("Ready", False, HIBERNATED, MESSAGE, generation),
                condition("Progressing", False, HIBERNATED, MESSAGE, generation),
            ],
            events=[] if record is not None else [("Normal", HIBERNATED, MESSAGE)],
        )
    if (get_condition(old, HIBERNATED) or {}).get("status") == "True":
        back = f"{AWAKE}: back to {record} replicas" if record else AWAKE
        return Hibernation(
            on=False,
            replicas=record or None,
            conditions=[condition(HIBERNATED, False, "Awake", back, generation)],
            events=[("Normal", "Awake", back)],
        )
    return Hibernation(on=False)  # a False Hibernated condition stays as it was
