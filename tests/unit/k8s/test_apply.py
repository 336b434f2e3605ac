"""`k8s.apply`: created / patched / unchanged, CloudNativePG's "not ours → refuse", and the
create-only and unowned objects, against a small in-memory Api."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vulcan_operator.k8s import ApiError, NotOurs, Ref, apply, contains
from vulcan_operator.names import LABEL_MANAGED_BY, MANAGED_BY

OWNER_UID = "uid-engine"


class FakeApi:
    """Objects by (kind, namespace, name); records every write."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {self._key(Ref.of(o)): copy.deepcopy(o) for o in objects}
        self.writes: list[tuple[str, str]] = []
        self.gets = 0

    @staticmethod
    def _key(ref: Ref) -> tuple[str, str | None, str | None]:
        return (ref.kind, ref.namespace, ref.name)

    async def get(self, ref: Ref) -> dict[str, Any] | None:
        self.gets += 1
        obj = self.objects.get(self._key(ref))
        return copy.deepcopy(obj) if obj is not None else None

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = self._key(Ref.of(obj))
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f"{key} already exists")
        self.writes.append(("create", obj["metadata"]["name"]))
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def patch(self, ref: Ref, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.writes.append(("patch", str(ref.name)))
        current = self.objects[self._key(ref)]
        _merge(current, body)
        return current


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def owner(uid: str = OWNER_UID) -> dict[str, Any]:
    return {"apiVersion": "x/v1", "kind": "VulcanEngine", "name": "e", "uid": uid}


def service(*, owners: list[dict[str, Any]] | None = None, port: int = 80) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "e", "namespace": "ns"}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [port]}}


def claim(labels: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "e-backups", "namespace": "ns"}
    if labels is not None:
        meta["labels"] = labels
    spec = {"resources": {"requests": {"storage": "1Gi"}}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


async def test_a_missing_object_is_created() -> None:
    api = FakeApi()
    assert await apply(api, service(owners=[owner()])) == "created"  # type: ignore[arg-type]
    assert api.writes == [("create", "e")]


async def test_our_object_that_differs_is_patched_and_an_equal_one_left_alone() -> None:
    api = FakeApi(service(owners=[owner()], port=80))
    assert await apply(api, service(owners=[owner()], port=81)) == "patched"  # type: ignore[arg-type]
    assert api.objects[("Service", "ns", "e")]["spec"]["ports"] == [81]
    assert await apply(api, service(owners=[owner()], port=81)) == "unchanged"  # type: ignore[arg-type]
    assert api.writes == [("patch", "e")]


@pytest.mark.parametrize(
    "owners", [None, [], [owner("uid-someone-else")]], ids=["none", "empty", "other"]
)
@pytest.mark.parametrize("create_only", [False, True])
@pytest.mark.parametrize("likely_new", [False, True])
async def test_an_object_that_is_not_ours_is_refused_and_untouched(
    owners: list[dict[str, Any]] | None, create_only: bool, likely_new: bool
) -> None:
    theirs = service(owners=owners, port=8080)
    api = FakeApi(theirs)
    with pytest.raises(NotOurs) as refused:
        await apply(
            api,  # type: ignore[arg-type]
            service(owners=[owner()]),
            create_only=create_only,
            likely_new=likely_new,
        )
    assert api.writes == [] and api.objects[("Service", "ns", "e")] == theirs
    assert (refused.value.kind, refused.value.name) == ("Service", "e")
    assert str(refused.value) == (
        "Service e already exists and does not belong to this VulcanEngine; rename or delete it"
    )


async def test_one_of_several_owners_is_enough() -> None:
    api = FakeApi(service(owners=[owner("uid-other"), owner()]))
    assert await apply(api, service(owners=[owner()])) == "patched"  # type: ignore[arg-type]


async def test_create_only_is_created_once_and_never_patched() -> None:
    api = FakeApi()
    assert await apply(api, service(owners=[owner()], port=1), create_only=True) == "created"  # type: ignore[arg-type]
    desired = service(owners=[owner()], port=2)
    assert await apply(api, desired, create_only=True) == "unchanged"  # type: ignore[arg-type]
    assert api.objects[("Service", "ns", "e")]["spec"]["ports"] == [1]


async def test_likely_new_creates_first_and_checks_ownership_after_a_conflict() -> None:
    api = FakeApi()
    assert await apply(api, service(owners=[owner()]), likely_new=True) == "created"  # type: ignore[arg-type]
    assert api.gets == 0  # one request for a child that never existed
    desired = service(owners=[owner()], port=81)
    assert await apply(api, desired, likely_new=True) == "patched"  # type: ignore[arg-type]


async def test_an_unowned_object_of_ours_is_created_then_never_patched() -> None:
    ours = {LABEL_MANAGED_BY: MANAGED_BY, "app.kubernetes.io/instance": "e"}
    api = FakeApi()
    assert await apply(api, claim(ours)) == "created"  # type: ignore[arg-type]
    grown = claim(ours)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert await apply(api, grown) == "unchanged"  # type: ignore[arg-type]
    assert api.writes == [("create", "e-backups")]


@pytest.mark.parametrize("labels", [None, {LABEL_MANAGED_BY: "helm"}], ids=["bare", "helm"])
async def test_an_unowned_object_without_our_mark_is_refused(labels: dict[str, str] | None) -> None:
    theirs = claim(labels)
    api = FakeApi(theirs)
    with pytest.raises(NotOurs, match="does not belong to the operator"):
        await apply(api, claim({LABEL_MANAGED_BY: MANAGED_BY}), create_only=True)  # type: ignore[arg-type]
    assert api.objects[("PersistentVolumeClaim", "ns", "e-backups")] == theirs


async def test_an_object_without_labels_nor_owner_is_anyones() -> None:
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "p"}}
    api = FakeApi({**peering, "metadata": {"name": "p", "labels": {"by": "helm"}}})
    assert await apply(api, peering, create_only=True) == "unchanged"  # type: ignore[arg-type]
    assert api.writes == []


async def test_a_configmap_key_we_no_longer_want_is_removed_with_a_change() -> None:
    old: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    old["metadata"] |= {"namespace": "ns", "ownerReferences": [owner()]}
    api = FakeApi({**old, "data": {"a": "1", "b": "2"}})
    assert await apply(api, {**old, "data": {"a": "3"}}) == "patched"  # type: ignore[arg-type]
    assert api.objects[("ConfigMap", "ns", "c")]["data"] == {"a": "3"}


def test_contains_ignores_server_fields_and_compares_quantities_by_value() -> None:
    assert contains({"a": 1, "b": {"cpu": "1", "x": 2}}, {"b": {"cpu": "1000m"}})
    assert not contains({"a": [1, 2]}, {"a": [1]})
