"""Readiness and PCCS outages: the daemon binds, reports not-ready, never crash-loops.

Quoting needs the platform's PCK certificate chain (certification data type 5).
With ``--pccs-url`` it comes from the PCCS and is cached in the state
directory; a restart during a PCCS outage serves from that cache, and a first
start with no PCCS and no cache binds anyway, answers the key-dependent
requests with AESM_NETWORK_ERROR (12, what aesmd answers while its quote
provider library cannot reach the PCCS) and becomes ready when the PCCS comes
up.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
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
    wait_for,
)

from sgx_quote_helper.pcs import serve_in_thread

REPORT_DATA = bytes(64)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _quote_ok(path: Path, make_report: MakeReport) -> None:
    init = response_fields(intel_client(path, init_quote_ex(True, 32)) or b"", 15)
    assert init[1] == 0
    assert isinstance(init[2], bytes)
    size = response_fields(intel_client(path, get_quote_size_ex()) or b"", 16)
    assert size[1] == 0
    assert isinstance(size[2], int)
    report = make_report(init[2], REPORT_DATA)
    quote = response_fields(intel_client(path, get_quote_ex(report, size[2])) or b"", 17)
    assert quote[1] == 0


def test_restart_during_a_pccs_outage_serves_the_cached_chain(
    sim: Path, make_config: MakeConfig, make_report: MakeReport, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_in_thread(sim) as pccs:
        config = make_config(pccs_url=pccs.url)
        with run_daemon(config) as daemon:
            _quote_ok(daemon.socket, make_report)
            assert daemon.metric("sgx_quote_helper_pck_chain_fetches_total", outcome="fetched") == 1
    assert list((sim / "state" / "pck-cache").glob("pck-*.json")), "no chain cached on disk"
    # The PCCS is gone now; a restarted daemon still becomes ready.
    with caplog.at_level(logging.INFO, logger="sgx_quote_helper"), run_daemon(config) as daemon:
        assert daemon.metric("sgx_quote_helper_pck_chain_fetches_total", outcome="cache") == 1
        assert daemon.metric("sgx_quote_helper_ready") == 1
        assert httpx.get(f"{daemon.admin_url}/readyz").status_code == 200
        _quote_ok(daemon.socket, make_report)
    assert "pck_chain.served_from_cache" in caplog.messages


def test_first_start_without_pccs_binds_not_ready_and_recovers(
    sim: Path, make_config: MakeConfig, make_report: MakeReport, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    config = make_config(pccs_url=f"http://127.0.0.1:{port}")
    with (
        caplog.at_level(logging.INFO, logger="sgx_quote_helper"),
        run_daemon(config, ready=False) as daemon,
    ):
        wait_for(
            lambda: caplog.messages.count("daemon.not_ready") >= 2,
            20,
            "two failed readiness attempts",
        )
        assert daemon.thread.is_alive()
        assert daemon.socket.is_socket()
        admin = daemon.admin_url
        assert httpx.get(f"{admin}/healthz").status_code == 200
        readyz = httpx.get(f"{admin}/readyz")
        assert readyz.status_code == 503
        assert "PCK" in readyz.text
        assert daemon.metric("sgx_quote_helper_ready") == 0
        assert daemon.metric("sgx_quote_helper_pck_chain_fetches_total", outcome="failed") >= 2

        # Key-dependent requests: AESM_NETWORK_ERROR (12); the rest is served.
        path = daemon.socket
        assert response_fields(intel_client(path, init_quote_ex(True, 32)) or b"", 15)[1] == 12
        assert response_fields(intel_client(path, get_quote_size_ex()) or b"", 16) == {
            1: 12,
            2: 0,
        }
        reply = intel_client(path, get_quote_ex(bytes(432), 8192))
        assert response_fields(reply or b"", 17) == {1: 12}
        size_query = response_fields(intel_client(path, init_quote_ex(False)) or b"", 15)
        assert size_query == {1: 0, 2: bytes(512), 3: 32}
        assert intel_client(path, GET_SUPPORTED_NUM) == bytes.fromhex("07000000 aa0104 0800 1001")

        # The PCCS comes up on the configured address: a client's request
        # wakes the readiness task, which succeeds within its minimum pause.
        with serve_in_thread(sim, port=port):
            intel_client(path, init_quote_ex(True, 32))
            daemon.wait_ready(timeout=20)
            assert httpx.get(f"{admin}/readyz").status_code == 200
            _quote_ok(path, make_report)
        assert daemon.metric("sgx_quote_helper_ready") == 1
    assert "daemon.ready" in caplog.messages
