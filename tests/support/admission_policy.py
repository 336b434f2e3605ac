"""manifests/admission-policy/: the ValidatingAdmissionPolicy on the operator's writes, evaluated
in cel-python the way the API server evaluates a policy: the request must match a resource rule
and every matchCondition, then the variables are computed in order, then every validation runs.

    review("CREATE", secret)              # [] admitted, [messages] refused, None not governed
    review("UPDATE", new, old)
    review("DELETE", None, old)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import celpy
import yaml
from celpy.adapter import json_to_cel
from celpy.celtypes import MapType, StringType

REPO = Path(__file__).resolve().parents[2]
POLICY_FILE = REPO / "manifests" / "admission-policy" / "admission-policy.yaml"
OPERATOR = "system:serviceaccount:vulcan-system:vulcan-operator"
#: kind -> (group, version, plural) of the kinds the policy governs
GOVERNED = {
    "Secret": ("", "v1", "secrets"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "Job": ("batch", "v1", "jobs"),
}
PLURALS = {plural: (group, version) for group, version, plural in GOVERNED.values()}
Obj = dict[str, Any]
ENV = celpy.Environment()


def documents() -> list[Obj]:
    return [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]


POLICY = next(d for d in documents() if d["kind"] == "ValidatingAdmissionPolicy")


@functools.cache
def _program(expression: str) -> Any:
    return ENV.program(ENV.compile(expression))


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    result = _program(expression).evaluate(activation)
    if isinstance(result, Exception):  # cel-python returns its evaluation errors
        raise result
    return result


def _map(values: dict[str, Any]) -> MapType:
    return MapType({StringType(k): v for k, v in values.items()})


def review(
    operation: str,
    obj: Obj | None,
    old: Obj | None = None,
    user: str = OPERATOR,
    namespace: str | None = None,
) -> list[str] | None:
    """The messages of the validations that refuse this request ([]: admitted), or None when
    the policy does not govern it (no resource rule or matchCondition matches)."""
    written = obj or old or {}
    group, version, plural = GOVERNED[written["kind"]]
    matched = any(
        group in rule["apiGroups"]
        and plural in rule["resources"]
        and operation in rule["operations"]
        and ("*" in rule["apiVersions"] or version in rule["apiVersions"])
        for rule in POLICY["spec"]["matchConstraints"]["resourceRules"]
    )
    request = {
        "operation": operation,
        "namespace": namespace or (written.get("metadata") or {}).get("namespace", ""),
        "resource": {"group": group, "version": version, "resource": plural},
        "userInfo": {"username": user},
    }
    activation: dict[str, Any] = {
        "request": json_to_cel(request),
        "object": json_to_cel(obj),
        "oldObject": json_to_cel(old),
    }
    spec = POLICY["spec"]
    if not matched or not all(_eval(c["expression"], activation) for c in spec["matchConditions"]):
        return None
    variables: dict[str, Any] = {}
    for variable in spec["variables"]:
        activation["variables"] = _map(variables)
        variables[variable["name"]] = _eval(variable["expression"], activation)
    activation["variables"] = _map(variables)
    return [
        " ".join(check["message"].split())
        for check in spec["validations"]
        if not _eval(check["expression"], activation)
    ]


def refused_creates(records: Iterable[Any]) -> list[str]:
    """The objects of governed kinds that these logged requests (emulator RequestRecords)
    created and the policy would have refused, as "<Kind> <namespace>/<name>: <message>"."""
    out = []
    for r in records:
        created = r.verb == "create" and (r.status or 0) < 300 and not r.subresource
        if not created or r.resource not in PLURALS or not isinstance(r.body, dict):
            continue
        obj = {**r.body, "metadata": {**(r.body.get("metadata") or {}), "namespace": r.namespace}}
        messages = review("CREATE", obj, namespace=r.namespace)
        if messages:
            out.append(
                f"{obj.get('kind')} {r.namespace}/{obj['metadata'].get('name')}: {messages[0]}"
            )
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the operator and Kopf send): the object a PATCH makes."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
