"""`status.progress` while the pod solves, patched from a thread of its own."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from vulcan_operator.k8s import Api, Ref
from vulcan_operator.solver.progress import Progress
from vulcan_operator.solverpod import race
from vulcan_operator.solverpod.status import progress_status

__all__ = ["DEFAULT_PROGRESS_INTERVAL", "StatusReporter", "log"]

DEFAULT_PROGRESS_INTERVAL = 1.0


def log(message: str) -> None:
    print(f"solverpod: {message}", file=sys.stderr, flush=True)


class StatusReporter:
    """Patches `status.progress` from its own thread, at most once per `interval` seconds.

    `report()` is the solver's progress callback: it only keeps the newest event, so a slow
    API never slows the search. `close()` sends what is still pending and stops the thread.
    """

    def __init__(
        self,
        api: Api,
        ref: Ref,
        interval: float = DEFAULT_PROGRESS_INTERVAL,
        best_of_generation: int | None = None,
    ) -> None:
        self.api = api
        self.ref = ref
        self.interval = interval
        #: Pods racing on the problem (generation G): progress is patched only when better
        #: than the one shown (`race.write_best_progress`), so it is the best across pods.
        self.best_of_generation = best_of_generation
        self.patches = 0
        self._lock = threading.Lock()
        self._pending: dict[str, Any] | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, progress: Progress) -> None:
        self.set(progress_status(progress))

    def set(self, status_progress: dict[str, Any]) -> None:
        with self._lock:
            self._pending = status_progress
        self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while not self._closing.is_set():
                self._wake.wait()
                self._wake.clear()
                self._flush(loop)
                self._closing.wait(self.interval)  # the throttle; closing cuts it short
            self._flush(loop)
        finally:
            loop.close()

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            if self.best_of_generation is not None:
                gen = self.best_of_generation
                if race.write_best_progress(self.api, self.ref, gen, pending):
                    self.patches += 1
                return
            loop.run_until_complete(
                self.api.patch(self.ref, {"status": {"progress": pending}}, subresource="status")
            )
            self.patches += 1
        except Exception as error:  # progress is best effort: the result still gets through
            log(f"cannot report progress: {error}")
