"""reconcile.queue with spec.solver.parallelism: a problem of N pods takes N of its engine's
slots, from its admission until its Job ends."""

from __future__ import annotations

from vulcan_operator.reconcile.queue import Admissions, JobEntry, QueueEntry, QueueView

KEY = ("plant-a", "prod")


def entry(name: str, created: str, pods: int = 1, waiting: bool = True) -> QueueEntry:
    phase = "Queued" if waiting else "Running"
    return QueueEntry(
        created, name, f"uid-{name}", waiting, phase, f"{name}-solve-1", "plant-a", pods
    )


def view(problems: list[QueueEntry], jobs: dict[tuple[str, str], list[JobEntry]]) -> QueueView:
    return QueueView({KEY: problems}, jobs, {}, Admissions())


def test_a_running_problem_of_three_pods_holds_three_slots() -> None:
    wide = entry("wide", "2026-11-29T02:00:00Z", pods=3, waiting=False)
    one = entry("one", "2026-11-29T02:00:01Z")
    queue = view([wide, one], {("plant-a", wide.uid): [JobEntry(wide.job, active=True)]})
    assert queue.active(KEY) == 3
    assert queue.admit(KEY, one, 3, one.job) == 1  # 3 of 3 taken
    assert queue.admit(KEY, one, 4, one.job) == 0  # the fourth slot
    assert queue.active(KEY) == 4  # and it is held before its Job shows


def test_a_problem_admitted_here_holds_its_pods_until_its_job_shows() -> None:
    wide = entry("wide", "2026-11-29T02:00:00Z", pods=2)
    one = entry("one", "2026-11-29T02:00:01Z")
    queue = view([wide, one], {})
    assert queue.admit(KEY, wide, 2, wide.job) == 0
    assert queue.active(KEY) == 2
    assert queue.admit(KEY, one, 2, one.job) == 1


def test_first_come_first_served_a_wide_head_keeps_the_ones_behind_waiting() -> None:
    running = entry("running", "2026-11-29T01:00:00Z", waiting=False)
    wide = entry("wide", "2026-11-29T02:00:00Z", pods=2)
    one = entry("one", "2026-11-29T02:00:01Z")
    jobs = {("plant-a", running.uid): [JobEntry(running.job, active=True)]}
    queue = view([running, wide, one], jobs)
    # 1 of 2 slots free: the head needs 2 and waits; the one behind it does not jump ahead.
    assert queue.admit(KEY, wide, 2, wide.job) == 1
    assert queue.admit(KEY, one, 2, one.job) == 2
    # The running Job ends: the head starts with both slots, and the next waits for them.
    jobs[("plant-a", running.uid)] = [JobEntry(running.job, active=False)]
    assert queue.admit(KEY, wide, 2, wide.job) == 0
    assert queue.admit(KEY, one, 2, one.job) == 1
