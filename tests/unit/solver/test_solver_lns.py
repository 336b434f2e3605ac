"""The time-window LNS (solver/lns.py) and the large-problem path of solve()."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.support.solver_testkit import assert_valid, bench_module, random_problem
from vulcan_operator.solver import lns
from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.dispatch import best_dispatch, dispatch
from vulcan_operator.solver.instance import Instance
from vulcan_operator.solver.problem import ProblemData, SolverSettings
from vulcan_operator.solver.schedule import Schedule
from vulcan_operator.solver.solve import is_large, solve


def _valid(problem: ProblemData, instance: Instance, schedule: Schedule) -> None:
    assert check_schedule(problem, schedule.assignments(instance)) == []


@pytest.mark.parametrize("objective", ["makespan", "weightedTardiness", "weightedSum"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_repair_keeps_the_schedule_valid_and_never_worse(objective: str, seed: int) -> None:
    problem = random_problem(seed, n_jobs=12, n_machines=5, objective={"type": objective})
    instance = Instance.from_problem(problem)
    start = dispatch(instance, "list")  # a poor start: room to improve
    repairer = lns.Repairer(instance, workers=1, seed=seed)
    rng = random.Random(seed)
    current, value = start, instance.objective_of(start.ends)
    for size in (3, 8, 15, 30):
        free = lns.choose(instance, current, size, rng, repairer.zones)
        repaired, _ = repairer.repair(current, free, 2.0)
        assert repaired is not None  # the current placement is always a solution
        _valid(problem, instance, repaired)
        # Only the freed tasks move.
        for i in set(range(len(instance.tasks))) - set(free):
            assert repaired.starts[i] == current.starts[i]
            assert repaired.machines[i] == current.machines[i]
        new_value = instance.objective_of(repaired.ends)
        assert new_value <= value  # the window's part of the objective never gets worse
        current, value = repaired, new_value


FT06 = """6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
"""


def test_a_window_over_every_task_is_the_exact_model() -> None:
    loaders = bench_module("loaders")
    problem = loaders.to_problem(*loaders.parse_jsp(FT06))
    instance = Instance.from_problem(problem)
    start = dispatch(instance, "spt")
    everything = list(range(len(instance.tasks)))
    repaired, optimal = lns.Repairer(instance, 2, 1).repair(start, everything, 20.0)
    assert repaired is not None and optimal
    assert repaired.makespan() == 55  # ft06's proven optimum


@pytest.mark.parametrize("objective", ["makespan", "weightedTardiness"])
def test_search_offers_only_improvements_and_ends_by_its_deadline(objective: str) -> None:
    problem = random_problem(7, n_jobs=15, n_machines=5, objective={"type": objective})
    instance = Instance.from_problem(problem)
    start = dispatch(instance, "list")
    offered: list[int] = []
    best, stats = lns.search(
        instance,
        start,
        lambda s: offered.append(instance.objective_of(s.ends)),
        deadline=time.monotonic() + 2,
        workers=1,
        seed=3,
    )
    assert stats.repairs > 0
    _valid(problem, instance, best)
    assert offered == sorted(offered, reverse=True)
    assert len(set(offered)) == len(offered)
    assert instance.objective_of(best.ends) <= instance.objective_of(start.ends)
    if offered:
        assert offered[-1] == instance.objective_of(best.ends)


def test_stop_ends_the_search_at_once() -> None:
    problem = random_problem(4, n_jobs=10, n_machines=4)
    instance = Instance.from_problem(problem)
    stop = threading.Event()
    stop.set()
    best, stats = lns.search(
        instance,
        dispatch(instance, "list"),
        lambda s: None,
        deadline=1e12,
        workers=1,
        seed=1,
        stop=stop,
    )
    assert stats.repairs == 0
    _valid(problem, instance, best)


def test_a_large_plant_is_solved_by_windows_never_worse_than_dispatch() -> None:
    plant = bench_module("plantgen").plant_problem(1000, 2)
    instance = Instance.from_problem(plant)
    settings = SolverSettings(maxTimeSeconds=4, numWorkers=1, seed=1)
    assert is_large(instance, settings.maxTimeSeconds)
    dispatched = best_dispatch(instance)
    assert dispatched is not None
    sources: list[str] = []
    result = solve(plant, settings, on_progress=lambda p: sources.append(p.source))
    assert_valid(plant, result)
    assert result.objective is not None
    assert result.objective <= instance.objective_of(dispatched[0].ends)
    assert sources[0] == "dispatch"
    assert set(sources) <= {"dispatch", "lns"}


def test_the_large_path_keeps_an_explicit_horizon() -> None:
    plant = bench_module("plantgen").plant(1000, 3)
    instance = Instance.from_problem(ProblemData.model_validate(plant))
    dispatched = best_dispatch(instance)
    assert dispatched is not None
    plant["horizon"] = dispatched[0].makespan()
    plant["objective"] = {"type": "weightedSum", "weights": {"makespan": 0, "tardiness": 1}}
    problem = ProblemData.model_validate(plant)
    result = solve(problem, SolverSettings(maxTimeSeconds=3, numWorkers=1, seed=2))
    assert_valid(problem, result)
    assert result.makespan is not None and result.makespan <= plant["horizon"]


def test_small_problems_keep_the_exact_model() -> None:
    problem = random_problem(5, n_jobs=6, n_machines=4)
    assert not is_large(Instance.from_problem(problem), 1.0)
