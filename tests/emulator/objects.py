"""Pure object logic of the emulated API server: patches, selectors, validation, defaults.

Nothing here does I/O or keeps state; the server (`server.py`) calls these on every write.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonpatch

from tests.emulator.api import ApiError

Obj = dict[str, Any]


def now() -> str:
    """A Kubernetes timestamp (RFC 3339, whole seconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=length))


# --- patches -------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, `null` removes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Obj, ops: Any) -> Obj:
    """RFC 6902 JSON patch. A failed `test` (or any op that cannot apply) is a 422, as in K8s."""
    if not isinstance(ops, list):
        raise ApiError.bad_request("a JSON patch must be a list of operations")
    try:
        result = jsonpatch.apply_patch(target, ops, in_place=False)
    except jsonpatch.JsonPatchTestFailed as e:
        raise ApiError(422, "Invalid", f"the test operation of the JSON patch failed: {e}") from e
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as e:
        raise ApiError(422, "Invalid", f"the JSON patch cannot be applied: {e}") from e
    except jsonpatch.InvalidJsonPatch as e:
        raise ApiError.bad_request(f"invalid JSON patch: {e}") from e
    if not isinstance(result, dict):
        raise ApiError(422, "Invalid", "the JSON patch does not result in an object")
    return result


def spec_part(obj: Obj) -> Obj:
    """What `metadata.generation` tracks: everything except metadata and status."""
    return {k: v for k, v in obj.items() if k not in {"metadata", "status", "apiVersion", "kind"}}


def lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


# --- selectors -----------------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")

Selector = Callable[[Obj], bool]


def _split_terms(text: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t.strip() for t in terms if t.strip()]


def label_selector(text: str | None) -> Selector:
    """`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`, joined by commas (AND)."""
    wanted: list[tuple[str, bool, set[str] | None]] = []  # key, negated, values (None: exists)
    for term in _split_terms(text or ""):
        if m := _EQUALITY.match(term):
            wanted.append((m[1], m[2] == "!=", {m[3]}))
        elif m := _SET.match(term):
            wanted.append((m[1], m[2] == "notin", {v.strip() for v in m[3].split(",")} - {""}))
        elif m := _EXISTS.match(term):
            wanted.append((m[2], bool(m[1]), None))
        else:
            raise ApiError.bad_request(f"unable to parse requirement: {term!r}")

    def match(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(
            (key in labels if values is None else labels.get(key) in values) != negated
            for key, negated, values in wanted
        )

    return match


# Field selectors the real API server accepts beyond metadata.name/metadata.namespace.
EXTRA_FIELDS: dict[str, set[str]] = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "reason",
        "type",
        "reportingComponent",
        "source",
    },
    "secrets": {"type"},
    "namespaces": {"status.phase"},
    "jobs": {"status.successful"},
}


def field_selector(text: str | None, plural: str) -> Selector:
    """`metadata.name=x`, `metadata.namespace!=y` (and the few per-kind fields K8s allows)."""
    allowed = {"metadata.name", "metadata.namespace"} | EXTRA_FIELDS.get(plural, set())
    wanted: list[tuple[str, bool, str]] = []  # field, negated, value
    for term in _split_terms(text or ""):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise ApiError.bad_request(f"invalid field selector: {term!r}")
        field, op, value = m.groups()
        if field not in allowed:
            raise ApiError.bad_request(f'field label not supported: "{field}"')
        wanted.append((field, op == "!=", value))
    return lambda obj: all((str(lookup(obj, f) or "") == v) != n for f, n, v in wanted)


# --- validation ----------------------------------------------------------------------------------

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RFC1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# Resources whose names are DNS labels (at most 63 characters, no dots) rather than subdomains.
LABEL_NAMED = {"namespaces": DNS_LABEL, "services": RFC1035_LABEL}
# Names that end up in a label value (job-name) or in generated child names.
NAME_LIMITS = {"jobs": 63, "cronjobs": 52, "namespaces": 63, "services": 63}


def validate(plural: str, obj: Obj) -> list[str]:
    """The checks of the real API server that most often catch operator bugs."""
    errors: list[str] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    pattern = LABEL_NAMED.get(plural, DNS_SUBDOMAIN)
    limit = NAME_LIMITS.get(plural, 253)
    if not pattern.match(name) or len(name) > limit:
        errors.append(
            f"metadata.name: Invalid value: {name!r}: must be a lowercase RFC 1123 "
            f"name of at most {limit} characters"
        )
    for key, value in (meta.get("labels") or {}).items():
        errors += _qualified_name("metadata.labels", key)
        if not isinstance(value, str) or len(value) > 63 or (value and not LABEL_NAME.match(value)):
            errors.append(
                f"metadata.labels: Invalid value: {value!r}: a label value must be "
                "at most 63 characters, alphanumeric, '-', '_' or '.'"
            )
    for key, value in (meta.get("annotations") or {}).items():
        errors += _qualified_name("metadata.annotations", key)
        if not isinstance(value, str):
            errors.append(f"metadata.annotations.{key}: Invalid value: must be a string")
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                errors.append(f"metadata.ownerReferences[{i}].{field}: Required value")
    errors += _workload_errors(plural, obj)
    if plural in {"configmaps", "secrets"}:
        for field in ("data", "binaryData", "stringData"):
            for key in obj.get(field) or {}:
                if not DATA_KEY.match(key) or len(key) > 253:
                    errors.append(
                        f"{field}[{key!r}]: Invalid value: a valid config key must "
                        "consist of alphanumeric characters, '-', '_' or '.'"
                    )
    return errors


# Where the pod spec sits in each workload kind.
POD_SPECS = {
    "pods": "spec",
    "deployments": "spec.template.spec",
    "jobs": "spec.template.spec",
    "cronjobs": "spec.jobTemplate.spec.template.spec",
    "statefulsets": "spec.template.spec",
    "daemonsets": "spec.template.spec",
}


def _workload_errors(plural: str, obj: Obj) -> list[str]:
    if plural not in POD_SPECS:
        return []
    where = POD_SPECS[plural]
    pod_spec = lookup(obj, where) or {}
    containers = pod_spec.get("containers") or []
    errors = [] if containers else [f"{where}.containers: Required value"]
    names = [c.get("name") for c in containers]
    for i, container in enumerate(containers):
        if not DNS_LABEL.match(container.get("name") or ""):
            errors.append(f"{where}.containers[{i}].name: Invalid value: must be a DNS label")
        if not container.get("image"):
            errors.append(f"{where}.containers[{i}].image: Required value")
    if len(set(names)) != len(names):
        errors.append(f"{where}.containers: Duplicate value: container names must be unique")
    if plural in {"jobs", "cronjobs"} and pod_spec.get("restartPolicy") not in {
        "Never",
        "OnFailure",
    }:
        errors.append(f'{where}.restartPolicy: Required value: valid values: "OnFailure", "Never"')
    if plural == "jobs":
        errors += _per_index_errors(obj, pod_spec)
    if plural == "deployments":
        selector = lookup(obj, "spec.selector.matchLabels") or {}
        labels = lookup(obj, "spec.template.metadata.labels") or {}
        if not lookup(obj, "spec.selector"):
            errors.append("spec.selector: Required value")
        elif any(labels.get(k) != v for k, v in selector.items()):
            errors.append(
                "spec.template.metadata.labels: Invalid value: `selector` does not "
                "match template `labels`"
            )
    return errors


def _per_index_errors(job: Obj, pod_spec: Obj) -> list[str]:
    """Kubernetes' rules for counting an Indexed Job's failures per index."""
    per_index, most = lookup(job, "spec.backoffLimitPerIndex"), lookup(job, "spec.maxFailedIndexes")
    if lookup(job, "spec.completionMode") != "Indexed":
        return [
            f"spec.{key}: Invalid value: {value}: requires indexed completion mode"
            for key, value in (("backoffLimitPerIndex", per_index), ("maxFailedIndexes", most))
            if value is not None
        ]
    errors = []
    if most is not None and per_index is None:
        errors.append(
            "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"
        )
    if per_index is not None and pod_spec.get("restartPolicy") != "Never":
        errors.append(
            f"spec.template.spec.restartPolicy: Invalid value: {pod_spec.get('restartPolicy')!r}: "
            "only Never is supported when backoffLimitPerIndex is specified"
        )
    return errors


def _qualified_name(where: str, key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    ok = bool(LABEL_NAME.match(name)) and len(name) <= 63
    ok = ok and (not prefix or (bool(DNS_SUBDOMAIN.match(prefix)) and len(prefix) <= 253))
    return (
        []
        if ok
        else [
            f"{where}: Invalid value: {key!r}: name part must be at most 63 "
            "alphanumeric characters, '-', '_' or '.', with an optional DNS prefix"
        ]
    )


def normalize_secret(obj: Obj) -> None:
    """As the API server does: `stringData` is folded into base64 `data`; bad base64 is a 400."""
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError) as e:
            raise ApiError.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                f"at key {key!r}"
            ) from e
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data
    obj.setdefault("type", "Opaque")


# --- defaults ------------------------------------------------------------------------------------
# A deliberately small subset of the API server's defaulting: the fields that most often make a
# "live object differs from what I sent" comparison flap, or that controllers read.


def apply_defaults(plural: str, obj: Obj) -> None:
    spec = obj.get("spec")
    if plural == "deployments" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        )
    elif plural == "jobs" and isinstance(spec, dict):
        uid = obj["metadata"].get("uid", "")
        name = obj["metadata"].get("name", "")
        for key, value in {
            # 2147483647 when failures are counted per index (backoffLimitPerIndex)
            "backoffLimit": 6 if spec.get("backoffLimitPerIndex") is None else 2**31 - 1,
            "completions": 1,
            "parallelism": 1,
            "completionMode": "NonIndexed",
            "suspend": False,
        }.items():
            spec.setdefault(key, value)
        if uid and not spec.get("manualSelector"):
            spec.setdefault(
                "selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            )
            labels = (
                spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
            )
            labels.setdefault("batch.kubernetes.io/controller-uid", uid)
            labels.setdefault("batch.kubernetes.io/job-name", name)
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", name)
    elif plural == "cronjobs" and isinstance(spec, dict):
        for key, value in {
            "suspend": False,
            "concurrencyPolicy": "Allow",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
        }.items():
            spec.setdefault(key, value)
    elif plural == "services" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("clusterIP", f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}")
            spec.setdefault(
                "clusterIPs", [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"]
            )
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
