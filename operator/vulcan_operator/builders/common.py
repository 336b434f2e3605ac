"""What every builder does to every child: owner, labels, namespace, spec-hash."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vulcan_operator import API_VERSION
from vulcan_operator.api.engine import VulcanEngineSpec
from vulcan_operator.config import Settings
from vulcan_operator.names import ANNOTATION_SPEC_HASH

__all__ = [
    "Owner",
    "content_hash",
    "finish",
    "hashable_content",
    "job_pull_secrets",
    "owner_reference",
    "pull_secrets",
]

Manifest = dict[str, Any]


def owner_reference(
    kind: str, name: str, uid: str, api_version: str = API_VERSION
) -> dict[str, Any]:
    """A controller ownerReference: the child is garbage-collected with its owner."""
    if not uid:
        raise ValueError(f"owner {kind}/{name} has no uid")
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass(frozen=True)
class Owner:
    """The custom resource a child belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str
    api_version: str = API_VERSION

    def reference(self) -> dict[str, Any]:
        """This owner as a controller ownerReference."""
        return owner_reference(self.kind, self.name, self.uid, self.api_version)


def content_hash(data: Any, length: int = 16) -> str:
    """A stable hash of JSON-able `data`: SHA-256 of canonical JSON (sorted keys), hex."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


def hashable_content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the spec-hash covers: the object without the hash annotation itself.

    A Secret's values are not hashed, only its key names: the hash must not depend on (nor
    reveal anything about) secret material, and a Secret is therefore only rewritten when its
    shape or its metadata (e.g. the rotation annotation) changes, never because a caller built
    it with other values.
    """
    content = copy.deepcopy(dict(obj))
    metadata = content.get("metadata") or {}
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(ANNOTATION_SPEC_HASH, None)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if content.get("kind") == "Secret" and content.get("apiVersion") == "v1":
        for field in ("data", "stringData"):
            if field in content:
                content[field] = sorted(content[field] or {})
    return content


def finish(obj: Mapping[str, Any], owner: Owner, labels: Mapping[str, str]) -> Manifest:
    """A copy of `obj` made ready to apply.

    Sets the namespace, adds our labels (over any the template set), makes `owner` the
    controller ownerReference, and stores the spec-hash annotation computed over everything
    else: a record of what was built (`k8s.apply` compares the fields, not this hash, so drift
    is repaired).
    """
    child: Manifest = copy.deepcopy(dict(obj))
    given: dict[str, Any] = dict(child.get("metadata") or {})
    if not given.get("name"):
        raise ValueError(f"{child.get('kind', 'object')} has no metadata.name")
    annotations = dict(given.pop("annotations", None) or {})
    annotations.pop(ANNOTATION_SPEC_HASH, None)
    metadata: dict[str, Any] = {
        "name": given.pop("name"),
        "namespace": owner.namespace,
        "labels": {**(given.pop("labels", None) or {}), **labels},
        "annotations": annotations,
        "ownerReferences": [owner.reference()],
    }
    given.pop("namespace", None)
    given.pop("ownerReferences", None)
    metadata.update(given)
    child["metadata"] = metadata
    annotations[ANNOTATION_SPEC_HASH] = content_hash(hashable_content(child))
    return child


def pull_secrets(secret_names: Iterable[str]) -> list[dict[str, str]]:
    """imagePullSecrets entries for `secret_names`, in order, without repeats."""
    return [{"name": name} for name in dict.fromkeys(secret_names)]


def job_pull_secrets(spec: VulcanEngineSpec, settings: Settings) -> list[dict[str, str]]:
    """imagePullSecrets of the Jobs the operator runs for an engine (backup, restore,
    maintenance, solver; images of the operator's choosing): the engine's
    spec.imagePullSecrets, then the operator's own (settings.image_pull_secrets)."""
    return pull_secrets(
        [*(ref.name for ref in spec.imagePullSecrets), *settings.image_pull_secrets]
    )
