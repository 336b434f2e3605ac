"""Children read from watches, not from a GET per child per resync (issue 19).

Kopf keeps an index per child kind (`handlers.children`), fed by watches that the API server
limits to our managed-by label, each child `Packed` (compressed JSON), and the engines' index
(`handlers.problem`). `CachedApi`, made for one engine reconcile, answers from them:

- a GET of a child kind (`CHILD_KINDS`) or of a VulcanEngine, and a LIST of a child kind by an
  engine's label (`LABEL_ENGINE`) or of VulcanEngines without labels (those as the index holds
  them, not copied: read them, never change them);
- everything else from the API server, each GET once per reconcile (an engine's Secrets are
  read once each, not once per use). Secrets are never watched: that would read every Secret.

`Writes` keeps the answers of this process's own writes until the watch shows a newer version
(a child's answer goes as soon as its watch event shows that version), so a reconcile right
after a write does not see the object as it was before it; a deletion is kept the same way. A
write refused with 409 (a create racing another, a precondition) or 422 (a JSON patch's failed
`test`) makes the next GET of that object a real one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vulcan_operator import API_VERSION, GROUP, kinds, names
from vulcan_operator.k8s.client import Api, ApiError, Ref

#: (apiVersion, kind) of every child kind served from a watch, and Kopf's group/version/plural.
CHILD_KINDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("v1", "ConfigMap"): ("", "v1", "configmaps"),
    ("v1", "Service"): ("", "v1", "services"),
    ("v1", "ServiceAccount"): ("", "v1", "serviceaccounts"),
    ("v1", "PersistentVolumeClaim"): ("", "v1", "persistentvolumeclaims"),
    ("apps/v1", "Deployment"): ("apps", "v1", "deployments"),
    ("batch/v1", "Job"): ("batch", "v1", "jobs"),
    ("batch/v1", "CronJob"): ("batch", "v1", "cronjobs"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
    ),
    ("policy/v1", "PodDisruptionBudget"): ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networking.k8s.io", "v1", "networkpolicies"),
    ("networking.k8s.io/v1", "Ingress"): ("networking.k8s.io", "v1", "ingresses"),
    # Watched when the cluster serves them (Kopf starts the watch when their CRDs appear).
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "monitoring.coreos.com",
        "v1",
        "servicemonitors",
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): (
        "monitoring.coreos.com",
        "v1",
        "prometheusrules",
    ),
}
ENGINE = (API_VERSION, kinds.ENGINE.kind)
#: How long a write's answer is kept at most (the watch shows it within seconds).
WRITES_SECONDS = 300.0
#: Kopf's own copy of the spec, on every object it handles: not needed from the index.
KOPF_DIFFBASE = f"{GROUP}/last-handled-configuration"


def index_id(api_version: str, kind: str) -> str:
    """The name of a child kind's Kopf index (the keyword argument handlers get it as)."""
    return f"vulcan_children_{CHILD_KINDS[(api_version, kind)][2]}"


def by_name(namespace: str | None, name: str) -> tuple[str, str, str]:
    return ("name", str(namespace or ""), name)


def by_engine(namespace: str | None, label: str) -> tuple[str, str, str]:
    return ("engine", str(namespace or ""), label)


def _view(body: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """A watched object without managedFields and Kopf's diff-base (shares the rest)."""
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations") or {}
    if KOPF_DIFFBASE in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != KOPF_DIFFBASE}
    return {"apiVersion": api_version, "kind": kind, **body, "metadata": meta}


def trimmed(body: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """A copy of a watched object to keep: without managedFields and Kopf's diff-base."""
    return copy.deepcopy(_view(body, api_version, kind))


class Packed:
    """A watched child as its index keeps it: its JSON, compressed, about a twelfth of the
    memory its dicts take (a thousand engines have some 13,000 children). `unpack` gives a
    fresh copy each time, which the reader may change."""

    __slots__ = ("data",)

    def __init__(self, body: Mapping[str, Any], api_version: str, kind: str) -> None:
        text = json.dumps(_view(body, api_version, kind), separators=(",", ":"))
        self.data = zlib.compress(text.encode(), 1)

    def unpack(self) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(zlib.decompress(self.data))
        return obj


def _rv(obj: Mapping[str, Any]) -> int | None:
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


def fingerprint(body: Mapping[str, Any]) -> str:
    """A digest of what someone may change in a child: all but its status and the server's
    bookkeeping."""
    meta = body.get("metadata") or {}
    kept = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    kept["metadata"] = {
        k: meta.get(k) for k in ("labels", "annotations", "ownerReferences", "deletionTimestamp")
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


class Writes:
    """This process's writes of watched objects, until the watch has caught up with them.

    `answers`: Ref -> (when, the object as the write returned it; None once deleted, with the
    deleted object's uid). `own`: Ref -> the `fingerprint` of our last write, so the watch
    events of our own write (and of the server's status updates after it) are not taken for
    someone's edit (`handlers.children`)."""

    def __init__(self) -> None:
        self.answers: dict[Ref, tuple[float, dict[str, Any] | None, str, str]] = {}
        self.own: dict[Ref, str] = {}
        #: (apiVersion, kind, namespace, engine label) -> the refs of `answers` with that label
        self._by_engine: dict[tuple[str, str, str, str], set[Ref]] = {}

    def wrote(
        self, ref: Ref, obj: dict[str, Any] | None, before: dict[str, Any] | None = None
    ) -> None:
        """Our write's answer (`obj`), or None after a deletion of `before`."""
        meta = (obj or before or {}).get("metadata") or {}
        label = str((meta.get("labels") or {}).get(names.LABEL_ENGINE) or "")
        self._forget(ref)
        self.answers[ref] = (time.monotonic(), obj, str(meta.get("uid") or ""), label)
        key = (ref.api_version, ref.kind, str(ref.namespace or ""), label)
        self._by_engine.setdefault(key, set()).add(ref)
        if obj is not None:
            self.own[ref] = fingerprint(obj)
        else:
            self.own.pop(ref, None)

    def _forget(self, ref: Ref) -> None:
        entry = self.answers.pop(ref, None)
        if entry is not None:
            key = (ref.api_version, ref.kind, str(ref.namespace or ""), entry[3])
            refs = self._by_engine.get(key, set())
            refs.discard(ref)
            if not refs:
                self._by_engine.pop(key, None)

    def ours(self, ref: Ref, seen: str) -> bool:
        """Whether a watch event (its `fingerprint`) shows the object as this process last
        wrote it."""
        return self.own.get(ref) == seen

    def deleted(self, ref: Ref) -> bool:
        """Whether this process deleted the object (its watch event is no one's edit)."""
        entry = self.answers.get(ref)
        return entry is not None and entry[1] is None

    def watched(self, ref: Ref, body: Mapping[str, Any], *, gone: bool = False) -> None:
        """A watch event of the object (`gone`: its deletion): our answer is forgotten once
        the watch shows that version, a newer one, or the object deleted. (Else a child
        deleted before any reconcile looked at it again would still seem to be there.)"""
        entry = self.answers.get(ref)
        if entry is None:
            return
        _, written, uid, _ = entry
        same = str((body.get("metadata") or {}).get("uid") or "") == uid
        if gone:
            if same or written is None:
                self._forget(ref)
        elif written is not None:
            a, b = _rv(body), _rv(written)
            if a is not None and b is not None and a >= b:
                self._forget(ref)
        elif not same:  # we deleted it, and it was made again since
            self._forget(ref)

    def pick(self, ref: Ref, seen: dict[str, Any] | None) -> dict[str, Any] | None:
        """The newer of what the watch shows (`seen`) and what we wrote."""
        entry = self.answers.get(ref)
        if entry is None:
            return seen
        at, written, uid, _ = entry
        if time.monotonic() - at > WRITES_SECONDS:
            self._forget(ref)
            return seen
        if written is None:  # we deleted it: gone, unless made again since (another uid)
            if seen is not None and (seen.get("metadata") or {}).get("uid") != uid:
                self._forget(ref)
                return seen
            if seen is None:
                self._forget(ref)
            return None
        if seen is None:
            return written
        a, b = _rv(seen), _rv(written)
        if a is None or b is None or a > b:
            self._forget(ref)
            return seen
        # The same version (the watch caught up, or `seen` is this answer itself, as when a
        # reconcile picks again after its own writes): kept until a newer one is seen.
        return seen if a == b else written

    def refs(self, api_version: str, kind: str, namespace: str, label: str) -> list[Ref]:
        """Our written objects of a kind with this engine label in a namespace."""
        return list(self._by_engine.get((api_version, kind, namespace, label), ()))


def _first(values: Iterable[Any] | None) -> Any:
    for value in values or ():
        return value
    return None


def _fresh(value: Packed | dict[str, Any]) -> dict[str, Any]:
    """An index's value as a copy of its own: a child unpacked, an engine copied."""
    return value.unpack() if isinstance(value, Packed) else copy.deepcopy(value)


def _matches(obj: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


class CachedApi(Api):
    """The `Api` of one engine reconcile: reads from the indexes where it can (see above)."""

    def __init__(
        self,
        api: Api,
        indexes: Mapping[tuple[str, str], Mapping[Any, Iterable[dict[str, Any]]]],
        writes: Writes,
    ) -> None:
        super().__init__(api._client)
        self._discovery = api._discovery  # shared: discovery stays cached across reconciles
        self._indexes = indexes
        self._writes = writes
        self._memo: dict[Ref, dict[str, Any] | None] = {}
        self._live: set[Ref] = set()  # read these from the server next time (after a 409)

    def _index(self, ref: Ref) -> Mapping[Any, Iterable[dict[str, Any]]] | None:
        return self._indexes.get((ref.api_version, ref.kind))

    async def get(self, ref: Ref) -> dict[str, Any] | None:
        index = self._index(ref)
        if ref in self._live:
            self._live.discard(ref)
            obj = await super().get(ref)
            if index is None:
                self._memo[ref] = obj
            return copy.deepcopy(obj)
        if index is not None and ref.name:
            key = (ref.namespace, ref.name) if (ref.api_version, ref.kind) == ENGINE else None
            first = _first(index.get(key or by_name(ref.namespace, ref.name)))
            seen = None if first is None else _fresh(first)
            picked = self._writes.pick(ref, seen)
            return picked if picked is seen else copy.deepcopy(picked)
        if ref not in self._memo:
            self._memo[ref] = await super().get(ref)
        return copy.deepcopy(self._memo[ref])

    async def list(self, ref: Ref, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        index = self._index(ref)
        key = (ref.api_version, ref.kind)
        if index is not None and key == ENGINE and not labels:
            # Not copied (every engine, on every reconcile): the caller only reads them.
            return [
                e
                for k, values in list(index.items())
                if ref.namespace is None or k[0] == ref.namespace
                for e in values
            ]
        engine = (labels or {}).get(names.LABEL_ENGINE)
        if index is None or key == ENGINE or not engine or not ref.namespace:
            return await super().list(ref, labels)
        seen: dict[str, dict[str, Any] | None] = {}
        for value in index.get(by_engine(ref.namespace, engine)) or ():
            obj = _fresh(value)
            seen[obj["metadata"]["name"]] = obj
        for written in self._writes.refs(ref.api_version, ref.kind, ref.namespace, engine):
            name = str(written.name)
            picked = self._writes.pick(written, seen.get(name))
            seen[name] = picked if picked is seen.get(name) else copy.deepcopy(picked)
        return [o for _, o in sorted(seen.items()) if o is not None and _matches(o, labels or {})]

    async def _wrote(self, ref: Ref, call: Any) -> dict[str, Any]:
        self._memo.pop(ref, None)
        try:
            obj: dict[str, Any] = await call
        except ApiError as exc:
            if exc.status in (409, 422):  # a conflict, or a failed `test` of a JSON patch
                self._live.add(ref)
            raise
        if self._index(ref) is not None and isinstance(obj, dict):
            self._writes.wrote(ref, obj)
        return obj

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._wrote(Ref.of(obj), super().create(obj))

    async def patch(
        self, ref: Ref, body: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        return await self._wrote(ref, super().patch(ref, body, subresource=subresource))

    async def json_patch(
        self, ref: Ref, ops: Sequence[Mapping[str, Any]], *, subresource: str | None = None
    ) -> dict[str, Any]:
        return await self._wrote(ref, super().json_patch(ref, ops, subresource=subresource))

    async def delete(self, ref: Ref) -> bool:
        self._memo.pop(ref, None)
        index = self._index(ref)
        before = await self.get(ref) if index is not None else None
        deleted = await super().delete(ref)
        if index is not None:
            self._writes.wrote(ref, None, before)
        return deleted
