"""`problems`, `gantt` and `compare`: SchedulingProblems as a table, a chart from the stored
schedule, and the latest result against the previous one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

import yaml

from vulcan_operator import kinds
from vulcan_operator.ctl.actions import NOT_FOUND, OK, CtlError
from vulcan_operator.ctl.kube import Kube, ours, path
from vulcan_operator.ctl.view import engine_of
from vulcan_operator.solver import gantt
from vulcan_operator.solver.loader import ProblemFileError, load_text
from vulcan_operator.solver.problem import ProblemData
from vulcan_operator.solver.result import Assignment, SolveResult, Status, relative_gap

#: The latest result and the one of the generation before, as the solver pod writes them
#: (solverpod.store.write_configmap; the plugin does not import the pod's code).
RESULT_KEY = "result.json"
PREVIOUS_KEY = "previous-result.json"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def rows(kube: Kube, engine: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
    """One row per problem: name, engine, phase, status, objective, gap, makespan, and the
    portfolio member whose schedule won (`spec.solver.parallelism` > 1; else None)."""
    ns = None if all_namespaces else kube.namespace
    found = kube.list(path(kinds.PROBLEM.api_version, kinds.PROBLEM.plural, ns))
    out = []
    for p in found:
        if engine and engine_of(p) != engine:
            continue
        st = p.get("status") or {}
        result, progress = st.get("result") or {}, st.get("progress") or {}
        objective = result.get("objective", progress.get("objective"))
        bound = result.get("bound", progress.get("bound"))
        gap = progress.get("gap") if not result else relative_gap(objective, bound)
        out.append(
            {
                "namespace": p["metadata"].get("namespace"),
                "name": p["metadata"]["name"],
                "engine": engine_of(p),
                "phase": st.get("phase") or "Pending",
                "status": result.get("status"),
                "objective": objective,
                "gap": None if gap is None else round(gap, 4),
                "makespan": result.get("makespan"),
                "foundBy": result.get("foundBy"),
                "queuePosition": st.get("queuePosition"),
            }
        )
    return out


def table(items: list[dict[str, Any]], all_namespaces: bool) -> str:
    head = ["NAME", "ENGINE", "PHASE", "STATUS", "OBJECTIVE", "GAP", "MAKESPAN", "MEMBER"]
    lines = [([*(["NAMESPACE"] if all_namespaces else []), *head])]
    for r in items:
        gap = "-" if r["gap"] is None else f"{r['gap'] * 100:.1f}%"
        phase = r["phase"] + (f" #{r['queuePosition']}" if r.get("queuePosition") else "")
        cells = [
            r["name"],
            r["engine"] or "-",
            phase,
            r["status"] or "-",
            _num(r["objective"]),
            gap,
            _num(r["makespan"]),
            _num(r["foundBy"]),
        ]
        lines.append([*([r["namespace"]] if all_namespaces else []), *cells])
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(lines[0]))]
    return (
        "\n".join(
            "   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in lines
        )
        + "\n"
    )


def need_problem(kube: Kube, name: str) -> dict[str, Any]:
    problem = kube.get(ours(kinds.PROBLEM, kube.namespace, name))
    if problem is None:
        raise CtlError(
            f'schedulingproblem "{name}" not found in namespace "{kube.namespace}"', NOT_FOUND
        )
    return problem


def problem_data(kube: Kube, problem: dict[str, Any]) -> ProblemData:
    """The problem as the solver read it: inline, or with its problemRef ConfigMap."""
    documents = [problem]
    ref = (problem.get("spec") or {}).get("problemRef")
    if ref:
        cm = kube.get(path("v1", "configmaps", kube.namespace, ref.get("configMapName")))
        if cm is None:
            raise CtlError(f"configmap/{ref.get('configMapName')} (the problemRef) is gone")
        documents.append({"apiVersion": "v1", **cm, "kind": "ConfigMap"})
    try:
        return load_text(yaml.safe_dump_all(documents), problem["metadata"]["name"]).problem
    except ProblemFileError as exc:
        raise CtlError(f"the problem cannot be read: {exc}") from None


def result_of(data: dict[str, Any]) -> SolveResult:
    """A SolveResult from its public JSON (`SolveResult.to_dict`)."""
    return SolveResult(
        status=Status(data.get("status") or "UNKNOWN"),
        objective=data.get("objective"),
        bound=data.get("bound"),
        makespan=data.get("makespan"),
        wall_seconds=float(data.get("wallSeconds") or 0.0),
        explanation=list(data.get("explanation") or []),
        assignments=[
            Assignment(a["job"], a["task"], a["machine"], a.get("operator"), a["start"], a["end"])
            for a in data.get("assignments") or []
        ],
        solutions=int(data.get("solutions") or 0),
        stop_reason=str(data.get("stopReason") or ""),
    )


def schedules(
    kube: Kube, problem: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(latest, previous) result JSON from the problem's schedule ConfigMap."""
    ref = ((problem.get("status") or {}).get("solutionRef") or {}).get("configMapName")
    cm = kube.get(path("v1", "configmaps", kube.namespace, ref)) if ref else None
    data = (cm or {}).get("data") or {}
    latest = json.loads(data[RESULT_KEY]) if data.get(RESULT_KEY) else None
    previous = None
    if data.get(PREVIOUS_KEY) and data.get("previous-generation") != data.get("generation"):
        previous = json.loads(data[PREVIOUS_KEY])
    return latest, previous


def write_gantt(kube: Kube, name: str, output: str, out: TextIO) -> int:
    problem = need_problem(kube, name)
    latest, _ = schedules(kube, problem)
    if not latest or not latest.get("assignments"):
        raise CtlError(f"schedulingproblem/{name} has no stored schedule (yet)")
    try:
        gantt.write_gantt(
            output, problem_data(kube, problem), result_of(latest), f"{kube.namespace}/{name}"
        )
    except ValueError as exc:
        raise CtlError(str(exc), 2) from None
    print(f"wrote {Path(output)}", file=out)
    return OK


def compare(kube: Kube, name: str) -> dict[str, Any]:
    """The latest result against the one before it (status.history[0])."""
    problem = need_problem(kube, name)
    st = problem.get("status") or {}
    current, history = st.get("result"), st.get("history") or []
    if not current or not history:
        raise CtlError(f"schedulingproblem/{name} has no earlier result to compare with")
    previous = history[0]
    latest, before = schedules(kube, problem)
    data = problem_data(kube, problem)
    out: dict[str, Any] = {"problem": name}
    for key in ("status", "objective", "bound", "makespan", "wallSeconds"):
        out[key] = {"previous": previous.get(key), "current": current.get(key)}
    now_late = gantt.late_jobs(data, result_of(latest).assignments) if latest else None
    was_late = gantt.late_jobs(data, result_of(before).assignments) if before else None
    out["lateJobs"] = {
        "previous": None if was_late is None else sorted(was_late),
        "current": None if now_late is None else sorted(now_late),
    }
    if latest and before:
        old = {(a["job"], a["task"]): a for a in before.get("assignments") or []}
        moved = [
            f"{a['job']}/{a['task']}"
            for a in latest.get("assignments") or []
            if (a["job"], a["task"]) in old
            and (old[(a["job"], a["task"])]["start"], old[(a["job"], a["task"])]["machine"])
            != (a["start"], a["machine"])
        ]
        out["tasksMoved"] = {
            "count": len(moved),
            "of": len(latest.get("assignments") or []),
            "tasks": moved,
        }
    else:
        out["tasksMoved"] = None
    return out


def compare_text(c: dict[str, Any]) -> str:
    lines = [f"SchedulingProblem {c['problem']}: latest result against the previous one", ""]
    lines.append(f"{'':<12} {'previous':>14} {'current':>14}   change")
    for key in ("status", "objective", "bound", "makespan", "wallSeconds"):
        old, new = c[key]["previous"], c[key]["current"]
        change = ""
        if isinstance(old, int | float) and isinstance(new, int | float) and key != "status":
            delta = new - old
            change = f"{delta:+g}" + (f" ({delta / old * 100:+.1f}%)" if old else "")
        lines.append(f"{key:<12} {_num(old):>14} {_num(new):>14}   {change}".rstrip())
    late = c["lateJobs"]

    def names(jobs: list[str] | None) -> str:
        return (
            "unknown"
            if jobs is None
            else (f"{len(jobs)}" + (f" ({', '.join(jobs[:8])})" if jobs else ""))
        )

    lines.append(
        f"{'late jobs':<12} previous {names(late['previous'])}; current {names(late['current'])}"
    )
    moved = c["tasksMoved"]
    if moved is None:
        lines.append("tasks moved  unknown (the previous schedule was not kept beside the latest)")
    else:
        shown = ", ".join(moved["tasks"][:8]) + (" ..." if moved["count"] > 8 else "")
        lines.append(
            f"tasks moved  {moved['count']} of {moved['of']} (start or machine changed)"
            + (f": {shown}" if moved["count"] else "")
        )
    return "\n".join(lines) + "\n"
