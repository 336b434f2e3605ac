"""status.diff: the merge patch that makes the status fields exactly as desired; and
status.generation_patch, the same change as a JSON patch on a generation precondition."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from tests.emulator.objects import merge_patch as merge
from vulcan_operator.status import diff, generation_patch


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


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    return jsonpatch.apply_patch(obj, ops)  # type: ignore[no-any-return]


def test_the_generation_patch_makes_every_desired_field_so() -> None:
    current = {"phase": "Ready", "upgrade": {"step": "Install", "from": "-"}, "restore": {"x": 1}}
    desired = {"phase": "Ready", "upgrade": {"step": "Done"}, "currentVersion": "2.0.0"}
    engine = {"metadata": {"generation": 3, "annotations": {"a": "1"}}, "status": current}
    written = apply(engine, generation_patch(3, current, desired))["status"]
    # What the merge patch of `diff` makes of it: the fields named whole, the rest untouched.
    assert written == {**current, **desired} == merge(current, diff(current, desired))
    # Every named field, also one the server has otherwise than this view (another writer).
    server = {**engine, "status": {**current, "phase": "Stale"}}
    assert apply(server, generation_patch(3, current, desired))["status"]["phase"] == "Ready"
    # None removes a field (one this view has; a JSON patch cannot remove what is not there).
    assert apply(engine, generation_patch(3, current, {"restore": None, "gone": None})) == {
        **engine,
        "status": {"phase": "Ready", "upgrade": {"step": "Install", "from": "-"}},
    }


def test_the_generation_patch_fails_once_the_spec_moved() -> None:
    ops = generation_patch(3, {"phase": "Ready"}, {"phase": "Upgrading"})
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply({"metadata": {"generation": 4}, "status": {"phase": "Ready"}}, ops)
