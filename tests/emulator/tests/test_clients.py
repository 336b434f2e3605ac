"""The official `kubernetes` client (what the operator's own code uses) against the emulator."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import kubernetes
import pytest
from kubernetes import client, dynamic, watch

from tests.emulator import Emulator, make_crd

pytestmark = [pytest.mark.emulator(controllers=False), pytest.mark.usefixtures("kube_config")]


def test_the_default_configuration_points_at_the_emulator(emulator: Emulator) -> None:
    config = client.Configuration.get_default()
    assert config.host == emulator.url and config.verify_ssl is False


async def test_typed_api_with_owner_references(emulator: Emulator) -> None:
    core = client.CoreV1Api()

    def work() -> tuple[Any, Any]:
        owner = core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
        )
        child = core.create_namespaced_config_map(
            "default",
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name="child",
                    labels={"app": "x"},
                    owner_references=[
                        client.V1OwnerReference(
                            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                        )
                    ],
                ),
                data={"k": "v"},
            ),
        )
        core.patch_namespaced_config_map("child", "default", {"data": {"k2": "v2"}})
        listed = core.list_namespaced_config_map("default", label_selector="app=x")
        status = core.delete_namespaced_config_map("owner", "default")
        return child, (listed, status)

    child, (listed, status) = await asyncio.to_thread(work)  # a sync client: not in the loop
    assert child.metadata.owner_references[0].uid
    assert [i.data for i in listed.items] == [{"k": "v", "k2": "v2"}]
    assert status["status"] == "Success"  # a Status (the client declares "object")
    assert emulator.get("configmaps", "default", "child") is None  # garbage-collected
    with pytest.raises(client.ApiException) as error:
        core.read_namespaced_config_map("child", "default")  # also fine in the loop's thread
    assert error.value.status == 404


def test_generic_call_api(emulator: Emulator) -> None:
    emulator.create(make_crd("example.com", "Widget"))
    emulator.create(
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        }
    )
    api = client.ApiClient()
    request = api.param_serialize(
        method="GET",
        resource_path="/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
        path_params={
            "group": "example.com",
            "version": "v1",
            "namespace": "default",
            "plural": "widgets",
            "name": "w",
        },
        header_params={"Accept": "application/json"},
    )
    response = api.call_api(*request)
    response.read()
    body = api.response_deserialize(response, {"200": "object"}).data
    assert body["spec"] == {"size": 1} and body["metadata"]["uid"]


def test_custom_objects_api_status_and_conflicts(emulator: Emulator) -> None:
    emulator.create(make_crd("example.com", "Widget"))
    custom = client.CustomObjectsApi()
    created = custom.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    )
    patched = custom.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w", {"status": {"phase": "Ready"}}
    )
    assert patched["status"] == {"phase": "Ready"}
    stale = created | {"spec": {"size": 2}}
    with pytest.raises(client.ApiException) as error:
        custom.replace_namespaced_custom_object(
            "example.com", "v1", "default", "widgets", "w", stale
        )
    assert error.value.status == 409


def test_official_watch(emulator: Emulator) -> None:
    emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    since = emulator.resource_version
    emulator.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}})
    stream = watch.Watch().stream(
        client.CoreV1Api().list_namespaced_config_map,
        "default",
        resource_version=str(since),
        timeout_seconds=1,
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events == [("ADDED", "b")]


def test_dynamic_client_discovers_crds_installed_at_run_time(
    emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    emulator.create(make_crd("monitoring.coreos.com", "ServiceMonitor"))
    dyn = dynamic.DynamicClient(client.ApiClient(), cache_file=str(tmp_path / "discovery.json"))
    monitors = dyn.resources.get(api_version="monitoring.coreos.com/v1", kind="ServiceMonitor")
    monitors.create(
        body={
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "m"},
            "spec": {"endpoints": []},
        },
        namespace="default",
    )
    assert [m.metadata.name for m in monitors.get(namespace="default").items] == ["m"]
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and "status" in deployments.subresources
    assert kubernetes.__version__
