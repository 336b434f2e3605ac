"""The portfolio of pods racing on one problem: member k's seed and strategy."""

from __future__ import annotations

import pytest

from tests.support.solver_testkit import assert_valid, random_job_shop, random_problem
from vulcan_operator.solver import api, portfolio
from vulcan_operator.solver.instance import Instance
from vulcan_operator.solver.problem import SolverSettings
from vulcan_operator.solver.solve import (
    DEFAULT_PHASES,
    LNS_FIRST_TASKS,
    LNS_PHASES,
    Phase,
    Tuning,
    phases_for,
)


def test_member_0_is_the_single_pod_run() -> None:
    settings = SolverSettings(seed=7, maxTimeSeconds=3)
    chosen, tuning, name = portfolio.member(settings, 0)
    assert chosen == settings
    assert tuning == Tuning()
    assert name == "default"


def test_members_differ_by_seed_and_the_first_ones_by_strategy() -> None:
    settings = SolverSettings(seed=2**31 - 2)
    members = [portfolio.member(settings, k) for k in range(8)]
    seeds = [s.seed for s, _, _ in members]
    assert len(set(seeds)) == 8  # own seed each, wrapping inside the allowed range
    assert all(0 <= seed <= 2**31 - 1 for seed in seeds)
    names = [name for _, _, name in members]
    assert len(set(names[: len(portfolio.STRATEGIES)])) == len(portfolio.STRATEGIES)
    assert names[len(portfolio.STRATEGIES) :] == ["default"] * (8 - len(portfolio.STRATEGIES))
    for s, _, _ in members:  # only the seed changes
        assert s.model_dump(exclude={"seed"}) == settings.model_dump(exclude={"seed"})


@pytest.mark.parametrize("index", range(len(portfolio.STRATEGIES) + 1))
def test_every_member_returns_a_valid_schedule(index: int) -> None:
    problem = random_problem(11, n_jobs=8, n_machines=4, objective={"type": "weightedSum"})
    result = api.run(problem, SolverSettings(maxTimeSeconds=2, numWorkers=1), member=index)
    assert_valid(problem, result)


def test_phases_by_size_unless_the_tuning_says() -> None:
    small = Instance.from_problem(random_job_shop(1, 10, 10))
    big = Instance.from_problem(random_job_shop(1, 30, 20))
    assert len(small.tasks) < LNS_FIRST_TASKS <= len(big.tasks)
    assert phases_for(small, Tuning()) == DEFAULT_PHASES  # the first phase proves optimality
    assert phases_for(big, Tuning()) == LNS_PHASES
    own = (Phase(1.0),)
    assert phases_for(big, Tuning(phases=own)) == own
