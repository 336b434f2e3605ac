"""The operator's RBAC (manifests/rbac.yaml, the authoritative rule list) as a checker of
recorded API requests, its namespaced derivation, and the measurement of what is exercised.

- `denied(requests, rules)`: the requests the rules do not allow (the integration fixture fails
  on any, tests/support/operator.py).
- `namespaced_rules(rules)` / `cluster_scoped_rules(rules)`: the two halves of a namespaced
  install (manifests/namespaced/, the chart's `watchNamespaces`): everything namespaced goes
  into a Role per watched namespace, and the ClusterRole keeps only what is cluster-scoped and
  still used (reading a namespace by name). The operator peers through a `kopfpeerings` object
  in each watched namespace instead of the `clusterkopfpeerings` one, and watches no CRDs.
- `RECORDED`: every request the operator made while the integration fixture ran it; with
  `VULCAN_RBAC_USAGE=<file>` it is written there at the end of the session, and
  `python -m tests.support.rbac unused <file>` lists the grants no request exercised.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RBAC = REPO / "manifests" / "rbac.yaml"
#: A recorded request: verb, group, resource, subresource, namespace ("" when cluster-wide).
Request = tuple[str, str, str, str, str]
#: One grant: group, resource (with "/subresource"), verb.
Grant = tuple[str, str, str]
Rule = dict[str, list[str]]

#: Cluster-scoped resources among what the operator is granted: RBAC can grant them only by a
#: ClusterRole. (A Role could name them, without any effect.)
CLUSTER_SCOPED = frozenset({"customresourcedefinitions", "clusterkopfpeerings", "namespaces"})
#: What a namespaced operator uses instead (Kopf peers through a namespaced KopfPeering in each
#: watched namespace when run with -n).
NAMESPACED_INSTEAD = {"clusterkopfpeerings": "kopfpeerings"}
#: Cluster-scoped grants a namespaced operator does not use: with exact `-n` namespaces Kopf
#: watches no CRDs (main.without_scanning).
UNUSED_WHEN_NAMESPACED = frozenset({"customresourcedefinitions"})
#: Test-only kinds (the smoke tests' own CRDs) are not the operator's business.
TEST_GROUP_SUFFIX = "example.com"

#: Requests recorded across the session (tests/support/operator.py adds to it).
RECORDED: set[Request] = set()


def cluster_role_rules(path: Path = RBAC) -> list[Rule]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    return list(role["rules"])


def rules_in(path: Path) -> list[Rule]:
    """The rules of every Role and ClusterRole in a manifest file (e.g. the webhook's)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [rule for d in docs if d["kind"] in ("Role", "ClusterRole") for rule in d["rules"]]


def _base(resource: str) -> str:
    return resource.split("/")[0]


def namespaced_rules(rules: list[Rule] | None = None) -> list[Rule]:
    """The rules of the Role in each watched namespace of a namespaced install."""
    out = []
    for rule in cluster_role_rules() if rules is None else rules:
        resources = [
            NAMESPACED_INSTEAD.get(r, r)
            for r in rule["resources"]
            if _base(r) not in CLUSTER_SCOPED or r in NAMESPACED_INSTEAD
        ]
        if resources:
            out.append({**rule, "resources": resources})
    return out


def cluster_scoped_rules(rules: list[Rule] | None = None) -> list[Rule]:
    """The rules of the ClusterRole of a namespaced install: the cluster-scoped resources it
    still uses (a namespace read by name for acceptFrom); no peering (namespaced there), no
    CRD watch (UNUSED_WHEN_NAMESPACED)."""
    out = []
    skip = UNUSED_WHEN_NAMESPACED | set(NAMESPACED_INSTEAD)
    for rule in cluster_role_rules() if rules is None else rules:
        resources = [r for r in rule["resources"] if _base(r) in CLUSTER_SCOPED - skip]
        if resources:
            out.append({**rule, "resources": resources})
    return out


def _name(request: Request) -> str:
    _, _, resource, subresource, _ = request
    return f"{resource}/{subresource}" if subresource else resource


def allowed(request: Request, rules: list[Rule]) -> bool:
    verb, group, *_ = request
    return any(
        group in rule.get("apiGroups", [])
        and _name(request) in rule["resources"]
        and verb in rule["verbs"]
        for rule in rules
    )


def ours(requests: Iterable[Request]) -> set[Request]:
    return {r for r in requests if not r[1].endswith(TEST_GROUP_SUFFIX)}


def denied(requests: Iterable[Request], rules: list[Rule] | None = None) -> list[Request]:
    """The requests the rules (default: the ClusterRole) do not allow."""
    rules = cluster_role_rules() if rules is None else rules
    return sorted(r for r in ours(requests) if not allowed(r, rules))


def denied_in_a_namespace(
    requests: Iterable[Request], rules: list[Rule] | None = None
) -> list[Request]:
    """For requests made in one namespace: those a namespaced install would refuse. A request
    on a namespaced resource needs the Role (a cluster-wide list or watch of a namespaced kind
    is Kopf's, which a namespaced operator makes in each watched namespace instead); one on a
    cluster-scoped resource needs the namespaced install's ClusterRole, except Kopf's CRD
    watch, which a namespaced operator does not make (UNUSED_WHEN_NAMESPACED)."""
    rules = cluster_role_rules() if rules is None else rules
    role, cluster = namespaced_rules(rules), cluster_scoped_rules(rules)
    refused = []
    for request in ours(requests):
        if request[2] in UNUSED_WHEN_NAMESPACED:
            continue
        scoped = request[2] in CLUSTER_SCOPED
        if scoped and request[2] in NAMESPACED_INSTEAD:  # the peering: namespaced instead
            verb, group, resource, sub, ns = request
            request, scoped = (verb, group, NAMESPACED_INSTEAD[resource], sub, ns), False
        if not allowed(request, cluster if scoped else role):
            refused.append(request)
    return sorted(refused)


def grants(rules: list[Rule]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def exercised(requests: Iterable[Request]) -> set[Grant]:
    return {(r[1], _name(r), r[0]) for r in ours(requests)}


def unused(requests: Iterable[Request], rules: list[Rule] | None = None) -> list[Grant]:
    """The grants of the rules that none of the requests needed."""
    rules = cluster_role_rules() if rules is None else rules
    return sorted(grants(rules) - exercised(requests))


def unexercised_justified(path: Path = RBAC) -> dict[Grant, str]:
    """The `# unexercised: <verbs> <resources> [<group>]: why` lines of rbac.yaml (verbs and
    resources comma-separated; no group: the core group)."""
    out = {}
    for line in path.read_text().splitlines():
        text = line.strip().removeprefix("#").strip()
        if not text.startswith("unexercised:"):
            continue
        head, _, why = text.removeprefix("unexercised:").partition(": ")
        verbs, resources, *group = head.split()
        for verb in verbs.split(","):
            for resource in resources.split(","):
                out[(group[0] if group else "", resource, verb)] = why.strip()
    return out


def save(requests: Iterable[Request], path: Path) -> None:
    rows = ",\n".join(json.dumps(list(r)) for r in sorted(ours(requests)))
    path.write_text(f"[\n{rows}\n]\n")  # one request a line, for readable diffs


def load(path: Path) -> set[Request]:
    return {(r[0], r[1], r[2], r[3], r[4]) for r in json.loads(path.read_text())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.rbac", description=__doc__)
    parser.add_argument("command", choices=["unused", "exercised"])
    parser.add_argument("usage", type=Path, help="a file written with VULCAN_RBAC_USAGE")
    parser.add_argument(
        "--rules", type=Path, default=RBAC, help="the Roles/ClusterRoles to measure (rbac.yaml)"
    )
    args = parser.parse_args(argv)
    requests = load(args.usage)
    rules = rules_in(args.rules)
    rows: Iterable[Any] = (
        unused(requests, rules) if args.command == "unused" else sorted(exercised(requests))
    )
    for group, resource, verb in rows:
        print(f"{verb:7} {resource:40} {group or '(core)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
