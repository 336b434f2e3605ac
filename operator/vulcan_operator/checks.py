"""What is wrong with a resource of ours: one line per problem, naming the field and what is
allowed. `vulcan-operator validate`, the admission webhook and the reconcile call these same
functions, so the three never disagree.

Pure: the objects a resource names (its engine, a problemRef ConfigMap, a VulcanBackup) are
handed in as `Named`; a name that is not there is not checked here (the reconcile waits for
it). Warnings are for what is allowed but unwise; they never refuse anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from vulcan_operator import API_VERSION, GROUP, kinds
from vulcan_operator.api.backup import VulcanBackup, VulcanRestore
from vulcan_operator.api.engine import VulcanEngine, VulcanEngineSpec
from vulcan_operator.api.errors import describe
from vulcan_operator.api.problem import SchedulingProblem
from vulcan_operator.builders.backup.storage import restore_source_problem, storage_conflicts
from vulcan_operator.builders.problem import cap_issues
from vulcan_operator.solver import problem as limits
from vulcan_operator.solver.loader import (
    INLINE_ONLY,
    MAX_PROBLEM_BYTES,
    ProblemFileError,
    referenced_problem,
)

__all__ = [
    "MODELS",
    "Named",
    "backup_of_another_engine",
    "check",
    "check_referenced",
    "image_allowed",
    "image_problems",
    "parse",
    "related",
    "warnings",
    "warnings_of",
]

MODELS: dict[str, type[BaseModel]] = {
    kinds.ENGINE.kind: VulcanEngine,
    kinds.PROBLEM.kind: SchedulingProblem,
    kinds.BACKUP.kind: VulcanBackup,
    kinds.RESTORE.kind: VulcanRestore,
}

#: The fields of a VulcanEngine's spec that name an image (dotted paths; absent ones skipped).
IMAGE_FIELDS = ("image", "backup.clientImage", "backup.redis.image")
#: A problem this close to a size cap (a fraction of it) gets a warning.
NEAR = 0.8


@dataclass(frozen=True)
class Named:
    """The objects a resource names, by name, as far as they are known: ConfigMaps and
    VulcanBackups of its namespace, VulcanEngines by (namespace, name). For a VulcanEngine,
    `engines` are the others that could share its backup store."""

    configmaps: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    engines: Mapping[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    backups: Mapping[str, dict[str, Any]] = field(default_factory=dict)


def parse(doc: Any) -> BaseModel | list[str]:
    """`doc` as its kind's model, or the problems. The status is the operator's, not checked."""
    if not isinstance(doc, dict):
        return ["not a mapping (expected a Kubernetes resource)"]
    kind = doc.get("kind")
    if doc.get("apiVersion") != API_VERSION:
        return [f"apiVersion: must be {API_VERSION}, got {doc.get('apiVersion')!r}"]
    model = MODELS.get(str(kind))
    if model is None:
        return [f"kind: {kind!r} is not a {GROUP} kind; expected one of {', '.join(MODELS)}"]
    try:
        return model.model_validate({k: v for k, v in doc.items() if k != "status"}, strict=True)
    except ValidationError as exc:
        return describe(exc, model)


def check(doc: Any, named: Named | None = None, allowed_images: tuple[str, ...] = ()) -> list[str]:
    """Every problem of one resource ([] when it is fine)."""
    obj = parse(doc)
    return obj if isinstance(obj, list) else related(obj, named or Named(), allowed_images)


def related(obj: BaseModel, named: Named, allowed_images: tuple[str, ...] = ()) -> list[str]:
    """The problems of a parsed resource with the objects it names and the operator's
    settings (the model's own are found by `parse`)."""
    namespace = str(getattr(getattr(obj, "metadata", None), "namespace", None) or "")
    if isinstance(obj, VulcanEngine):
        return image_problems(obj.spec, allowed_images) + _shared_store(obj, namespace, named)
    if isinstance(obj, SchedulingProblem):
        return _problem(obj, namespace, named)
    if isinstance(obj, VulcanRestore):
        return _restore(obj, namespace, named)
    return []


def _engine_spec(named: Named, namespace: str, name: str) -> VulcanEngineSpec | None:
    """The named engine's spec when it is known and valid (an invalid engine is its own
    problem, reported on it)."""
    engine = named.engines.get((namespace, name))
    try:
        return VulcanEngineSpec.model_validate(engine["spec"]) if engine else None
    except (ValidationError, KeyError, TypeError):
        return None


def _shared_store(engine: VulcanEngine, namespace: str, named: Named) -> list[str]:
    """The engines of `named.engines` created earlier whose backup store this engine's would
    share (the reconcile's `storage_conflicts`); a new engine is the latest."""
    created = str(getattr(engine.metadata, "creationTimestamp", None) or "~")  # > any time
    return storage_conflicts(
        namespace,
        engine.metadata.name,
        created,
        engine.spec.backup.storage,
        named.engines.values(),
    )


def _problem(problem: SchedulingProblem, namespace: str, named: Named) -> list[str]:
    lines = []
    ref = problem.spec.problemRef
    configmap = named.configmaps.get(ref.configMapName) if ref is not None else None
    if ref is not None and configmap is not None:
        where = f"spec.problemRef (ConfigMap {ref.configMapName}, key {ref.key})"
        # The loader names it `configmap/<name>[<key>]`; here it is a field of the spec.
        cut = len(f"configmap/{ref.configMapName}[{ref.key}]")
        for line in check_referenced(problem, configmap):
            if line.startswith("spec."):
                lines.append(line)
            else:
                lines.append(f"{where}: {line[cut:].lstrip('.:').lstrip()}")
    engine_ref = problem.spec.engineRef
    engine_ns = getattr(engine_ref, "namespace", None) or namespace  # another's, if it names one
    engine = _engine_spec(named, engine_ns, engine_ref.name)
    if engine is not None:
        lines += cap_issues(problem.spec, engine)
    return lines


def _restore(restore: VulcanRestore, namespace: str, named: Named) -> list[str]:
    spec = restore.spec
    engine = spec.engineRef.name
    storage = _engine_spec(named, namespace, engine)
    if storage is None:
        return []
    if spec.location:
        problem = restore_source_problem(engine, namespace, storage.backup.storage, spec.location)
        return [problem] if problem else []
    ref = spec.backupRef
    backup = named.backups.get(ref.name) if ref is not None else None
    foreign = backup_of_another_engine(ref.name, backup, engine) if ref and backup else None
    return [foreign] if foreign else []


def backup_of_another_engine(name: str, backup: dict[str, Any], engine: str) -> str | None:
    """Why VulcanBackup `name` may not be restored into `engine` (None: it is that engine's)."""
    of = ((backup.get("spec") or {}).get("engineRef") or {}).get("name")
    if of == engine:
        return None
    return (
        f"spec.backupRef: VulcanBackup '{name}' is a backup of VulcanEngine '{of}', not of "
        f"'{engine}': a restore takes only its own engine's backups"
    )


# -- problemRef ------------------------------------------------------------------------------
def _inline(problem: SchedulingProblem) -> dict[str, Any]:
    """The spec's own problem fields that go over a problemRef's (objective, horizon)."""
    spec = problem.spec.model_dump(
        mode="json", exclude_none=True, exclude={"engineRef", "solver", "problemRef"}
    )
    return {k: v for k, v in spec.items() if not (k in INLINE_ONLY and not v)}


def inline_key(problem: SchedulingProblem) -> str:
    """The spec fields a problemRef's verdict depends on, as one string (a cache key)."""
    return json.dumps(_inline(problem), sort_keys=True)


def check_referenced(problem: SchedulingProblem, configmap: dict[str, Any]) -> list[str]:
    """Problems with a problemRef ConfigMap's content, as the solver pod will read it (the
    same loader: size cap, no YAML aliases, the same model), in the loader's words
    (`configmap/<name>[<key>]...`). CPU-bound on a large ConfigMap."""
    ref = problem.spec.problemRef
    assert ref is not None
    data = configmap.get("data") or {}
    if ref.key not in data:
        keys = ", ".join(sorted(map(str, data))) or "none"
        return [
            f"spec.problemRef.key: ConfigMap '{ref.configMapName}' has no key '{ref.key}' "
            f"(keys: {keys})"
        ]
    try:
        referenced_problem(str(data[ref.key]), _inline(problem), ref.configMapName, ref.key)
    except ProblemFileError as error:
        return error.messages
    return []


# -- images ----------------------------------------------------------------------------------
def _normalized(image: str) -> str:
    """An image reference as the container runtime reads it: Docker Hub names in full
    (`postgres` -> `docker.io/library/postgres`)."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


def image_allowed(image: str, allowed: tuple[str, ...]) -> bool:
    """Whether `image` is under one of `allowed` (registries or repository prefixes; empty:
    any). A prefix matches whole path parts: `ghcr.io/acme` allows `ghcr.io/acme/x:1` and
    `ghcr.io/acme:1`, never `ghcr.io/acme-evil/x`."""
    if not allowed:
        return True
    name = _normalized(image)
    return any(
        name == prefix or any(name.startswith(prefix + c) for c in "/:@")
        for prefix in map(_allowed_prefix, allowed)
    )


def _allowed_prefix(entry: str) -> str:
    """An allow-list entry as a prefix: a registry ('registry.example.com', 'localhost:5000')
    as written, a repository in full ('postgres' -> 'docker.io/library/postgres')."""
    prefix = entry.strip().rstrip("/")
    if "/" not in prefix and ("." in prefix or ":" in prefix or prefix == "localhost"):
        return prefix
    return _normalized(prefix)


def _field(spec: BaseModel, path: str) -> Any:
    value: Any = spec
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


def image_problems(spec: VulcanEngineSpec, allowed: tuple[str, ...]) -> list[str]:
    """One line per image field of an engine's spec outside the operator's allow-list."""
    if not allowed:
        return []
    lines = []
    for path in IMAGE_FIELDS:
        if path == "backup.redis.image" and not spec.backup.redis.enabled:
            continue  # a default image that never runs
        image = _field(spec, path)
        if isinstance(image, str) and image and not image_allowed(image, allowed):
            lines.append(
                f"spec.{path}: image '{image}' is not allowed by this operator "
                f"(VULCAN_ALLOWED_IMAGES); allowed: images under {', '.join(allowed)}"
            )
    return lines


# -- warnings --------------------------------------------------------------------------------
def warnings(doc: dict[str, Any], named: Named | None = None) -> list[str]:
    """What is legal but unwise about a valid resource (nothing for an invalid one)."""
    obj = parse(doc)
    return [] if isinstance(obj, list) else warnings_of(obj, named or Named())


def warnings_of(obj: BaseModel, named: Named) -> list[str]:
    """`warnings` of a parsed resource."""
    if isinstance(obj, VulcanEngine):
        spec, policy = obj.spec, obj.spec.networkPolicy
        default = type(policy)().ingressController
        if (
            spec.ingress.enabled
            and policy.enabled
            and "nginx" not in spec.ingress.className
            and policy.ingressController == default
            and not policy.ingressNamespaces
        ):
            return [
                f"spec.ingress.className is '{spec.ingress.className}' but "
                "spec.networkPolicy.ingressController admits only the namespace ingress-nginx "
                "(the default): set it to your ingress controller's namespace, or it cannot "
                "reach the engine"
            ]
    if isinstance(obj, SchedulingProblem):
        return _near_caps(obj, named)
    return []


def _near_caps(problem: SchedulingProblem, named: Named) -> list[str]:
    spec = problem.spec
    counts = [
        ("spec.machines", len(spec.machines), limits.MAX_MACHINES),
        ("spec.operators", len(spec.operators), limits.MAX_OPERATORS),
        ("spec.jobs", len(spec.jobs), limits.MAX_JOBS),
    ]
    counts += [
        (f"spec.jobs[{i}].tasks", len(job.tasks), limits.MAX_TASKS)
        for i, job in enumerate(spec.jobs)
    ]
    ref = spec.problemRef
    configmap = named.configmaps.get(ref.configMapName) if ref is not None else None
    if ref is not None and configmap is not None:
        text = str((configmap.get("data") or {}).get(ref.key) or "")
        where = f"spec.problemRef (ConfigMap {ref.configMapName}, key {ref.key})"
        counts.append((f"{where} bytes", len(text.encode()), MAX_PROBLEM_BYTES))
    return [
        f"{what}: {count} of at most {cap}: near the size limit; split the problem before "
        "it grows past it"
        for what, count, cap in counts
        if count >= NEAR * cap
    ]
