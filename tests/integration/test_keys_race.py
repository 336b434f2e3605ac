"""Regression (issue 19): two reconciles of one engine at once must not replace its generated keys.

bench/scale.py found it (168 of 200 engines had their keys Secret patched over, fixed in
f7bd138): the create handler and a resync timer of one engine both read "no keys Secret" and
generated keys; one created the Secret, and the other, reaching its apply after that create,
found a Secret with other keys and patched its own over them. The fix (f7bd138) has two halves:

- the reconcile: keys generated because there was no Secret are only ever created, never
  patched in. Tested by two `reconcile.engine.reconcile` calls, no Kopf: the second is held
  right after it read "no Secret" (a pause in its own client) while the first runs to the end.
  Fails without this half, whatever the handlers do.
- the handlers: Kopf's create handler and resync timers of one engine take turns (a lock per
  engine; tests/integration/test_engine.py::test_overlapping_reconciles_run_one_migration).
  Tested here end to end: the real operator with a 1 s resync, the ConfigMap's create (applied
  between the keys read and the keys Secret) made slow by the emulator, so timers fire inside
  the create handler. Passes with either half; fails with neither.

Both tests fail on f7bd138^ (the Secret is patched after its create), pass after it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.emulator import Emulator, Fault, FaultPolicy, FaultyEmulator, RequestRecord
from tests.emulator.faults import from_operator
from tests.support.backups import db_secret, engine
from tests.support.kopf_runner import OperatorRunner
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.reconcile import engine as engine_reconcile

KEYS = "prod-keys"
DELAY = 2.5  # seconds the ConfigMap's create takes: more than two 1 s resyncs


def creates_config(record: RequestRecord) -> bool:
    body = record.body if isinstance(record.body, dict) else {}
    return (record.verb, record.resource) == ("create", "configmaps") and (
        body.get("metadata") or {}
    ).get("name") == "prod-config"


def config_create(raw: Any, record: RequestRecord) -> bool:
    return from_operator(raw, record) and creates_config(record)


SLOW_CONFIG = pytest.mark.emulator(
    cls=FaultyEmulator,
    faults=FaultPolicy(rate=1.0, kinds={Fault.SLOW}, delay=(DELAY, DELAY), scope=config_create),
)


def keys_writes(emulator: Emulator) -> list[RequestRecord]:
    """Every request that tried to write the keys Secret, in the order they arrived."""
    return [
        r
        for r in emulator.requests()
        if r.resource == "secrets"
        and r.is_write
        and (r.name == KEYS or ((r.body or {}).get("metadata") or {}).get("name") == KEYS)
    ]


def assert_created_once_and_kept(emulator: Emulator) -> None:
    writes = keys_writes(emulator)
    created = [r for r in writes if r.verb == "create" and r.status == 201]
    assert len(created) == 1, [(r.verb, r.status) for r in writes]
    replaced = [(r.verb, r.status) for r in writes if r.verb != "create" and r.status == 200]
    assert not replaced, f"the keys Secret was written over after its create: {replaced}"
    secret = emulator.get("secrets", "default", KEYS)
    assert secret is not None
    assert secret["data"] == created[0].body["data"]  # the first keys, still


class HeldAfterKeysRead(Api):
    """The operator's client, held right after its first read of the keys Secret."""

    def __init__(self) -> None:
        super().__init__()
        self.read: asyncio.Future[dict[str, Any] | None] = asyncio.Future()
        self.resume = asyncio.Event()

    async def get(self, ref: Ref) -> dict[str, Any] | None:
        obj = await super().get(ref)
        if ref.name == KEYS and not self.read.done():
            self.read.set_result(obj)
            await self.resume.wait()
        return obj


async def test_a_reconcile_that_read_no_keys_keeps_the_keys_created_meanwhile(
    emulator: Emulator, kube_config: Any
) -> None:
    emulator.create(db_secret("postgresql://vulcan:s3cr3t-pw@db:5432/vulcan"))
    body = emulator.create(engine())
    settings = Settings.from_env()
    held = HeldAfterKeysRead()
    second = asyncio.create_task(engine_reconcile.reconcile(held, body, settings))
    assert await asyncio.wait_for(held.read, timeout=60) is None  # it read: no keys Secret

    first = await engine_reconcile.reconcile(Api(), body, settings)  # creates the Secret
    held.resume.set()
    outcome = await asyncio.wait_for(second, timeout=60)

    assert_created_once_and_kept(emulator)
    assert "Failed" not in (first.status["phase"], outcome.status["phase"])


@pytest.fixture
def fast_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VULCAN_RESYNC_SECONDS", "1")


@SLOW_CONFIG
async def test_create_handler_and_resync_timer_take_turns(
    fast_resync: None, emulator: Emulator, operator: OperatorRunner
) -> None:
    emulator.create(db_secret("postgresql://vulcan:s3cr3t-pw@db:5432/vulcan"))
    emulator.create(engine())

    def resynced_after_the_keys() -> bool:
        """The ConfigMap's slow creates are answered, and a reconcile that started after the
        last answer (its read of the database Secret) has read the keys Secret."""
        creates = [r for r in emulator.requests() if creates_config(r)]
        if not creates or not all(r.status for r in creates):
            return False
        answered = creates[-1].time + DELAY
        later = [r for r in emulator.requests(since=creates[-1].index) if r.time > answered]
        reads = [(r.verb, r.resource, r.name) for r in later]
        started = ("get", "secrets", "prod-database")
        return started in reads and ("get", "secrets", KEYS) in reads[reads.index(started) :]

    await emulator.wait_for(resynced_after_the_keys, timeout=60)
    assert_created_once_and_kept(emulator)
