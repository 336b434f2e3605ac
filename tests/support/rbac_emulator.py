"""The emulator with RBAC and the operator's admission policy enforced on chosen identities.

A request whose bearer token is in `identities` is made as that user (e.g. the operator's
ServiceAccount): it is authorized the way kube-apiserver's RBAC authorizer does, by the Roles,
ClusterRoles and their bindings *stored in the emulator* (what `kubectl apply -k` put there),
and a write of a Secret, Role, RoleBinding or Job is then reviewed by the
ValidatingAdmissionPolicy of manifests/admission-policy/ (tests.support.admission_policy). A
refused request gets the API server's 403 and is kept in `refused` / `policy_refused`. Every
other request (kubectl's, the test's) is the cluster admin's, as in `OpenApiEmulator`.

Not modelled: aggregated ClusterRoles, Groups, `resourceNames` on list/watch.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, replace
from typing import Any

import attrs
from aiohttp import web

from tests.emulator.api import ApiError
from tests.emulator.http import RequestRecord
from tests.support import admission_policy
from tests.support.kubectl import OpenApiEmulator

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
OPERATIONS = {"create": "CREATE", "patch": "UPDATE", "update": "UPDATE", "delete": "DELETE"}


@dataclass(frozen=True)
class Refusal:
    user: str
    verb: str
    group: str
    resource: str  # with "/subresource"
    namespace: str
    name: str
    why: str = ""  # the policy's message (empty: RBAC)


def _matches(rule: Obj, verb: str, group: str, resource: str, name: str) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    names = rule.get("resourceNames") or []
    return (
        has(rule.get("apiGroups") or [], group)
        and has(rule.get("resources") or [], resource)
        and has(rule.get("verbs") or [], verb)
        and (not names or name in names)
    )


@attrs.define(kw_only=True, eq=False, repr=False)
class RbacEmulator(OpenApiEmulator):
    #: bearer token -> username (`system:serviceaccount:<namespace>:<name>`)
    identities: dict[str, str] = attrs.field(factory=dict)
    refused: builtins.list[Refusal] = attrs.field(factory=list)
    #: log index -> username, for the requests made as an identity
    made_by: dict[int, str] = attrs.field(factory=dict)
    #: writes the admission policy reviewed (and admitted or refused)
    reviewed: builtins.list[Refusal] = attrs.field(factory=list)

    def requests_of(self, user: str) -> builtins.list[RequestRecord]:
        return [r for r in self.log if self.made_by.get(r.index) == user]

    def _rules(self, user: str, namespace: str | None) -> builtins.list[Obj]:
        """Every rule granted to `user` (a ServiceAccount) in `namespace` (None: cluster)."""
        _, _, rest = user.partition("system:serviceaccount:")
        sa_namespace, _, sa_name = rest.partition(":")

        def bound(binding: Obj) -> bool:
            return any(
                s.get("kind") == "ServiceAccount"
                and s.get("name") == sa_name
                and s.get("namespace", binding["metadata"].get("namespace")) == sa_namespace
                for s in binding.get("subjects") or []
            )

        def role(ref: Obj, ns: str | None) -> builtins.list[Obj]:
            plural = "clusterroles" if ref["kind"] == "ClusterRole" else "roles"
            found = self.get(
                f"{RBAC_GROUP}/v1/{plural}", ns if plural == "roles" else None, ref["name"]
            )
            return list((found or {}).get("rules") or [])

        rules = []
        for binding in self.list(f"{RBAC_GROUP}/v1/clusterrolebindings"):
            if bound(binding):
                rules += role(binding["roleRef"], None)
        if namespace:
            for binding in self.list(f"{RBAC_GROUP}/v1/rolebindings", namespace):
                if bound(binding):
                    rules += role(binding["roleRef"], namespace)
        return rules

    def _refuse(self, refusal: Refusal, message: str) -> web.StreamResponse:
        self.refused.append(refusal)
        return ApiError(403, "Forbidden", message).response()

    async def _intercept(
        self, raw: web.BaseRequest, record: RequestRecord
    ) -> web.StreamResponse | None:
        token = raw.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        user = self.identities.get(token)
        if user is None or record.verb is None or record.resource is None:
            return await super()._intercept(raw, record)
        self.made_by[record.index] = user
        group, namespace = record.group or "", record.namespace or ""
        resource = (
            f"{record.resource}/{record.subresource}" if record.subresource else record.resource
        )
        name = record.name or ""
        refusal = Refusal(user, record.verb, group, resource, namespace, name)
        rules = self._rules(user, record.namespace)
        if not any(_matches(rule, record.verb, group, resource, name) for rule in rules):
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            return self._refuse(
                refusal,
                f'{resource} is forbidden: User "{user}" cannot {record.verb} resource '
                f'"{resource}" in API group "{group}"{where}',
            )
        operation = OPERATIONS.get(record.verb)
        if operation and not record.subresource and record.resource in admission_policy.PLURALS:
            messages = self._review(operation, record, user)
            if messages:
                refused = replace(refusal, why=messages[0])
                return self._refuse(
                    refused,
                    f"admission webhook denied: ValidatingAdmissionPolicy "
                    f"'vulcan-operator-writes' denied request: {messages[0]}",
                )
        return await super()._intercept(raw, record)

    def _review(self, operation: str, record: RequestRecord, user: str) -> builtins.list[str]:
        group, version = admission_policy.PLURALS[record.resource or ""]
        ref = f"{group}/{version}/{record.resource}" if group else f"{version}/{record.resource}"
        old = self.get(ref, record.namespace, record.name) if record.name else None
        body = record.body if isinstance(record.body, dict) else {}
        new: Obj | None
        if operation == "CREATE":
            new = {
                **body,
                "metadata": {**(body.get("metadata") or {}), "namespace": record.namespace},
            }
        elif operation == "UPDATE":
            new = admission_policy.merge_patch(old, body)
        else:
            new = None
        if (new or old) is None:
            return []  # a write to nothing: the server answers 404 itself
        messages = admission_policy.review(operation, new, old, user, record.namespace) or []
        why = "; ".join(messages)
        self.reviewed.append(
            Refusal(
                user,
                record.verb or "",
                group,
                record.resource or "",
                record.namespace or "",
                record.name or "",
                why,
            )
        )
        return messages
