"""UTC times as Intel's collateral writes them, and the injectable clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

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


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`; raises ``ValueError`` on anything else."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
