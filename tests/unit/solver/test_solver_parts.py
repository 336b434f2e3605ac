"""Dispatch, compaction, the checker and the Gantt chart on their own."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from tests.support.solver_testkit import make_problem, random_problem
from vulcan_operator.solver.check import check_schedule
from vulcan_operator.solver.dispatch import RULES, best_dispatch, dispatch
from vulcan_operator.solver.gantt import render_html, render_svg
from vulcan_operator.solver.instance import Instance, earliest_fit, merge_windows
from vulcan_operator.solver.result import Assignment, SolveResult, Status
from vulcan_operator.solver.schedule import compact


@pytest.mark.parametrize("seed", range(15))
def test_every_dispatch_rule_gives_a_valid_schedule(seed: int) -> None:
    problem = random_problem(seed, n_jobs=8, n_machines=4)
    instance = Instance.from_problem(problem)
    for rule in RULES:
        schedule = dispatch(instance, rule)
        assert check_schedule(problem, schedule.assignments(instance)) == [], rule
        compacted = compact(instance, schedule)
        assert check_schedule(problem, compacted.assignments(instance)) == []
        assert all(a <= b for a, b in zip(compacted.ends, schedule.ends, strict=True))


def test_best_dispatch_picks_the_best_rule() -> None:
    instance = Instance.from_problem(random_problem(4, n_jobs=10))
    best, rule = best_dispatch(instance) or (None, "")
    assert best is not None
    assert best.makespan() == min(
        dispatch(instance, r).makespan() for r in ("mwkr", "mopnr", "spt", "est")
    )
    assert rule in RULES


def test_windows_helpers() -> None:
    assert merge_windows([(5, 9), (0, 2), (8, 12), (12, 13)]) == ((0, 2), (5, 13))
    windows = ((5, 9), (12, 20))
    assert earliest_fit(0, 5, windows) == 0
    assert earliest_fit(1, 5, windows) == 20  # 1..6 hits [5,9); 9..14 hits [12,20)
    assert earliest_fit(9, 3, windows) == 9


def test_checker_catches_each_kind_of_violation() -> None:
    problem = make_problem(
        [
            {
                "name": "a",
                "releaseDate": 2,
                "tasks": [
                    {"name": "x", "duration": 3, "machines": ["m1"], "skill": "s"},
                    {"name": "y", "duration": 2, "machines": ["m2"]},
                ],
            },
            {
                "name": "b",
                "tasks": [{"name": "x", "duration": 4, "machines": ["m1"], "skill": "s"}],
            },
        ],
        machines=["m1", {"name": "m2", "unavailable": [{"start": 0, "end": 4}]}],
        operators=[{"name": "p", "skills": ["s"]}, {"name": "q", "skills": []}],
        horizon=20,
    )
    good = [
        Assignment("a", "x", "m1", "p", 2, 5),
        Assignment("a", "y", "m2", None, 5, 7),
        Assignment("b", "x", "m1", "p", 5, 9),
    ]
    assert check_schedule(problem, good) == []
    cases = {
        "before release": [replace(good[0], start=1, end=4), *good[1:]],
        "before its predecessor ends": [good[0], replace(good[1], start=4, end=6), good[2]],
        "overlaps": [good[0], good[1], replace(good[2], start=4, end=8)],
        "lacks skill": [good[0], good[1], replace(good[2], operator="q")],
        "needs no operator": [good[0], replace(good[1], operator="p"), good[2]],
        "not eligible": [good[0], replace(good[1], machine="m1"), good[2]],
        "expected 4": [good[0], good[1], replace(good[2], end=10)],
        "unavailable window": [
            replace(good[0], start=0, end=3),
            replace(good[1], start=3, end=5),
            good[2],
        ],
        "after the horizon": [good[0], good[1], replace(good[2], start=19, end=23)],
        "assigned 0 times": good[:2],
    }
    for expected, assignments in cases.items():
        found = check_schedule(problem, assignments)
        assert any(expected in v for v in found), (expected, found)


def test_gantt_for_a_large_schedule_is_valid_svg() -> None:
    jobs = [
        {
            "name": f"job<{j}>&",
            "tasks": [
                {"name": f"t{k}", "duration": 5, "machines": [f"m{(j + k) % 20}"]}
                for k in range(20)
            ],
        }
        for j in range(100)
    ]
    problem = make_problem(jobs, machines=[f"m{m}" for m in range(20)])
    assignments = []
    for j in range(100):
        for k in range(20):
            start = 5 * (j + 100 * k)
            assignments.append(
                Assignment(f"job<{j}>&", f"t{k}", f"m{(j + k) % 20}", None, start, start + 5)
            )
    result = SolveResult(Status.FEASIBLE, 10_000, 5_000, 10_000, assignments=assignments)
    svg = render_svg(problem, result, "big & <busy>")
    root = ET.fromstring(svg)
    assert float(root.get("width", 0)) <= 16_000 + 200
    assert svg.count("<rect") >= 2000
    assert "more jobs" in svg  # the legend is capped
    assert ET.fromstring(
        render_html(problem, result).split('<div class="chart">')[1].split("</div>")[0]
    )
