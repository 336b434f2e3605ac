"""The guide's volumes of an engine: /app/data and /app/uploads (spec.persistence).

Each enabled volume is a claim, the operator's `<engine>-data` / `<engine>-uploads` or the
user's `existingClaim`, mounted at its path in every backend pod, read-only in backup pods
(archived into the backup set) and read-write in restore pods (put back while the engine is
at zero replicas).

Data first, as the backup claim (and a StatefulSet's default claim retention): the claims the
operator creates have NO ownerReference, so deleting the engine never deletes the data; the
operator never deletes or shrinks them (applied create-only; a claim's spec is immutable but
for growing). Turning a volume off unmounts it and leaves the claim. Delete a claim by hand
once its data is no longer wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

from vulcan_operator import names
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.builders.common import (
    Manifest,
    Owner,
    content_hash,
    finish,
    hashable_content,
)
from vulcan_operator.templating import render_one

__all__ = ["APP_PATHS", "AppVolume", "app_volumes", "build_app_pvcs", "without_owner"]

#: volume -> where the backend pods mount it (the guide's paths).
APP_PATHS = {"data": "/app/data", "uploads": "/app/uploads"}


@dataclass(frozen=True)
class AppVolume:
    """One enabled volume of the backend pods."""

    part: str  # "data" or "uploads": also its name in a backup set
    claim: str
    path: str  # in the backend pods
    managed: bool  # the operator creates the claim

    @property
    def name(self) -> str:
        """The pod's volume name."""
        return f"app-{self.part}"


def app_volumes(engine: str, spec: VulcanEngineSpec) -> list[AppVolume]:
    """The enabled volumes of spec.persistence, data first."""
    found = []
    for part, volume in (("data", spec.persistence.data), ("uploads", spec.persistence.uploads)):
        if volume.enabled:
            claim = volume.existingClaim or names.app_pvc(engine, part)
            found.append(AppVolume(part, claim, APP_PATHS[part], not volume.existingClaim))
    return found


def without_owner(child: Manifest) -> Manifest:
    """`child` (made by finish) with no ownerReferences, its spec-hash recomputed."""
    metadata = child["metadata"]
    metadata.pop("ownerReferences", None)
    annotations = metadata.setdefault("annotations", {})
    annotations.pop(names.ANNOTATION_SPEC_HASH, None)
    annotations[names.ANNOTATION_SPEC_HASH] = content_hash(hashable_content(child))
    return child


def build_app_pvcs(engine: str, owner: Owner, spec: VulcanEngineSpec) -> list[Manifest]:
    """The claims the operator creates for the enabled volumes without an existingClaim: no
    ownerReference (they outlive the engine); apply them create-only, never prune them."""
    claims = []
    for volume in app_volumes(engine, spec):
        if not volume.managed:
            continue
        settings = getattr(spec.persistence, volume.part)
        pvc = render_one(
            "backup-pvc.yaml.j2",
            name=volume.claim,
            access_modes=[settings.accessMode],
            storage_class_name=settings.storageClassName,
            size=str(settings.size),
        )
        labels = names.labels(engine, names.COMPONENT_BACKEND)
        claims.append(without_owner(finish(pvc, owner, labels)))
    return claims
