"""Signals on the daemon process: SIGTERM/SIGINT drain and exit 0, SIGHUP restarts in place.

The daemon runs as a real process (``python -m sgx_quote_helper serve``). A
client of a daemon that is shutting down either gets its whole reply or a
connection error before any byte of one (the socket is gone, refused, or
closed without a reply); never part of a reply.
"""

from __future__ import annotations

import collections
import contextlib
import json
import signal
import socket
import threading
import time
from pathlib import Path

from daemon_support import (
    GET_SUPPORTED_NUM,
    DaemonProcess,
    MakeReport,
    daemon_process,
    frame,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    read_reply,
    response_fields,
    wait_for,
)

COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")
CLIENTS = 16


def _quote_frame(daemon: DaemonProcess, make_report: MakeReport) -> tuple[bytes, int]:
    init = response_fields(intel_client(daemon.socket, init_quote_ex(True, 32)) or b"", 15)
    size = response_fields(intel_client(daemon.socket, get_quote_size_ex()) or b"", 16)
    assert isinstance(init[2], bytes)
    assert isinstance(size[2], int)
    report = make_report(init[2], b"sigterm".ljust(64, b"\x00"))
    return frame(get_quote_ex(report, size[2])), 4 + 4 + 2 + 3 + size[2]


def _attempt(path: Path, request: bytes, reply_length: int) -> str:
    """One quote request: ok, refused, closed (no byte of a reply), partial, bad or error."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            try:
                sock.connect(str(path))
            except (FileNotFoundError, ConnectionRefusedError):
                return "refused"
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(request)
            try:
                reply = read_reply(sock)
            except AssertionError:
                return "partial"
    except OSError:
        return "error"
    if reply is None:
        return "closed"
    if len(reply) != reply_length or response_fields(reply, 17)[1] != 0:
        return "bad"
    return "ok"


def _events(daemon: DaemonProcess) -> list[str]:
    return [json.loads(line)["event"] for line in daemon.log_lines()]


def test_sigterm_under_load_loses_no_accepted_request(
    sim: Path, run_dir: Path, make_report: MakeReport
) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    signalled = threading.Event()
    with daemon_process(sim, run_dir, "--log-format", "json", "--drain-timeout", "20") as daemon:
        request, reply_length = _quote_frame(daemon, make_report)

        def client() -> None:
            while True:
                outcome = _attempt(daemon.socket, request, reply_length)
                with lock:
                    outcomes[outcome] += 1
                if outcome == "refused" and signalled.is_set():
                    return

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        with lock:
            before = outcomes["ok"]
        daemon.process.send_signal(signal.SIGTERM)
        signalled.set()
        for thread in threads:
            thread.join(timeout=60)
        code = daemon.process.wait(timeout=30)
        assert code == 0
        assert not daemon.socket.exists()
        events = _events(daemon)
    assert before > 50, outcomes
    assert outcomes["partial"] == 0, outcomes
    assert outcomes["bad"] == 0, outcomes
    assert outcomes["error"] == 0, outcomes
    assert outcomes["refused"] >= CLIENTS
    assert events.index("daemon.signal") < events.index("daemon.stopping")
    assert events[-1] == "daemon.stopped"
    assert "daemon.drain_timeout" not in events


def test_a_request_in_progress_at_sigterm_is_answered(sim: Path, run_dir: Path) -> None:
    with daemon_process(sim, run_dir, "--log-format", "json") as daemon:
        request = frame(GET_SUPPORTED_NUM)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(str(daemon.socket))
            sock.sendall(request[:4])  # the length; the body comes after the signal
            time.sleep(0.2)
            daemon.process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 10
            while daemon.socket.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not daemon.socket.exists(), "new clients must no longer find the socket"
            assert daemon.process.poll() is None, "the daemon must wait for this client"
            sock.sendall(request[4:])
            assert read_reply(sock) == COUNT_REPLY
        assert daemon.process.wait(timeout=30) == 0


def test_a_second_signal_forces_exit(sim: Path, run_dir: Path) -> None:
    args = ("--log-format", "json", "--drain-timeout", "120", "--read-timeout", "120")
    with daemon_process(sim, run_dir, *args) as daemon:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(daemon.socket))
            sock.sendall(b"\x06\x00")  # never finished: the drain would wait for it
            time.sleep(0.2)
            daemon.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert daemon.process.poll() is None
            began = time.monotonic()
            daemon.process.send_signal(signal.SIGTERM)
            code = daemon.process.wait(timeout=10)
        assert time.monotonic() - began < 5
        assert code == 1
        assert not daemon.socket.exists()
        assert "daemon.forced_exit" in _events(daemon)


# -- SIGHUP: a restart in place, as aesmd reloads --------------------------------------


#: One worker, JSON logs, and the settings from a file the test rewrites (then the
#: file's path).
_CONFIGURED = ("--workers", "1", "--log-format", "json", "--config")


def _started(daemon: DaemonProcess) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in daemon.log_lines()]
    return [line for line in lines if line["event"] == "daemon.started"]


def test_sighup_drains_and_restarts_in_place_with_the_changed_config(
    sim: Path, run_dir: Path
) -> None:
    config = run_dir / "serve.toml"
    config.write_text("max-connections = 50\n")
    with daemon_process(sim, run_dir, *_CONFIGURED, str(config)) as daemon:
        pid = daemon.process.pid
        assert [line["max_connections"] for line in _started(daemon)] == [50]
        config.write_text("max-connections = 60\n")
        request = frame(GET_SUPPORTED_NUM)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(str(daemon.socket))
            sock.sendall(request[:4])  # in progress: the restart drains it first
            time.sleep(0.2)
            daemon.process.send_signal(signal.SIGHUP)
            wait_for(lambda: not daemon.socket.exists(), 30, "the socket to be unlinked")
            assert daemon.process.poll() is None, "the daemon must wait for this client"
            sock.sendall(request[4:])
            assert read_reply(sock) == COUNT_REPLY
        wait_for(lambda: len(_started(daemon)) == 2, 60, "the daemon to start again")
        assert daemon.process.poll() is None
        assert daemon.process.pid == pid
        assert [line["pid"] for line in _started(daemon)] == [pid, pid]
        assert _started(daemon)[1]["max_connections"] == 60
        wait_for(daemon.socket.exists, 30, "the socket to be bound again")
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        events = _events(daemon)
        restarting = json.loads(daemon.log_lines()[events.index("daemon.restarting")])
        assert restarting["changed"] == "max_connections"
        first_stop = events.index("daemon.stopped")
        assert events.index("daemon.signal") < events.index("daemon.stopping") < first_stop
        assert events.index("daemon.started", first_stop) > first_stop
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=30) == 0
        assert not daemon.socket.exists()


def test_sighup_with_a_configuration_that_no_longer_loads_is_refused(
    sim: Path, run_dir: Path
) -> None:
    config = run_dir / "serve.toml"
    config.write_text("max-connections = 50\n")
    with daemon_process(sim, run_dir, *_CONFIGURED, str(config)) as daemon:
        config.write_text("max-connections = -1\n")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "daemon.restart_refused" in _events(daemon), 30, "the refusal")
        refused = json.loads(daemon.log_lines()[_events(daemon).index("daemon.restart_refused")])
        assert "max-connections" in str(refused["reason"]) or "max_connections" in str(
            refused["reason"]
        )
        assert daemon.process.poll() is None
        assert "daemon.stopping" not in _events(daemon)
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY


def test_sigterm_during_a_restart_drain_stops_instead(sim: Path, run_dir: Path) -> None:
    with daemon_process(sim, run_dir, "--workers", "1", "--log-format", "json") as daemon:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(str(daemon.socket))
            sock.sendall(frame(GET_SUPPORTED_NUM)[:4])
            time.sleep(0.2)
            daemon.process.send_signal(signal.SIGHUP)
            wait_for(lambda: not daemon.socket.exists(), 30, "the socket to be unlinked")
            daemon.process.send_signal(signal.SIGHUP)  # ignored: already stopping
            daemon.process.send_signal(signal.SIGTERM)  # a stop, not a forced exit
            wait_for(lambda: _events(daemon).count("daemon.signal") == 2, 30, "the stop")
            assert daemon.process.poll() is None
            sock.sendall(frame(GET_SUPPORTED_NUM)[4:])
            assert read_reply(sock) == COUNT_REPLY
        assert daemon.process.wait(timeout=30) == 0
        events = _events(daemon)
    assert "daemon.signal_ignored" in events
    assert "daemon.forced_exit" not in events
    assert events.count("daemon.started") == 1
    assert events[-1] == "daemon.stopped"
