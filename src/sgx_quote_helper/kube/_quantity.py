"""Kubernetes resource quantities (``5Mi``, ``512Ki``, ``1e3``, ``98566144``), as bytes.

The grammar is apimachinery's ``resource.Quantity``: a signed decimal number and
an optional suffix, binary (``Ki`` .. ``Ei``), decimal (``n u m k M G T P E``) or
a decimal exponent (``e3``/``E3``). Values are rounded up to whole units, as
``Quantity.Value()`` does; the EPC resource is a byte count.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
#: How much of an unreadable quantity an error message repeats (the body may be MiBs).
_SHOWN = 40
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)


def parse_quantity(text: object) -> int:
    """The value of a quantity, rounded up to an integer; ``ValueError`` if it is not one."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        # Named by type, never printed: a JSON value in a review may be huge or deep.
        shown = "null" if text is None else f"a {type(text).__name__}"
        raise ValueError(f"{shown} is not a quantity (a string such as 5Mi, or an integer)")
    if isinstance(text, int):  # a number in JSON is accepted by the API server too
        return text
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        shown = repr(text) if len(text) <= _SHOWN else f"{text[:_SHOWN]!r}..."
        raise ValueError(f"{shown} is not a quantity (e.g. 512Ki, 5Mi, 1048576)")
    number = Fraction(match["number"])
    if match["binary"] is not None:
        value = number * 1024 ** _BINARY[match["binary"]]
    elif match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > 18:
            raise ValueError(f"{text!r}: exponent out of range")
        value = number * Fraction(10) ** exponent
    else:
        value = number * Fraction(10) ** _DECIMAL[match["decimal"] or ""]
    rounded: int = math.ceil(value)
    return rounded


def format_quantity(value: int) -> str:
    """``value`` as Kubernetes prints a BinarySI quantity (what Intel's webhook writes).

    ``resource.NewQuantity(value, BinarySI).String()``: from 1024 on, the largest
    binary suffix that is exact (``1Mi``, ``1536Ki``) or none (``1000000``); below
    1024, decimal SI (``1k``, ``999``).
    """
    if value == 0:
        return "0"
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    if magnitude >= 1024:
        suffixes = ["", *_BINARY]
        power = 0
        while magnitude % 1024 == 0 and power < len(suffixes) - 1:
            magnitude //= 1024
            power += 1
        return f"{sign}{magnitude}{suffixes[power]}"
    power = 0
    decimal = ["", "k", "M", "G", "T", "P", "E"]
    while magnitude % 1000 == 0 and power < len(decimal) - 1:
        magnitude //= 1000
        power += 1
    return f"{sign}{magnitude}{decimal[power]}"
