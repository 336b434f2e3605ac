"""solve(): known optima, every schedule checked, objectives, infeasibility explained."""

from __future__ import annotations

import threading

import pytest

from tests.support.solver_testkit import (
    DATA,
    assert_valid,
    bench_module,
    make_problem,
    random_job_shop,
    random_problem,
)
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.progress import Progress
from vulcan_operator.solver.result import Status
from vulcan_operator.solver.solve import solve

FAST = SolverSettings(maxTimeSeconds=5, numWorkers=2, seed=1)


def _bench_problem(name: str) -> ProblemData:
    loaders = bench_module("loaders")
    family = "fjsp" if name.startswith("mk") else "jsp"
    return loaders.to_problem(*loaders.read(DATA / name, family))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("name", "optimum"), [("ft06.txt", 55), ("mk01.txt", 40)])
def test_benchmark_instances_reach_their_optimum(name: str, optimum: int) -> None:
    problem = _bench_problem(name)
    events: list[Progress] = []
    result = solve(problem, FAST, on_progress=events.append)
    assert result.status == Status.OPTIMAL
    assert result.objective == result.makespan == result.bound == optimum
    assert_valid(problem, result)
    assert events, "every improving solution is reported"
    assert [e.objective for e in events] == sorted({e.objective for e in events}, reverse=True)
    assert events[-1].objective == optimum
    assert [e.solutions for e in events] == list(range(1, len(events) + 1))


def test_two_jobs_share_a_machine() -> None:
    problem = make_problem(
        [
            {
                "name": "a",
                "tasks": [
                    {"name": "x", "duration": 3, "machines": ["m1"]},
                    {"name": "y", "duration": 2, "machines": ["m2"]},
                ],
            },
            {
                "name": "b",
                "tasks": [
                    {"name": "x", "duration": 2, "machines": ["m2"]},
                    {"name": "y", "duration": 4, "machines": ["m1"]},
                ],
            },
        ]
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert result.makespan == 7  # b/x (0-2) on m2 cannot help: m1 runs 3 + 4 in sequence
    assert_valid(problem, result)


def test_machine_choice_uses_per_machine_durations() -> None:
    problem = make_problem(
        [
            {
                "name": "a",
                "tasks": [
                    {
                        "name": "x",
                        "duration": 10,
                        "machines": ["fast", "slow"],
                        "machineDurations": {"fast": 4},
                    }
                ],
            },
            {
                "name": "b",
                "tasks": [
                    {
                        "name": "x",
                        "duration": 10,
                        "machines": ["fast", "slow"],
                        "machineDurations": {"fast": 4},
                    }
                ],
            },
        ]
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert result.makespan == 8  # both on the fast machine beats one on the slow one (10)
    assert {a.machine for a in result.assignments} == {"fast"}
    assert_valid(problem, result)


def test_operator_skill_serialises_tasks_on_different_machines() -> None:
    problem = make_problem(
        [
            {
                "name": f"j{i}",
                "tasks": [
                    {"name": "weld", "duration": 5, "machines": [f"m{i}"], "skill": "welding"}
                ],
            }
            for i in range(3)
        ],
        operators=[
            {"name": "alice", "skills": ["welding"]},
            {"name": "bob", "skills": ["welding", "turning"]},
            {"name": "carl", "skills": ["turning"]},
        ],
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert result.makespan == 10  # three 5-minute welds, two welders
    assert {a.operator for a in result.assignments} == {"alice", "bob"}
    assert_valid(problem, result)


def test_maintenance_window_and_release_date() -> None:
    problem = make_problem(
        [
            {
                "name": "a",
                "releaseDate": 3,
                "tasks": [
                    {"name": "x", "duration": 4, "machines": ["m1"]},
                ],
            }
        ],
        machines=[{"name": "m1", "unavailable": [{"start": 5, "end": 9}]}],
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert result.assignments[0].start == 9  # 3..7 would cross the window [5, 9)
    assert_valid(problem, result)


def test_weighted_tardiness_follows_priorities() -> None:
    problem = make_problem(
        [
            {
                "name": "low",
                "priority": 1,
                "dueDate": 5,
                "tasks": [{"name": "x", "duration": 5, "machines": ["m"]}],
            },
            {
                "name": "high",
                "priority": 4,
                "dueDate": 5,
                "tasks": [{"name": "x", "duration": 5, "machines": ["m"]}],
            },
        ],
        objective={"type": "weightedTardiness"},
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert result.objective == 5  # high first (on time), low 5 late x priority 1
    first = min(result.assignments, key=lambda a: a.start)
    assert first.job == "high"
    assert_valid(problem, result)


def test_weighted_sum_combines_both() -> None:
    problem = make_problem(
        [
            {
                "name": "a",
                "priority": 2,
                "dueDate": 3,
                "tasks": [{"name": "x", "duration": 3, "machines": ["m"]}],
            },
            {"name": "b", "tasks": [{"name": "x", "duration": 4, "machines": ["m"]}]},
        ],
        objective={"type": "weightedSum", "weights": {"makespan": 2, "tardiness": 5}},
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert result.objective == 2 * 7 + 5 * 0
    assert_valid(problem, result)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("objective", ["makespan", "weightedTardiness", "weightedSum"])
def test_random_problems_give_valid_schedules(seed: int, objective: str) -> None:
    problem = random_problem(seed, objective={"type": objective})
    result = solve(problem, SolverSettings(maxTimeSeconds=2, numWorkers=2, seed=seed))
    assert_valid(problem, result)


def test_horizon_is_respected() -> None:
    problem = random_problem(3, horizon=400)
    result = solve(problem, FAST)
    assert_valid(problem, result)
    assert result.makespan is not None and result.makespan <= 400


def test_empty_problem_is_trivially_optimal() -> None:
    result = solve(make_problem([], machines=["m"]), FAST)
    assert result.status == Status.OPTIMAL
    assert result.objective == 0
    assert result.assignments == []


def test_job_chain_longer_than_horizon_is_explained() -> None:
    problem = make_problem(
        [
            {
                "name": "order-1",
                "releaseDate": 10,
                "tasks": [
                    {"name": "cut", "duration": 30, "machines": ["saw"]},
                    {"name": "weld", "duration": 40, "machines": ["welder"]},
                ],
            }
        ],
        horizon=60,
    )
    result = solve(problem, FAST)
    assert result.status == Status.INFEASIBLE
    assert result.assignments == []
    assert "Job 'order-1' cannot finish by the horizon 60" in result.explanation[0]
    assert "ends at 80 at the earliest" in result.explanation[0]


def test_windows_leaving_no_room_are_explained() -> None:
    problem = make_problem(
        [{"name": "order-1", "tasks": [{"name": "cut", "duration": 45, "machines": ["lathe-1"]}]}],
        machines=[{"name": "lathe-1", "unavailable": [{"start": 30, "end": 60}]}],
        horizon=100,
    )
    result = solve(problem, FAST)
    assert result.status == Status.INFEASIBLE
    (sentence,) = result.explanation
    assert "task 'cut' of job 'order-1'" in sentence
    assert "unavailable windows of 'lathe-1'" in sentence
    assert "no free stretch of 45" in sentence


def test_machine_overload_is_explained() -> None:
    problem = make_problem(
        [
            {"name": f"j{i}", "tasks": [{"name": "x", "duration": 10, "machines": ["m"]}]}
            for i in range(3)
        ],
        horizon=25,
    )
    result = solve(problem, FAST)
    assert result.status == Status.INFEASIBLE
    assert "Machine 'm' must run 3 task(s)" in result.explanation[0]


def test_subtle_infeasibility_names_the_jobs_in_conflict() -> None:
    # Three flexible 10-minute tasks, two machines, horizon 15: no single check catches it.
    jobs = [
        {"name": f"j{i}", "tasks": [{"name": "x", "duration": 10, "machines": ["a", "b"]}]}
        for i in range(3)
    ]
    jobs.append({"name": "free", "tasks": [{"name": "y", "duration": 5, "machines": ["c"]}]})
    result = solve(make_problem(jobs, horizon=15), FAST)
    assert result.status == Status.INFEASIBLE
    (sentence,) = result.explanation
    assert "'j0', 'j1', 'j2'" in sentence
    assert "'free'" not in sentence
    assert "horizon 15" in sentence


def test_stop_event_returns_the_best_schedule_so_far() -> None:
    problem = random_problem(11, n_jobs=12, n_machines=5)
    stop = threading.Event()
    stop.set()  # stopped before the search starts: the dispatch schedule is the answer
    result = solve(problem, FAST, stop=stop)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert result.stop_reason in ("interrupted", "optimal")
    assert_valid(problem, result)


def test_result_json_shape() -> None:
    problem = make_problem(
        [
            {
                "name": "a",
                "tasks": [
                    {"name": "x", "duration": 3, "machines": ["m"], "skill": "s"},
                    {"name": "y", "duration": 2, "machines": ["m"]},
                ],
            }
        ],
        operators=[{"name": "op", "skills": ["s"]}],
    )
    data = solve(problem, FAST).to_dict()
    assert {
        "status",
        "objective",
        "bound",
        "makespan",
        "wallSeconds",
        "explanation",
        "assignments",
    } <= set(data)
    assert data["status"] == "OPTIMAL"
    assert data["explanation"] == []
    assert data["assignments"] == [
        {"job": "a", "task": "x", "machine": "m", "operator": "op", "start": 0, "end": 3},
        {"job": "a", "task": "y", "machine": "m", "operator": None, "start": 3, "end": 5},
    ]


def test_horizon_tighter_than_the_dispatch_schedule_still_solves() -> None:
    free = random_job_shop(1, 4, 3)
    optimum = solve(free, FAST).objective
    assert optimum is not None
    tight = free.model_copy(update={"horizon": optimum})  # dispatch (426) misses it
    result = solve(tight, FAST)
    assert result.status == Status.OPTIMAL
    assert result.makespan == optimum
    assert_valid(tight, result)


@pytest.mark.parametrize(
    "weights", [{"makespan": 4, "tardiness": 0}, {"makespan": 1, "tardiness": 7}]
)
def test_weighted_sum_tardiness_cut_uses_the_weights(weights: dict[str, int]) -> None:
    # A late, heavy job: the cut on its tardiness must scale with the tardiness weight
    # (with weight 0 it must not cap it at all).
    problem = make_problem(
        [
            {
                "name": "a",
                "priority": 700,
                "dueDate": 5,
                "tasks": [{"name": "x", "duration": 30, "machines": ["m"]}],
            },
            {
                "name": "b",
                "priority": 1,
                "dueDate": 5,
                "tasks": [{"name": "x", "duration": 30, "machines": ["m"]}],
            },
        ],
        objective={"type": "weightedSum", "weights": weights},
    )
    result = solve(problem, FAST)
    assert result.status == Status.OPTIMAL
    assert_valid(problem, result)
