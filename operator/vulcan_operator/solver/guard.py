"""The wall-clock and memory watchdog of one CP-SAT search.

CP-SAT runs on a thread of its own (named `cp-sat`); `watch()` polls it. It asks the search to
stop at the phase's end, on `stop` (what SIGTERM sets in the entrypoints) or when the process
nears its memory limit, and gives up on the thread at the time limit plus `GRACE_SECONDS`: the
thread is then left behind (a daemon) and the entrypoints exit without waiting for it
(`abandoned_solver_thread`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

GRACE_SECONDS = 1.0
"""A solve returns at most this long after its time limit, whatever CP-SAT does."""
STOP_AFTER = 0.25
"""How long past the limit CP-SAT may run before the guard asks it to stop."""
MEMORY_SHARE = 0.9
"""Share of the memory limit given to CP-SAT (max_memory_in_mb); the guard also stops the
search when the whole process passes it (CP-SAT 9.15 does not always stop by itself)."""
THREAD_NAME = "cp-sat"
_POLL_SECONDS = 0.02
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(slots=True)
class Watch:
    """Why the guard stopped the search ("" when it ran to its own end) and what to tell."""

    reason: str = ""  # interrupted, memoryLimit, timeLimit, wallClockGuard
    detail: str = ""


def resident_mb() -> float | None:
    """This process's resident memory in MiB (Linux), None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * _PAGE_SIZE / 2**20


def abandoned_solver_thread() -> bool:
    """True when a CP-SAT thread outlived its solve (the guard gave up on it)."""
    return any(t.name == THREAD_NAME and t.is_alive() for t in threading.enumerate())


def watch(
    search: Callable[[], None],
    stop_search: Callable[[], None],
    *,
    stop: threading.Event | None,
    elapsed: Callable[[], float],
    phase_end: float,
    limit: float,
    memory_mb: int,
) -> Watch:
    """Run `search` on a thread and watch it: `stop_search()` at phase_end (+ STOP_AFTER), on
    `stop`, or when the process passes MEMORY_SHARE of `memory_mb`; return at the latest at
    limit + GRACE_SECONDS, the thread still running then (reason `wallClockGuard`).

    Raises RuntimeError when no thread can be started (e.g. under a hard memory cap)."""
    thread = threading.Thread(target=search, name=THREAD_NAME, daemon=True)
    thread.start()
    result = Watch()
    requested = ""
    stop_at, abandon_at = phase_end + STOP_AFTER, limit + GRACE_SECONDS
    memory_cap = MEMORY_SHARE * memory_mb
    while thread.is_alive():
        thread.join(_POLL_SECONDS)
        now = elapsed()
        if not requested:
            rss = resident_mb()
            if stop is not None and stop.is_set():
                requested = "interrupted"
                abandon_at = min(abandon_at, now + GRACE_SECONDS * 0.75)
            elif rss is not None and rss > memory_cap:
                requested = "memoryLimit"
                abandon_at = min(abandon_at, now + GRACE_SECONDS * 0.75)
                result.detail = (
                    f"The solver reached {rss:.0f} MiB of its {memory_mb} MiB memory limit and "
                    "stopped with the best schedule so far; raise spec.solver.memoryLimitMB "
                    "to search further."
                )
            elif now >= stop_at:
                requested = "timeLimit"
            if requested:
                result.reason = requested
                stop_search()
        if now >= abandon_at and thread.is_alive():
            result.reason = "wallClockGuard"
            return result
    return result
