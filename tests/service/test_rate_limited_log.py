"""RateLimitedLog: a burst of lines per event and interval, then one summary line."""

from __future__ import annotations

import logging

import pytest

from sgx_quote_helper._logging import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, object]]]:
    return [(r.getMessage(), dict(getattr(r, "fields", {}))) for r in caplog.records]


def test_a_flood_of_one_event_is_cut_to_a_burst_and_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limited = RateLimitedLog(
        logging.getLogger("sgx_quote_helper.test"), burst=3, interval=10.0, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="sgx_quote_helper"):
        for uid in range(1000):
            limited.log(logging.WARNING, "peer.rejected", uid=uid)
        limited.log(logging.INFO, "other.event", n=1)  # counted on its own
        assert [name for name, _ in _lines(caplog)] == ["peer.rejected"] * 3 + ["other.event"]
        clock.now += 9.9
        limited.flush()  # the interval is not over yet
        assert len(caplog.records) == 4
        clock.now += 0.1
        limited.log(logging.WARNING, "peer.rejected", uid=5000)
    name, fields = _lines(caplog)[4]
    assert (name, fields) == (
        "log.suppressed",
        {"event": "peer.rejected", "suppressed": 997, "interval": "10s"},
    )
    assert caplog.records[4].levelno == logging.WARNING
    assert _lines(caplog)[5] == ("peer.rejected", {"uid": 5000})


def test_flush_writes_pending_summaries(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limited = RateLimitedLog(
        logging.getLogger("sgx_quote_helper.test"), burst=1, interval=60.0, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="sgx_quote_helper"):
        for _ in range(5):
            limited.log(logging.ERROR, "accept.out_of_resources.aesm")
        limited.flush()
        assert len(caplog.records) == 1
        limited.flush(force=True)  # at shutdown
        limited.flush(force=True)  # nothing left: no second summary
    assert _lines(caplog)[1] == (
        "log.suppressed",
        {"event": "accept.out_of_resources.aesm", "suppressed": 4, "interval": "60s"},
    )
    assert caplog.records[1].levelno == logging.ERROR
