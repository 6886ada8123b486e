"""Metrics, health endpoints and structured logs of the daemon process.

One daemon process with ``--log-format json --log-level debug --qe-svn 11
--pce-svn 14`` serves a mix of requests; its ``/metrics``, ``/healthz``,
``/readyz`` and its log lines are then checked (malformed HTTP to the admin port
included: every line stays JSON), and no secret of the platform, the manufacturer
or the QE may appear in the log.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
from pathlib import Path

import httpx
from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeReport,
    daemon_process,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    metric_value,
    response_fields,
    wait_for,
)
from http_support import raw_exchange

from sgx_quote_helper.platform import Platform, derive_pck_private_key
from sgx_quote_helper.sgx import Quote

QUOTES = 5
#: A POST whose chunked body h11 refuses, after the application started answering it.
ADMIN_BAD_CHUNK = (
    b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"
)


def _secrets(sim: Path) -> list[bytes]:
    """Byte strings that must never reach a log line, in every spelling we can think of."""
    platform = sim / "platform"
    provisioning = (platform / "provision.secret").read_bytes()
    raw = [
        provisioning,
        (platform / "enclave.secret").read_bytes(),
        (sim / "pcs" / "master.secret").read_bytes(),
        (platform / "state" / "qe3-attestation-key.sealed").read_bytes(),  # default state dir
    ]
    description = Platform.load(platform, need_provisioning=False).description
    cpu_svn = bytes(description.tcb_components)
    pck = derive_pck_private_key(provisioning, cpu_svn, 14, description.pce_id)
    raw.append(pck.private_numbers().private_value.to_bytes(32, "big"))
    spelled: list[bytes] = []
    for secret in raw:
        spelled += [secret.hex().encode(), secret.hex().upper().encode()]
        spelled.append(base64.b64encode(secret)[:40])
    for key in (sim / "pcs").glob("*.key"):
        body = [line for line in key.read_text().splitlines() if "-----" not in line]
        spelled += [line.encode() for line in body if len(line) > 20]
    return spelled


def test_metrics_health_and_json_logs(sim: Path, run_dir: Path, make_report: MakeReport) -> None:
    args = ("--log-format", "json", "--log-level", "debug", "--qe-svn", "11", "--pce-svn", "14")
    with daemon_process(sim, run_dir, *args) as daemon:
        path = daemon.socket
        assert httpx.get(f"{daemon.admin_url}/healthz").text == "ok\n"
        assert httpx.get(f"{daemon.admin_url}/readyz").status_code == 200
        # Malformed HTTP to the admin port: a 400 and one structured warning each.
        admin_port = int(daemon.admin_url.rsplit(":", 1)[1])
        for bad in (ADMIN_BAD_CHUNK, b"GARBAGE\r\n\r\n"):
            assert raw_exchange(admin_port, bad).startswith(b"HTTP/1.1 400 ")
        init = response_fields(intel_client(path, init_quote_ex(True, 32)) or b"", 15)
        size = response_fields(intel_client(path, get_quote_size_ex()) or b"", 16)
        assert isinstance(init[2], bytes)
        assert isinstance(size[2], int)
        report = make_report(init[2], bytes(64))
        for _ in range(QUOTES):
            quote = response_fields(intel_client(path, get_quote_ex(report, size[2])) or b"", 17)
            assert quote[1] == 0
        assert isinstance(quote[2], bytes)
        assert int.from_bytes(quote[2][8:10], "little") == 11  # --qe-svn in the quote header
        assert int.from_bytes(quote[2][10:12], "little") == 14  # --pce-svn
        forged = bytes([report[0] ^ 1]) + report[1:]
        assert response_fields(intel_client(path, get_quote_ex(forged, 8192)) or b"", 17)[1] == 47
        assert intel_client(path, b"\xff\xff") is None  # malformed
        assert intel_client(path, GET_SUPPORTED_NUM) is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(path))
            idle.sendall(b"\x06")
            wait_for(
                lambda: daemon.metric("sgx_quote_helper_active_connections") == 1,
                10,
                "the open connection to show",
            )
            text = daemon.metrics()
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=30) == 0
        lines = daemon.log_lines()

    def value(name: str, **labels: str) -> float:
        return metric_value(text, f"sgx_quote_helper_{name}", **labels)

    assert value("requests_total", type="GET_QUOTE_EX", result="SUCCESS") == QUOTES
    assert value("requests_total", type="GET_QUOTE_EX", result="INVALID_REPORT") == 1
    assert value("requests_total", type="INIT_QUOTE_EX", result="SUCCESS") == 1
    assert value("requests_total", type="GET_SUPPORTED_ATT_KEY_ID_NUM", result="SUCCESS") == 1
    assert value("dropped_requests_total", reason="malformed") == 1
    assert value("quote_latency_seconds_count") == QUOTES
    assert value("quote_latency_seconds_bucket", le="+Inf") == QUOTES
    assert 0 < value("quote_latency_seconds_sum") < QUOTES
    assert value("active_connections") == 1
    assert value("connections_total", uid="0") >= QUOTES + 5
    assert "sgx_quote_helper_rejected_peers_total" in text
    assert value("qe_svn") == 11
    assert value("pce_svn") == 14
    assert value("ready") == 1
    assert value("attestation_key_created_timestamp_seconds") > 1_700_000_000
    assert value("attestation_key_age_seconds") > 0
    # Each worker process fetches the chain once (the default is one worker per core).
    workers = value("workers") if "sgx_quote_helper_workers " in text else 1
    assert value("pck_chain_fetches_total", outcome="fetched") == workers
    chain = Quote.from_bytes(quote[2]).pck_chain()
    earliest = min(cert.not_valid_after_utc for cert in chain).timestamp()
    assert value("pck_chain_not_after_timestamp_seconds") == earliest
    assert value("build_info", qe_svn="11", pce_svn="14", backend="sim", simulated="true") == 1

    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"ts", "level", "logger", "event"} <= record.keys()
        assert record["ts"].endswith("Z")
    events = [record["event"] for record in records]
    for event in ("daemon.started", "daemon.ready", "request.failed", "request.dropped"):
        assert event in events
    assert events.count("quote.served") == QUOTES + 1  # debug level: one per GetQuoteEx
    started = records[events.index("daemon.started")]
    assert (started["qe_svn"], started["pce_svn"]) == (11, 14)
    assert started["admin"] == daemon.admin_url.removeprefix("http://")
    # The admin port's bad requests (uvicorn and h11 below it log through the same set-up).
    bad_requests = [record for record in records if record["event"] == "http.bad_request"]
    assert [(r["level"], r["server"]) for r in bad_requests] == [("warning", "admin")] * 2
    assert "chunk" in bad_requests[0]["reason"]
    assert "http.app_error" not in events
    assert not any("exception" in record for record in records)
    failed = records[events.index("request.failed")]
    assert (failed["quote3_error"], failed["aesm_error"]) == ("0xE015", 47)

    log = "\n".join(lines).encode()
    for secret in _secrets(sim):
        assert secret not in log
