"""The one time parser and formatter (``sgx_quote_helper._time``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgx_quote_helper._time import format_time, parse_time
from sgx_quote_helper.errors import ParseError

MOMENT = datetime(2025, 6, 19, 10, 56, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2025-06-19T10:56:11Z",  # Intel PCS and PCCS (dcap-quote.md 8.1)
        "2025-06-19T10:56:11z",
        "2025-06-19T10:56:11+00:00",
        "2025-06-19T12:56:11+02:00",
        "2025-06-19T10:56:11",  # no zone: UTC, as everywhere in DCAP
        " 2025-06-19T10:56:11Z ",
    ],
)
def test_forms_of_one_moment(text: str) -> None:
    parsed = parse_time(text)
    assert parsed == MOMENT
    assert parsed.tzinfo is UTC


def test_fractions_are_kept() -> None:
    assert parse_time("2025-06-19T10:56:11.250Z") == MOMENT + timedelta(milliseconds=250)


@pytest.mark.parametrize("value", ["July", "", "2025-13-01T00:00:00Z", 1750330571, None])
def test_anything_else_is_a_parse_error_naming_what(value: object) -> None:
    with pytest.raises(ParseError, match="nextUpdate"):
        parse_time(value, "nextUpdate")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_datetimes_range_in_utc_is_a_parse_error(text: str) -> None:
    # Valid ISO 8601, but before year 1 or after 9999 once converted to UTC.
    with pytest.raises(ParseError, match="--at is outside the years 1 to 9999"):
        parse_time(text, "--at")


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
    )
)
def test_format_then_parse_is_the_moment_in_whole_seconds(moment: datetime) -> None:
    assert parse_time(format_time(moment)) == moment.astimezone(UTC).replace(microsecond=0)
