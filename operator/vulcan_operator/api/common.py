"""Pieces shared by every kind: references, conditions, metadata, cron and quantity checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from vulcan_operator import quantity
from vulcan_operator.solver.problem import Strict

__all__ = [
    "CRON_PATTERN",
    "Condition",
    "Cron",
    "DnsLabel",
    "DnsSubdomain",
    "LabelSelector",
    "LocalObjectReference",
    "ObjectMeta",
    "Quantity",
    "SecretKeyRef",
    "SecretRef",
    "Status",
    "Strict",
    "cel",
]

DnsLabel = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="DNS-1123 label: lowercase letters, digits and '-', at most 63 characters.",
    ),
]
DnsSubdomain = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="DNS-1123 subdomain: lowercase letters, digits, '-' and '.'.",
    ),
]


def _quantity(value: int | str) -> int | str:
    quantity.parse(value)  # raises ValueError naming the value
    return value


Quantity = Annotated[
    int | str,
    Field(
        description="A Kubernetes quantity, e.g. 500m, 2, 4Gi.",
        json_schema_extra={"pattern": quantity.PATTERN},  # applies to the string form only
    ),
    AfterValidator(_quantity),
]


def _cron_field(value: str) -> str:
    """One cron field: '*' or a value or a range, optionally '/step', comma-separated."""
    item = rf"(\*|{value}(-{value})?)(/[1-9][0-9]*)?"
    return rf"{item}(,{item})*"


def _names(names: str) -> str:
    """'JAN FEB' -> 'JAN|FEB|jan|feb' (both parsers take names in any case; we take two)."""
    return "|".join([*names.split(), *names.lower().split()])


# What both croniter and the CronJob controller's parser (robfig/cron, standard 5 fields) accept:
# minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + r"\s+".join(
        _cron_field(v)
        for v in (
            "[0-5]?[0-9]",
            "(2[0-3]|[01]?[0-9])",
            "(3[01]|[12][0-9]|0?[1-9])",
            f"(1[0-2]|0?[1-9]|{_names('JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC')})",
            f"([0-6]|{_names('SUN MON TUE WED THU FRI SAT')})",
        )
    )
    + r")$"
)


def _cron(value: str) -> str:
    if not re.fullmatch(CRON_PATTERN, value) or not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a valid 5-field cron schedule "
            "(minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6; "
            "e.g. '0 2 * * *')"
        )
    return value


Cron = Annotated[
    str,
    Field(
        description="Cron schedule, 5 fields: minute hour day-of-month month day-of-week.",
        # In the CRD only: in Python, _cron checks the same pattern with a readable message.
        json_schema_extra={"pattern": CRON_PATTERN},
    ),
    AfterValidator(_cron),
]


def cel(*rules: tuple[str, str]) -> ConfigDict:
    """Model config carrying CEL rules (rule, message) into the generated CRD schema."""
    return ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]
        }
    )


class LocalObjectReference(Strict):
    """A reference to an object of the same namespace."""

    name: DnsSubdomain = Field(description="Name of the object, in the same namespace.")


#: A label key: optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class LabelSelectorRequirement(Strict):
    """One matchExpressions entry of a label selector."""

    key: str = Field(
        min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN, description="Label key."
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[LabelValue] = Field(
        default_factory=list, max_length=100, description="Values for In and NotIn."
    )

    @model_validator(mode="after")
    def _values_fit(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError("In and NotIn need values; Exists and DoesNotExist take none")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


class LabelSelector(Strict):
    """A Kubernetes label selector (matchLabels and matchExpressions, all must hold). An
    empty selector selects everything.

    The label keys and the values an operator needs are checked here (the operator and
    `validate` refuse a bad selector, naming it), not by CEL rules in the CRD: selectors sit
    in lists (affinity terms, spread constraints), where a regular expression per key would
    cost the API server's CEL budget more than a CRD may spend."""

    matchLabels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=100,
        description="Labels that must all be present with these values.",
    )
    matchExpressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=100, description="Requirements that must all hold."
    )

    @field_validator("matchLabels")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if len(k) > 317 or not re.match(LABEL_KEY_PATTERN, k)]
        if bad:
            raise ValueError(
                f"'{bad[0][:100]}' is not a label key ([prefix/]name, name at most 63 characters)"
            )
        return value

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` satisfy every requirement (as the API server's selectors do)."""
        return all(labels.get(k) == v for k, v in self.matchLabels.items()) and all(
            r.matches(labels) for r in self.matchExpressions
        )


class SecretRef(Strict):
    """A Secret of the same namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the same namespace.")


class SecretKeyRef(Strict):
    """A key of a Secret of the same namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the same namespace.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key inside the Secret's data.",
    )


class ObjectMeta(BaseModel):
    """The part of metadata we check; the rest is the API server's business."""

    model_config = ConfigDict(extra="allow")

    name: DnsSubdomain = Field(description="Object name.")
    namespace: DnsLabel | None = Field(None, description="Namespace.")


class Condition(Strict):
    """A standard Kubernetes condition."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason.",
    )
    message: str = Field("", max_length=32768, description="Human-readable explanation.")
    lastTransitionTime: str = Field(
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observedGeneration: int | None = Field(
        None, ge=0, description="The .metadata.generation this condition was set for."
    )


class Status(BaseModel):
    """Status fields every kind has."""

    model_config = ConfigDict(extra="forbid")

    phase: str | None = Field(None, description="Where the object is in its life cycle.")
    observedGeneration: int | None = Field(
        None, ge=0, description="The .metadata.generation the status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Standard conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
