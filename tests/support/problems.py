"""SchedulingProblems and their ConfigMaps for the attack tests and bench/loop_lag.py: small
valid ones, plants of a given shape, a large YAML one and an alias bomb."""

from __future__ import annotations

from typing import Any

API = "vulcan-engine.com/v1alpha1"
NS = "default"
MAX_PROBLEM_BYTES = 1_048_576  # a problemRef ConfigMap value


def alias_bomb(jobs: int = 400, tasks: int = 500, machines: int = 800) -> str:
    """One job, task and machine list, each repeated through aliases: ~6 KB of text that
    validation would expand into jobs x tasks x machines (1.6 x 10^8) machine entries."""
    eligible = ", ".join(["m"] * machines)
    more_tasks = "".join([", *t"] * (tasks - 1))
    more_jobs = "".join([", *j"] * (jobs - 1))
    return (
        "machines: [{name: m}]\n"
        f"jobs: [&j {{name: j, tasks: [&t {{name: t, duration: 1, machines: [{eligible}]}}"
        f"{more_tasks}]}}{more_jobs}]\n"
    )


#: A valid problem written with one anchor and one alias (no expansion to speak of).
HARMLESS_ALIAS = (
    "machines: [{name: m1}, {name: m2}]\n"
    "jobs:\n"
    "- {name: j1, tasks: [{name: a, duration: 2, machines: &both [m1, m2]}]}\n"
    "- {name: j2, tasks: [{name: a, duration: 3, machines: *both}]}\n"
)


def configmap(name: str, text: str, key: str = "problem.yaml") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS},
        "data": {key: text},
    }


def problem_body(name: str, engine: str = "prod", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "SchedulingProblem",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"engineRef": {"name": engine}, **spec},
    }


def ref_body(name: str, configmap_name: str, engine: str = "prod") -> dict[str, Any]:
    return problem_body(
        name, engine, problemRef={"configMapName": configmap_name, "key": "problem.yaml"}
    )


def small_inline() -> dict[str, Any]:
    return {
        "machines": [{"name": "m1"}, {"name": "m2"}],
        "jobs": [
            {
                "name": "j1",
                "tasks": [
                    {"name": "a", "duration": 3, "machines": ["m1"]},
                    {"name": "b", "duration": 2, "machines": ["m2"]},
                ],
            }
        ],
    }


def plant(jobs: int, tasks: int, machines: int, operators: int) -> dict[str, Any]:
    """A plant of the given shape: every task on one machine, half of them need a skill."""
    return {
        "machines": [{"name": f"m{m}"} for m in range(machines)],
        "operators": [{"name": f"op{o}", "skills": [f"s{o % 20}"]} for o in range(operators)],
        "jobs": [
            {
                "name": f"j{j}",
                "tasks": [
                    {
                        "name": f"t{k}",
                        "duration": 1 + (j * 7 + k * 13) % 97,
                        "machines": [f"m{(j + k) % machines}"],
                        **({"skill": f"s{(j + k) % 20}"} if operators and k % 2 else {}),
                    }
                    for k in range(tasks)
                ],
            }
            for j in range(jobs)
        ],
    }


def engine(name: str, **solver: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VulcanEngine",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "version": "2.0.0",
            "solver": {"maxTimeSeconds": 2, "numWorkers": 1, "memoryLimitMB": 512, **solver},
        },
    }


def big_yaml_problem() -> str:
    """A valid problem of ~0.9 MB of YAML (block style: the slow path of any YAML reader)."""
    data = plant(1_700, 10, 200, 500)
    lines = ["machines:"]
    lines += [f"- name: {m['name']}" for m in data["machines"]]
    lines.append("operators:")
    lines += [f"- name: {o['name']}\n  skills: [{o['skills'][0]}]" for o in data["operators"]]
    lines.append("jobs:")
    for job in data["jobs"]:
        lines.append(f"- name: {job['name']}\n  tasks:")
        for task in job["tasks"]:
            skill = f"\n    skill: {task['skill']}" if "skill" in task else ""
            lines.append(
                f"  - name: {task['name']}\n    duration: {task['duration']}\n"
                f"    machines: [{task['machines'][0]}]{skill}"
            )
    text = "\n".join(lines) + "\n"
    assert 700_000 < len(text) <= MAX_PROBLEM_BYTES, len(text)
    return text
