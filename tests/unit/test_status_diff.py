"""status.diff: the merge patch that makes the status fields exactly as desired."""

from __future__ import annotations

from vulcan_operator.status import diff


def test_unchanged_fields_are_left_out() -> None:
    assert diff({"phase": "Ready", "replicas": 3}, {"phase": "Ready", "replicas": 3}) == {}
    assert diff(None, {"phase": "Ready"}) == {"phase": "Ready"}


def test_a_changed_object_drops_the_keys_it_no_longer_has() -> None:
    current = {"lastBackup": {"time": "t1", "location": "pvc://a/b", "outcome": "Succeeded"}}
    desired = {"lastBackup": {"time": "t2", "outcome": "Failed", "step": "dump"}}
    assert diff(current, desired) == {
        "lastBackup": {"time": "t2", "location": None, "outcome": "Failed", "step": "dump"}
    }


def test_nested_objects_are_replaced_all_the_way_down() -> None:
    current = {"upgrade": {"step": "Failed", "detail": {"a": 1, "b": 2}, "reason": "x"}}
    desired = {"upgrade": {"step": "Backup", "detail": {"a": 1}}}
    assert diff(current, desired) == {
        "upgrade": {"step": "Backup", "detail": {"a": 1, "b": None}, "reason": None}
    }


def test_explicit_nulls_and_lists_pass_through() -> None:
    assert diff({"restore": {"name": "r"}}, {"restore": None}) == {"restore": None}
    assert diff({"steps": [{"name": "A"}]}, {"steps": [{"name": "B"}]}) == {
        "steps": [{"name": "B"}]
    }
