"""``explain``: every reading of a status code, with what it means and what to check.

Also :func:`guide`, the "what to check" for one code, which whoever shows an
error to people passes to :meth:`~sgx_quote_helper.errors.CodedError.diagnostics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sgx_quote_helper.errors import ErrorCode
from sgx_quote_helper.explain._guidance import Code, meaning_and_check
from sgx_quote_helper.sgx import (
    QUOTE_EX_STATUSES,
    AesmError,
    Quote3Error,
    QuoteExCall,
    QvResult,
    SgxStatus,
    aesm_to_sgx,
    sgx_to_quote3,
)


@dataclass(frozen=True)
class Explanation:
    """One reading of a status code: what it means and what to check.

    ``quote_ex`` (AESM codes only) gives the ``sgx_status_t`` each quote-ex call
    turns the code into; ``dcap`` (``sgx_status_t`` codes a quote-ex call can
    return) gives the ``quote3_error_t`` DCAP's out-of-process path reports.
    ``reading`` says how the input was read: ``"decimal"``, ``"hex"``,
    ``"name"`` or ``"value"`` (an integer argument).
    """

    family: str
    value: int
    name: str
    meaning: str
    check: str
    reading: str = "value"
    quote_ex: tuple[tuple[QuoteExCall, SgxStatus], ...] = ()
    dcap: Quote3Error | None = None

    @property
    def hex(self) -> str:
        return f"0x{self.value:04X}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form; optional parts appear only when present."""
        out: dict[str, object] = {
            "family": self.family,
            "value": self.value,
            "hex": self.hex,
            "name": self.name,
            "reading": self.reading,
            "meaning": self.meaning,
            "check": self.check,
        }
        if self.quote_ex:
            out["quote_ex"] = {call.value: _code_dict(sgx) for call, sgx in self.quote_ex}
        if self.dcap is not None:
            out["dcap"] = _code_dict(self.dcap)
        return out


def _code_dict(code: Code) -> dict[str, object]:
    return {"value": int(code), "hex": f"0x{code.value:04X}", "name": code.c_name}


_FAMILIES: tuple[type[Code], ...] = (SgxStatus, AesmError, Quote3Error, QvResult)

_HEX = re.compile(r"0x([0-9a-f]+)", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")
_BARE_HEX = re.compile(r"[0-9a-f]+", re.IGNORECASE)


def explain(value: int | str) -> list[Explanation]:
    """Every reading of ``value`` as a status code, with what to check.

    ``value`` is an integer, ``0x``-prefixed hex, bare digits (read both as
    decimal and as hex: "12" is AESM 12 and also 0x12), bare hex such as
    ``e019``, or a C name in any case (``SGX_QL_NETWORK_ERROR``, ``aesm_busy``,
    ``TEE_...`` aliases, or the name without its prefix). A value that exists in
    several families gives one entry per family. Unknown input gives ``[]``.
    """
    if isinstance(value, int):
        readings = [(value, "value")]
    else:
        text = value.strip()
        if named := _named_members(text):
            return _dedupe([_describe(member, "name") for member in named])
        readings = _numeric_readings(text)
    found: list[Explanation] = []
    for number, how in readings:
        for family in _FAMILIES:
            try:
                member = family(number)
            except ValueError:
                continue
            found.append(_describe(member, how))
    return _dedupe(found)


#: Every status code is a 32-bit value: at most 8 significant hex or 10 decimal digits.
#: Longer text is no code, and is not converted (Python refuses decimal strings of
#: more than 4300 digits with a ValueError).
_MAX_SIGNIFICANT_DIGITS = 10


def _numeric_readings(text: str) -> list[tuple[int, str]]:
    digits = text[2:] if text[:2].lower() == "0x" else text
    if len(digits.lstrip("0")) > _MAX_SIGNIFICANT_DIGITS:
        return []
    if match := _HEX.fullmatch(text):
        return [(int(match.group(1), 16), "hex")]
    if _DIGITS.fullmatch(text):
        decimal, hexadecimal = int(text, 10), int(text, 16)
        if decimal == hexadecimal:
            return [(decimal, "decimal")]
        return [(decimal, "decimal"), (hexadecimal, "hex")]
    if _BARE_HEX.fullmatch(text):
        # "e019" as pasted from logs that print codes without 0x.
        return [(int(text, 16), "hex")]
    return []


def _named_members(text: str) -> list[Code]:
    upper = text.upper()
    members: list[Code] = []
    for family in _FAMILIES:
        # Explicit None checks: SUCCESS and OK are falsy (value 0).
        member = family.from_c_name(upper)
        if member is None:
            member = family.__members__.get(upper)
        if member is not None:
            members.append(member)
    return members


def _dedupe(items: list[Explanation]) -> list[Explanation]:
    seen: set[tuple[str, int]] = set()
    unique: list[Explanation] = []
    for item in items:
        if (item.family, item.value) not in seen:
            seen.add((item.family, item.value))
            unique.append(item)
    return unique


def _describe(member: Code, reading: str) -> Explanation:
    meaning, check = meaning_and_check(member)
    quote_ex: tuple[tuple[QuoteExCall, SgxStatus], ...] = ()
    dcap: Quote3Error | None = None
    if isinstance(member, AesmError):
        quote_ex = tuple((call, aesm_to_sgx(member, call)) for call in QuoteExCall)
    elif isinstance(member, SgxStatus) and member in QUOTE_EX_STATUSES:
        dcap = sgx_to_quote3(member)
    return Explanation(
        family=member.c_type(),
        value=int(member),
        name=member.c_name,
        meaning=meaning,
        check=check,
        reading=reading,
        quote_ex=quote_ex,
        dcap=dcap,
    )


def guide(code: ErrorCode) -> list[str]:
    """What to check for ``code`` (a member of one of the four status enums).

    The :data:`~sgx_quote_helper.errors.Guide` that the CLI, ``doctor``, the
    samples and the demo pass to ``diagnostics()``: an error that carries no
    hints of its own then still says what to check for each of its codes.
    """
    if not isinstance(code, SgxStatus | AesmError | Quote3Error | QvResult):
        return []
    _meaning, check = meaning_and_check(code)
    return [check]
