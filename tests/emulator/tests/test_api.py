"""The emulator's API semantics over plain HTTP: one test (or a few) per behaviour."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest

from tests.emulator import ApiError, Emulator, RequestRecord, make_crd

pytestmark = pytest.mark.emulator(controllers=False)

CM = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    async with http.request(
        method, path, data=data, headers={"Content-Type": content_type}
    ) as response:
        assert response.headers["Content-Type"] == "application/json"
        return response.status, await response.json()


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"},
    }


async def watch(http: aiohttp.ClientSession, path: str, count: int) -> list[dict[str, Any]]:
    """The first `count` events of a watch stream."""
    events = []
    async with http.get(path) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        async with asyncio.timeout(3):
            while len(events) < count:
                events.append(json.loads(await response.content.readline()))
    return events


@pytest.fixture
def widgets(emulator: Emulator) -> None:
    emulator.create(make_crd("example.com", "Widget"))


# --- 1. create -----------------------------------------------------------------------------------


async def test_create_fills_server_metadata(http: aiohttp.ClientSession) -> None:
    status, first = await call(http, "POST", CM, cm("one"))
    assert status == 201
    meta = first["metadata"]
    assert meta["namespace"] == "default"  # from the URL
    assert meta["generation"] == 1
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert isinstance(meta["resourceVersion"], str)
    _, second = await call(http, "POST", CM, cm("two"))
    assert int(second["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert second["metadata"]["uid"] != meta["uid"]
    status, fetched = await call(http, "GET", f"{CM}/one")
    assert (status, fetched) == (200, first)


async def test_create_honours_generate_name(http: aiohttp.ClientSession) -> None:
    body = {"metadata": {"generateName": "job-"}, "data": {}}
    (_, a), (_, b) = [await call(http, "POST", CM, body) for _ in range(2)]
    assert re.fullmatch(r"job-[a-z0-9]{5}", a["metadata"]["name"])
    assert a["metadata"]["name"] != b["metadata"]["name"]
    assert (a["kind"], a["apiVersion"]) == ("ConfigMap", "v1")  # filled in, as Kopf relies on


async def test_create_conflicts_and_invalid(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CM, cm("dup"))
    status, error = await call(http, "POST", CM, cm("dup"))
    assert (status, error["kind"], error["reason"]) == (409, "Status", "AlreadyExists")
    status, error = await call(http, "POST", CM, {"metadata": {}})
    assert (status, error["reason"]) == (422, "Invalid")
    status, _ = await call(http, "POST", CM, {"metadata": {"name": "x", "namespace": "other"}})
    assert status == 400
    status, error = await call(http, "POST", CM, cm("Bad_Name"))
    assert status == 422 and "metadata.name" in error["message"]
    status, error = await call(http, "POST", CM, cm("x", **{"app": "-bad-"}))
    assert status == 422 and "metadata.labels" in error["message"]


async def test_namespaces_need_not_exist_by_default(http: aiohttp.ClientSession) -> None:
    status, _ = await call(http, "POST", "/api/v1/namespaces/nowhere/configmaps", cm("x"))
    assert status == 201


@pytest.mark.emulator(strict_namespaces=True)
async def test_strict_namespaces_refuse_missing_ones(http: aiohttp.ClientSession) -> None:
    status, error = await call(http, "POST", "/api/v1/namespaces/nowhere/configmaps", cm("x"))
    assert (status, error["message"]) == (404, 'namespaces "nowhere" not found')
    assert (await call(http, "POST", CM, cm("x")))[0] == 201


# --- 2. updates ----------------------------------------------------------------------------------


async def test_merge_patch_bumps_versions(http: aiohttp.ClientSession, widgets: None) -> None:
    _, obj = await call(http, "POST", WIDGETS, {"metadata": {"name": "w"}, "spec": {"a": 1}})
    rv = int(obj["metadata"]["resourceVersion"])
    _, obj = await call(http, "PATCH", f"{WIDGETS}/w", {"metadata": {"labels": {"x": "y"}}}, MERGE)
    assert int(obj["metadata"]["resourceVersion"]) > rv
    assert obj["metadata"]["generation"] == 1  # metadata only
    _, obj = await call(http, "PATCH", f"{WIDGETS}/w", {"spec": {"a": 2, "b": 3}}, MERGE)
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"] == {"a": 2, "b": 3}
    _, obj = await call(http, "PATCH", f"{WIDGETS}/w", {"spec": {"b": None}}, MERGE)
    assert obj["spec"] == {"a": 2} and obj["metadata"]["generation"] == 3


async def test_strategic_merge_is_merge_for_builtins_and_415_for_crs(
    http: aiohttp.ClientSession, widgets: None
) -> None:
    await call(http, "POST", CM, cm("s"))
    status, obj = await call(http, "PATCH", f"{CM}/s", {"data": {"k2": "v2"}}, STRATEGIC)
    assert status == 200 and obj["data"] == {"k": "v", "k2": "v2"}
    await call(http, "POST", WIDGETS, {"metadata": {"name": "w"}})
    status, error = await call(http, "PATCH", f"{WIDGETS}/w", {"spec": {}}, STRATEGIC)
    assert (status, error["reason"]) == (415, "UnsupportedMediaType")


async def test_json_patch_and_its_failed_test_op(http: aiohttp.ClientSession) -> None:
    _, obj = await call(http, "POST", CM, cm("j"))
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
    ]
    status, obj = await call(http, "PATCH", f"{CM}/j", ops, JSON_PATCH)
    assert status == 200 and obj["metadata"]["finalizers"] == ["f"]
    status, error = await call(http, "PATCH", f"{CM}/j", ops, JSON_PATCH)  # rv is stale now
    assert (status, error["reason"]) == (422, "Invalid")
    status, _ = await call(http, "PATCH", f"{CM}/j", {"op": "add"}, JSON_PATCH)
    assert status == 400


async def test_stale_resource_version_conflicts(http: aiohttp.ClientSession) -> None:
    _, obj = await call(http, "POST", CM, cm("c"))
    await call(http, "PATCH", f"{CM}/c", {"data": {"k": "new"}}, MERGE)
    stale = obj["metadata"]["resourceVersion"]
    status, error = await call(
        http, "PATCH", f"{CM}/c", {"metadata": {"resourceVersion": stale}, "data": {}}, MERGE
    )
    assert (status, error["reason"]) == (409, "Conflict")
    status, _ = await call(http, "PUT", f"{CM}/c", obj)  # the whole object, stale
    assert status == 409


async def test_put_replaces_the_object(http: aiohttp.ClientSession) -> None:
    _, obj = await call(http, "POST", CM, cm("p", app="a"))
    obj["data"] = {"only": "this"}
    obj["metadata"]["labels"] = {}
    status, new = await call(http, "PUT", f"{CM}/p", obj)
    assert status == 200
    assert new["data"] == {"only": "this"} and new["metadata"]["labels"] == {}
    assert new["metadata"]["uid"] == obj["metadata"]["uid"]
    assert int(new["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    del obj["metadata"]["resourceVersion"]  # an unconditional update is allowed
    assert (await call(http, "PUT", f"{CM}/p", obj))[0] == 200
    assert (await call(http, "PUT", f"{CM}/other", obj))[0] == 400  # name differs from the URL


async def test_writes_that_change_nothing_are_no_ops(http: aiohttp.ClientSession) -> None:
    _, obj = await call(http, "POST", CM, cm("n"))
    rv = obj["metadata"]["resourceVersion"]
    _, same = await call(http, "PATCH", f"{CM}/n", {"data": {"k": "v"}}, MERGE)
    _, same2 = await call(http, "PUT", f"{CM}/n", obj)
    assert same == same2 == obj
    events = asyncio.create_task(watch(http, f"{CM}?watch=true&resourceVersion={rv}", 1))
    await call(http, "PATCH", f"{CM}/n", {"data": {"k": "v"}}, MERGE)
    await call(http, "PATCH", f"{CM}/n", {"data": {"k": "changed"}}, MERGE)
    (event,) = await events
    assert event["type"] == "MODIFIED" and event["object"]["data"] == {"k": "changed"}


async def test_dry_run_apply_and_delete_collection(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    status, obj = await call(http, "POST", f"{CM}?dryRun=All", cm("dry"))
    assert status == 201 and obj["metadata"]["uid"]
    assert emulator.get("configmaps", "default", "dry") is None
    apply = "application/apply-patch+yaml"
    status, obj = await call(http, "PATCH", f"{CM}/applied?fieldManager=t", cm("applied"), apply)
    assert status == 201  # server-side apply creates what is missing
    status, obj = await call(
        http, "PATCH", f"{CM}/applied?fieldManager=t", {"data": {"k": "2"}}, apply
    )
    assert status == 200 and obj["data"] == {"k": "2"}
    assert (await call(http, "PATCH", f"{CM}/applied", {}, apply))[0] == 400  # no fieldManager
    emulator.create(cm("x1", app="x"))
    emulator.create(cm("x2", app="x"))
    status, doc = await call(http, "DELETE", f"{CM}?labelSelector=app%3Dx")
    assert status == 200 and [i["metadata"]["name"] for i in doc["items"]] == ["x1", "x2"]
    assert [c["metadata"]["name"] for c in emulator.list("configmaps", "default")] == ["applied"]


# --- 3. status subresource -----------------------------------------------------------------------


async def test_status_subresource_isolation(http: aiohttp.ClientSession, widgets: None) -> None:
    _, obj = await call(
        http,
        "POST",
        WIDGETS,
        {"metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"ignored": True}},
    )
    assert "status" not in obj
    _, obj = await call(
        http, "PATCH", f"{WIDGETS}/w", {"spec": {"a": 2}, "status": {"x": 1}}, MERGE
    )
    assert obj["spec"] == {"a": 2} and "status" not in obj
    _, obj = await call(
        http,
        "PATCH",
        f"{WIDGETS}/w/status",
        {"spec": {"a": 3}, "status": {"x": 1}, "metadata": {"labels": {"l": "v"}}},
        MERGE,
    )
    assert obj["spec"] == {"a": 2} and obj["status"] == {"x": 1}
    assert "labels" not in obj["metadata"]
    assert obj["metadata"]["generation"] == 2  # a status write is no new generation
    status, fetched = await call(http, "GET", f"{WIDGETS}/w/status")
    assert (status, fetched) == (200, obj)


async def test_status_writes_honour_resource_version_preconditions(
    http: aiohttp.ClientSession, widgets: None
) -> None:
    """A lock written to a status (the restore lock on an engine) relies on these: a stale
    resourceVersion in a merge patch is 409, a failed JSON-patch `test` is 422, on /status too,
    and nothing is written either way."""
    _, obj = await call(http, "POST", WIDGETS, {"metadata": {"name": "l"}, "spec": {"a": 1}})
    rv = obj["metadata"]["resourceVersion"]
    status, held = await call(
        http,
        "PATCH",
        f"{WIDGETS}/l/status",
        {"metadata": {"resourceVersion": rv}, "status": {"holder": "a"}},
        MERGE,
    )
    assert status == 200 and held["status"] == {"holder": "a"}
    for body, kind, code in (
        ({"metadata": {"resourceVersion": rv}, "status": {"holder": "b"}}, MERGE, 409),
        (
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "replace", "path": "/status", "value": {"holder": "b"}},
            ],
            JSON_PATCH,
            422,
        ),
        (
            [
                {"op": "test", "path": "/status/holder", "value": "nobody"},
                {"op": "replace", "path": "/status", "value": {"holder": "b"}},
            ],
            JSON_PATCH,
            422,
        ),
    ):
        status, error = await call(http, "PATCH", f"{WIDGETS}/l/status", body, kind)
        assert status == code, error
        assert error["reason"] == ("Conflict" if code == 409 else "Invalid")
    _, now = await call(http, "GET", f"{WIDGETS}/l")
    assert now["status"] == {"holder": "a"}
    assert now["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]
    status, moved = await call(
        http,
        "PATCH",
        f"{WIDGETS}/l/status",
        [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": now["metadata"]["resourceVersion"],
            },
            {"op": "replace", "path": "/status", "value": {"holder": "b"}},
        ],
        JSON_PATCH,
    )
    assert status == 200 and moved["status"] == {"holder": "b"}


async def test_status_of_builtins_and_of_kinds_without_it(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    body = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    await call(http, "POST", deployments, body)
    _, obj = await call(http, "PATCH", f"{deployments}/d", {"status": {"replicas": 5}}, MERGE)
    assert "status" not in obj
    _, obj = await call(
        http, "PATCH", f"{deployments}/d/status", {"status": {"replicas": 5}}, MERGE
    )
    assert obj["status"] == {"replicas": 5}
    emulator.create(make_crd("example.com", "Plain", status=False))
    plain = "/apis/example.com/v1/namespaces/default/plains"
    await call(http, "POST", plain, {"metadata": {"name": "p"}, "status": {"s": 1}})
    _, obj = await call(http, "PATCH", f"{plain}/p", {"status": {"s": 2}}, MERGE)
    assert obj["status"] == {"s": 2}
    assert (await call(http, "GET", f"{plain}/p/status"))[0] == 404


# --- 4. delete, finalizers, garbage collection ---------------------------------------------------


async def test_delete_honours_finalizers(http: aiohttp.ClientSession) -> None:
    body = cm("f")
    body["metadata"]["finalizers"] = ["a/b"]
    _, obj = await call(http, "POST", CM, body)
    events = asyncio.create_task(
        watch(http, f"{CM}?watch=true&resourceVersion={obj['metadata']['resourceVersion']}", 2)
    )
    status, deleting = await call(http, "DELETE", f"{CM}/f")
    assert status == 200 and deleting["metadata"]["deletionTimestamp"]
    assert (await call(http, "GET", f"{CM}/f"))[0] == 200
    assert (await call(http, "DELETE", f"{CM}/f"))[1] == deleting  # nothing more to do
    status, error = await call(
        http, "PATCH", f"{CM}/f", {"metadata": {"finalizers": ["a/b", "new/one"]}}, MERGE
    )
    assert status == 422 and "no new finalizers" in error["message"]
    await call(http, "PATCH", f"{CM}/f", {"metadata": {"finalizers": None}}, MERGE)
    assert (await call(http, "GET", f"{CM}/f"))[0] == 404
    assert [e["type"] for e in await events] == ["MODIFIED", "DELETED"]


async def test_delete_without_finalizers_is_immediate(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CM, cm("gone"))
    status, result = await call(http, "DELETE", f"{CM}/gone")
    assert status == 200 and result["status"] == "Success"
    assert (await call(http, "DELETE", f"{CM}/gone"))[0] == 404


def owned(name: str, *owners: dict[str, Any]) -> dict[str, Any]:
    body = cm(name)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
        }
        for o in owners
    ]
    return body


async def test_garbage_collection_by_owner_references(emulator: Emulator) -> None:
    root = emulator.create(cm("root"))
    child = emulator.create(owned("child", root))
    emulator.create(owned("grandchild", child))
    other = emulator.create(cm("other"))
    emulator.create(owned("shared", root, other))
    emulator.delete("configmaps", "default", "root")
    assert emulator.get("configmaps", "default", "child") is None
    assert emulator.get("configmaps", "default", "grandchild") is None
    assert emulator.get("configmaps", "default", "shared") is not None  # another owner lives
    emulator.delete("configmaps", "default", "other")
    assert emulator.get("configmaps", "default", "shared") is None


async def test_garbage_collection_orphans_and_dangling_owners(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    root = emulator.create(cm("root"))
    emulator.create(owned("kept", root))
    await call(http, "DELETE", f"{CM}/root?propagationPolicy=Orphan")
    assert emulator.get("configmaps", "default", "kept") is not None
    emulator.create(owned("dangling", root))  # its owner is gone already
    await emulator.wait_for(lambda: emulator.get("configmaps", "default", "dangling") is None)
    status, error = await call(
        http,
        "POST",
        CM,
        {
            "metadata": {
                "name": "x",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "y"}],
            }
        },
    )
    assert status == 422 and "uid" in error["message"]


async def test_deleting_a_namespace_deletes_its_contents(emulator: Emulator) -> None:
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}})
    emulator.create(cm("inside"), namespace="tmp")
    emulator.delete("namespaces", None, "tmp")
    assert emulator.get("configmaps", "tmp", "inside") is None


# --- 5. list -------------------------------------------------------------------------------------


async def test_list_document(http: aiohttp.ClientSession, emulator: Emulator) -> None:
    await call(http, "POST", CM, cm("a"))
    status, doc = await call(http, "GET", CM)
    assert status == 200
    assert (doc["kind"], doc["apiVersion"]) == ("ConfigMapList", "v1")
    assert doc["metadata"]["resourceVersion"] == str(emulator.resource_version)
    assert [i["metadata"]["name"] for i in doc["items"]] == ["a"]
    assert "kind" not in doc["items"][0]  # typed lists carry no per-item kind, as in K8s
    status, doc = await call(http, "GET", "/apis/apps/v1/deployments")
    assert (status, doc["kind"], doc["apiVersion"]) == (200, "DeploymentList", "apps/v1")


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier=front", ["a"]),
        ("app!=web", ["c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app in (web, db)", ["a", "b", "c"]),
        ("app notin (web)", ["c", "d"]),
        ("app in (web),!tier", ["b"]),
    ],
)
async def test_list_label_selectors(
    emulator: Emulator, http: aiohttp.ClientSession, selector: str, names: list[str]
) -> None:
    emulator.create(cm("a", app="web", tier="front"))
    emulator.create(cm("b", app="web"))
    emulator.create(cm("c", app="db", tier="back"))
    emulator.create(cm("d"))
    _, doc = await call(http, "GET", f"{CM}?labelSelector={selector}")
    assert [i["metadata"]["name"] for i in doc["items"]] == names
    assert [o["metadata"]["name"] for o in emulator.list("cm", "default", labels=selector)] == names


async def test_list_field_selectors_and_scopes(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    emulator.create(cm("x"))
    emulator.create(cm("x"), namespace="other")
    emulator.create(cm("y"), namespace="other")
    all_cms = "/api/v1/configmaps"
    _, doc = await call(http, "GET", f"{all_cms}?fieldSelector=metadata.name=x")
    assert [i["metadata"]["namespace"] for i in doc["items"]] == ["default", "other"]
    _, doc = await call(http, "GET", f"{all_cms}?fieldSelector=metadata.namespace!=default")
    assert [i["metadata"]["name"] for i in doc["items"]] == ["x", "y"]
    _, doc = await call(
        http,
        "GET",
        "/api/v1/namespaces/other/configmaps?fieldSelector="
        "metadata.name=y,metadata.namespace=other",
    )
    assert [i["metadata"]["name"] for i in doc["items"]] == ["y"]
    assert (await call(http, "GET", f"{CM}?fieldSelector=data.k=v"))[0] == 400
    assert (await call(http, "GET", f"{CM}?labelSelector=a+in+x"))[0] == 400


async def test_list_pages_and_custom_resources(
    emulator: Emulator, http: aiohttp.ClientSession, widgets: None
) -> None:
    for name in "abc":
        emulator.create(cm(name))
    _, page = await call(http, "GET", f"{CM}?limit=2")
    assert [i["metadata"]["name"] for i in page["items"]] == ["a", "b"]
    _, page = await call(http, "GET", f"{CM}?limit=2&continue={page['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in page["items"]] == ["c"]
    assert "continue" not in page["metadata"]
    emulator.create({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    _, doc = await call(http, "GET", "/apis/example.com/v1/widgets")
    assert doc["kind"] == "WidgetList"
    assert doc["items"][0]["kind"] == "Widget"  # custom resources keep theirs


# --- 6. watch ------------------------------------------------------------------------------------


async def test_watch_without_version_lists_then_streams(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    emulator.create(cm("old"))
    stream = asyncio.create_task(watch(http, f"{CM}?watch=true", 3))
    await emulator.wait_for(lambda: emulator.watching("configmaps"))
    emulator.create(cm("new"))
    emulator.delete("configmaps", "default", "old")
    events = [(e["type"], e["object"]["metadata"]["name"]) for e in await stream]
    assert events == [("ADDED", "old"), ("ADDED", "new"), ("DELETED", "old")]


async def test_a_lagging_watch_delivers_late_and_in_order(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    emulator.watch_lag["configmaps"] = 0.6
    stream = asyncio.create_task(watch(http, f"{CM}?watch=true", 2))
    await emulator.wait_for(lambda: emulator.watching("configmaps"))
    status, _ = await call(http, "POST", CM, cm("a"))
    emulator.patch("configmaps", "default", "a", {"data": {"k": "2"}})
    assert status == 201 and (await call(http, "GET", f"{CM}/a"))[1]["data"] == {"k": "2"}
    await asyncio.sleep(0.3)
    assert not stream.done()  # the writer has its answers; the watch has not shown them yet
    events = await stream
    assert [(e["type"], e["object"].get("data")) for e in events] == [
        ("ADDED", {"k": "v"}),
        ("MODIFIED", {"k": "2"}),
    ]


@pytest.mark.parametrize("flag", ["true", "1", "True"])
async def test_watch_from_a_resource_version(
    emulator: Emulator, http: aiohttp.ClientSession, flag: str
) -> None:
    emulator.create(cm("before"))
    since = emulator.resource_version
    emulator.create(cm("after"))
    emulator.patch("configmaps", "default", "before", {"data": {"k": "2"}})
    events = await watch(http, f"{CM}?watch={flag}&resourceVersion={since}", 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "before"),
    ]
    assert [int(e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        since + 1,
        since + 2,
    ]


@pytest.mark.emulator(history_limit=3)
async def test_watch_from_a_too_old_version_is_gone(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    since = emulator.resource_version
    for name in "abcd":
        emulator.create(cm(name))
    (event,) = await watch(http, f"{CM}?watch=true&resourceVersion={since}", 1)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["kind"]) == (410, "Status")
    recent = emulator.resource_version - 1
    (event,) = await watch(http, f"{CM}?watch=true&resourceVersion={recent}", 1)
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "d"
    emulator.compact()
    (event,) = await watch(http, f"{CM}?watch=true&resourceVersion={recent}", 1)
    assert event["object"]["code"] == 410


async def test_watch_with_a_label_selector(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    emulator.create(cm("other"))
    stream = asyncio.create_task(watch(http, f"{CM}?watch=true&labelSelector=app%3Dweb", 4))
    await emulator.wait_for(lambda: emulator.watching("configmaps"))
    emulator.create(cm("web", app="web"))
    emulator.patch("configmaps", "default", "other", {"data": {"k": "ignored"}})
    emulator.patch("configmaps", "default", "web", {"data": {"k": "2"}})
    emulator.patch("configmaps", "default", "web", {"metadata": {"labels": {"app": "api"}}})
    emulator.patch("configmaps", "default", "other", {"metadata": {"labels": {"app": "web"}}})
    events = [(e["type"], e["object"]["metadata"]["name"]) for e in await stream]
    assert events == [
        ("ADDED", "web"),
        ("MODIFIED", "web"),
        ("DELETED", "web"),
        ("ADDED", "other"),
    ]  # leaving and entering the selection


async def test_watch_timeout_closes_the_stream(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    emulator.create(cm("a"))
    async with asyncio.timeout(2), http.get(f"{CM}?watch=true&timeoutSeconds=0.2") as response:
        assert emulator.watching("configmaps") == 1 and emulator.watching("pods") == 0
        lines = [line async for line in response.content]
    assert [json.loads(line)["type"] for line in lines] == ["ADDED"]
    assert emulator.watching() == 0


async def test_watch_initial_events_end_with_a_bookmark(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    emulator.create(cm("a"))
    events = await watch(
        http,
        f"{CM}?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        2,
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# --- 7. discovery --------------------------------------------------------------------------------


REQUIRED = {
    ("", "v1"): {
        "namespaces": ("Namespace", False),
        "configmaps": ("ConfigMap", True),
        "secrets": ("Secret", True),
        "services": ("Service", True),
        "serviceaccounts": ("ServiceAccount", True),
        "pods": ("Pod", True),
        "persistentvolumeclaims": ("PersistentVolumeClaim", True),
        "events": ("Event", True),
    },
    ("events.k8s.io", "v1"): {"events": ("Event", True)},
    ("apps", "v1"): {"deployments": ("Deployment", True)},
    ("batch", "v1"): {"jobs": ("Job", True), "cronjobs": ("CronJob", True)},
    ("autoscaling", "v2"): {"horizontalpodautoscalers": ("HorizontalPodAutoscaler", True)},
    ("policy", "v1"): {"poddisruptionbudgets": ("PodDisruptionBudget", True)},
    ("networking.k8s.io", "v1"): {
        "networkpolicies": ("NetworkPolicy", True),
        "ingresses": ("Ingress", True),
    },
    ("rbac.authorization.k8s.io", "v1"): {
        "roles": ("Role", True),
        "rolebindings": ("RoleBinding", True),
        "clusterroles": ("ClusterRole", False),
        "clusterrolebindings": ("ClusterRoleBinding", False),
    },
    ("coordination.k8s.io", "v1"): {"leases": ("Lease", True)},
    ("apiextensions.k8s.io", "v1"): {
        "customresourcedefinitions": ("CustomResourceDefinition", False)
    },
}


async def test_discovery_of_builtins(http: aiohttp.ClientSession) -> None:
    for path in ["/version", "/version/"]:
        status, version = await call(http, "GET", path)
        assert status == 200 and version["major"] == "1"
    _, api = await call(http, "GET", "/api")
    assert (api["kind"], api["versions"]) == ("APIVersions", ["v1"])
    _, groups = await call(http, "GET", "/apis")
    by_name = {g["name"]: g for g in groups["groups"]}
    assert by_name["autoscaling"]["preferredVersion"]["version"] == "v2"
    assert "gateway.networking.k8s.io" not in by_name  # K3s extras are not served
    for (group, version), expected in REQUIRED.items():
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        status, doc = await call(http, "GET", path)
        assert status == 200 and doc["kind"] == "APIResourceList"
        resources = {r["name"]: r for r in doc["resources"]}
        for plural, (kind, namespaced) in expected.items():
            entry = resources[plural]
            assert (entry["kind"], entry["namespaced"]) == (kind, namespaced)
            assert entry["singularName"] == kind.lower()
            assert {"get", "list", "watch", "create", "patch", "delete"} <= set(entry["verbs"])
    _, apps = await call(http, "GET", "/apis/apps/v1")
    status_entry = {r["name"]: r for r in apps["resources"]}["deployments/status"]
    assert status_entry["verbs"] == ["get", "patch", "update"]
    assert (await call(http, "GET", "/apis/apps"))[1]["preferredVersion"]["version"] == "v1"
    assert (await call(http, "GET", "/apis/monitoring.coreos.com/v1"))[0] == 404
    assert (await call(http, "GET", "/api/v1/nonsense"))[0] == 404


async def test_crds_appear_in_and_vanish_from_discovery(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    crd = make_crd("monitoring.coreos.com", "ServiceMonitor", short_names=("smon",))
    status, created = await call(
        http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
    )
    assert status == 201
    assert {c["type"] for c in created["status"]["conditions"]} == {"Established", "NamesAccepted"}
    _, doc = await call(http, "GET", "/apis/monitoring.coreos.com/v1")
    entries = {r["name"]: r for r in doc["resources"]}
    assert entries["servicemonitors"]["kind"] == "ServiceMonitor"
    assert entries["servicemonitors"]["singularName"] == "servicemonitor"
    assert entries["servicemonitors"]["shortNames"] == ["smon"]
    assert "servicemonitors/status" in entries
    emulator.create(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "m"},
        }
    )
    emulator.delete("crd", None, "servicemonitors.monitoring.coreos.com")
    assert (await call(http, "GET", "/apis/monitoring.coreos.com/v1"))[0] == 404
    _, groups = await call(http, "GET", "/apis")
    assert "monitoring.coreos.com" not in {g["name"] for g in groups["groups"]}
    bad = make_crd("example.com", "Bad")
    bad["metadata"]["name"] = "wrong.example.com"
    status, error = await call(
        http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad
    )
    assert (status, error["reason"]) == (422, "Invalid")


async def test_project_crds_are_loaded(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    crds = emulator.list("customresourcedefinitions")
    ours = [c for c in crds if c["spec"]["group"] == "vulcan-engine.com"]
    assert len(ours) == 4, [c["metadata"]["name"] for c in ours]  # our four kinds
    _, doc = await call(http, "GET", "/apis/vulcan-engine.com/v1alpha1")
    kinds = {r["kind"] for r in doc["resources"]}
    assert {c["spec"]["names"]["kind"] for c in ours} <= kinds


async def test_other_versions_serve_the_stored_objects(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    emulator.create(make_crd("example.com", "Gadget", versions=("v1", "v1beta1")))
    emulator.create({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})
    status, obj = await call(http, "GET", "/apis/example.com/v1beta1/namespaces/default/gadgets/g")
    assert (status, obj["apiVersion"]) == (200, "example.com/v1beta1")


# --- what the API server does to objects on every write ------------------------------------------


async def test_custom_resources_are_pruned_defaulted_and_validated(emulator: Emulator) -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1},
                    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "opaque": {"type": "object"},
                },
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }
    emulator.create(make_crd("example.com", "Sized", schema=schema))
    obj = emulator.create(
        {
            "apiVersion": "example.com/v1",
            "kind": "Sized",
            "metadata": {"name": "s"},
            "spec": {"size": 2, "typo": 1, "free": {"x": {"y": 1}}, "opaque": {"z": 1}},
        }
    )
    assert obj["spec"] == {"size": 2, "mode": "fast", "free": {"x": {"y": 1}}, "opaque": {}}
    obj = emulator.patch(
        "sized", "default", "s", {"status": {"phase": "Ok", "extra": 1}}, subresource="status"
    )
    assert obj["status"] == {"phase": "Ok"}
    with pytest.raises(Exception, match="422") as error:
        emulator.patch("sized", "default", "s", {"spec": {"size": 0, "mode": "other"}})
    assert "spec.size" in str(error.value.args) or "size" in error.value.message  # type: ignore
    assert "mode" in error.value.message  # type: ignore[attr-defined]


async def test_builtin_defaults_and_checks(emulator: Emulator) -> None:
    secret = emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "stringData": {"password": "hunter2"},
        }
    )
    assert secret["data"] == {"password": "aHVudGVyMg=="} and "stringData" not in secret
    assert secret["type"] == "Opaque"
    with pytest.raises(Exception, match="400"):
        emulator.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "t"},
                "data": {"password": "not base64!"},
            }
        )
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    deployment = emulator.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template},
        }
    )
    assert deployment["spec"]["replicas"] == 1
    with pytest.raises(Exception, match="selector"):
        emulator.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "e"},
                "spec": {"selector": {"matchLabels": {"app": "y"}}, "template": template},
            }
        )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    with pytest.raises(Exception, match="restartPolicy"):
        emulator.create(job)
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    created = emulator.create(job)
    assert created["spec"]["backoffLimit"] == 6
    labels = created["spec"]["template"]["metadata"]["labels"]
    assert labels["job-name"] == "j"
    with pytest.raises(Exception, match="immutable"):
        emulator.patch(
            "jobs", "default", "j", {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}
        )
    long_name = {**job, "metadata": {"name": "j" * 64}}
    with pytest.raises(Exception, match="63"):
        emulator.create(long_name)


async def test_services_preconditions_and_unemulated_subresources(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    services = "/api/v1/namespaces/default/services"
    _, svc = await call(
        http, "POST", services, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"]
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    body = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 81}]}}
    _, replaced = await call(http, "PUT", f"{services}/web", body)
    assert replaced["spec"]["clusterIP"] == svc["spec"]["clusterIP"]  # allocated once
    status, _ = await call(
        http, "DELETE", f"{services}/web", {"preconditions": {"uid": "someone-else"}}
    )
    assert status == 409
    emulator.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
    )
    assert (await call(http, "GET", "/apis/apps/v1/namespaces/default/deployments/d/scale"))[
        0
    ] == 405
    assert (await call(http, "GET", f"{CM}/x/nothing"))[0] == 404


# --- 8. the request log and the direct helpers ---------------------------------------------------


async def test_quiet_waits_for_writes_to_stop(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async def writer() -> None:
        for i in range(5):
            await call(http, "POST", CM, cm(f"w{i}"))
            await asyncio.sleep(0.2)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.1)
    mark = await emulator.quiet(seconds=0.5)
    assert task.done()  # it returned only after the last write, and 0.5 s of nothing
    assert emulator.writes(since=mark) == []
    assert emulator.get("configmaps", "default", "w4") is not None
    await call(http, "POST", CM, cm("late"))
    with pytest.raises(TimeoutError):
        await emulator.quiet(seconds=5, timeout=0.3)


async def test_request_log(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    mark = emulator.mark()
    await call(http, "POST", CM, cm("a"))
    await call(http, "GET", f"{CM}/a")
    await call(http, "PATCH", f"{CM}/a/", {"data": {"k": "2"}}, MERGE)
    await call(
        http, "POST", "/api/v1/namespaces/default/events", {"metadata": {"generateName": "e-"}}
    )
    await call(http, "POST", CM, cm("a"))  # a failed write is a write too
    await watch(http, f"{CM}?watch=true&timeoutSeconds=0.01", 1)
    writes = emulator.writes(since=mark)
    assert [(w.method, w.verb, w.resource, w.status) for w in writes] == [
        ("POST", "create", "configmaps", 201),
        ("PATCH", "patch", "configmaps", 200),
        ("POST", "create", "events", 201),
        ("POST", "create", "configmaps", 409),
    ]
    assert writes[1].content_type == MERGE and writes[1].body == {"data": {"k": "2"}}
    assert writes[1].name == "a" and writes[1].namespace == "default"
    assert len(emulator.writes(since=mark, events=False)) == 3
    assert emulator.api_usage(since=mark) == {
        ("create", "", "configmaps", "", "default"),
        ("get", "", "configmaps", "", "default"),
        ("patch", "", "configmaps", "", "default"),
        ("create", "", "events", "", "default"),
        ("watch", "", "configmaps", "", "default"),
    }
    assert emulator.writes(since=emulator.mark()) == []
    assert all(r.time > 0 for r in emulator.requests(since=mark))


async def test_helpers_go_through_the_api_logic(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    stream = asyncio.create_task(watch(http, f"{CM}?watch=true", 3))
    await emulator.wait_for(lambda: emulator.watching("configmaps"))
    created = emulator.create(cm("h"))
    assert created["metadata"]["resourceVersion"]
    patched = emulator.patch(
        "v1/configmaps",
        "default",
        "h",
        [{"op": "replace", "path": "/data/k", "value": "json-patched"}],
    )
    assert patched["data"] == {"k": "json-patched"}
    emulator.delete("ConfigMap", "default", "h")
    assert [e["type"] for e in await stream] == ["ADDED", "MODIFIED", "DELETED"]
    assert emulator.get("cm", "default", "h") is None
    assert emulator.resource("deploy") == emulator.resource("apps/v1/deployments")
    assert emulator.resource("events").group == ""  # core wins, as in kubectl
    assert emulator.objects["v1/configmaps", "default", "h"].history[0]["data"] == {"k": "v"}
    with pytest.raises(Exception, match="404"):
        emulator.patch("configmaps", "default", "missing", {"data": {}})


async def test_wait_for_polls_until_true(emulator: Emulator) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        emulator.create(cm("late"))

    task = asyncio.create_task(later())
    obj = await emulator.wait_for(lambda: emulator.get("configmaps", "default", "late")["data"])
    assert obj == {"k": "v"}
    await task
    with pytest.raises(TimeoutError, match="KeyError"):
        await emulator.wait_for(lambda: emulator.get("cm", "default", "late")["x"], timeout=0.05)


class Flaky(Emulator):
    """What a fault-injection mode looks like: one method, on a described request."""

    async def _intercept(self, raw: Any, record: RequestRecord) -> Any:
        if (record.verb, record.resource, record.name) == ("patch", "configmaps", "a"):
            return ApiError(500, "InternalError", "injected").response()
        return None


async def test_the_single_hook_for_fault_injection() -> None:
    async with Flaky(controllers=False) as emulator, aiohttp.ClientSession(emulator.url) as http:
        emulator.create(cm("a"), namespace="default")
        status, error = await call(http, "PATCH", f"{CM}/a", {"data": {"k": "2"}}, MERGE)
        assert (status, error["message"]) == (500, "injected")
        assert emulator.get("configmaps", "default", "a")["data"] == {"k": "v"}  # type: ignore
        assert emulator.writes()[-1].status == 500
        with pytest.raises(TypeError):
            emulator.create({**cm("b"), "data": {"when": object()}})  # not JSON: refused early
