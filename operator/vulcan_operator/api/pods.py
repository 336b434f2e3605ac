"""Where and how the engine's pods run: the scheduling knobs platform teams set (node
selectors, tolerations, affinity, topology spread, priority) and extra pod metadata.

The shapes are the Kubernetes ones (core/v1 Affinity, Toleration, TopologySpreadConstraint;
label selectors are `api.common.LabelSelector`), typed here so a wrong field is refused with
its path before anything is applied, never as a 422 on our own Deployment. What a field may
not name (our own labels and annotations, the control plane's taints, the system priority
classes) is refused with the field and the rule: see `reserved_pod_label`,
`reserved_pod_annotation`, `ingress_annotation_problem` and README "Privilege model".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from vulcan_operator.api.common import (
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    LabelSelector,
    Strict,
)

__all__ = [
    "Affinity",
    "Annotations",
    "Labels",
    "NodeSelector",
    "PodAnnotations",
    "PodLabels",
    "PriorityClassName",
    "Toleration",
    "Tolerations",
    "TopologySpreadConstraint",
    "ingress_annotation_problem",
    "reserved_pod_annotation",
    "reserved_pod_label",
]

QUALIFIED_NAME = re.compile(LABEL_KEY_PATTERN)
LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)

#: Our own domain: every label and annotation of ours lives here.
OUR_DOMAIN = "vulcan-engine.com"
#: Labels the operator sets on every pod (selectors, ownership): never from podLabels.
OUR_LABEL_KEYS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
        "pod-template-hash",
    }
)
#: Kubernetes' own domains; pod annotations there change how the kubelet and the
#: controllers treat the pod (AppArmor/seccomp profiles, the default container...), so only
#: these harmless ones are accepted.
K8S_DOMAINS = ("kubernetes.io", "k8s.io")
ALLOWED_K8S_POD_ANNOTATIONS = frozenset(
    {"cluster-autoscaler.kubernetes.io/safe-to-evict", "kubectl.kubernetes.io/restartedAt"}
)
#: Ingress annotations the operator sets itself (from spec.ingress.tls).
OUR_INGRESS_ANNOTATIONS = frozenset(
    {
        "cert-manager.io/cluster-issuer",
        "nginx.ingress.kubernetes.io/force-ssl-redirect",
        "nginx.ingress.kubernetes.io/ssl-ciphers",
        "nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers",
    }
)
#: Annotation domains whose values ingress controllers paste into their nginx configuration.
NGINX_DOMAINS = ("nginx.ingress.kubernetes.io", "nginx.org", "nginx.com")
#: Characters that end an nginx directive or open a block, quote or escape: an annotation
#: value carrying one can inject configuration (CVE-2021-25742, CVE-2023-5043/5044,
#: CVE-2025-1097/1098/24514). No legitimate value of the annotations we expect needs them.
NGINX_UNSAFE = re.compile(r"[\n\r;{}'\"\\`]")
#: Taints of control-plane nodes: the engine's pods (an image of the spec's choosing) never
#: tolerate them.
CONTROL_PLANE_TAINTS = frozenset(
    {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
)


def _domain(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _in_domain(key: str, domains: tuple[str, ...]) -> bool:
    domain = _domain(key)
    return any(domain == d or domain.endswith(f".{d}") for d in domains)


def _key_problem(key: str) -> str | None:
    if len(key) > 317 or not QUALIFIED_NAME.match(key):
        return (
            f"'{key}' is not a valid key: [prefix/]name, name at most 63 characters of "
            "letters, digits, '-', '_' and '.', starting and ending alphanumeric"
        )
    return None


def _labels(value: dict[str, str]) -> dict[str, str]:
    issues = [p for key in value if (p := _key_problem(key))]
    issues += [
        f"'{key}': value '{v}' is not a valid label value (at most 63 characters of letters, "
        "digits, '-', '_' and '.', starting and ending alphanumeric)"
        for key, v in value.items()
        if len(v) > 63 or not LABEL_VALUE.match(v)
    ]
    if issues:
        raise ValueError("; ".join(issues))
    return value


def _annotations(value: dict[str, str]) -> dict[str, str]:
    issues = [p for key in value if (p := _key_problem(key))]
    if sum(len(k) + len(v) for k, v in value.items()) > 256 * 1024:
        issues.append("annotations may hold at most 256 KiB in all")
    if issues:
        raise ValueError("; ".join(issues))
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Annotations = Annotated[dict[str, str], AfterValidator(_annotations)]


def reserved_pod_label(key: str) -> str | None:
    """Why `key` may not be a pod label of ours to add (None: it may)."""
    if key in OUR_LABEL_KEYS or _in_domain(key, (OUR_DOMAIN,)):
        return f"'{key}' is one of the operator's own labels (selectors and ownership)"
    if _in_domain(key, K8S_DOMAINS):
        return f"'{key}' is in a Kubernetes domain (kubernetes.io, k8s.io), reserved"
    return None


def reserved_pod_annotation(key: str) -> str | None:
    """Why `key` may not be a pod annotation to add (None: it may)."""
    if _in_domain(key, (OUR_DOMAIN,)) or key == "kubectl.kubernetes.io/default-container":
        return f"'{key}' is one of the operator's own annotations"
    if _in_domain(key, K8S_DOMAINS) and key not in ALLOWED_K8S_POD_ANNOTATIONS:
        return (
            f"'{key}' is in a Kubernetes domain (kubernetes.io, k8s.io): such annotations "
            "change how the pod is secured or run; only "
            f"{', '.join(sorted(ALLOWED_K8S_POD_ANNOTATIONS))} are accepted"
        )
    return None


def ingress_annotation_problem(key: str, value: str) -> str | None:
    """Why the Ingress annotation `key: value` is refused (None: it is accepted)."""
    if key in OUR_INGRESS_ANNOTATIONS:
        return f"'{key}' is set by the operator (from spec.ingress.tls); set it there"
    if _in_domain(key, (OUR_DOMAIN,)):
        return f"'{key}' is in the operator's own domain"
    name = key.rsplit("/", 1)[-1]
    if name.endswith(("-snippet", "-snippets")):
        return (
            f"'{key}': snippet annotations paste raw configuration into the ingress "
            "controller, shared by every tenant (CVE-2021-25742); they are never accepted"
        )
    if _in_domain(key, NGINX_DOMAINS) and NGINX_UNSAFE.search(value):
        return (
            f"'{key}': the value contains a character that can inject nginx configuration "
            "(newline, ';', '{', '}', quotes, '\\' or '`')"
        )
    return None


def _map_check(field: str, value: dict[str, str], rule: Callable[[str], str | None]) -> None:
    problems = [p for key in value if (p := rule(key))]
    if problems:
        raise ValueError(f"{field}: " + "; ".join(problems))


def _pod_labels(value: dict[str, str]) -> dict[str, str]:
    _map_check("podLabels", value, reserved_pod_label)
    return value


def _pod_annotations(value: dict[str, str]) -> dict[str, str]:
    _map_check("podAnnotations", value, reserved_pod_annotation)
    return value


PodLabels = Annotated[Labels, AfterValidator(_pod_labels)]
PodAnnotations = Annotated[Annotations, AfterValidator(_pod_annotations)]


def _priority_class(value: str) -> str:
    if value.startswith("system-"):
        raise ValueError(
            f"'{value}': the system-* priority classes are for the cluster's own components "
            "(they preempt everything else); name a class made for workloads"
        )
    return value


PriorityClassName = Annotated[
    str,
    Field(
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$",
        description="PriorityClass of the pods; empty: the cluster default. Not system-*.",
    ),
    AfterValidator(_priority_class),
]

QualifiedKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]


# --- node placement ---------------------------------------------------------------------------
NodeSelector = Annotated[Labels, Field(description="Node labels the pods must run on.")]


class Toleration(Strict):
    """A taint the pods tolerate (core/v1 Toleration)."""

    key: str = Field(
        "",
        max_length=317,
        pattern=rf"^({LABEL_KEY_PATTERN[1:-1]})?$",
        description="Taint key; empty with operator Exists: every taint (refused).",
    )
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str = Field("", max_length=63, description="Taint value (Equal only).")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "", description="Taint effect; empty: every effect."
    )
    tolerationSeconds: int | None = Field(
        None, ge=0, description="How long a NoExecute taint is tolerated."
    )

    @model_validator(mode="after")
    def _shape(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value")
        if not self.key and self.operator != "Exists":
            raise ValueError("an empty key needs operator Exists")
        if not self.key or self.key in CONTROL_PLANE_TAINTS:
            raise ValueError(
                f"tolerating {'every taint' if not self.key else repr(self.key)} would let the "
                "pods onto control-plane nodes; name the taints of the nodes meant for them"
            )
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies to effect NoExecute only")
        return self


Tolerations = Annotated[list[Toleration], Field(max_length=50)]


class NodeSelectorRequirement(Strict):
    """One expression over node labels or fields."""

    key: QualifiedKey = Field(description="Node label (or field) key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="In, NotIn, Exists, DoesNotExist, Gt or Lt."
    )
    values: list[str] = Field(default_factory=list, max_length=100, description="Values.")


class NodeSelectorTerm(Strict):
    """Node selector expressions, all of which must hold."""

    matchExpressions: list[NodeSelectorRequirement] = Field(
        default_factory=list, max_length=20, description="By node labels."
    )
    matchFields: list[NodeSelectorRequirement] = Field(
        default_factory=list, max_length=20, description="By node fields."
    )


class RequiredNodeSelector(Strict):
    """Terms of which at least one must hold."""

    nodeSelectorTerms: list[NodeSelectorTerm] = Field(
        min_length=1, max_length=20, description="Any of these terms."
    )


class PreferredSchedulingTerm(Strict):
    """A weighted node preference."""

    weight: int = Field(ge=1, le=100, description="1..100.")
    preference: NodeSelectorTerm = Field(description="The preferred nodes.")


class NodeAffinity(Strict):
    """Node affinity (core/v1)."""

    requiredDuringSchedulingIgnoredDuringExecution: RequiredNodeSelector | None = Field(
        None, description="Nodes the pods must run on."
    )
    preferredDuringSchedulingIgnoredDuringExecution: list[PreferredSchedulingTerm] = Field(
        default_factory=list, max_length=20, description="Nodes the pods prefer."
    )


class PodAffinityTerm(Strict):
    """Pods to run near (or away from), by topology."""

    labelSelector: LabelSelector | None = Field(None, description="The pods.")
    namespaceSelector: LabelSelector | None = Field(None, description="Their namespaces.")
    namespaces: list[str] = Field(default_factory=list, max_length=50, description="Namespaces.")
    topologyKey: QualifiedKey = Field(description="Node label defining the topology domain.")
    matchLabelKeys: list[QualifiedKey] = Field(
        default_factory=list, max_length=20, description="Keys of the incoming pod's labels."
    )
    mismatchLabelKeys: list[QualifiedKey] = Field(
        default_factory=list, max_length=20, description="Keys whose values must differ."
    )


class WeightedPodAffinityTerm(Strict):
    """A weighted pod (anti-)affinity preference."""

    weight: int = Field(ge=1, le=100, description="1..100.")
    podAffinityTerm: PodAffinityTerm = Field(description="The term.")


class PodAffinity(Strict):
    """Pod affinity or anti-affinity (core/v1)."""

    requiredDuringSchedulingIgnoredDuringExecution: list[PodAffinityTerm] = Field(
        default_factory=list, max_length=20, description="Must hold."
    )
    preferredDuringSchedulingIgnoredDuringExecution: list[WeightedPodAffinityTerm] = Field(
        default_factory=list, max_length=20, description="Preferred."
    )


class Affinity(Strict):
    """Scheduling affinity of the pods (core/v1 Affinity)."""

    nodeAffinity: NodeAffinity | None = Field(None, description="Node affinity.")
    podAffinity: PodAffinity | None = Field(None, description="Pod affinity.")
    podAntiAffinity: PodAffinity | None = Field(None, description="Pod anti-affinity.")


class TopologySpreadConstraint(Strict):
    """How the backend pods spread over a topology (core/v1). Without a labelSelector the
    backend's own selector is used (a constraint selecting nothing would spread nothing)."""

    maxSkew: int = Field(ge=1, le=1000, description="Most pods one domain may have over another.")
    topologyKey: QualifiedKey = Field(description="Node label, e.g. topology.kubernetes.io/zone.")
    whenUnsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = Field(
        description="DoNotSchedule or ScheduleAnyway."
    )
    labelSelector: LabelSelector | None = Field(
        None, description="Pods counted; default: the engine's backend pods."
    )
    minDomains: int | None = Field(None, ge=1, le=1000, description="Fewest eligible domains.")
    nodeAffinityPolicy: Literal["Honor", "Ignore"] | None = Field(None, description="Honor/Ignore.")
    nodeTaintsPolicy: Literal["Honor", "Ignore"] | None = Field(None, description="Honor/Ignore.")
    matchLabelKeys: list[QualifiedKey] = Field(
        default_factory=list, max_length=20, description="Pod label keys that split the count."
    )

    @model_validator(mode="after")
    def _min_domains(self) -> TopologySpreadConstraint:
        if self.minDomains is not None and self.whenUnsatisfiable != "DoNotSchedule":
            raise ValueError("minDomains needs whenUnsatisfiable DoNotSchedule")
        return self
