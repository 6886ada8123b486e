"""Times as Intel's collateral and PCS write them, one parser for all of them, and the clock.

Usable by every layer (like ``_logging``): the manufacturer writes collateral
times with :func:`format_time`; the PCCS client, the verifier, ``doctor`` and
the CLI read any time with :func:`parse_time`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sgx_quote_helper.errors import ParseError

#: Something that says what time it is (UTC, timezone-aware). Tests inject their own.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_utc_seconds(moment: datetime) -> datetime:
    """``moment`` in UTC without microseconds: collateral and X.509 carry whole seconds."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with ``Z``, whole seconds (``2025-06-19T10:56:11Z``, dcap-quote.md 8.1)."""
    return to_utc_seconds(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object, what: str = "time") -> datetime:
    """An ISO 8601 time as a timezone-aware UTC ``datetime``.

    Takes what PCS and PCCS write (``2025-06-19T10:56:11Z``, with or without
    fractions of a second), an explicit offset (``+02:00``), or no zone at all,
    which means UTC as everywhere in DCAP. Raises :class:`ParseError` naming
    ``what`` for anything else.
    """
    if not isinstance(value, str):
        raise ParseError(f"{what} is not a time string: {value!r}")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(
            f"{what} is not an ISO 8601 time (like 2025-06-19T10:56:11Z): {value!r}"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is a valid ISO 8601 time before year 1 in UTC.
        raise ParseError(
            f"{what} is outside the years 1 to 9999 once converted to UTC: {value!r}"
        ) from None
