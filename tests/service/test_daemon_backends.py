"""The daemon over backends other than the inline simulated QE.

A backend call declared blocking (``QuoteBackend.may_block``: real hardware,
an upstream AESM) is answered in worker threads, at most ``max_inflight`` at a
time; a backend that fails in an
unexpected way costs the client an AESM_UNEXPECTED_ERROR reply of the right
kind, never the daemon.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeConfig,
    MakeReport,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    response_fields,
    run_daemon,
)

from sgx_quote_helper.backends import BackendCall, BackendInfo, QuoteResult, SimBackend
from sgx_quote_helper.service import QuoteHelperServer, build_server
from sgx_quote_helper.sgx import AttKeyId, QeReportInfo

COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")


class SlowHardware(SimBackend):
    """The simulated QE dressed as a blocking backend: 50 ms per quote."""

    def __init__(self, inner: SimBackend) -> None:
        self.__dict__.update(inner.__dict__)
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def info(self) -> BackendInfo:
        return dataclasses.replace(super().info(), name="slow", simulated=False)

    def may_block(self, call: BackendCall) -> bool:
        return True

    def get_quote(
        self, report: bytes, att_key_id: AttKeyId, qe_report_info: QeReportInfo | None
    ) -> QuoteResult:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.05)
            return super().get_quote(report, att_key_id, qe_report_info)
        finally:
            with self._lock:
                self.active -= 1


class Broken(SimBackend):
    def __init__(self, inner: SimBackend) -> None:
        self.__dict__.update(inner.__dict__)

    def quote_size(self, att_key_id: AttKeyId) -> int:
        raise RuntimeError("a bug in a backend")


def _server(
    make_config: MakeConfig, wrap: Callable[[SimBackend], SimBackend], **flags: str
) -> QuoteHelperServer:
    config = make_config(**flags)
    built = build_server(config)
    assert isinstance(built.backend, SimBackend)
    return QuoteHelperServer(config, wrap(built.backend), metrics=built.metrics)


def test_blocking_backends_answer_in_bounded_worker_threads(
    make_config: MakeConfig, make_report: MakeReport, sim: Path
) -> None:
    server = _server(make_config, SlowHardware, max_inflight="3")
    backend = server.backend
    assert isinstance(backend, SlowHardware)
    with run_daemon(server.config, server=server) as daemon:
        init = response_fields(intel_client(daemon.socket, init_quote_ex(True, 32)) or b"", 15)
        assert isinstance(init[2], bytes)
        body = get_quote_ex(make_report(init[2], bytes(64)), 8192)

        def quote() -> int:
            value = response_fields(intel_client(daemon.socket, body) or b"", 17)[1]
            assert isinstance(value, int)
            return value

        with ThreadPoolExecutor(max_workers=8) as pool:
            quotes = [pool.submit(quote) for _ in range(12)]
            # Cheap requests are not stuck behind the slow ones.
            began = time.monotonic()
            assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
            assert time.monotonic() - began < 0.5
            assert [future.result(timeout=30) for future in quotes] == [0] * 12
    assert 1 < backend.peak <= 3


def test_an_unexpected_backend_failure_is_answered_in_kind(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    server = _server(make_config, Broken)
    with (
        caplog.at_level(logging.ERROR, logger="sgx_quote_helper"),
        run_daemon(server.config, server=server) as daemon,
    ):
        # The key announced first (a fresh platform answers 42 before that).
        assert (
            response_fields(intel_client(daemon.socket, init_quote_ex(True, 32)) or b"", 15)[1] == 0
        )
        reply = intel_client(daemon.socket, get_quote_size_ex())
        assert response_fields(reply or b"", 16)[1] == 1  # AESM_UNEXPECTED_ERROR
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        assert (
            daemon.metric(
                "sgx_quote_helper_requests_total",
                type="GET_QUOTE_SIZE_EX",
                result="UNEXPECTED_ERROR",
            )
            == 1
        )
    assert "request.internal_error" in caplog.messages
