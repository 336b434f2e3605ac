"""The emulator's object store: create, update, delete with a real API server's rules
(admission, resourceVersion conflicts, finalizers, garbage collection by owner), on the
server's loop only."""

from __future__ import annotations

import builtins
import copy
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import kmock

from tests.emulator import objects as o
from tests.emulator.api import (
    CRDS,
    IMMUTABLE_SPEC,
    KEPT_META,
    NAMESPACES,
    SERVER_META,
    ApiError,
    Key,
    Obj,
    T,
)
from tests.emulator.watch import Event, as_version, group_version

logger = logging.getLogger(__name__)


class StoreMixin:
    """The store methods of `Emulator` (server.py)."""

    # --- the store (runs on the server's loop only) -------------------------------------------

    def _key(self, res: kmock.resource, namespace: str | None, name: str) -> Key:
        info = self.registry.info(res)
        return (self.registry.storage(res), namespace if info.namespaced else None, name)

    def _find(self, res: kmock.resource, namespace: str | None, name: str) -> Obj | None:
        key = self._key(res, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key].last.raw
        return None

    def _read(self, res: kmock.resource, namespace: str | None, name: str) -> Obj:
        obj = self._find(res, namespace, name)
        if obj is None:
            raise ApiError.not_found(res.plural or "", name, res.group or "")
        return obj

    def _live(self, res: kmock.resource) -> builtins.list[Obj]:
        storage = self.registry.storage(res)
        found = [
            obj.last.raw
            for (r, _, _), obj in self.objects.items()
            if r == storage and not obj.deleted
        ]
        return sorted(
            found, key=lambda x: (x["metadata"].get("namespace") or "", x["metadata"]["name"])
        )

    def _selector(self, res: kmock.resource, query: dict[str, str]) -> Callable[[Obj], bool]:
        by_labels = o.label_selector(query.get("labelSelector"))
        by_fields = o.field_selector(query.get("fieldSelector"), res.plural or "")
        return lambda obj: by_labels(obj) and by_fields(obj)

    def _select(
        self, res: kmock.resource, namespace: str | None, query: dict[str, str]
    ) -> builtins.list[Obj]:
        selects = self._selector(res, query)
        return [
            obj
            for obj in self._live(res)
            if selects(obj) and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]

    def _list_doc(
        self,
        res: kmock.resource,
        namespace: str | None,
        query: dict[str, str],
        items: builtins.list[Obj] | None = None,
    ) -> Obj:
        items = self._select(res, namespace, query) if items is None else items
        meta: Obj = {"resourceVersion": str(self._rv)}
        limit = int(query.get("limit") or 0)
        if limit:
            start = int(query.get("continue") or 0)
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        if self.registry.is_custom(res):  # typed lists of built-ins carry no per-item kind
            items = [as_version(obj, res) for obj in items]
        else:
            items = [
                {k: v for k, v in obj.items() if k not in {"kind", "apiVersion"}} for obj in items
            ]
        kind = f"{self.registry.info(res).kind}List"
        return {"kind": kind, "apiVersion": group_version(res), "metadata": meta, "items": items}

    def _commit(self, kind: str, key: Key, obj: Obj, old: Obj | None) -> None:
        """Store a change with a new resourceVersion, record it and tell watchers/controllers."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        uid = obj["metadata"]["uid"]
        if key not in self.objects:
            self.objects[key] = obj
        else:
            self.objects[key].history.append(obj)
        if kind == "DELETED":
            self.objects[key].delete()
            self._uids.pop(uid, None)
        else:
            self._uids[uid] = key
        event = Event(self._rv, kind, key[0], obj, old)
        self._history.append(event)
        while len(self._history) > self.history_limit:
            self._compacted = self._history.popleft().rv
        for watcher in builtins.list(self._watchers):
            if (item := watcher.translate(event)) is not None:
                watcher.queue.put_nowait((time.monotonic(), item))
        self.jobs.observe(event)
        self.deployments.observe(event)

    def _admit(self, res: kmock.resource, obj: Obj, old: Obj | None) -> Obj:
        """What the API server does to every write before storing: normalize, default,
        prune and validate (422 with every problem found)."""
        info = self.registry.info(res)
        plural = res.plural or ""
        errors: list[str] = []
        if self.registry.is_custom(res):
            crd_schema = self.registry.schema(self.registry.storage(res))
            if crd_schema is not None:
                errors += crd_schema.admit(obj)
        else:
            if res.group == "" and plural == "secrets":
                o.normalize_secret(obj)
            if old is not None and plural == "services":  # the cluster IP is allocated once
                for field in ("clusterIP", "clusterIPs"):
                    if field in old.get("spec", {}) and isinstance(obj.get("spec"), dict):
                        obj["spec"].setdefault(field, old["spec"][field])
            o.apply_defaults(plural, obj)
            if old is not None:
                errors += [
                    f"{field}: Invalid value: field is immutable"
                    for field in IMMUTABLE_SPEC.get(plural, ())
                    if o.lookup(obj, field) != o.lookup(old, field)
                ]
        errors += o.validate("" if self.registry.is_custom(res) else plural, obj)
        if errors:
            raise ApiError.invalid(info.kind or "", obj["metadata"].get("name", ""), errors)
        return obj

    def _create(
        self, res: kmock.resource, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> Obj:
        info = self.registry.info(res)
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body must be an object")
        obj = copy.deepcopy(body)
        if (
            obj.get("apiVersion", group_version(res)) != group_version(res)
            or obj.get("kind", info.kind) != info.kind
        ):
            raise ApiError.bad_request(
                f"the API version/kind in the data ({obj.get('apiVersion')}/{obj.get('kind')})"
                f" does not match the expected ({group_version(res)}/{info.kind})"
            )
        storage = self.registry.storage(res)
        obj = {
            "apiVersion": group_version(storage),
            "kind": info.kind,
            **obj,
        }  # also their usual order
        obj["apiVersion"], obj["kind"] = group_version(storage), info.kind
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        for field in SERVER_META:
            meta.pop(field, None)
        if info.namespaced:
            if meta.setdefault("namespace", namespace) != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match"
                    " the namespace sent on the request"
                )
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError.invalid(
                    info.kind or "",
                    "",
                    ["metadata.name: Required value: name or generateName is required"],
                )
            meta["name"] = meta["generateName"] + o.random_suffix()
        if "status" in info.subresources:
            obj.pop("status", None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=o.now(), generation=1)
        obj = self._admit(res, obj, None)
        if self._find(res, namespace, meta["name"]) is not None:
            raise ApiError.already_exists(res.plural or "", meta["name"], res.group or "")
        if (
            self.strict_namespaces
            and info.namespaced
            and self._find(NAMESPACES, None, namespace or "") is None
        ):
            raise ApiError.not_found("namespaces", namespace)
        if storage == NAMESPACES:
            obj["status"] = {"phase": "Active"}
        if storage == CRDS:
            if not dry_run:
                self.registry.register_crd(obj)
            names = obj["spec"]["names"]
            obj["status"] = {
                "acceptedNames": names,
                "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")],
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "reason": r,
                        "lastTransitionTime": o.now(),
                        "message": "",
                    }
                    for t, r in (
                        ("NamesAccepted", "NoConflicts"),
                        ("Established", "InitialNamesAccepted"),
                    )
                ],
            }
        if dry_run:
            return obj
        self._commit("ADDED", self._key(res, namespace, meta["name"]), obj, None)
        if meta.get("ownerReferences") and self._loop is not None:  # owners gone already?
            self._loop.call_soon(
                self._collect_if_orphaned, self._key(res, namespace, meta["name"]), meta["uid"]
            )
        return obj

    def _update(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        change: Callable[[Obj], Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Every modification: PUT, the three PATCH types, status writes, controllers."""
        key = self._key(res, namespace, name)
        old = self._read(res, namespace, name)
        candidate = change(copy.deepcopy(old))
        if not isinstance(candidate, dict) or not isinstance(candidate.get("metadata", {}), dict):
            raise ApiError(422, "Invalid", "the result of the change is not an object")
        sent_rv = (candidate.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict(res.plural or "", name, res.group or "")
        info = self.registry.info(res)
        if subresource == "status":  # only the status changes, whatever else was sent
            new = copy.deepcopy(old)
            new.pop("status", None)
            if "status" in candidate:
                new["status"] = candidate["status"]
        else:
            new = candidate
            sent = new.pop("status", None)
            if "status" not in info.subresources and sent is not None:
                new["status"] = sent
            elif "status" in info.subresources and "status" in old:  # kept as it was
                new["status"] = copy.deepcopy(old["status"])
            meta = new["metadata"] = dict(new.get("metadata") or {})
            meta.pop("managedFields", None)
            for field in KEPT_META:
                meta.pop(field, None)
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(
                    old["metadata"].get("finalizers") or []
                )
                if added:
                    raise ApiError.invalid(
                        info.kind or "",
                        name,
                        [
                            f"metadata.finalizers: Forbidden: no new finalizers can be added if the"
                            f" object is being deleted, found new finalizers {sorted(added)}"
                        ],
                    )
        new = self._admit(res, new, old)
        if key[0] == CRDS and subresource is None and not dry_run:
            self.registry.register_crd(new)
        if o.spec_part(new) != o.spec_part(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if new == old or dry_run:  # a write that changes nothing changes nothing (no event)
            return old if new == old else new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._commit("DELETED", key, new, old)
            self._after_delete(key[0], new)
        else:
            self._commit("MODIFIED", key, new, old)
        return new

    def _delete(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        *,
        orphan: bool = False,
        preconditions: Obj | None = None,
    ) -> tuple[Obj, bool]:
        """Delete, or only mark for deletion while finalizers remain. True if gone now."""
        key = self._key(res, namespace, name)
        old = self._read(res, namespace, name)
        for field in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != old["metadata"][field]:
                raise ApiError.conflict(
                    res.plural or "",
                    name,
                    res.group or "",
                    f"Precondition failed: {field} mismatch",
                )
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"].update(deletionTimestamp=o.now(), deletionGracePeriodSeconds=0)
            self._commit("MODIFIED", key, new, old)
            return new, False
        final = copy.deepcopy(old)
        self._commit("DELETED", key, final, old)
        self._after_delete(key[0], final, orphan=orphan)
        return final, True

    def _after_delete(self, storage: kmock.resource, obj: Obj, orphan: bool = False) -> None:
        if storage == CRDS:  # the custom resources go with their definition
            spec = obj["spec"]
            for key, item in builtins.list(self.objects.items()):
                kind = (key[0].group, key[0].plural)
                if kind == (spec["group"], spec["names"]["plural"]) and not item.deleted:
                    final = copy.deepcopy(item.last.raw)
                    self._commit("DELETED", key, final, item.last.raw)
                    self._after_delete(key[0], final)
            self.registry.unregister_crd(obj)
        if storage == NAMESPACES:  # what lives in a namespace goes with it
            for (res, ns, name), _ in builtins.list(self.objects.items()):
                if ns == obj["metadata"]["name"] and self._find(res, ns, name) is not None:
                    self._delete(res, ns, name)
        if not orphan:
            self._collect(obj["metadata"]["uid"])

    def _collect(self, uid: str) -> None:
        """Garbage collection: delete the dependents of `uid` whose every owner is gone."""
        for key, item in builtins.list(self.objects.items()):
            refs = [] if item.deleted else item.last.raw["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                self._collect_if_orphaned(key, item.last.raw["metadata"]["uid"])

    def _collect_if_orphaned(self, key: Key, uid: str) -> None:
        res, ns, name = key
        obj = self._find(res, ns, name)
        if obj is None or obj["metadata"]["uid"] != uid:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and not any(self._owner_alive(ref, ns) for ref in refs):
            self._delete(res, ns, name)

    def _owner_alive(self, ref: Obj, namespace: str | None) -> bool:
        key = self._uids.get(ref.get("uid", ""))
        return key is not None and key[1] in {None, namespace}  # owners: same namespace or none


def jsonable(obj: T) -> T:
    """A deep copy that is sure to be JSON (a test's datetime fails here, not when served)."""
    return json.loads(json.dumps(obj))  # type: ignore[no-any-return]
