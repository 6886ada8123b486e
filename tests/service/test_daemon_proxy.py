"""The ``proxy`` backend: the daemon in front of an upstream AESM socket.

The upstream is either a second instance of this project's daemon (the ``sim``
backend), so that relayed quotes can be verified, or a scripted fake that
refuses, stalls past the timeout, closes early or answers garbage. Every
failure must reach the client as AESM_SERVICE_UNAVAILABLE (30), be counted by
reason and make the proxy not ready until the upstream answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dcap_qvl
import httpx
import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeReport,
    RunningDaemon,
    config_for,
    frame,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    ld,
    response_fields,
    run_daemon,
    vi,
    wait_for,
)

from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.service import load_config

REPORT_DATA = b"relayed by the proxy".ljust(64, b"\x00")
SERVICE_UNAVAILABLE = 30


def proxy_config(run_dir: Path, upstream: Path, **overrides: Any) -> Any:
    flags: dict[str, Any] = {
        "backend": "proxy",
        "upstream": str(upstream),
        "socket": str(run_dir / "proxy.socket"),
        "admin_listen": "127.0.0.1:0",
    }
    flags.update(overrides)
    return load_config(flags, environ={})


def _fields(reply: bytes | None, kind: int) -> dict[int, int | bytes]:
    assert reply is not None, "closed without a reply"
    return response_fields(reply, kind)


def _ready(daemon: RunningDaemon) -> int:
    return httpx.get(f"{daemon.admin_url}/readyz", timeout=10).status_code


# ---- a second daemon of this project as the upstream ----


@pytest.fixture
def upstream(sim: Path, run_dir: Path) -> Iterator[RunningDaemon]:
    with run_daemon(config_for(sim, run_dir, socket=str(run_dir / "upstream.socket"))) as daemon:
        yield daemon


def test_quotes_relayed_from_another_quote_helper_verify(
    sim: Path, run_dir: Path, upstream: RunningDaemon, make_report: MakeReport
) -> None:
    with (
        serve_in_thread(sim) as pccs,
        run_daemon(proxy_config(run_dir, upstream.socket)) as proxy,
    ):
        init = _fields(intel_client(proxy.socket, init_quote_ex(True, 32)), 15)
        direct = _fields(intel_client(upstream.socket, init_quote_ex(True, 32)), 15)
        # The upstream's QE target info and ECDSA id, unchanged.
        assert init == direct
        size = _fields(intel_client(proxy.socket, get_quote_size_ex()), 16)
        assert size == _fields(intel_client(upstream.socket, get_quote_size_ex()), 16)
        target_info = init[2]
        quote_size = size[2]
        assert isinstance(target_info, bytes)
        assert isinstance(quote_size, int)
        # The upstream does not say which QE3/PCE it runs: unknown until a quote.
        assert proxy.metric("sgx_quote_helper_qe_svn") == 0

        # With a qe_report_info: the nonce and app target info are sent on, the
        # QE report comes back, bound to the quote (section 6.2).
        nonce = bytes(range(16))
        app_target = bytes([7]) * 32 + bytes(480)
        info = nonce + app_target + bytes(432)
        report = make_report(target_info, REPORT_DATA)
        reply = _fields(
            intel_client(proxy.socket, get_quote_ex(report, quote_size + 100, qe_report_info=info)),
            17,
        )
        assert reply[1] == 0
        padded, filled = reply[2], reply[3]
        assert isinstance(padded, bytes)
        assert isinstance(filled, bytes)
        assert len(padded) == quote_size + 100
        quote = padded[: 436 + int.from_bytes(padded[432:436], "little")]
        assert padded[len(quote) :] == bytes(100)
        assert filled[:528] == info[:528]
        qe_report_data = filled[528 + 320 : 528 + 384]
        assert qe_report_data == hashlib.sha256(nonce + quote).digest() + bytes(32)

        async def collateral() -> Any:
            return await dcap_qvl.get_collateral(pccs.url, quote)

        root = (sim / "pcs" / "root-ca.der").read_bytes()
        verdict = dcap_qvl.verify_with_root_ca(
            quote, asyncio.run(collateral()), root, int(time.time())
        )
        assert verdict.status == "UpToDate"
        assert proxy.metric("sgx_quote_helper_upstream_failures_total") == 0
        # Then the SVNs of the quote's header, which are the upstream's release.
        assert proxy.metric("sgx_quote_helper_qe_svn") == int.from_bytes(quote[8:10], "little")
        assert proxy.metric("sgx_quote_helper_pce_svn") == int.from_bytes(quote[10:12], "little")
        assert proxy.metric("sgx_quote_helper_qe_svn") == upstream.metric("sgx_quote_helper_qe_svn")
        assert proxy.metric("sgx_quote_helper_pce_svn") == upstream.metric(
            "sgx_quote_helper_pce_svn"
        )


def test_upstream_error_codes_are_relayed_unchanged(
    run_dir: Path, upstream: RunningDaemon, make_report: MakeReport
) -> None:
    with run_daemon(proxy_config(run_dir, upstream.socket)) as proxy:
        init = _fields(intel_client(proxy.socket, init_quote_ex(True, 32)), 15)
        assert isinstance(init[2], bytes)
        # A REPORT for another enclave: the upstream QE cannot check its MAC.
        wrong = make_report(bytes([1]) * 32 + bytes(480), REPORT_DATA)
        info = bytes(range(16)) + bytes(944)
        body = get_quote_ex(wrong, 8192, qe_report_info=info)
        direct = _fields(intel_client(upstream.socket, body), 17)
        relayed = _fields(intel_client(proxy.socket, body), 17)
        assert relayed == direct == {1: 47, 3: info}
        assert proxy.metric("sgx_quote_helper_upstream_failures_total") == 0
        assert _ready(proxy) == 200


# ---- scripted upstreams that fail ----

Behaviour = Callable[[socket.socket], None]


@contextlib.contextmanager
def fake_upstream(path: Path, behaviour: Behaviour) -> Iterator[list[bytes]]:
    """A Unix socket server in a thread that treats every connection with ``behaviour``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    received: list[bytes] = []
    workers: list[threading.Thread] = []

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                behaviour(conn)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=handle, args=(conn,), daemon=True)
            workers.append(worker)
            worker.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
        path.unlink(missing_ok=True)
        for worker in workers:
            worker.join(timeout=10)


def _read_frame(conn: socket.socket) -> bytes:
    header = conn.recv(4, socket.MSG_WAITALL)
    return conn.recv(int.from_bytes(header, "little"), socket.MSG_WAITALL)


def stall(release: threading.Event) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        _read_frame(conn)
        release.wait(timeout=30)

    return behaviour


def close_after_header(conn: socket.socket) -> None:
    _read_frame(conn)
    conn.sendall((100).to_bytes(4, "little") + b"\x08")


def close_without_reply(conn: socket.socket) -> None:
    _read_frame(conn)


def garbage_body(conn: socket.socket) -> None:
    _read_frame(conn)
    conn.sendall(frame(b"\xff\xff\xff\xff"))


def wrong_kind(conn: socket.socket) -> None:
    # A well-formed GetQuoteSizeEx reply, whatever was asked.
    _read_frame(conn)
    conn.sendall(frame(ld(16, vi(1, 0) + vi(2, 4000))))


def huge_length(conn: socket.socket) -> None:
    _read_frame(conn)
    conn.sendall((0xFFFF_FFF0).to_bytes(4, "little"))


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (close_after_header, "closed"),
        (close_without_reply, "closed"),
        (garbage_body, "malformed"),
        (wrong_kind, "malformed"),
        (huge_length, "malformed"),
    ],
)
def test_a_broken_upstream_costs_the_client_service_unavailable(
    run_dir: Path, behaviour: Behaviour, reason: str
) -> None:
    path = run_dir / "upstream.socket"
    with (
        fake_upstream(path, behaviour),
        run_daemon(proxy_config(run_dir, path), ready=False) as proxy,
    ):
        for body, kind in ((init_quote_ex(True, 32), 15), (get_quote_size_ex(), 16)):
            reply = _fields(intel_client(proxy.socket, body), kind)
            assert reply[1] == SERVICE_UNAVAILABLE
        # Requests the daemon answers itself still work.
        assert _fields(intel_client(proxy.socket, GET_SUPPORTED_NUM), 21) == {1: 0, 2: 1}
        assert proxy.metric("sgx_quote_helper_upstream_failures_total", reason=reason) >= 1
        assert _ready(proxy) == 503
        assert proxy.metric("sgx_quote_helper_ready") == 0


def test_an_upstream_that_stalls_past_the_timeout(run_dir: Path) -> None:
    path = run_dir / "upstream.socket"
    release = threading.Event()
    try:
        with (
            fake_upstream(path, stall(release)),
            run_daemon(proxy_config(run_dir, path, upstream_timeout="0.3"), ready=False) as proxy,
        ):
            # Answered at once: the daemon is not ready while its first
            # exchange with the upstream hangs.
            reply = _fields(intel_client(proxy.socket, get_quote_size_ex()), 16)
            assert reply == {1: SERVICE_UNAVAILABLE, 2: 0}
            wait_for(
                lambda: (
                    proxy.metric("sgx_quote_helper_upstream_failures_total", reason="timeout") >= 1
                ),
                30,
                "the upstream timeout to be counted",
            )
            assert _ready(proxy) == 503
            release.set()
    finally:
        release.set()


def test_no_upstream_socket_then_the_upstream_starts(
    sim: Path, run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = run_dir / "upstream.socket"
    with run_daemon(proxy_config(run_dir, path), ready=False) as proxy:
        reply = _fields(intel_client(proxy.socket, init_quote_ex(True, 32)), 15)
        assert reply[1] == SERVICE_UNAVAILABLE
        assert proxy.metric("sgx_quote_helper_upstream_failures_total", reason="unreachable") >= 1
        assert _ready(proxy) == 503
        # The upstream comes up: the proxy becomes ready on its own.
        with run_daemon(config_for(sim, run_dir, socket=str(path))):
            proxy.wait_ready()
            assert _ready(proxy) == 200
            reply = _fields(intel_client(proxy.socket, init_quote_ex(True, 32)), 15)
            assert reply[1] == 0
        # It goes away again: clients get 30, readiness drops, and returns
        # once a new upstream answers the health probe.
        reply = _fields(intel_client(proxy.socket, get_quote_size_ex()), 16)
        assert reply[1] == SERVICE_UNAVAILABLE
        assert _ready(proxy) == 503
        with run_daemon(config_for(sim, run_dir, socket=str(path))):
            wait_for(lambda: _ready(proxy) == 200, 30, "readiness after the upstream returned")


def test_an_upstream_that_refuses_the_connection(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A stale socket file: bound once, nobody listening (an aesmd that died).
    path = run_dir / "upstream.socket"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with (
        caplog.at_level("INFO", logger="sgx_quote_helper"),
        run_daemon(proxy_config(run_dir, path), ready=False) as proxy,
    ):
        for body, kind in ((init_quote_ex(True, 32), 15), (get_quote_size_ex(), 16)):
            reply = _fields(intel_client(proxy.socket, body), kind)
            assert reply[1] == SERVICE_UNAVAILABLE
        assert proxy.metric("sgx_quote_helper_upstream_failures_total", reason="unreachable") >= 1
        assert _ready(proxy) == 503
    failures = [r for r in caplog.records if r.getMessage() == "upstream.failed"]
    assert failures, "the upstream failure was not logged"
    fields = failures[0].__dict__["fields"]
    assert fields["reason"] == "unreachable"
    assert "refused" in fields["detail"].lower()


def test_proxy_needs_an_upstream() -> None:
    from sgx_quote_helper.service import ConfigError

    with pytest.raises(ConfigError, match="--upstream"):
        load_config({"backend": "proxy"}, environ={})


def test_a_ready_proxy_whose_upstream_stalls_answers_promptly_and_recovers(
    run_dir: Path, upstream: RunningDaemon, make_report: MakeReport
) -> None:
    # In front of the real upstream: relay while `relaying` is set, else
    # accept and never answer.
    relaying = threading.Event()
    relaying.set()
    release = threading.Event()

    def switchable(conn: socket.socket) -> None:
        request = _read_frame(conn)
        if not relaying.is_set():
            release.wait(timeout=30)
            return
        reply = intel_client(upstream.socket, request)
        if reply is not None:
            conn.sendall(reply)

    path = run_dir / "switch.socket"
    try:
        with (
            fake_upstream(path, switchable),
            # Long enough for the relayed exchanges on a loaded machine.
            run_daemon(proxy_config(run_dir, path, upstream_timeout="3")) as proxy,
        ):
            init = _fields(intel_client(proxy.socket, init_quote_ex(True, 32)), 15)
            assert init[1] == 0
            assert isinstance(init[2], bytes)
            report = make_report(init[2], REPORT_DATA)
            assert _fields(intel_client(proxy.socket, get_quote_ex(report, 8192)), 17)[1] == 0
            assert _ready(proxy) == 200

            relaying.clear()
            reply = _fields(intel_client(proxy.socket, get_quote_ex(report, 8192)), 17)
            assert reply == {1: SERVICE_UNAVAILABLE}
            assert proxy.metric("sgx_quote_helper_upstream_failures_total", reason="timeout") >= 1
            assert _ready(proxy) == 503
            assert (
                proxy.metric(
                    "sgx_quote_helper_requests_total",
                    type="GET_QUOTE_EX",
                    result="SERVICE_UNAVAILABLE",
                )
                == 1
            )

            release.set()
            relaying.set()
            wait_for(lambda: _ready(proxy) == 200, 30, "readiness after the upstream recovered")
            assert _fields(intel_client(proxy.socket, get_quote_ex(report, 8192)), 17)[1] == 0
    finally:
        release.set()


def test_a_probe_of_an_unusable_upstream_reports_instead_of_raising(run_dir: Path) -> None:
    from sgx_quote_helper.backends import ProxyBackend

    reasons: list[str] = []
    backend = ProxyBackend(run_dir / "none.socket", timeout=1, on_failure=reasons.append)
    backend.probe()  # the daemon's health watch must survive it
    assert not backend.healthy()
    assert reasons == ["unreachable"]
