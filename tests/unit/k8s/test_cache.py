"""k8s.cache: reads of an engine reconcile served from indexes, and this process's own writes
kept until the watch shows them (the API is never called here: every read is a cached kind)."""

from __future__ import annotations

from typing import Any

from vulcan_operator import API_VERSION, names
from vulcan_operator.k8s import Api, Ref
from vulcan_operator.k8s.cache import (
    ENGINE,
    KOPF_DIFFBASE,
    CachedApi,
    Packed,
    Writes,
    by_engine,
    by_name,
    fingerprint,
)

NS = "team"
SERVICE = Ref("v1", "Service", NS, "prod")


def obj(kind: str, name: str, rv: str, uid: str = "u1", **extra: Any) -> dict[str, Any]:
    labels = {names.LABEL_ENGINE: "prod", names.LABEL_COMPONENT: "backend"}
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "resourceVersion": rv,
            "labels": labels,
        },
        **extra,
    }


def test_our_write_stands_until_the_watch_shows_that_version_or_a_newer_one() -> None:
    writes = Writes()
    old, ours = obj("Service", "prod", "5"), obj("Service", "prod", "7", spec={"a": 1})
    writes.wrote(SERVICE, ours)
    assert writes.pick(SERVICE, old) == ours
    assert writes.pick(SERVICE, None) == ours  # the watch has not shown the create yet
    newer = obj("Service", "prod", "8")
    assert writes.pick(SERVICE, newer) == newer
    assert writes.pick(SERVICE, old) == old  # forgotten once the watch caught up


def test_picking_with_our_own_answer_keeps_it() -> None:
    """A reconcile picks again after its own writes, with the copy it was given (perhaps our
    answer itself): that same version must not make the answer forgotten while the watch
    is still behind it (the next resync would start from the watch's older copy)."""
    writes = Writes()
    old, ours = obj("Service", "prod", "5"), obj("Service", "prod", "7", spec={"a": 1})
    writes.wrote(SERVICE, ours)
    assert writes.pick(SERVICE, dict(ours)) == ours
    assert writes.pick(SERVICE, old) == ours  # still ours: the watch has not shown it yet


def test_a_deletion_stands_until_the_watch_shows_it_unless_made_again() -> None:
    writes = Writes()
    before = obj("Service", "prod", "5")
    writes.wrote(SERVICE, None, before)
    assert writes.deleted(SERVICE)
    assert writes.pick(SERVICE, before) is None  # the watch still shows it
    again = obj("Service", "prod", "9", uid="u2")
    assert writes.pick(SERVICE, again) == again


def test_the_watch_makes_our_answer_forgotten() -> None:
    writes = Writes()
    ours = obj("Service", "prod", "7")
    writes.wrote(SERVICE, ours)
    writes.watched(SERVICE, obj("Service", "prod", "6"))
    assert writes.pick(SERVICE, None) == ours  # an older event: still ours
    writes.watched(SERVICE, obj("Service", "prod", "7"))
    assert writes.pick(SERVICE, None) is None  # caught up, then deleted: gone
    writes.wrote(SERVICE, ours)
    writes.watched(SERVICE, ours, gone=True)
    assert writes.pick(SERVICE, None) is None


def test_a_fingerprint_ignores_status_and_the_servers_bookkeeping() -> None:
    a = obj("Deployment", "prod", "5", spec={"replicas": 1}, status={"ready": 0})
    b = obj("Deployment", "prod", "6", spec={"replicas": 1}, status={"ready": 1})
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(obj("Deployment", "prod", "7", spec={"replicas": 2}))
    writes = Writes()
    writes.wrote(Ref("apps/v1", "Deployment", NS, "prod"), a)
    assert writes.ours(Ref("apps/v1", "Deployment", NS, "prod"), fingerprint(b))


async def test_reads_come_from_the_indexes_and_our_writes() -> None:
    service, account = obj("Service", "prod", "5"), obj("ServiceAccount", "prod", "5")
    other = {**obj("ConfigMap", "prod-x", "5"), "metadata": {"name": "prod-x", "namespace": NS}}
    config = obj("ConfigMap", "prod-config", "5")
    engine = {"apiVersion": API_VERSION, "kind": "VulcanEngine", "metadata": {"name": "prod"}}
    packed = {id(o): Packed(o, "v1", o["kind"]) for o in (service, account, config, other)}
    indexes: dict[tuple[str, str], dict[Any, list[Any]]] = {  # children packed, as Kopf has them
        ("v1", "Service"): {
            by_name(NS, "prod"): [packed[id(service)]],
            by_engine(NS, "prod"): [packed[id(service)]],
        },
        ("v1", "ServiceAccount"): {by_name(NS, "prod"): [packed[id(account)]]},
        ("v1", "ConfigMap"): {by_engine(NS, "prod"): [packed[id(config)], packed[id(other)]]},
        ENGINE: {(NS, "prod"): [engine], ("elsewhere", "e"): [engine]},
    }
    writes = Writes()
    written = obj("ConfigMap", "prod-dashboard", "9")
    writes.wrote(Ref("v1", "ConfigMap", NS, "prod-dashboard"), written)
    api = CachedApi(Api(), indexes, writes)

    got = await api.get(SERVICE)
    assert got == service
    got["spec"] = {"changed": True}
    assert await api.get(SERVICE) == service  # a copy: the index is never changed
    assert await api.get(Ref("v1", "Service", NS, "gone")) is None
    got = await api.get(Ref(API_VERSION, "VulcanEngine", NS, "prod"))
    assert got == engine and got is not engine
    selector = {names.LABEL_ENGINE: "prod", names.LABEL_COMPONENT: "backend"}
    listed = await api.list(Ref("v1", "ConfigMap", NS), selector)
    assert [o["metadata"]["name"] for o in listed] == ["prod-config", "prod-dashboard"]
    assert len(await api.list(Ref(API_VERSION, "VulcanEngine", NS))) == 1
    assert len(await api.list(Ref(API_VERSION, "VulcanEngine", None))) == 2


def test_a_packed_child_is_kept_without_bookkeeping_and_unpacked_afresh() -> None:
    body = obj("Deployment", "prod", "5", spec={"replicas": 2, "template": {"x": "y" * 2000}})
    meta = body["metadata"]
    meta["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    meta["annotations"] = {KOPF_DIFFBASE: "{}", "team": "a"}
    del body["apiVersion"], body["kind"]  # as watch events of a list may come
    packed = Packed(body, "apps/v1", "Deployment")
    one = packed.unpack()
    assert (one["apiVersion"], one["kind"]) == ("apps/v1", "Deployment")
    assert "managedFields" not in one["metadata"]
    assert one["metadata"]["annotations"] == {"team": "a"}
    assert one["spec"] == body["spec"] and body["metadata"]["managedFields"]  # body untouched
    one["spec"]["replicas"] = 9
    assert packed.unpack()["spec"]["replicas"] == 2
    assert len(packed.data) < 1000  # compressed: the 2 kB string is one repeated letter
