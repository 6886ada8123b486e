"""Admission: one tenant cannot keep others out.

Stalled connections (a peer that connects and sends part of a request) are
evicted, oldest first, when a new client needs their slot, and a uid holds at
most its quota of connections; refusals and evictions are counted and logged,
rate-limited. The acceptance scenario runs the daemon as a process and the
victim as another uid (``nobody``) while 300 stalled connections and a flood
of garbage frames from root are all still open.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeConfig,
    MakeReport,
    daemon_process,
    frame,
    get_quote_ex,
    init_quote_ex,
    intel_client,
    read_reply,
    response_fields,
    run_daemon,
    wait_for,
)
from unprivileged import NOBODY, run_as_nobody

COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")


def _stalled(path: Path, count: int) -> list[socket.socket]:
    """``count`` connections that each sent one byte of a request and stopped."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(sock)
            sock.connect(str(path))  # blocking: waits while the backlog is full
            sock.settimeout(30)
            sock.sendall(b"\x06")
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


def _closed_by_daemon(sock: socket.socket) -> bool:
    """True once the daemon closed ``sock`` without replying (EOF or reset)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(30)


@contextlib.contextmanager
def _holding(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_at_capacity_the_oldest_stalled_connection_makes_room(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(max_connections="4", read_timeout="300")
    with (
        caplog.at_level(logging.WARNING, logger="sgx_quote_helper"),
        run_daemon(config) as daemon,
        _holding(_stalled(daemon.socket, 4)) as stalled,
    ):
        wait_for(lambda: len(daemon.server.hub.open) == 4, 30, "four open connections")
        # A fifth client is served at once instead of waiting in the backlog.
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        wait_for(lambda: _closed_by_daemon(stalled[0]), 30, "the oldest to be evicted")
        assert not any(_closed_by_daemon(sock) for sock in stalled[1:])
        assert daemon.metric("sgx_quote_helper_evicted_connections_total", reason="capacity") == 1
    assert "connection.evicted" in caplog.messages


def test_a_uid_at_its_quota_evicts_its_own_oldest_stalled_connection(
    make_config: MakeConfig,
) -> None:
    config = make_config(max_connections_per_uid="3", read_timeout="300")
    with run_daemon(config) as daemon, _holding(_stalled(daemon.socket, 3)) as stalled:
        wait_for(lambda: len(daemon.server.hub.open) == 3, 30, "three open connections")
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        wait_for(lambda: _closed_by_daemon(stalled[0]), 30, "the oldest to be evicted")
        assert not any(_closed_by_daemon(sock) for sock in stalled[1:])
        assert daemon.metric("sgx_quote_helper_evicted_connections_total", reason="uid_quota") == 1


def test_refused_peers_cannot_flood_the_log(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # Only nobody is allowed: every connection of this (root) process is refused.
    config = make_config(allow_uid=[str(NOBODY)])
    attempts = 200
    with caplog.at_level(logging.INFO, logger="sgx_quote_helper"), run_daemon(config) as daemon:
        for _ in range(attempts):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30)
                sock.connect(str(daemon.socket))
                assert read_reply(sock) is None
        wait_for(
            lambda: (
                daemon.metric("sgx_quote_helper_rejected_peers_total", reason="not_allowed")
                == attempts
            ),
            30,
            "every refusal to be counted",
        )
    rejected = [r for r in caplog.records if r.getMessage() == "peer.rejected"]
    assert 1 <= len(rejected) <= 10
    assert rejected[0].fields["uid"] == 0  # type: ignore[attr-defined]
    summaries = [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "log.suppressed"
    ]
    assert sum(s["suppressed"] for s in summaries if s["event"] == "peer.rejected") == (
        attempts - len(rejected)
    )


# ---- acceptance: stalled connections and a garbage flood from one uid ----------------

STALLED = 300


class _GarbageFlood:
    """A thread that sends frames announcing a 4 GiB body, one connection each."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with (
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
                contextlib.suppress(OSError),
            ):
                sock.settimeout(10)
                sock.connect(self._path)
                sock.sendall(b"\xff\xff\xff\xff")
                self.sent += 1
                sock.recv(1)

    def __enter__(self) -> _GarbageFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_another_uid_is_served_while_one_uid_stalls_and_floods(
    sim: Path, run_dir: Path, make_report: MakeReport
) -> None:
    # Both uids are allowed; the deadline is long, so only admission can help.
    extra = ["--allow-uid", "0", "--allow-uid", str(NOBODY), "--read-timeout", "600"]
    with daemon_process(sim, run_dir, *extra) as daemon:
        init = response_fields(intel_client(daemon.socket, init_quote_ex(True, 32)) or b"", 15)
        assert isinstance(init[2], bytes)
        request = frame(get_quote_ex(make_report(init[2], b"nobody".ljust(64, b"\0")), 8192))
        path = str(daemon.socket)

        def quote_as_nobody() -> dict[str, object]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(60)
                sock.connect(path)
                sock.sendall(request)
                reply = read_reply(sock)
            return {"reply": None if reply is None else reply.hex()}

        with _holding(_stalled(daemon.socket, STALLED)) as stalled, _GarbageFlood(daemon.socket):
            wait_for(
                lambda: (
                    daemon.metric(
                        "sgx_quote_helper_dropped_requests_total", reason="frame_too_large"
                    )
                    > 10
                ),
                60,
                "the garbage flood to reach the daemon",
            )
            result = run_as_nobody(quote_as_nobody)
            # Every stalled connection is still open on this side.
            assert all(sock.fileno() >= 0 for sock in stalled)
        reply = result["reply"]
        assert isinstance(reply, str)
        fields = response_fields(bytes.fromhex(reply), 17)
        assert fields[1] == 0  # a quote
        assert daemon.metric("sgx_quote_helper_connections_total", uid=str(NOBODY)) == 1
        # Root was held to its quota (half the connections by default).
        assert daemon.metric("sgx_quote_helper_evicted_connections_total", reason="uid_quota") > 0
    log = daemon.log.read_text()  # complete: the daemon has stopped
    assert "Traceback" not in log
    # Refusals, evictions and dropped frames were logged with uid and pid, rate-limited.
    evicted = re.findall(r"connection\.evicted .*uid=0", log)
    assert 1 <= len(evicted) <= 10 * (1 + log.count("log.suppressed"))
    assert re.search(r"log\.suppressed event=connection\.evicted suppressed=\d+", log)
