"""Which resources the emulated cluster serves, and the discovery documents that say so.

Built-in resources come from the discovery dump bundled with kmock (taken from a real K3s
cluster), minus the groups that K3s adds but a plain cluster lacks. CRDs add and remove
resources at run time. Each group/plural is stored once, under its storage version; the other
served versions show the same objects with their `apiVersion` rewritten (no conversion).
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import re
from dataclasses import dataclass, field
from typing import Any

import kmock
from kmock._internal import k8s_views

from tests.emulator.api import ApiError
from tests.emulator.schema import CrdSchema

ALL_VERBS = frozenset(
    {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)
SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "eviction": ["create"],
    "binding": ["create"],
    "token": ["create"],
    "finalize": ["update"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
}
# Groups in kmock's K3s dump that are CRDs or add-ons there, not part of a plain cluster.
DROPPED_GROUPS = {"gateway.networking.k8s.io", "metrics.k8s.io"}


@functools.cache
def _builtins() -> str:
    """kmock's discovery dump (what `ResourcesArray.load_bundled()` reads), read once."""
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(data.read_bytes()).decode()


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA > beta > alpha, then higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m[2]]
    return (stage, int(m[1]), int(m[3] or 0))


@dataclass
class Crd:
    """What the server keeps of a registered CustomResourceDefinition."""

    group: str
    plural: str
    kind: str
    storage_version: str
    schemas: dict[str, CrdSchema] = field(default_factory=dict)  # by version


class Registry:
    """Resources served, on top of kmock's `ResourcesArray` (group/version/plural -> info)."""

    def __init__(self, resources: k8s_views.ResourcesArray) -> None:
        self.resources = resources
        self.crds: dict[tuple[str, str], Crd] = {}  # (group, plural) -> CRD
        # Lookups made on every store access, kept until the resources served change.
        self._all: list[kmock.resource] | None = None
        self._storage: dict[kmock.resource, kmock.resource] = {}

    def _changed(self) -> None:
        self._all, self._storage = None, {}

    def load_builtins(self) -> None:
        self.resources.load_data(_builtins())
        self._changed()
        for res in self.all():
            if res.group in DROPPED_GROUPS:
                del self.resources[res]
        self._changed()

    # --- lookups ---------------------------------------------------------------------------------

    def all(self) -> list[kmock.resource]:
        if self._all is None:
            self._all = [kmock.resource(res) for res in list(self.resources)]
        return list(self._all)

    def info(self, res: kmock.resource) -> kmock.ResourceInfo:
        if res not in self.resources:
            raise ApiError.not_found(res.plural or "")
        return self.resources[res]

    def versions(self, group: str) -> list[str]:
        found = {r.version for r in self.all() if r.group == group and r.version}
        return sorted(found, key=version_priority, reverse=True)

    def groups(self) -> list[str]:
        seen: dict[str, None] = {}
        for res in self.all():
            if res.group and res.group not in seen:
                seen[res.group] = None
        return list(seen)

    def storage(self, res: kmock.resource) -> kmock.resource:
        """The version under which objects of this group/plural are stored."""
        found = self._storage.get(res)
        if found is None:
            found = self._storage[res] = self._find_storage(res)
        return found

    def _find_storage(self, res: kmock.resource) -> kmock.resource:
        crd = self.crds.get((res.group or "", res.plural or ""))
        if crd is not None:
            return kmock.resource(res.group, crd.storage_version, res.plural)
        served = [
            v
            for v in self.versions(res.group or "")
            if kmock.resource(res.group, v, res.plural) in self.resources
        ]
        return kmock.resource(res.group, served[0] if served else res.version, res.plural)

    def is_custom(self, res: kmock.resource) -> bool:
        return (res.group or "", res.plural or "") in self.crds

    def schema(self, res: kmock.resource) -> CrdSchema | None:
        crd = self.crds.get((res.group or "", res.plural or ""))
        return crd.schemas.get(res.version or "") if crd else None

    def by_kind(self, api_version: str, kind: str) -> kmock.resource:
        group, _, version = api_version.rpartition("/")
        for res in self.all():
            if (res.group, res.version) == (group, version) and self.resources[res].kind == kind:
                return res
        raise ApiError.not_found(f'no matches for kind "{kind}" in version "{api_version}"')

    def resolve(self, ref: str | kmock.resource) -> kmock.resource:
        """A resource from a loose reference, as kubectl would take it.

        Accepts `kmock.resource`, `group/version/plural`, `v1/pods`, `jobs.batch`, a plural, a
        singular, a kind or a short name (`deploy`). Core wins over other groups (`events`), and
        the preferred version is used when none is given.
        """
        spec = ref if isinstance(ref, kmock.resource) else kmock.resource(ref)
        if spec.plural is None:
            raise ValueError(f"not a resource reference: {ref!r}")
        word = spec.plural.lower()
        candidates = []
        for res in self.all():
            info = self.resources[res]
            names = {res.plural, info.singular, (info.kind or "").lower(), *info.shortnames}
            if word in names and spec.check(kmock.resource(res.group, res.version, spec.plural)):
                candidates.append(res)
        if not candidates:
            raise ValueError(f"unknown resource: {ref!r}")
        return max(candidates, key=lambda r: (r.group == "", version_priority(r.version or "")))

    # --- CRDs --------------------------------------------------------------------------------

    def register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
        versions = spec.get("versions") or []
        storage = [v["name"] for v in versions if v.get("storage")]
        problems = []
        if not (group and plural and kind and versions):
            problems.append("spec.group, spec.names.plural/kind and spec.versions are required")
        elif crd.get("metadata", {}).get("name") != f"{plural}.{group}":
            problems.append(
                f'metadata.name: Invalid value: must be spec.names.plural+"."'
                f'+spec.group: "{plural}.{group}"'
            )
        if len(storage) != 1:
            problems.append("spec.versions: Invalid value: must have exactly one storage version")
        if spec.get("scope") not in {"Namespaced", "Cluster"}:
            problems.append('spec.scope: Unsupported value: must be "Namespaced" or "Cluster"')
        if problems:
            name = crd.get("metadata", {}).get("name", "")
            raise ApiError.invalid("CustomResourceDefinition", name, problems)
        self.unregister_crd(crd)
        record = Crd(group=group, plural=plural, kind=kind, storage_version=storage[0])
        for version in versions:
            if not version.get("served", True):
                continue
            subresources = version.get("subresources") or {}
            self.resources[kmock.resource(group, version["name"], plural)] = kmock.ResourceInfo(
                kind=kind,
                singular=names.get("singular") or kind.lower(),
                namespaced=spec["scope"] == "Namespaced",
                verbs=ALL_VERBS,
                shortnames=names.get("shortNames") or [],
                categories=names.get("categories") or [],
                subresources={s for s in ("status", "scale") if s in subresources},
            )
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                record.schemas[version["name"]] = CrdSchema(schema)
        self.crds[(group, plural)] = record
        self._changed()

    def unregister_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        for res in self.all():
            if (res.group, res.plural) == (group, plural):
                del self.resources[res]
        self.crds.pop((group, plural), None)
        self._changed()

    # --- discovery documents -----------------------------------------------------------------

    def api_versions(self, address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
        }

    def group_doc(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.versions(group)]
        if not versions:
            raise ApiError.not_found(group)
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": versions,
            "preferredVersion": versions[0],
        }

    def group_list(self) -> dict[str, Any]:
        groups = [self.group_doc(g) for g in self.groups()]
        for doc in groups:
            del doc["kind"], doc["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        for res in self.all():
            if (res.group, res.version) != (group, version):
                continue
            info = self.resources[res]
            entry: dict[str, Any] = {
                "name": res.plural,
                "singularName": info.singular or "",
                "namespaced": bool(info.namespaced),
                "kind": info.kind,
                "verbs": sorted(info.verbs),
            }
            if info.shortnames:
                entry["shortNames"] = sorted(info.shortnames)
            if info.categories:
                entry["categories"] = sorted(info.categories)
            entries.append(entry)
            for sub in sorted(info.subresources):
                sub_entry = {
                    "name": f"{res.plural}/{sub}",
                    "singularName": "",
                    "namespaced": bool(info.namespaced),
                    "kind": info.kind,
                    "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
                }
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                entries.append(sub_entry)
        if not entries:
            raise ApiError.not_found(f"{group}/{version}")
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries,
        }


def make_crd(
    group: str,
    kind: str,
    *,
    plural: str | None = None,
    versions: tuple[str, ...] = ("v1",),
    scope: str = "Namespaced",
    status: bool = True,
    schema: dict[str, Any] | None = None,
    short_names: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A CustomResourceDefinition to `emulator.create()` (the first version is stored).

    Without a schema, spec and status keep whatever is written to them.
    """
    plural = plural or f"{kind.lower()}s"
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema = schema or {"type": "object", "properties": {"spec": free, "status": free}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "listKind": f"{kind}List",
                "shortNames": list(short_names),
            },
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": {"openAPIV3Schema": schema},
                    **({"subresources": {"status": {}}} if status else {}),
                }
                for i, v in enumerate(versions)
            ],
        },
    }
