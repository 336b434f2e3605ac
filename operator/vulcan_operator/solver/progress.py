"""Progress of a running solve: one event per improving schedule, to pluggable callbacks.

The solver calls every `ProgressCallback` with a `Progress` each time it finds a better
schedule. The CLI prints them as text lines, the runner and the solver pod as JSON lines; the
pod also plugs in its own callback (its status updates). Callbacks run on the solver's
thread: keep them short and never raise (an exception is caught and dropped).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class Progress:
    """One improving schedule."""

    objective: int
    bound: int | None
    gap: float | None
    """Relative gap as a fraction: 0.05 is 5 %."""
    elapsed_seconds: float
    solutions: int
    """Improving schedules so far, this one included."""
    source: str = ""
    """Where it came from: `dispatch` (the greedy start) or `cp-sat`."""

    def to_event(self) -> dict[str, Any]:
        return {
            "event": "progress",
            "objective": self.objective,
            "bound": self.bound,
            "gap": None if self.gap is None else round(self.gap, 6),
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "solutions": self.solutions,
        }

    def to_line(self) -> str:
        bound = "-" if self.bound is None else str(self.bound)
        gap = "-" if self.gap is None else f"{100 * self.gap:.2f}%"
        return (
            f"#{self.solutions:<4d} {self.elapsed_seconds:8.2f}s  objective {self.objective:<10d}"
            f" bound {bound:<10s} gap {gap:>8s}  {self.source}"
        ).rstrip()


ProgressCallback = Callable[[Progress], None]


def text_printer(stream: TextIO | None = None) -> ProgressCallback:
    """A callback printing one human-readable line per event."""

    def emit(progress: Progress) -> None:
        print(progress.to_line(), file=stream or sys.stdout, flush=True)

    return emit


def json_lines_printer(stream: TextIO | None = None) -> ProgressCallback:
    """A callback printing one JSON object per line (the runner's and the pod's stdout)."""

    def emit(progress: Progress) -> None:
        print(json.dumps(progress.to_event()), file=stream or sys.stdout, flush=True)

    return emit


def fan_out(callbacks: Sequence[ProgressCallback]) -> ProgressCallback:
    """One callback calling each of `callbacks`; a failing one does not stop the others."""

    def emit(progress: Progress) -> None:
        for callback in callbacks:
            with contextlib.suppress(Exception):  # reporting must never kill a solve
                callback(progress)

    return emit
