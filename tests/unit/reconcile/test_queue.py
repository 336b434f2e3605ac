"""reconcile.queue: who may start a solver Job now, and who waits where.

Jobs are known by their owning problem (namespace, uid), never by their labels: a Job counts
for an engine only as the Job of one of that engine's problems, at most one per problem.
"""

from __future__ import annotations

import asyncio

from vulcan_operator.reconcile.queue import (
    STARTED_MEMORY_SECONDS,
    Admissions,
    JobEntry,
    QueueEntry,
    QueueView,
    Wakeups,
)

KEY = ("plant-a", "prod")


def entry(
    name: str, created: str = "2026-11-29T02:00:00Z", waiting: bool = True, ns: str = "plant-a"
) -> QueueEntry:
    phase = "Queued" if waiting else "Running"
    return QueueEntry(created, name, f"uid-{name}", waiting, phase, f"{name}-solve-1", ns)


def jobs_of(*owned: tuple[QueueEntry, JobEntry]) -> dict[tuple[str, str], list[JobEntry]]:
    """The Job map: each Job under its owner's (namespace, uid)."""
    out: dict[tuple[str, str], list[JobEntry]] = {}
    for owner, job in owned:
        out.setdefault((owner.namespace, owner.uid), []).append(job)
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def view(
    problems: list[QueueEntry],
    jobs: dict[tuple[str, str], list[JobEntry]],
    admissions: Admissions | None = None,
) -> QueueView:
    return QueueView({KEY: problems}, jobs, {}, admissions or Admissions())


def test_positions_are_first_come_first_served_then_by_name() -> None:
    problems = [
        entry("c", "2026-11-29T02:00:01Z"),
        entry("b"),
        entry("a"),
        entry("done", waiting=False),
    ]
    v = view(problems, {})
    assert [e.name for e in v.waiting(KEY)] == ["a", "b", "c"]
    assert v.position(KEY, entry("a")) == 1
    assert v.position(KEY, entry("c", "2026-11-29T02:00:01Z")) == 3
    assert v.position(KEY, entry("z", "2026-11-29T02:00:09Z")) == 4  # not in the map yet


def test_admission_respects_the_limit_whatever_the_maps_lag() -> None:
    old, older = entry("old", waiting=False), entry("older", waiting=False)
    problems = [entry(n) for n in "abcde"] + [old, older]
    jobs = jobs_of(
        (old, JobEntry("old-solve-1", active=True)), (older, JobEntry("older-solve-1", False))
    )
    v = view(problems, jobs)
    # limit 3 with one active Job: two slots; the maps never learn about the new Jobs here.
    results = {n: v.admit(KEY, entry(n), 3, f"{n}-solve-1") for n in "edcba"}
    # Each answer is the position at the time of its decision (e, d and c decided first).
    assert results == {"a": 0, "b": 0, "c": 3, "d": 4, "e": 5}
    assert v.active(KEY) == 3
    assert [v.position(KEY, entry(n)) for n in "cde"] == [1, 2, 3]
    v.admissions.release(KEY, "uid-a")  # its Job could not be created: the slot is free...
    assert v.active(KEY) == 2 and v.position(KEY, entry("c")) == 2  # ...and a is first again
    assert v.admit(KEY, entry("c"), 3, "c-solve-1") == 2
    assert v.admit(KEY, entry("a"), 3, "a-solve-1") == 0


def test_a_started_job_counts_until_the_map_shows_it_and_then_the_map_decides() -> None:
    clock = Clock()
    admissions = Admissions(clock)
    admissions.started(KEY, "uid-a", "a-solve-1")
    jobs: dict[tuple[str, str], list[JobEntry]] = {}
    v = QueueView({KEY: [entry("a"), entry("b")]}, jobs, {}, admissions)
    assert v.active(KEY) == 1 and [e.name for e in v.waiting(KEY)] == ["b"]
    jobs.update(jobs_of((entry("a"), JobEntry("a-solve-1", active=False))))  # seen, finished
    assert v.active(KEY) == 0
    admissions.started(KEY, "uid-b", "b-solve-1")  # never seen (deleted at once): forgotten
    clock.now += STARTED_MEMORY_SECONDS + 1
    assert v.active(KEY) == 0


def test_the_engine_comes_from_its_map() -> None:
    v = QueueView({}, {}, {("plant-a", "prod"): [{"spec": {"version": "1"}}]}, Admissions())
    assert v.engine("plant-a", "prod") == {"spec": {"version": "1"}}
    assert v.engine("plant-a", "other") is None


async def test_wakeups_end_a_sleep_early() -> None:
    wakeups = Wakeups()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await wakeups.sleep("u", 0.05)
    assert loop.time() - start >= 0.04  # nobody woke it

    sleeper = asyncio.create_task(wakeups.sleep("u", 10))
    await asyncio.sleep(0)
    wakeups.wake("u")
    await asyncio.wait_for(sleeper, 1)

    wakeups.wake("u")  # a wake while it works is not lost: the next sleep returns at once
    await asyncio.wait_for(wakeups.sleep("u", 10), 1)

    stop = asyncio.get_running_loop().create_future()
    sleeper = asyncio.create_task(wakeups.sleep("u", 10, stop))
    await asyncio.sleep(0)
    stop.set_result(None)
    await asyncio.wait_for(sleeper, 1)
    wakeups.forget("u")


def test_the_head_of_the_queue_gets_the_next_slot() -> None:
    admissions = Admissions()
    v = view([entry("b"), entry("a"), entry("x", waiting=False)], {}, admissions)
    assert v.head(KEY) == entry("a")
    admissions.started(KEY, "uid-a", "a-solve-1")
    assert v.head(KEY) == entry("b")
    assert view([], {}).head(KEY) is None


# --- Jobs nobody asked the engine for -----------------------------------------------------------


def test_only_the_jobs_of_the_engines_problems_take_its_slots() -> None:
    """A planner may create Jobs with our labels in their namespace, even with an owner
    reference copied from another problem: none of them takes a slot of the engine."""
    victim = entry("victim", waiting=True, ns="plant-a")
    mine = entry("mine", waiting=False, ns="plant-b")  # running: it holds a slot
    stray = entry("stray")  # not a problem of this engine at all
    forged = {
        # a Job in plant-b claiming the victim (plant-a) as its owner: owners never cross
        # namespaces, so it is filed under (plant-b, uid-victim), which no problem is
        ("plant-b", victim.uid): [JobEntry("victim-solve-1", active=True)],
        (stray.namespace, stray.uid): [JobEntry("stray-solve-1", active=True)],
        # several active Jobs of one problem: one slot
        (mine.namespace, mine.uid): [JobEntry("x", active=True), JobEntry("y", active=True)],
    }
    v = view([victim, mine], forged)
    assert v.active(KEY) == 1  # mine, once
    assert [e.name for e in v.waiting(KEY)] == ["victim"]  # its "Job" is not its Job
    assert not v.knows_job(KEY, victim)
    assert v.admit(KEY, victim, 2, victim.job) == 0  # the second slot is free for it


def test_a_problems_own_job_is_found_in_its_namespace() -> None:
    a = entry("a", waiting=True, ns="plant-b")
    v = view([a], jobs_of((a, JobEntry(a.job, active=True))))
    assert v.knows_job(KEY, a) and v.active(KEY) == 1 and v.waiting(KEY) == []
