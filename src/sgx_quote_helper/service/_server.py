"""The quote helper daemon: an AESM-compatible server on a Unix socket.

The lifecycle reads like uvicorn's ``Server.serve``:

1. startup — everything that can fail does so before the socket exists: the
   backend is ready (platform and keys loaded) when the server is built, a live
   daemon on the socket makes startup fail, a stale socket from a crash is
   replaced, and the admin listener is bound before the AESM socket;
2. serve — one request per connection, as Intel's aesmd (aesm-wire.md section
   3); quoting readiness (the PCK chain) comes from a background task, so a
   first start while the PCCS is down binds, stays not-ready and answers
   AESM_NETWORK_ERROR instead of crash-looping;
3. shutdown — stop accepting (unlink the socket, serve what the kernel already
   queued, close the listener), drain open connections within
   ``drain_timeout``, abort the rest, release the backend.

Signal handlers only set flags; a second signal forces exit.

Connections are plain non-blocking sockets driven by the event loop's
readiness callbacks (``add_reader``/``add_writer``) rather than asyncio
streams: a request is one short frame, and with the simulated QE answering it
costs less than the stream machinery around it (a task, a transport, a reader
and a writer per connection). Intel's client has usually written its frame by
the time the connection is accepted, so the common case is accept, read,
answer, write and close within one callback. Frames are assembled with the
sans-I/O :class:`~sgx_quote_helper.aesm.FrameDecoder`; anything slower than
that (a client that trickles bytes, a reply the client does not read) waits on
the loop under ``read_timeout``. Backends that block (real hardware, an
upstream socket) answer in worker threads, at most ``max_inflight`` at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from sgx_quote_helper._logging import log_event
from sgx_quote_helper.aesm import (
    CONNECTION_CLOSED,
    MAX_REQUEST_BODY_SIZE,
    NEED_DATA,
    AesmProtocolError,
    CloseWithoutReply,
    FrameDecoder,
    GetQuoteExRequest,
    MessageKind,
    MissingRequiredField,
    Request,
    Response,
    decode_request,
    error_response,
    frame_response,
)
from sgx_quote_helper.backends import AttestationKeyStatus, BackendHealth, QuoteBackend
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.service._admin import AdminServer
from sgx_quote_helper.service._config import ServiceConfig
from sgx_quote_helper.service._logic import AesmLogic
from sgx_quote_helper.service._metrics import DaemonMetrics
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID
from sgx_quote_helper.sgx._status import AesmError

_log = logging.getLogger("sgx_quote_helper.service")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
#: Listen backlog (aesmd uses 32; a node may have bursts of many clients).
_BACKLOG = 128
#: Connections accepted per readiness callback before other work gets a turn.
_ACCEPT_BATCH = 64
#: Seconds of queued quotes answered before the loop looks for new clients.
_QUOTE_SLICE = 0.0005
#: Bytes asked of ``recv`` at once: a whole request frame of the largest size.
_RECV_SIZE = MAX_REQUEST_BODY_SIZE + 4
#: Seconds accepting pauses after running out of file descriptors.
_ACCEPT_RETRY_DELAY = 1.0
#: Seconds between attempts to get quoting ready (PCK chain) while it fails.
#: A client's quoting request while not ready wakes the task early, at most
#: once per ``_READY_RETRY_MIN``.
_READY_RETRY_MIN, _READY_RETRY_MAX = 0.5, 30.0
#: Seconds between probes of an unhealthy backend's dependency (an upstream
#: AESM), so that readiness comes back without client traffic.
HEALTH_PROBE_INTERVAL = 2.0
#: How often the PCK chain is re-fetched (and the key re-certified with it)
#: once the daemon is ready.
PCK_REFRESH_INTERVAL = 3600.0


class StartupError(SgxQuoteHelperError):
    """The daemon cannot start; nothing was left bound."""


class PeerCredentials(NamedTuple):
    """The connecting process, from ``SO_PEERCRED``."""

    pid: int
    uid: int
    gid: int


_UNKNOWN_PEER = PeerCredentials(0, -1, -1)


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


class _Connection:
    """One client connection: read one frame, answer it, close."""

    __slots__ = ("decoder", "fd", "out", "peer", "reading", "sock", "task", "timer", "writing")

    def __init__(self, sock: socket.socket, peer: PeerCredentials) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
        self.reading = False  # registered with add_reader
        self.writing = False  # registered with add_writer
        self.timer: asyncio.TimerHandle | None = None
        self.out: memoryview | None = None  # reply bytes not yet sent
        self.task: asyncio.Task[None] | None = None  # answer computed in a thread


class QuoteHelperServer:
    """The daemon. ``await serve()`` runs it until a signal or :meth:`request_exit`."""

    def __init__(
        self,
        config: ServiceConfig,
        backend: QuoteBackend,
        *,
        metrics: DaemonMetrics | None = None,
        refresh_pck: Callable[[], None] | None = None,
        on_close: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.config = config
        self._on_close = tuple(on_close)
        self._released = False
        self.backend = backend
        self.metrics = metrics or DaemonMetrics()
        self._refresh_pck = refresh_pck
        self.should_exit = asyncio.Event()
        self.ready = False
        self.started = asyncio.Event()
        info = backend.info()
        self._logic = AesmLogic(backend, lambda: self.ready)
        # Blocking backends (real hardware, an upstream socket) run in threads
        # under a bound; the simulated QE signs inline in tens of microseconds.
        self._offload = not info.simulated
        self._inflight = asyncio.Semaphore(config.max_inflight)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._accepting = False
        self._accept_retry: asyncio.TimerHandle | None = None
        self._admin: AdminServer | None = None
        self._connections: set[_Connection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: list[asyncio.Task[None]] = []
        self._ready_wakeup = asyncio.Event()
        self._socket_inode: int | None = None
        self._blob_errors_counted = 0
        self._quotes: collections.deque[tuple[_Connection, GetQuoteExRequest, float]] = (
            collections.deque()
        )
        self._quotes_scheduled = False
        self.metrics.active_connections.set_function(lambda: len(self._connections))
        self._health = backend if isinstance(backend, BackendHealth) else None
        self.metrics.ready.set_function(lambda: 1.0 if self._is_ready() else 0.0)

    @property
    def admin_port(self) -> int | None:
        """The TCP port of the admin listener (useful with ``--admin-listen HOST:0``)."""
        return self._admin.bound_port if self._admin is not None else None

    # -- lifecycle -------------------------------------------------------------

    async def serve(self) -> None:
        try:
            await self.startup()
        except BaseException:
            self._release()
            raise
        try:
            await self.should_exit.wait()
        finally:
            await self.shutdown()

    def request_exit(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self.should_exit.set()

    async def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        info = self.backend.info()
        self.metrics.describe_release(info.name, info.qe_svn, info.pce_svn, info.simulated)
        path = self.config.socket
        self._prepare_socket_path(path)
        try:
            admin_address = self.config.admin_address()
            if admin_address is not None:
                self._admin = AdminServer(admin_address, self.metrics, self._is_ready)
                try:
                    await self._admin.start()
                except OSError as exc:
                    raise StartupError(
                        f"cannot listen on --admin-listen {self.config.admin_listen}: "
                        f"{exc.strerror or exc}"
                    ) from None
            self._listener = self._bind(path)
        except BaseException:
            await self._release_admin()
            raise
        self._socket_inode = path.stat().st_ino
        self._start_accepting()
        self._background.append(asyncio.create_task(self._become_ready()))
        log_event(
            _log,
            logging.INFO,
            "daemon.started",
            socket=str(path),
            backend=info.name,
            qe_svn=info.qe_svn,
            pce_svn=info.pce_svn,
            simulated=info.simulated,
            admin=self._admin.address if self._admin is not None else "off",
            pid=os.getpid(),
        )
        self.started.set()

    async def shutdown(self) -> None:
        log_event(_log, logging.INFO, "daemon.stopping", open_connections=len(self._connections))
        self._stop_accepting()
        for task in self._background:
            task.cancel()
        if self._connections:
            try:
                async with asyncio.timeout(self.config.drain_timeout):
                    await self._idle.wait()
            except TimeoutError:
                left = list(self._connections)
                log_event(_log, logging.WARNING, "daemon.drain_timeout", aborted=len(left))
                for conn in left:
                    if conn.task is not None:
                        conn.task.cancel()
                    self._drop(conn, "drain_timeout")
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._release_admin()
        self._release()
        log_event(_log, logging.INFO, "daemon.stopped")

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        # aesmd ignores SIGPIPE; so does Python, whose writes raise instead.

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.should_exit.is_set():
            log_event(_log, logging.WARNING, "daemon.forced_exit", signal=name)
            self._remove_socket()
            os._exit(1)
        log_event(_log, logging.INFO, "daemon.signal", signal=name)
        self.should_exit.set()

    def _release(self) -> None:
        """Release the backend and what was opened for it (a PCCS client), once."""
        if self._released:
            return
        self._released = True
        self.backend.close()
        for close in self._on_close:
            close()

    async def _release_admin(self) -> None:
        if self._admin is not None:
            await self._admin.stop()
            self._admin = None

    def _is_ready(self) -> bool:
        """Ready to quote: initialized, and the backend's dependency (if any) answers."""
        return self.ready and (self._health is None or self._health.healthy())

    # -- socket ----------------------------------------------------------------

    def _prepare_socket_path(self, path: Path) -> None:
        self._make_directory(path.parent)
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise StartupError(
                f"{path} exists and is not a socket; refusing to replace it "
                "(check --socket, or remove the file)"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            # Left behind by a daemon that crashed: nobody accepts on it.
            log_event(_log, logging.WARNING, "socket.stale_replaced", socket=str(path))
            path.unlink(missing_ok=True)
            return
        except OSError as exc:
            raise StartupError(f"cannot probe the existing socket {path}: {exc}") from None
        finally:
            probe.close()
        raise StartupError(
            f"another quote helper is already serving on {path}; stop it first "
            "(two daemons must never share one socket)"
        )

    @staticmethod
    def _make_directory(directory: Path) -> None:
        missing: list[Path] = []
        current = directory
        while not current.exists() and current != current.parent:
            missing.append(current)
            current = current.parent
        for created in reversed(missing):
            try:
                created.mkdir(mode=0o755)
                # mkdir's mode is filtered by the umask; containers bind-mount
                # this directory, so it must be traversable by everyone (0755,
                # as Intel's installer makes /var/run/aesmd).
                created.chmod(0o755)
            except FileExistsError:
                continue
            except OSError as exc:
                raise StartupError(
                    f"cannot create the socket directory {created}: {exc.strerror}"
                ) from None

    def _bind(self, path: Path) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(str(path))
            except OSError as exc:
                raise StartupError(
                    f"cannot bind the AESM socket {path}: {exc.strerror or exc}"
                ) from None
            try:
                # Mode and owner are set before listen(), so no client can
                # connect through a looser mode in between (aesmd: bind, chmod,
                # listen).
                os.chmod(path, self.config.socket_mode)
                if self.config.socket_owner is not None or self.config.socket_group is not None:
                    os.chown(
                        path,
                        -1 if self.config.socket_owner is None else self.config.socket_owner,
                        -1 if self.config.socket_group is None else self.config.socket_group,
                    )
            except OSError as exc:
                path.unlink(missing_ok=True)
                raise StartupError(
                    f"cannot set owner/mode of {path}: {exc.strerror}; check --socket-owner, "
                    "--socket-group and --socket-mode"
                ) from None
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _remove_socket(self) -> None:
        path = self.config.socket
        with contextlib.suppress(OSError):
            # Only remove our own socket, not one a successor already created.
            if self._socket_inode is not None and path.lstat().st_ino == self._socket_inode:
                path.unlink()

    def _start_accepting(self) -> None:
        self._accept_retry = None
        if self._accepting or self._listener is None:
            return
        assert self._loop is not None
        self._loop.add_reader(self._listener.fileno(), self._on_acceptable)
        self._accepting = True

    def _pause_accepting(self) -> None:
        if self._accepting and self._listener is not None:
            assert self._loop is not None
            self._loop.remove_reader(self._listener.fileno())
            self._accepting = False

    def _stop_accepting(self) -> None:
        """Unlink the socket, serve connections the kernel already queued, close."""
        self._remove_socket()
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        listener = self._listener
        if listener is None:
            return
        # New clients now fail to connect (no socket file); those already in
        # the backlog completed connect() and may have sent their request, so
        # accept them rather than resetting them with the listener.
        self._pause_accepting()
        while self._accept_batch(limit=False):
            pass
        # Closing a connection answered just now re-arms accepting (see
        # _close); the listener must not stay registered once closed.
        self._pause_accepting()
        listener.close()
        self._listener = None

    # -- readiness -------------------------------------------------------------

    async def _become_ready(self) -> None:
        delay = _READY_RETRY_MIN
        key_id = DEFAULT_ECDSA_ATT_KEY_ID.base
        while True:
            attempted = time.monotonic()
            try:
                await asyncio.to_thread(self._logic.initialize, key_id)
            except Exception as exc:
                reason = exc.diagnostics() if isinstance(exc, SgxQuoteHelperError) else repr(exc)
                log_event(
                    _log,
                    logging.WARNING,
                    "daemon.not_ready",
                    reason=reason,
                    retry_in=f"{delay:.1f}s",
                )
                self._ready_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._ready_wakeup.wait()
                # A client asking for quotes may wake this early, but attempts
                # stay at least _READY_RETRY_MIN apart.
                pause = _READY_RETRY_MIN - (time.monotonic() - attempted)
                if pause > 0:
                    await asyncio.sleep(pause)
                delay = min(delay * 2, _READY_RETRY_MAX)
                continue
            break
        self._key_initialized()
        self.ready = True
        log_event(_log, logging.INFO, "daemon.ready")
        if self._health is not None:
            self._background.append(asyncio.create_task(self._watch_health(self._health)))
        while self._refresh_pck is not None:
            await asyncio.sleep(PCK_REFRESH_INTERVAL)
            try:
                await asyncio.to_thread(self._refresh_pck)
                # Re-certify with the chain just fetched (a TCB recovery may
                # have brought a new PCK certificate); quotes keep flowing
                # from the current key meanwhile.
                await asyncio.to_thread(self._logic.initialize, key_id)
                self._key_initialized()
            except Exception as exc:
                reason = exc.diagnostics() if isinstance(exc, SgxQuoteHelperError) else repr(exc)
                log_event(_log, logging.WARNING, "pck_chain.refresh_failed", reason=reason)

    async def _watch_health(self, health: BackendHealth) -> None:
        """Probe an unhealthy backend's dependency until it answers again."""
        while True:
            await asyncio.sleep(HEALTH_PROBE_INTERVAL)
            if health.healthy():
                continue
            try:
                await asyncio.to_thread(health.probe)
            except Exception:  # a probe must never end the watch
                _log.exception("backend.probe_failed")

    def _key_initialized(self) -> None:
        created: float | None = None
        backend = self.backend
        if isinstance(backend, AttestationKeyStatus):
            created = backend.attestation_key_created()
        self.metrics.key_created(created if created is not None else time.time())
        if isinstance(backend, AttestationKeyStatus):
            replaced = backend.att_key_blob_errors
            if replaced > self._blob_errors_counted:
                self.metrics.sealed_key_replaced.inc(replaced - self._blob_errors_counted)
                self._blob_errors_counted = replaced

    # -- connections -----------------------------------------------------------

    def _on_acceptable(self) -> None:
        self._accept_batch(limit=True)

    def _accept_batch(self, *, limit: bool) -> bool:
        """Accept up to a batch of queued connections; True if there may be more."""
        listener = self._listener
        assert listener is not None
        for _ in range(_ACCEPT_BATCH):
            if limit and len(self._connections) >= self.config.max_connections:
                # Backpressure: leave further clients in the kernel's backlog
                # (their connect() waits) until a connection closes.
                self._pause_accepting()
                return False
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log_event(_log, logging.ERROR, "accept.failed", error=exc.strerror)
                    if limit:
                        self._pause_accepting()
                        assert self._loop is not None
                        self._accept_retry = self._loop.call_later(
                            _ACCEPT_RETRY_DELAY, self._start_accepting
                        )
                    return False
                continue  # ECONNABORTED and the like: that client is gone
            self._open(sock)
        return True

    def _refusal(self, peer: PeerCredentials) -> str | None:
        """The reason to refuse ``peer``, or ``None`` to serve it."""
        allow_uid, allow_gid = self.config.allow_uid, self.config.allow_gid
        if (allow_uid or allow_gid) and peer.uid not in allow_uid and peer.gid not in allow_gid:
            return "not_allowed"
        return None

    def _open(self, sock: socket.socket) -> None:
        # The socket stays in blocking mode: every recv and send passes
        # MSG_DONTWAIT instead, which saves a system call per connection.
        try:
            peer = peer_credentials(sock)
        except OSError:
            peer = _UNKNOWN_PEER
        refusal = self._refusal(peer)
        if refusal is not None:
            self.metrics.rejected(refusal)
            log_event(
                _log,
                logging.WARNING,
                "peer.rejected",
                reason=refusal,
                pid=peer.pid,
                uid=peer.uid,
                gid=peer.gid,
            )
            sock.close()  # without a reply, like a malformed request
            return
        conn = _Connection(sock, peer)
        self._connections.add(conn)
        self._idle.clear()
        self.metrics.connection_from(peer.uid)
        if _log.isEnabledFor(logging.DEBUG):
            log_event(
                _log, logging.DEBUG, "peer.connected", pid=peer.pid, uid=peer.uid, gid=peer.gid
            )
        # Intel's client has usually written its frame by now: try at once.
        self._on_readable(conn)

    def _close(self, conn: _Connection) -> None:
        loop = self._loop
        assert loop is not None
        if conn.reading:
            loop.remove_reader(conn.fd)
            conn.reading = False
        if conn.writing:
            loop.remove_writer(conn.fd)
            conn.writing = False
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        conn.sock.close()
        self._connections.discard(conn)
        if not self._connections:
            self._idle.set()
        if (
            not self._accepting
            and self._accept_retry is None
            and self._listener is not None
            and len(self._connections) < self.config.max_connections
        ):
            self._start_accepting()

    def _drop(self, conn: _Connection, reason: str, detail: str | None = None) -> None:
        """Close without a reply, counted by reason."""
        self.metrics.dropped_request(reason)
        if detail is not None:
            log_event(_log, logging.INFO, "request.dropped", reason=detail, uid=conn.peer.uid)
        if conn in self._connections:
            self._close(conn)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self._wait_readable(conn)
            return
        except OSError:
            self._drop(conn, "eof")
            return
        decoder = conn.decoder
        decoder.receive_data(data)  # b"": the client closed
        try:
            body = decoder.next_frame()
        except AesmProtocolError as exc:
            self._drop(conn, "truncated" if not data else "frame_too_large", str(exc))
            return
        if body is NEED_DATA:
            self._wait_readable(conn)
            return
        if body is CONNECTION_CLOSED:
            self._drop(conn, "eof")
            return
        # One request per connection (section 3): bytes after the frame are
        # never read.
        if conn.reading:
            assert self._loop is not None
            self._loop.remove_reader(conn.fd)
            conn.reading = False
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._dispatch(conn, body)

    def _wait_readable(self, conn: _Connection) -> None:
        if conn.reading:
            return
        loop = self._loop
        assert loop is not None
        loop.add_reader(conn.fd, self._on_readable, conn)
        conn.reading = True
        # One deadline for the whole frame: a client trickling bytes
        # (slowloris) cannot extend it.
        conn.timer = loop.call_later(self.config.read_timeout, self._on_timeout, conn)

    def _on_readable(self, conn: _Connection) -> None:
        try:
            self._read(conn)
        except Exception:  # never leave a registered descriptor behind
            _log.exception("connection.read_failed")
            self._drop(conn, "internal_error")

    def _on_timeout(self, conn: _Connection) -> None:
        conn.timer = None
        self._drop(conn, "write_timeout" if conn.writing else "read_timeout")

    def _dispatch(self, conn: _Connection, body: bytes) -> None:
        event = decode_request(body)
        if isinstance(event, CloseWithoutReply):
            # aesmd: "Malformed request received" and the socket is closed.
            self._drop(conn, "malformed", event.reason)
            return
        if isinstance(event, MissingRequiredField):
            self._reply(conn, event, error_response(event.kind, AesmError.UNEXPECTED_ERROR), 0.0)
            return
        if self._offload:
            assert self._loop is not None
            conn.task = self._loop.create_task(self._answer_in_thread(conn, event))
            return
        started = time.perf_counter()
        if isinstance(event, GetQuoteExRequest):
            # Quotes wait their turn so that cheap requests never queue behind
            # a burst of them (no client starves another).
            self._quotes.append((conn, event, started))
            if not self._quotes_scheduled:
                assert self._loop is not None
                self._loop.call_soon(self._run_quotes)
                self._quotes_scheduled = True
            return
        response = self._answer(event)
        self._reply(conn, event, response, time.perf_counter() - started)

    def _run_quotes(self) -> None:
        """Answer queued quotes, first come first served, for one time slice.

        Between slices the loop takes in new connections and answers their
        non-quote requests at once, so those wait at most one slice however
        many quotes are queued.
        """
        self._quotes_scheduled = False
        quotes = self._quotes
        clock = time.perf_counter
        deadline = clock() + _QUOTE_SLICE
        while quotes:
            conn, event, started = quotes.popleft()
            if conn not in self._connections:
                continue  # aborted meanwhile (drain timeout)
            response = self._answer(event)
            self._reply(conn, event, response, clock() - started)
            if clock() >= deadline:
                break
        if quotes:
            assert self._loop is not None
            self._loop.call_soon(self._run_quotes)
            self._quotes_scheduled = True

    async def _answer_in_thread(self, conn: _Connection, event: Request) -> None:
        async with self._inflight:
            started = time.perf_counter()
            response = await asyncio.to_thread(self._answer, event)
            elapsed = time.perf_counter() - started
        conn.task = None
        if conn in self._connections:
            self._reply(conn, event, response, elapsed)

    def _answer(self, event: Request) -> Response:
        try:
            return self._logic.handle(event)
        except Exception:
            # A bug, not the peer's fault: answer in kind rather than dropping
            # the client without a word.
            _log.exception("request.internal_error", extra={"fields": {"type": event.kind.name}})
            return error_response(event.kind, AesmError.UNEXPECTED_ERROR)

    def _reply(
        self,
        conn: _Connection,
        event: Request | MissingRequiredField,
        response: Response,
        elapsed: float,
    ) -> None:
        code = response.error_code
        try:
            frame = frame_response(response, request=event)
        except SgxQuoteHelperError:
            # Never answer with another message type (section 14): close instead.
            _log.exception("request.internal_error", extra={"fields": {"type": event.kind.name}})
            self._drop(conn, "internal_error")
            return
        kind = event.kind
        self.metrics.request_answered(kind, code)
        if kind is MessageKind.GET_QUOTE_EX and code == 0:
            self.metrics.quote_latency.observe(elapsed)
        if code == AesmError.NETWORK_ERROR and not self.ready:
            self._ready_wakeup.set()
        if isinstance(event, GetQuoteExRequest) and _log.isEnabledFor(logging.DEBUG):
            log_event(_log, logging.DEBUG, "quote.served", uid=conn.peer.uid, result=code)
        self._send(conn, memoryview(frame))

    def _send(self, conn: _Connection, data: memoryview) -> None:
        try:
            sent = conn.sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(conn, "client_gone")
            return
        if sent == len(data):
            self._close(conn)
            return
        conn.out = data[sent:]
        if not conn.writing:
            loop = self._loop
            assert loop is not None
            loop.add_writer(conn.fd, self._on_writable, conn)
            conn.writing = True
            # The client must take its reply within read_timeout as well.
            conn.timer = loop.call_later(self.config.read_timeout, self._on_timeout, conn)

    def _on_writable(self, conn: _Connection) -> None:
        out = conn.out
        assert out is not None
        try:
            self._send(conn, out)
        except Exception:
            _log.exception("connection.write_failed")
            self._drop(conn, "internal_error")
