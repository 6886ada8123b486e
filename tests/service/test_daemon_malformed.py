"""Malformed frames never crash the daemon and never affect other clients.

Thousands of bad frames (garbage protobuf, huge length prefixes, truncated
headers and bodies, wrong sizes, missing fields, clients that vanish, clients
that never finish their frame) are sent concurrently, interleaved with valid
requests on the same socket; every valid request must get its full, correct
reply, and the daemon must still be serving afterwards.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    RunningDaemon,
    config_for,
    exchange,
    frame,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    ld,
    metric_value,
    parse_fields,
    read_reply,
    report_maker,
    response_fields,
    run_daemon,
    wait_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")
READ_TIMEOUT = 0.5
MALFORMED = 3000
VALID = 300
SLOWLORIS = 24


@dataclass
class Daemon:
    running: RunningDaemon
    report: bytes
    quote_request: bytes
    quote_size: int

    @property
    def socket(self) -> Path:
        return self.running.socket


@pytest.fixture(scope="module")
def daemon(
    sim_template: Path, tmp_path_factory: pytest.TempPathFactory, module_run_dir: Path
) -> Iterator[Daemon]:
    sim = tmp_path_factory.mktemp("malformed") / "sim"
    shutil.copytree(sim_template, sim)
    config = config_for(sim, module_run_dir, read_timeout=str(READ_TIMEOUT))
    with run_daemon(config) as running:
        init = response_fields(intel_client(running.socket, init_quote_ex(True, 32)) or b"", 15)
        size = response_fields(intel_client(running.socket, get_quote_size_ex()) or b"", 16)
        assert isinstance(init[2], bytes)
        assert isinstance(size[2], int)
        report = report_maker(sim)(init[2], b"valid".ljust(64, b"\x00"))
        yield Daemon(running, report, frame(get_quote_ex(report, size[2])), size[2])


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock


def _send_and_close(path: Path, data: bytes, *, half_close: bool) -> bytes | None:
    """Send ``data``, optionally shut down writing, and read whatever comes back."""
    with _connect(path) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_reply(sock)


def _vanish(path: Path, data: bytes) -> None:
    """Send ``data`` and close at once, never reading (a client that crashed)."""
    with _connect(path) as sock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def malformed_cases(daemon: Daemon, rng: random.Random) -> list[Callable[[], None]]:
    path = daemon.socket

    def expect_no_reply(data: bytes, *, half_close: bool = True) -> Callable[[], None]:
        def run() -> None:
            assert _send_and_close(path, data, half_close=half_close) is None

        return run

    def expect_error(data: bytes, kind: int, code: int) -> Callable[[], None]:
        def run() -> None:
            reply = _send_and_close(path, data, half_close=False)
            assert response_fields(reply or b"", kind)[1] == code

        return run

    def garbage() -> Callable[[], None]:
        body = rng.randbytes(rng.randrange(1, 300))

        def run() -> None:
            reply = _send_and_close(path, frame(body), half_close=True)
            if reply is not None:  # random bytes may happen to be a valid request
                parse_fields(reply[4:])

        return run

    def vanish(data: bytes) -> Callable[[], None]:
        return lambda: _vanish(path, data)

    makers: list[Callable[[], Callable[[], None]]] = [
        garbage,
        lambda: expect_no_reply(b"\xff\xff\xff\xff" + rng.randbytes(16)),
        lambda: expect_no_reply(struct.pack("<I", 64 * 1024 + 1) + bytes(64)),
        lambda: expect_no_reply(struct.pack("<I", 300) + rng.randbytes(100)),
        lambda: expect_no_reply(b"\x10\x00"),
        lambda: expect_no_reply(b""),
        lambda: expect_no_reply(frame(b"")),
        lambda: expect_no_reply(frame(ld(20, b""))),
        lambda: expect_no_reply(frame(ld(17, b"\x0a\xff\x01"))),
        lambda: expect_no_reply(frame(b"\xff\xff\xff"), half_close=False),
        lambda: expect_error(frame(get_quote_ex(rng.randbytes(100), 8192)), 17, 3),
        lambda: expect_error(frame(get_quote_ex(rng.randbytes(432), 8192)), 17, 47),
        lambda: expect_error(frame(init_quote_ex(True, 64)), 15, 3),
        lambda: expect_error(frame(init_quote_ex(None)), 15, 1),
        lambda: expect_error(frame(get_quote_ex(None, 100)), 17, 1),
        lambda: vanish(daemon.quote_request),
        lambda: vanish(daemon.quote_request[:50]),
    ]
    return [rng.choice(makers)() for _ in range(MALFORMED)]


def valid_cases(daemon: Daemon) -> list[Callable[[], None]]:
    # 8a 01 <2-byte length> 08 00 12 <2-byte length> <quote>
    expected_len = 4 + 4 + 2 + 3 + daemon.quote_size

    def quote() -> None:
        reply = exchange(daemon.socket, daemon.quote_request)
        assert reply is not None, "a valid quote request was closed without reply"
        assert len(reply) == expected_len
        assert response_fields(reply, 17)[1] == 0

    def count() -> None:
        assert exchange(daemon.socket, frame(GET_SUPPORTED_NUM)) == COUNT_REPLY

    return [quote if i % 2 else count for i in range(VALID)]


def test_thousands_of_malformed_frames_interleaved_with_valid_requests(daemon: Daemon) -> None:
    rng = random.Random(20260101)
    running = daemon.running
    before = running.metrics()
    # Slowloris: connections that start a frame and never finish it, held open
    # through the whole flood.
    with contextlib.ExitStack() as stack:
        slow = [stack.enter_context(_connect(daemon.socket)) for _ in range(SLOWLORIS)]
        for index, sock in enumerate(slow):
            sock.sendall(frame(GET_SUPPORTED_NUM)[: 1 + index % 8])
        cases = malformed_cases(daemon, rng) + valid_cases(daemon)
        rng.shuffle(cases)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=12) as pool:
            for future in [pool.submit(case) for case in cases]:
                future.result(timeout=60)
        assert time.monotonic() - started < 60
        # The slow clients were cut off after read_timeout, without a reply.
        for sock in slow:
            assert read_reply(sock) is None
    assert running.thread.is_alive()
    assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
    wait_for(
        lambda: running.metric("sgx_quote_helper_active_connections") == 0,
        10,
        "every connection to be closed",
    )
    after = running.metrics()
    for reason in ("malformed", "frame_too_large", "truncated", "read_timeout", "eof"):
        name = "sgx_quote_helper_dropped_requests_total"
        assert _value(after, name, reason) > _value(before, name, reason), reason
    assert _value(after, "sgx_quote_helper_dropped_requests_total", "read_timeout") >= SLOWLORIS


def _value(text: str, name: str, reason: str) -> float:
    return metric_value(text, name, reason=reason)


def test_a_slowloris_client_is_cut_off_after_read_timeout(daemon: Daemon) -> None:
    with _connect(daemon.socket) as sock:
        began = time.monotonic()
        for byte in frame(GET_SUPPORTED_NUM)[:-1]:
            sock.sendall(bytes([byte]))  # trickling does not extend the deadline
            time.sleep(READ_TIMEOUT / 10)
            if time.monotonic() - began > READ_TIMEOUT:
                break
        assert read_reply(sock) is None
        assert time.monotonic() - began < READ_TIMEOUT * 4


def test_a_client_that_never_reads_its_reply_is_cut_off(daemon: Daemon) -> None:
    # A quote of ~1 MiB fills the socket buffers; the daemon must not wait
    # forever for this client, nor stall others meanwhile.
    big = frame(get_quote_ex(daemon.report, 1_000_000))
    with _connect(daemon.socket) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(big)
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        wait_for(
            lambda: (
                daemon.running.metric(
                    "sgx_quote_helper_dropped_requests_total", reason="write_timeout"
                )
                >= 1
            ),
            READ_TIMEOUT * 10,
            "the write timeout",
        )


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600))
def test_arbitrary_bodies_get_a_whole_reply_or_none(daemon: Daemon, body: bytes) -> None:
    reply = intel_client(daemon.socket, body)
    if reply is not None:
        outer = parse_fields(reply[4:])
        assert len(outer) == 1  # exactly one Response field, of the request's kind
    assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
