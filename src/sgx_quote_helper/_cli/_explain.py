"""``sgx-quote-helper explain CODE``: what a status code means and what to check."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from sgx_quote_helper.explain import Explanation, explain

_WIDTH = 100
#: Characters of an unknown CODE repeated in the error line.
_ECHO_MAX = 64


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="explain an SGX, AESM, DCAP or verification status code",
        description="Explain a status code: sgx_status_t, aesm_error_t, quote3_error_t or "
        "sgx_ql_qv_result_t. CODE is 0x-prefixed hex, bare digits (read as decimal and as "
        "hex), bare hex such as e019, or a C name such as SGX_QL_NETWORK_ERROR or AESM_BUSY.",
    )
    parser.add_argument("code", metavar="CODE", help="the status code, as a number or C name")
    parser.add_argument("--json", action="store_true", help="print a JSON list of readings")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    code: str = args.code
    readings = explain(code)
    if not readings:
        # A pasted log line or an over-long number is echoed cut, to keep one readable line.
        shown = (
            repr(code)
            if len(code) <= _ECHO_MAX
            else f"{code[:_ECHO_MAX]!r}... ({len(code)} characters)"
        )
        print(
            f"sgx-quote-helper: explain: {shown} is not a known sgx_status_t, aesm_error_t, "
            "quote3_error_t or sgx_ql_qv_result_t value or name",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps([reading.as_dict() for reading in readings], indent=2))
    else:
        print("\n\n".join(_format(reading, several=len(readings) > 1) for reading in readings))
    return 0


def _format(item: Explanation, *, several: bool) -> str:
    # AESM codes are decimal in Intel's logs; everything else is hex.
    shown = f"{item.value} ({item.hex})" if item.family == "aesm_error_t" else item.hex
    title = f"{item.family} {shown} {item.name}"
    if several and item.reading in ("decimal", "hex"):
        title += f"  [read as {item.reading}]"
    lines = [title, _field("meaning", item.meaning), _field("check", item.check)]
    if item.quote_ex:
        lines.append(_field("clients", _quote_ex_summary(item)))
    if item.dcap is not None:
        via = f"{item.dcap.c_name} ({item.dcap.display_value}) from DCAP's out-of-process path"
        lines.append(_field("via DCAP", via))
    return "\n".join(lines)


def _field(label: str, text: str) -> str:
    head = f"  {label + ':':<10}"
    return textwrap.fill(text, width=_WIDTH, initial_indent=head, subsequent_indent=" " * len(head))


def _quote_ex_summary(item: Explanation) -> str:
    """Group the quote-ex calls by the sgx_status_t they return for this code."""
    groups: dict[str, list[str]] = {}
    for call, status in item.quote_ex:
        groups.setdefault(f"{status.c_name} ({status.display_value})", []).append(call.value)
    if len(groups) == 1:
        (status_text,) = groups
        return f"{status_text} from every quote-ex call"
    return "; ".join(f"{status} from {', '.join(calls)}" for status, calls in groups.items())
