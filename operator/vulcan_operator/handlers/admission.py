"""The validating admission webhook for our four kinds (`run --admission-port`).

One handler per kind, its id the plural, so `/validate/<plural>` reaches it. It refuses what
`vulcan-operator validate` and the reconcile refuse (`checks.check`, with the objects the
resource names read from the API: its engine, a problemRef ConfigMap, a VulcanBackup), and
adds warnings for what is legal but unwise. An update that leaves the spec as it was is
always admitted. A name that cannot be read (absent, or the API
failing) is not checked here: the reconcile, which checks it again, waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from vulcan_operator import API_VERSION, GROUP, checks, kinds
from vulcan_operator.config import Settings
from vulcan_operator.k8s import Api, ApiError, Ref

__all__ = ["MAX_LINES", "register"]

log = logging.getLogger(__name__)

#: At most this many problems in one refusal (the API server shows the message whole).
MAX_LINES = 20


async def named(api: Api, doc: dict[str, Any]) -> checks.Named:
    """The objects `doc` names that the checks look at, as far as they can be read."""
    namespace = str((doc.get("metadata") or {}).get("namespace") or "")
    spec = _mapping(doc.get("spec"))
    wanted: dict[str, Ref] = {}
    engine_ref = _mapping(spec.get("engineRef"))
    engine_ns = str(engine_ref.get("namespace") or namespace)
    if doc.get("kind") in (kinds.PROBLEM.kind, kinds.RESTORE.kind) and engine_ref.get("name"):
        wanted["engine"] = Ref(API_VERSION, kinds.ENGINE.kind, engine_ns, engine_ref["name"])
    problem_ref = spec.get("problemRef")
    if isinstance(problem_ref, dict) and problem_ref.get("configMapName"):
        wanted["configmap"] = Ref("v1", "ConfigMap", namespace, problem_ref["configMapName"])
    backup_ref = spec.get("backupRef")
    if isinstance(backup_ref, dict) and backup_ref.get("name"):
        wanted["backup"] = Ref(API_VERSION, kinds.BACKUP.kind, namespace, backup_ref["name"])
    found = await asyncio.gather(*(_read(api, ref) for ref in wanted.values()))
    got = dict(zip(wanted, found, strict=True))
    engine, configmap, backup = got.get("engine"), got.get("configmap"), got.get("backup")
    if doc.get("kind") == kinds.ENGINE.kind:
        engines = await _engines(api, namespace, spec)  # the others that could share its store
    else:
        engines = {(engine_ns, wanted["engine"].name or ""): engine} if engine else {}
    return checks.Named(
        configmaps={wanted["configmap"].name or "": configmap} if configmap else {},
        engines=engines,
        backups={wanted["backup"].name or "": backup} if backup else {},
    )


async def _engines(
    api: Api, namespace: str, spec: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The engines an engine's backup store could clash with, as the reconcile lists them: a
    claim is namespaced, so this namespace's; a bucket, every namespace's."""
    storage = _mapping(_mapping(spec.get("backup")).get("storage"))
    ref = Ref(API_VERSION, kinds.ENGINE.kind, None if "s3" in storage else namespace)
    try:
        engines = await api.list(ref)
    except ApiError as exc:  # e.g. a namespaced install: the reconcile checks it again
        log.warning("admission: cannot list VulcanEngines: %s", exc)
        return {}
    return {
        (str(e["metadata"].get("namespace")), str(e["metadata"].get("name"))): e for e in engines
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _read(api: Api, ref: Ref) -> dict[str, Any] | None:
    try:
        return await api.get(ref)
    except ApiError as exc:
        log.warning("admission: cannot read %s %s/%s: %s", ref.kind, ref.namespace, ref.name, exc)
        return None


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """The webhook's handlers, one per kind (served once `settings.admission_port` is set)."""
    api = Api()

    async def review(body: kopf.Body, warnings: list[str], **kwargs: Any) -> None:
        doc, old = dict(body), kwargs.get("old")
        if old is not None and old.get("spec") == doc.get("spec"):
            # Metadata only (labels, Kopf's own annotations and finalizer, a deletion): never
            # refused, or an object made before the webhook could not even be deleted.
            return
        # Off the event loop: a large inline problem or problemRef takes a while to check.
        obj = await asyncio.to_thread(checks.parse, doc)
        names = checks.Named() if isinstance(obj, list) else await named(api, doc)
        lines = (
            obj
            if isinstance(obj, list)
            else await asyncio.to_thread(checks.related, obj, names, settings.allowed_images)
        )
        if lines:
            shown = lines[:MAX_LINES]
            more = f"; and {len(lines) - MAX_LINES} more" if len(lines) > MAX_LINES else ""
            raise kopf.AdmissionError("; ".join(shown) + more, code=422)
        assert not isinstance(obj, list)
        warnings.extend(checks.warnings_of(obj, names))

    for kind in kinds.ALL:
        kopf.on.validate(
            GROUP,
            kind.plural,
            id=kind.plural,
            operations=["CREATE", "UPDATE"],
            registry=registry,
        )(review)
