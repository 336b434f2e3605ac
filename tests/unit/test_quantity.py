"""quantity: Kubernetes' quantity grammar, decimal and binary suffixes, exponents, milli."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vulcan_operator import quantity

VALID: list[tuple[int | float | str, Decimal]] = [
    # plain numbers, signs, the four number forms
    ("0", Decimal(0)),
    ("2", Decimal(2)),
    ("+2", Decimal(2)),
    ("-2", Decimal(-2)),
    ("1.5", Decimal("1.5")),
    ("5.", Decimal(5)),
    (".5", Decimal("0.5")),
    ("007", Decimal(7)),
    (2, Decimal(2)),
    (0.5, Decimal("0.5")),
    # decimal SI suffixes, down to nano
    ("1n", Decimal("1e-9")),
    ("1u", Decimal("1e-6")),
    ("500m", Decimal("0.5")),
    ("1500m", Decimal("1.5")),
    ("1k", Decimal(1000)),
    ("1M", Decimal(10) ** 6),
    ("1G", Decimal(10) ** 9),
    ("1T", Decimal(10) ** 12),
    ("1P", Decimal(10) ** 15),
    ("1E", Decimal(10) ** 18),  # exa, not an exponent
    ("1.5k", Decimal(1500)),
    # binary SI suffixes
    ("1Ki", Decimal(2**10)),
    ("512Mi", Decimal(512 * 2**20)),
    ("1.5Gi", Decimal(3 * 2**29)),
    ("4Gi", Decimal(4 * 2**30)),
    ("1Ti", Decimal(2**40)),
    ("1Pi", Decimal(2**50)),
    ("2Ei", Decimal(2**61)),
    # decimal exponents, either case, signed
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("1e+3", Decimal(1000)),
    ("1e-3", Decimal("0.001")),
    ("1.5e2", Decimal(150)),
    ("12e0", Decimal(12)),
    ("1e2147483647", Decimal("1e2147483647")),  # the largest exponent Kubernetes reads
    ("0.5e-2147483648", Decimal("0.5e-2147483648")),
    (1e-05, Decimal("0.00001")),
]

INVALID: list[object] = [
    "",
    " 1",
    "1 ",
    "2 GB",
    ".",
    "+",
    "-",
    "Gi",
    "m",
    "1K",  # only k and Ki
    "1KB",
    "1ki",
    "1mi",
    "1Gii",
    "1iG",
    "1e",
    "1e+",
    "1ee3",
    "1e1.5",  # controller-gen's pattern lets it through, the API server does not
    "1e3Gi",
    "1.2.3",
    "--1",
    "+-1",
    "1_000",
    "0x10",
    "1,5",
    "NaN",
    "nan",
    "Infinity",
    "inf",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: Decimal reads it, Kubernetes does not
    "1e2147483648",  # beyond an int32 exponent
    "1e9999999999999999999",
    float("nan"),
    float("inf"),
    True,
    None,
    [],
    {"memory": "1Gi"},
]


@pytest.mark.parametrize(("value", "expected"), VALID)
def test_valid_quantities(value: int | float | str, expected: Decimal) -> None:
    assert quantity.parse(value) == expected
    assert quantity.parse_or_none(value) == expected
    if isinstance(value, str):
        assert re.fullmatch(quantity.PATTERN, value), "the CRD schema must accept it too"


@pytest.mark.parametrize("value", INVALID)
def test_invalid_quantities(value: object) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        quantity.parse(value)  # type: ignore[arg-type]
    assert quantity.parse_or_none(value) is None


def test_canonical_forms_compare_equal() -> None:
    # The API server rewrites quantities canonically; apply compares them by value.
    assert quantity.parse("1000m") == quantity.parse("1") == quantity.parse(1)
    assert quantity.parse("1024Ki") == quantity.parse("1Mi")
    assert quantity.parse("1e3") == quantity.parse("1k")


@given(st.from_regex(quantity.PATTERN, fullmatch=True))
def test_the_schema_pattern_and_the_parser_agree(text: str) -> None:
    """Whatever the CRD schema admits parses, except a fraction in an exponent or an exponent
    beyond 32 bits (Kubernetes refuses both)."""
    exponent = re.search(r"[eE]([+-]?[0-9]+)$", text)
    if re.search(r"[eE].*\.", text) or (exponent and not -(2**31) <= int(exponent[1]) < 2**31):
        assert quantity.parse_or_none(text) is None
    else:
        assert quantity.parse_or_none(text) is not None, text
