"""A schedule in index form, its public assignments, and left-shift compaction."""

from __future__ import annotations

from dataclasses import dataclass

from vulcan_operator.solver.instance import Instance, earliest_fit
from vulcan_operator.solver.result import Assignment

NO_OPERATOR = -1


@dataclass(slots=True)
class Schedule:
    """Per task (by index): start, machine index, duration there, operator index or -1."""

    starts: list[int]
    machines: list[int]
    durations: list[int]
    operators: list[int]

    @property
    def ends(self) -> list[int]:
        return [s + d for s, d in zip(self.starts, self.durations, strict=True)]

    def makespan(self) -> int:
        return max(self.ends, default=0)

    def assignments(self, instance: Instance) -> list[Assignment]:
        """Public assignments, in job and task order."""
        out = []
        for t in instance.tasks:
            o = self.operators[t.index]
            out.append(
                Assignment(
                    job=instance.jobs[t.job].name,
                    task=t.name,
                    machine=instance.machines[self.machines[t.index]],
                    operator=None if o == NO_OPERATOR else instance.operators[o],
                    start=self.starts[t.index],
                    end=self.starts[t.index] + self.durations[t.index],
                )
            )
        return out


def compact(instance: Instance, schedule: Schedule) -> Schedule:
    """Left-shift every task as far as its job, machine, operator and windows allow.

    Tasks are re-placed in the order of their current starts, keeping every machine's and
    operator's sequence. By induction each new start is at most the old one (the old start is
    still a feasible position), so no end moves later and no regular objective gets worse; the
    result is a semi-active schedule without the idle gaps a solver may leave in slack.
    """
    order = sorted(range(len(instance.tasks)), key=lambda i: (schedule.starts[i], i))
    machine_free = [0] * len(instance.machines)
    operator_free = [0] * len(instance.operators)
    job_free = [job.release for job in instance.jobs]
    starts = list(schedule.starts)
    for i in order:
        task = instance.tasks[i]
        m, d, o = schedule.machines[i], schedule.durations[i], schedule.operators[i]
        earliest = max(job_free[task.job], machine_free[m])
        if o != NO_OPERATOR:
            earliest = max(earliest, operator_free[o])
        start = earliest_fit(earliest, d, instance.windows[m])
        if start > schedule.starts[i]:  # cannot happen for a feasible input; keep it as is
            start = schedule.starts[i]
        starts[i] = start
        job_free[task.job] = machine_free[m] = start + d
        if o != NO_OPERATOR:
            operator_free[o] = start + d
    return Schedule(
        starts, list(schedule.machines), list(schedule.durations), list(schedule.operators)
    )
