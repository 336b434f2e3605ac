"""Kubernetes quantities (`resource.Quantity`: `500m`, `2`, `4Gi`, `1e3`): the one parser.

The grammar is Kubernetes' own (k8s.io/apimachinery/pkg/api/resource, `ParseQuantity`):

    quantity        ::= signedNumber suffix
    signedNumber    ::= number | "+" number | "-" number
    number          ::= digits | digits "." digits | digits "." | "." digits
    suffix          ::= binarySI | decimalExponent | decimalSI
    binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
    decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
    decimalExponent ::= "e" signedInteger | "E" signedInteger

No spaces, no `K` (only `k` and `Ki`), no fraction in an exponent, an exponent of 32 bits
(Kubernetes keeps it in an int32). `PATTERN` is the regular
expression controller-gen writes into CRD schemas for a quantity; it is slightly wider than the
grammar (it allows `1e1.5`, which the API server refuses), so the models check values with
`parse` too.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, DecimalException

__all__ = ["PATTERN", "parse", "parse_or_none"]

#: The pattern controller-gen writes for resource.Quantity (for the CRD schema's string form).
PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

_GRAMMAR = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_EXPONENTS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_INT32 = range(-(2**31), 2**31)
#: Exact for every quantity a manifest holds; room for any int32 exponent.
_CONTEXT = Context(prec=64, Emax=MAX_EMAX, Emin=MIN_EMIN)


def parse(value: int | float | str) -> Decimal:
    """The value of a quantity: `500m` -> 0.5, `2Gi` -> 2147483648, `1e3` -> 1000.

    An int or float stands for itself (YAML's `cpu: 2`). Raises ValueError for anything
    Kubernetes would refuse.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    text = str(value)
    match = _GRAMMAR.fullmatch(text)
    if match is None:
        raise ValueError(f"'{text}' is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    number = Decimal(match["number"])
    if match["binary"]:
        return _CONTEXT.multiply(number, Decimal(2 ** _BINARY_EXPONENTS[match["binary"]]))
    if match["decimal"]:
        return number.scaleb(_DECIMAL_EXPONENTS[match["decimal"]], _CONTEXT)
    if match["exponent"]:
        exponent = int(match["exponent"])
        if exponent not in _INT32:
            raise ValueError(f"'{text}' is not a Kubernetes quantity: its exponent is too large")
        try:
            return number.scaleb(exponent, _CONTEXT)
        except DecimalException:  # beyond even Decimal's largest exponents
            raise ValueError(f"'{text}' is not a Kubernetes quantity: out of range") from None
    return number


def parse_or_none(value: object) -> Decimal | None:
    """`parse(value)`, or None when `value` is not a quantity (of any type)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return parse(value)
    except ValueError:
        return None
