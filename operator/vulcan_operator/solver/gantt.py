"""Gantt charts of a schedule: a self-contained SVG (or an HTML page wrapping it).

Machines are rows (operators follow in a second block when the problem has any), tasks are
bars coloured by job with the task name and operator written in when they fit, and a tooltip
with everything (job, task, machine, operator, start, end). Unavailable windows are hatched.
Due dates are red ticks on the row of the job's last task; the bars of a late job have a red
outline, and the late jobs are listed under the title and marked in the legend.
The width grows with the busiest row, so 50 tasks read at a glance and 2,000 stay usable by
scrolling and hovering. No scripts, fonts or other external resources.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from vulcan_operator.solver.problem import ProblemData
from vulcan_operator.solver.result import Assignment, SolveResult

LABEL_WIDTH = 150
TIME_UNIT = "time (problem units) →"
"""The time axis' label: times are in whatever unit the problem was written in."""
MIN_PLOT_WIDTH = 960
MAX_PLOT_WIDTH = 16_000
PX_PER_TASK = 14
CHAR_WIDTH = 6.4
LEGEND_MAX_JOBS = 60


def job_color(index: int) -> str:
    """Distinct colours for neighbouring job indices (golden-angle hues)."""
    hue = (index * 137.508) % 360
    lightness = 42 if index % 2 else 56
    return f"hsl({hue:.0f},62%,{lightness}%)"


def _tick_step(span: int, pixels: float) -> int:
    raw = max(1.0, span / max(1.0, pixels / 90))
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def _text(x: float, y: float, content: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def _fit(label: str, width: float) -> str:
    room = int((width - 4) / CHAR_WIDTH)
    if room >= len(label):
        return label
    return label[: room - 1] + "…" if room >= 3 else ""


def late_jobs(problem: ProblemData, assignments: list[Assignment]) -> dict[str, tuple[int, int]]:
    """Jobs that end after their due date: name -> (end, due), in the problem's job order."""
    ends: dict[str, int] = {}
    for a in assignments:
        ends[a.job] = max(ends.get(a.job, 0), a.end)
    return {
        job.name: (ends[job.name], job.dueDate)
        for job in problem.jobs
        if job.dueDate is not None and job.name in ends and ends[job.name] > job.dueDate
    }


def _due_marks(problem: ProblemData, assignments: list[Assignment]) -> dict[str, list[str]]:
    """Machine -> the jobs whose last task runs there and that have a due date."""
    last: dict[str, Assignment] = {}
    for a in assignments:
        if a.job not in last or a.end > last[a.job].end:
            last[a.job] = a
    marks: dict[str, list[str]] = {}
    for job in problem.jobs:
        if job.dueDate is not None and job.name in last:
            marks.setdefault(last[job.name].machine, []).append(job.name)
    return marks


def render_svg(problem: ProblemData, result: SolveResult, title: str = "") -> str:
    """The chart as an SVG document."""
    assignments = result.assignments
    late = late_jobs(problem, assignments)
    dues = {job.name: job.dueDate for job in problem.jobs if job.dueDate is not None}
    due_marks = _due_marks(problem, assignments)
    job_index = {job.name: j for j, job in enumerate(problem.jobs)}
    machine_rows = [m.name for m in problem.machines]
    operator_rows = [
        o.name for o in problem.operators if any(a.operator == o.name for a in assignments)
    ]
    rows: list[tuple[str, str]] = [("machine", m) for m in machine_rows]
    rows += [("operator", o) for o in operator_rows]
    per_row: dict[tuple[str, str], list[Assignment]] = {row: [] for row in rows}
    for a in assignments:
        per_row[("machine", a.machine)].append(a)
        if a.operator is not None and ("operator", a.operator) in per_row:
            per_row[("operator", a.operator)].append(a)
    end = max([a.end for a in assignments] + [1])
    show_horizon = problem.horizon is not None and problem.horizon <= end * 1.25
    if show_horizon and problem.horizon is not None:
        end = max(end, problem.horizon)
    busiest = max((len(v) for v in per_row.values()), default=0)
    plot = min(MAX_PLOT_WIDTH, max(MIN_PLOT_WIDTH, busiest * PX_PER_TASK))
    scale = plot / end
    row_h = 30 if len(rows) <= 40 else 18
    top = 72 if dues else 56
    gap_between = 26 if operator_rows else 0
    chart_h = row_h * len(rows) + gap_between
    n_legend = min(len(problem.jobs), LEGEND_MAX_JOBS)
    legend_cols = max(1, int((LABEL_WIDTH + plot) // 150))
    legend_h = 22 * math.ceil(n_legend / legend_cols) + (22 if len(problem.jobs) > n_legend else 0)
    width = LABEL_WIDTH + plot + 20
    height = top + chart_h + 40 + legend_h + 10

    def y_of(r: int) -> float:
        return top + r * row_h + (gap_between if r >= len(machine_rows) else 0)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">',
        '<defs><pattern id="off" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="2"/>'
        "</pattern></defs>",
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    heading = title or "Schedule"
    summary = f"{result.status.value}"
    if result.objective is not None:
        summary += f", objective {result.objective}, makespan {result.makespan}"
    if result.bound is not None:
        summary += f", bound {result.bound}"
    if problem.horizon is not None:
        summary += f", horizon {problem.horizon}"
    out.append(_text(10, 20, heading, font_size="15", font_weight="bold"))
    if dues:
        summary += f"; {len(late)} of {len(dues)} jobs with a due date late"
    out.append(_text(10, 38, f"{summary}; {len(assignments)} tasks", fill="#444"))
    if late:
        listed = ", ".join(f"{j} (+{end - due})" for j, (end, due) in list(late.items())[:10])
        more = f" and {len(late) - 10} more" if len(late) > 10 else ""
        out.append(_text(10, 54, f"Late: {listed}{more}", fill="#c00"))
    # Time axis and grid; the problem's times have no unit of their own: say so.
    out.append(_text(8, top - 6, TIME_UNIT, fill="#555", font_style="italic"))
    step = _tick_step(end, plot)
    for t in range(0, end + 1, step):
        x = LABEL_WIDTH + t * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + chart_h}" '
            'stroke="#e3e3e3"/>'
        )
        out.append(_text(x, top - 6, str(t), text_anchor="middle", fill="#555"))
    if show_horizon and problem.horizon is not None:
        x = LABEL_WIDTH + problem.horizon * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + chart_h}" '
            'stroke="#c00" stroke-dasharray="4 3"><title>horizon '
            f"{problem.horizon}</title></line>"
        )
    machines = {m.name: m for m in problem.machines}
    for r, (kind, name) in enumerate(rows):
        y = y_of(r)
        if r % 2 == 0:
            out.append(
                f'<rect x="0" y="{y:.1f}" width="{width:.0f}" height="{row_h}" fill="#f7f7f7"/>'
            )
        label = name
        out.append(_text(8, y + row_h / 2 + 4, _fit(label, LABEL_WIDTH - 10)))
        if kind == "machine":
            for window in machines[name].unavailable:
                x0 = LABEL_WIDTH + min(window.start, end) * scale
                x1 = LABEL_WIDTH + min(window.end, end) * scale
                if x1 > x0:
                    out.append(
                        f'<rect x="{x0:.1f}" y="{y + 2:.1f}" width="{x1 - x0:.1f}" '
                        f'height="{row_h - 4}" fill="url(#off)"><title>{escape(name)} '
                        f"unavailable [{window.start}, {window.end})</title></rect>"
                    )
        for a in per_row[(kind, name)]:
            x = LABEL_WIDTH + a.start * scale
            w = max(1.0, (a.end - a.start) * scale)
            color = job_color(job_index.get(a.job, 0))
            tip = (
                f"{a.job} / {a.task}\nmachine {a.machine}"
                + (f", operator {a.operator}" if a.operator else "")
                + f"\nstart {a.start}, end {a.end} (duration {a.end - a.start})"
            )
            if a.job in dues:
                tip += f"\ndue {dues[a.job]}" + (
                    f", LATE by {late[a.job][0] - late[a.job][1]}" if a.job in late else ""
                )
            stroke = '"#c00" stroke-width="2"' if a.job in late else '"white" stroke-width="0.6"'
            out.append(
                f'<g><title>{escape(tip)}</title><rect x="{x:.1f}" y="{y + 3:.1f}" '
                f'width="{w:.1f}" height="{row_h - 6}" rx="2" fill="{color}" '
                f"stroke={stroke}/>"
            )
            text = a.task if kind == "machine" else f"{a.job}/{a.task}"
            if kind == "machine" and a.operator:
                text += f" · {a.operator}"
            shown = _fit(text, w)
            if shown and row_h >= 18:
                out.append(_text(x + 2, y + row_h / 2 + 4, shown, fill="white"))
            out.append("</g>")
        for job_name in due_marks.get(name, []) if kind == "machine" else []:
            x = LABEL_WIDTH + min(dues[job_name], end) * scale
            word = "LATE" if job_name in late else "met"
            out.append(
                f'<path d="M{x - 4:.1f},{y:.1f} L{x + 4:.1f},{y:.1f} L{x:.1f},{y + 6:.1f} Z" '
                f'fill="#c00"><title>{escape(f"{job_name} due {dues[job_name]} ({word})")}'
                f'</title></path><line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" '
                f'y2="{y + row_h:.1f}" stroke="#c00" stroke-width="1"/>'
            )
    if operator_rows:
        y = y_of(len(machine_rows)) - gap_between / 2 + 4
        out.append(_text(8, y, "Operators", font_weight="bold", fill="#444"))
    # Legend: one swatch per job.
    y0 = top + chart_h + 30
    for j, job in enumerate(problem.jobs[:n_legend]):
        x = 10 + (j % legend_cols) * 150
        y = y0 + (j // legend_cols) * 22
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{job_color(j)}"/>')
        if job.name in late:
            out.append(_text(x + 16, y, _fit(f"{job.name} (late)", 130), fill="#c00"))
        else:
            out.append(_text(x + 16, y, _fit(job.name, 130)))
    if len(problem.jobs) > n_legend:
        y = y0 + math.ceil(n_legend / legend_cols) * 22
        out.append(
            _text(
                10,
                y,
                f"… and {len(problem.jobs) - n_legend} more jobs (hover a bar for its job)",
                fill="#555",
            )
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_html(problem: ProblemData, result: SolveResult, title: str = "") -> str:
    """An HTML page with the SVG inline (self-contained, scrolls sideways when wide)."""
    heading = escape(title or "Schedule")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{heading}</title><style>body{{font-family:sans-serif;margin:16px}}"
        ".chart{overflow-x:auto;border:1px solid #ddd}</style></head><body>\n"
        f'<div class="chart">\n{render_svg(problem, result, title)}</div>\n</body></html>\n'
    )


def write_gantt(
    path: str | Path, problem: ProblemData, result: SolveResult, title: str = ""
) -> None:
    """Write an .svg or .html chart, chosen by the file suffix."""
    path = Path(path)
    if path.suffix.lower() in (".html", ".htm"):
        text = render_html(problem, result, title)
    elif path.suffix.lower() == ".svg":
        text = render_svg(problem, result, title)
    else:
        raise ValueError(f"{path}: the Gantt chart must be .svg or .html")
    path.write_text(text, encoding="utf-8")
