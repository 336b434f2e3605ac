"""Pieces shared by every kind: references, conditions, metadata, cron and quantity checks."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from vulcan_operator.solver.problem import Strict

__all__ = [
    "CRON_PATTERN",
    "Condition",
    "Cron",
    "DnsLabel",
    "DnsSubdomain",
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

QUANTITY_PATTERN = (
    r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"  # the pattern Kubernetes' own schemas use
)


def _quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"'{value}' is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    return value


Quantity = Annotated[
    int | str,
    Field(description="A Kubernetes quantity, e.g. 500m, 2, 4Gi."),
    AfterValidator(_quantity),
]


CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"


def _cron(value: str) -> str:
    if not re.fullmatch(CRON_PATTERN, value.strip()) or not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a valid 5-field cron schedule "
            "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')"
        )
    return value


Cron = Annotated[
    str,
    Field(
        pattern=CRON_PATTERN,
        description="Cron schedule, 5 fields: minute hour day-of-month month day-of-week.",
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
