"""handlers.without_finalizers: no handler of the operator asks Kopf for a finalizer (also the
check that Kopf still keeps its timers and daemons where `without_finalizers` looks)."""

from __future__ import annotations

from vulcan_operator.config import Settings
from vulcan_operator.main import make_registry


def test_no_timer_daemon_or_deletion_handler_asks_for_a_finalizer() -> None:
    registry = make_registry(Settings())
    spawning = registry._spawning.get_all_handlers()
    # Kopf's timers and daemons ask for one by default: the engine's resync timer and its
    # `follow` daemon, the backups' and restores' polling and the problems' daemon are all
    # there, without it.
    ids = {str(h.id) for h in spawning}
    assert {"follow", "reconcile_backup", "reconcile_restore"} <= ids and len(spawning) == 5, ids
    assert [h.id for h in spawning if h.requires_finalizer] == []
    changing = registry._changing.get_all_handlers()
    assert changing and [h.id for h in changing if h.requires_finalizer] == []
