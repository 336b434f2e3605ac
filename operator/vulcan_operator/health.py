"""Liveness that means "still processing", not just "the process is up".

A known Kopf failure mode is a watch stream or worker that freezes silently. Every handler
beats the heartbeat; each engine's resync timer runs at least every `resync_seconds`, so while
the operator knows of any engine, a silence longer than the threshold means processing stalled
and the liveness probe fails (Kubernetes then restarts the pod). With no engines there is
nothing that must tick, and the probe stays healthy.
"""

from __future__ import annotations

import time
from typing import Any

import kopf


class Heartbeat:
    def __init__(self, threshold_seconds: float) -> None:
        self.threshold = threshold_seconds
        self.last = time.monotonic()
        self.objects: set[str] = set()

    def beat(self, uid: str | None = None) -> None:
        self.last = time.monotonic()
        if uid:
            self.objects.add(uid)

    def forget(self, uid: str) -> None:
        self.objects.discard(uid)

    def silence(self) -> float:
        return time.monotonic() - self.last

    def check(self) -> dict[str, Any]:
        """Raises when processing stalled; otherwise what the probe reports."""
        silent = self.silence()
        if self.objects and silent > self.threshold:
            raise kopf.PermanentError(
                f"no handler ran for {silent:.0f} s (threshold {self.threshold:.0f} s) "
                f"while {len(self.objects)} engine(s) need resyncs: processing stalled"
            )
        return {"silentSeconds": round(silent, 1), "engines": len(self.objects)}


def register(registry: kopf.OperatorRegistry, heartbeat: Heartbeat) -> None:
    def processing(**_: Any) -> dict[str, Any]:
        return heartbeat.check()

    kopf.on.probe(id="processing", registry=registry)(processing)
