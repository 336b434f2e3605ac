"""The operator's ClusterRole (manifests/rbac.yaml) as a checker of recorded API requests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac.yaml"
Request = tuple[str, str, str, str, str]  # verb, group, resource, subresource, namespace


def cluster_role_rules(path: Path = RBAC) -> list[dict[str, list[str]]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    return list(role["rules"])


def allowed(request: Request, rules: list[dict[str, list[str]]]) -> bool:
    verb, group, resource, subresource, _ = request
    name = f"{resource}/{subresource}" if subresource else resource
    return any(
        group in rule.get("apiGroups", []) and name in rule["resources"] and verb in rule["verbs"]
        for rule in rules
    )


def denied(
    requests: Iterable[Request], rules: list[dict[str, list[str]]] | None = None
) -> list[Request]:
    """The requests the ClusterRole does not allow; test-only kinds (group *example.com, the
    smoke tests' own CRDs) are not the operator's business."""
    rules = cluster_role_rules() if rules is None else rules
    ours = (r for r in set(requests) if not r[1].endswith("example.com"))
    return sorted(r for r in ours if not allowed(r, rules))
