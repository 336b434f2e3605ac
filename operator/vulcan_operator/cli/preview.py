"""`vulcan-operator render`: the objects a first reconcile creates, without a cluster.

It goes through the same parsing and builders as the operator. Secret values are generated as
the operator would generate them; the owner uid is a placeholder (the API server assigns the
real one); the cluster is assumed to have the Prometheus Operator CRDs.
"""

from __future__ import annotations

from typing import Any

from vulcan_operator.api.backup import VulcanBackup, VulcanRestore
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders import engine_children
from vulcan_operator.builders import problem as problem_builder
from vulcan_operator.builders.backup.jobs import build_backup_job, build_restore_job
from vulcan_operator.builders.backup.pods import with_client_image
from vulcan_operator.builders.common import Owner
from vulcan_operator.builders.engine import EngineInputs
from vulcan_operator.builders.keys import ensure_keys
from vulcan_operator.builders.migration import restore_migration_job
from vulcan_operator.checks import Named
from vulcan_operator.cli.validate import resource_name, validate_resource
from vulcan_operator.config import Settings
from vulcan_operator.reconcile.engine_database import server_version
from vulcan_operator.reconcile.jobs import safe_parts

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


class RenderError(Exception):
    """The input cannot be rendered; the message names the resource and the fields."""


def _with_defaults(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    meta.setdefault("uid", PLACEHOLDER_UID)
    return {**doc, "metadata": meta}


def render_engine(doc: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    probe = EngineInputs.from_resource(doc, settings=settings)
    settings = with_client_image(settings, probe.spec.backup, server_version(doc))
    inputs = EngineInputs.from_resource(
        doc, keys=ensure_keys(probe.spec, None), settings=settings, monitoring=True
    )
    return engine_children(inputs)


def render_problem(
    doc: dict[str, Any], settings: Settings, engine: dict[str, Any]
) -> list[dict[str, Any]]:
    """The solver Job of the problem's first generation, and its ServiceAccount, Role,
    RoleBinding and schedule ConfigMap."""
    meta = doc["metadata"]
    inputs = problem_builder.ProblemInputs(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation") or 1),
        spec=SchedulingProblem.model_validate(doc).spec,
        engine=VulcanEngineSpec.model_validate(engine.get("spec") or {}),
        settings=settings,
        engine_namespace=engine["metadata"]["namespace"],
    )
    refused = problem_builder.acceptance_issue(  # without the namespace's labels
        inputs.namespace,
        inputs.engine_name,
        inputs.engine_namespace,
        inputs.engine.solver.acceptFrom,
        None,
    )
    if refused:
        raise RenderError(f"SchedulingProblem/{meta['name']}: {refused}")
    over = problem_builder.cap_issues(inputs.spec, inputs.engine)
    if over:  # the operator would refuse it: no Job to show
        raise RenderError(f"SchedulingProblem/{meta['name']}: {'; '.join(over)}")
    return problem_builder.build(inputs)


def _owner(doc: dict[str, Any]) -> Owner:
    meta = doc["metadata"]
    return Owner(kind=doc["kind"], name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def render_backup(
    doc: dict[str, Any], settings: Settings, engine: dict[str, Any]
) -> list[dict[str, Any]]:
    """The Job of a VulcanBackup: to the engine's own store, nothing else (the engine's
    managed claim is the engine's to create)."""
    if (doc.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return []  # a finished backup is never run again
    VulcanBackup.model_validate(doc)  # refuses spec.storage (validated before, too)
    engine_spec = VulcanEngineSpec.model_validate(engine.get("spec") or {})
    return build_backup_job(
        _owner(doc),
        engine["metadata"]["name"],
        engine_spec,
        with_client_image(settings, engine_spec.backup, server_version(engine)),
    )


def render_restore(
    doc: dict[str, Any],
    settings: Settings,
    engine: dict[str, Any],
    backups: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The Jobs of a VulcanRestore: the restore Job, then the migration Job (when it migrates).

    With backupRef, the location and checksum come from that VulcanBackup's status: give it in
    FILE or the --engine file as `kubectl get vulcanbackup NAME -o yaml` shows it. Scaling the
    engine to zero and back changes the engine's own Deployment and HPA: nothing is created.
    The location must be a backup file of the engine's own store (`restore_source_problem`).
    """
    if (doc.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return []  # a finished restore is never run again
    restore = VulcanRestore.model_validate(doc)
    spec, name = restore.spec, resource_name(doc)
    engine_spec = VulcanEngineSpec.model_validate(engine.get("spec") or {})
    location, checksum = spec.location, spec.checksum
    parts: dict[str, dict[str, Any]] = {}  # with backupRef: the volumes it recorded
    if spec.backupRef is not None:
        backup = (backups or {}).get(spec.backupRef.name)
        status = (backup or {}).get("status") or {}
        engine_of_backup = ((backup or {}).get("spec") or {}).get("engineRef") or {}
        if backup is not None and engine_of_backup.get("name") != engine["metadata"]["name"]:
            raise RenderError(
                f"{name}: spec.backupRef: VulcanBackup '{spec.backupRef.name}' is a backup of "
                f"VulcanEngine '{engine_of_backup.get('name')}', not of "
                f"'{engine['metadata']['name']}'"
            )
        if not status.get("location"):
            raise RenderError(
                f"{name}: the location of VulcanBackup '{spec.backupRef.name}' is known once it "
                "has succeeded: add it with its status (kubectl get vulcanbackup "
                f"{spec.backupRef.name} -o yaml) to FILE, or use spec.location"
            )
        recorded = str(status.get("checksum") or "")
        if checksum and checksum != recorded:
            raise RenderError(
                f"{name}: spec.checksum is not the recorded checksum (status.checksum) of "
                f"VulcanBackup '{spec.backupRef.name}'"
            )
        location, checksum = str(status["location"]), recorded
        parts = safe_parts(status.get("parts"))
    try:
        out = build_restore_job(
            _owner(doc),
            engine["metadata"]["name"],
            engine_spec,
            with_client_image(settings, engine_spec.backup, server_version(engine)),
            location=location,
            checksum=checksum,
            target_database=spec.targetDatabase,
            parts=parts,
        )
    except ValueError as exc:
        raise RenderError(f"{name}: {exc}") from None
    if spec.migrate and not spec.targetDatabase:
        version = (engine.get("status") or {}).get("currentVersion") or engine_spec.version
        inputs = EngineInputs.from_resource(engine, settings=settings, run_version=version)
        out.append(restore_migration_job(inputs, version, doc["metadata"]["uid"]))
    return out


RENDERERS = {"VulcanEngine": render_engine}
#: Kinds rendered together with the VulcanEngine they refer to (`--engine`).
ENGINE_RENDERERS = {
    "SchedulingProblem": render_problem,
    "VulcanBackup": render_backup,
    "VulcanRestore": render_restore,
}


def _engine_of(doc: dict[str, Any], engines: list[Any], namespace: str) -> dict[str, Any]:
    ref = (doc.get("spec") or {}).get("engineRef") or {}
    wanted = ref.get("name")
    namespace = ref.get("namespace") or namespace  # a problem may name another namespace's
    for engine in engines:
        if not isinstance(engine, dict) or engine.get("kind") != "VulcanEngine":
            continue
        meta = engine.get("metadata") or {}
        if meta.get("name") == wanted and meta.get("namespace", namespace) == namespace:
            problems = validate_resource(engine)
            if problems:
                raise RenderError("\n".join(f"{resource_name(engine)}: {p}" for p in problems))
            return engine
    raise RenderError(
        f"{resource_name(doc)}: needs its VulcanEngine '{wanted}' (namespace '{namespace}'): "
        "pass it with --engine FILE"
    )


def render(
    docs: list[Any],
    *,
    engines: list[Any] | None = None,
    settings: Settings | None = None,
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Every object the operator would create for `docs`, in apply order."""
    settings = settings or Settings()
    # ConfigMaps in the file are the data of a problemRef: checked with it, not rendered.
    configmaps = {
        str((d.get("metadata") or {}).get("name")): d
        for d in docs
        if isinstance(d, dict) and d.get("apiVersion") == "v1" and d.get("kind") == "ConfigMap"
    }
    # VulcanBackups (with their status) tell a restore's backupRef where the backup is.
    backups = {
        str((d.get("metadata") or {}).get("name")): d
        for d in [*docs, *(engines or [])]
        if isinstance(d, dict) and d.get("kind") == "VulcanBackup"
    }
    out: list[dict[str, Any]] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "ConfigMap"
            and doc.get("apiVersion") == "v1"
        ):
            continue
        problems = validate_resource(doc, Named(configmaps=configmaps))
        if problems:
            name = resource_name(doc) if isinstance(doc, dict) else "?"
            raise RenderError("\n".join(f"{name}: {p}" for p in problems))
        with_engine = ENGINE_RENDERERS.get(doc["kind"])
        if with_engine is not None:
            doc = _with_defaults(doc, namespace)
            found = _engine_of(doc, [*(engines or []), *docs], doc["metadata"]["namespace"])
            engine_ns = (
                (found.get("metadata") or {}).get("namespace")
                or ((doc.get("spec") or {}).get("engineRef") or {}).get("namespace")
                or doc["metadata"]["namespace"]
            )
            engine = _with_defaults(found, engine_ns)
            if doc["kind"] == "VulcanRestore":
                out.extend(render_restore(doc, settings, engine, backups))
            else:
                out.extend(with_engine(doc, settings, engine))
            continue
        renderer = RENDERERS.get(doc["kind"])
        if renderer is None:
            raise RenderError(f"{resource_name(doc)}: rendering this kind is not supported yet")
        out.extend(renderer(_with_defaults(doc, namespace), settings))
    return out


__all__ = ["PLACEHOLDER_UID", "RenderError", "render"]
