"""Client connections: one ``asyncio.Protocol`` per client, admission, and dispatch.

asyncio accepts (``loop.create_unix_server``); each connection is one small
:class:`AesmConnection` that feeds the sans-I/O
:class:`~sgx_quote_helper.aesm.FrameDecoder` and hands the one request it
reads (aesm-wire.md section 3) to the :class:`ConnectionHub`, which owns what
is shared: admission, the request deadline, the answer (through
:class:`~sgx_quote_helper.service._logic.AesmLogic`), metrics and logs.

Admission, so that one tenant cannot starve the others:

1. the peer's credentials (``SO_PEERCRED``) are read when the connection is
   made, and a peer outside the allow-list is closed before any byte of its
   request is read;
2. a uid at its quota (``max_connections_per_uid``) makes room by evicting its
   own oldest connection that has not yet sent a whole request, or is refused;
3. at ``max_connections`` the oldest connection of anyone that has not yet
   sent a whole request is evicted for the new one, or, when every open
   connection is being answered, the new one is refused. New clients are
   never left waiting in the kernel's backlog behind stalled ones;
4. the whole request frame must arrive within ``request_timeout`` of the
   accept, one deadline that trickling bytes cannot extend.

Connections not yet holding a request are kept in accept order, so the
oldest is found in O(1) and a single timer serves every deadline.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import os
import socket
import struct
import termios
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple, cast

from sgx_quote_helper._logging import RateLimitedLog, log_event
from sgx_quote_helper.aesm import (
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
    whole_frame,
)
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.service._logic import AesmLogic
from sgx_quote_helper.service._metrics import DaemonMetrics
from sgx_quote_helper.sgx import AesmError

_log = logging.getLogger("sgx_quote_helper.service")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
#: Seconds of queued quotes answered before the loop looks for new clients.
#: A new connection passes through three loop iterations (accept, the
#: transport's set-up, ``connection_made`` which reads and answers it), each
#: of which may run one slice. Quotes of connections made in the same
#: iteration are answered inline until the slice is used up, then queued.
_QUOTE_SLICE = 0.0002


#: Oldest candidates looked at for eviction before giving up (bounded work
#: per accepted connection).
_EVICTION_SCAN = 32
#: Seconds after its accept before a connection that sent nothing counts as
#: stalled (a client is normally read within a few loop iterations).
_EVICTION_GRACE = 0.25
#: With no stalled connection to evict, a uid or the daemon may exceed its
#: limit by this factor (connections still in asyncio's pipeline settle
#: within milliseconds); beyond it new connections are refused.
_HARD_LIMIT_FACTOR = 2
_FIONREAD = struct.pack("i", 0)
#: Bytes read at once from a client (a request frame is a few hundred bytes).
_READ_SIZE = 65536


def _unread_bytes(fd: int) -> int:
    """Bytes waiting in the kernel's receive buffer of ``fd`` (0 if unknown)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, _FIONREAD))[0])
    except OSError:
        return 0


class PeerCredentials(NamedTuple):
    """The connecting process, from ``SO_PEERCRED``."""

    pid: int
    uid: int
    gid: int


UNKNOWN_PEER = PeerCredentials(0, -1, -1)


class AdmissionLimits(NamedTuple):
    """What the hub admits; see the module docstring."""

    allow_uid: tuple[int, ...]
    allow_gid: tuple[int, ...]
    max_connections: int
    max_connections_per_uid: int
    request_timeout: float


class AesmConnection(asyncio.Protocol):
    """One client: read one request frame, have it answered, close."""

    __slots__ = (
        "_hub",
        "accepted",
        "decoder",
        "fd",
        "partial",
        "peer",
        "request_read",
        "transport",
    )

    def __init__(self, hub: ConnectionHub) -> None:
        self._hub = hub
        self.transport: asyncio.Transport | None = None
        self.fd = -1
        self.partial = False  # some bytes of its request were read
        self.peer = UNKNOWN_PEER
        #: Made when the first read is not one whole frame (see data_received).
        self.decoder: FrameDecoder | None = None
        self.accepted = 0.0  # loop time
        self.request_read = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not derive from asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        if not self._hub.admit(self) or self.fd < 0:
            return
        # Intel's client writes its whole request right after connect(), so it
        # is usually in the socket already: read it now rather than after the
        # loop's next readiness round. The transport starts reading only after
        # this method returns, and not at all if the connection is closed or
        # paused by then (the request answered here, or queued), which also
        # saves registering the socket with the selector.
        try:
            data = os.read(self.fd, _READ_SIZE)
        except OSError:
            return  # nothing yet (EAGAIN) or an error: the transport's reader handles it
        if data:
            self.data_received(data)
        else:
            self.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.request_read:
            return  # one request per connection: bytes after it are never used
        self.partial = True
        decoder = self.decoder
        if decoder is None:
            # Usually the first read holds the whole request: no decoder needed.
            whole = whole_frame(data, max_body_size=MAX_REQUEST_BODY_SIZE)
            if whole is not None:
                self.request_read = True
                self._hub.dispatch(self, whole)
                return
            decoder = self.decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
        decoder.receive_data(data)
        try:
            body = decoder.next_frame()
        except AesmProtocolError as exc:
            self._hub.drop(self, "frame_too_large", str(exc))
            return
        if body is NEED_DATA:
            return
        assert isinstance(body, bytes)
        self.request_read = True
        self._hub.dispatch(self, body)

    def eof_received(self) -> bool:
        if self.request_read:
            return True  # half-closed after its request: the reply still goes out
        decoder = self.decoder or FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
        decoder.receive_data(b"")
        try:
            decoder.next_frame()
        except AesmProtocolError as exc:
            self._hub.drop(self, "truncated", str(exc))
        else:
            self._hub.drop(self, "eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._hub.forget(self)


class ConnectionHub:
    """Admission, deadlines and answers for every connection of one daemon."""

    def __init__(
        self,
        logic: AesmLogic,
        limits: AdmissionLimits,
        metrics: DaemonMetrics,
        pool: ThreadPoolExecutor,
        *,
        log: RateLimitedLog,
        on_not_ready: Callable[[], None],
        is_ready: Callable[[], bool],
    ) -> None:
        self.logic = logic
        self.limits = limits
        self.metrics = metrics
        self._pool = pool
        self._log = log
        self._on_not_ready = on_not_ready
        self._is_ready = is_ready
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Every admitted connection that is not closed yet.
        self.open: set[AesmConnection] = set()
        #: Admitted connections without a whole request yet, oldest first.
        self._waiting: dict[AesmConnection, None] = {}
        self._waiting_by_uid: dict[int, dict[AesmConnection, None]] = {}
        self._open_by_uid: dict[int, int] = {}
        #: Replies the client has not taken yet (the kernel buffer was full).
        self._flushing: dict[AesmConnection, float] = {}
        self._deadline_timer: asyncio.TimerHandle | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        self._quotes: collections.deque[tuple[AesmConnection, GetQuoteExRequest, float]] = (
            collections.deque()
        )
        self._quotes_scheduled = False
        #: End of the time this loop iteration may spend answering quotes inline.
        self._slice_end: float | None = None
        metrics.active_connections.set_function(lambda: len(self.open))

    def protocol(self) -> AesmConnection:
        """The protocol factory for ``create_unix_server``."""
        return AesmConnection(self)

    # -- admission ---------------------------------------------------------------

    def admit(self, conn: AesmConnection) -> bool:
        """Admit ``conn`` (True) or close it without reading a byte (False)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        transport = conn.transport
        assert transport is not None
        try:
            sock = transport.get_extra_info("socket")
            conn.fd = sock.fileno()
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            conn.peer = PeerCredentials._make(_UCRED.unpack(raw))
        except (OSError, AttributeError, struct.error):
            conn.peer = UNKNOWN_PEER
        peer = conn.peer
        limits = self.limits
        if (
            (limits.allow_uid or limits.allow_gid)
            and peer.uid not in limits.allow_uid
            and peer.gid not in limits.allow_gid
        ):
            self._refuse(conn, "not_allowed")
            return False
        # At a limit, the oldest stalled connection makes room; with none
        # stalled, the limit stretches (see _HARD_LIMIT_FACTOR), then refuses.
        held = self._open_by_uid.get(peer.uid, 0)
        if (
            held >= limits.max_connections_per_uid
            and not self._evict(self._waiting_by_uid.get(peer.uid), "uid_quota")
            and held >= limits.max_connections_per_uid * _HARD_LIMIT_FACTOR
        ):
            self._refuse(conn, "uid_quota")
            return False
        total = len(self.open)
        if (
            total >= limits.max_connections
            and not self._evict(self._waiting, "capacity")
            and total >= limits.max_connections * _HARD_LIMIT_FACTOR
        ):
            self._refuse(conn, "capacity")
            return False
        conn.accepted = loop.time()
        self.open.add(conn)
        self._open_by_uid[peer.uid] = self._open_by_uid.get(peer.uid, 0) + 1  # after evictions
        self._waiting[conn] = None
        by_uid = self._waiting_by_uid.get(peer.uid)
        if by_uid is None:
            by_uid = self._waiting_by_uid[peer.uid] = {}
        by_uid[conn] = None
        self.idle.clear()
        self.metrics.connection_from(peer.uid)
        self._schedule(conn.accepted + limits.request_timeout)
        if _log.isEnabledFor(logging.DEBUG):
            log_event(
                _log, logging.DEBUG, "peer.connected", pid=peer.pid, uid=peer.uid, gid=peer.gid
            )
        return True

    def _refuse(self, conn: AesmConnection, reason: str) -> None:
        """Close without reading a byte or replying, like aesmd's malformed request."""
        peer = conn.peer
        self.metrics.rejected(reason)
        self._log.log(
            logging.WARNING,
            "peer.rejected",
            reason=reason,
            pid=peer.pid,
            uid=peer.uid,
            gid=peer.gid,
        )
        assert conn.transport is not None
        conn.transport.abort()

    def _evict(self, candidates: dict[AesmConnection, None] | None, reason: str) -> bool:
        """Close the oldest of ``candidates`` that is stalled; False if none is.

        Candidates have not sent a whole request as far as the daemon has
        read. A stalled one has had its chance: the daemon read part of a
        request from it, or it is older than ``_EVICTION_GRACE``, and nothing
        more waits in its socket buffer. A connection just accepted (asyncio
        reads it a few loop iterations later) or whose bytes are already in
        the kernel (a client the daemon has not got to yet, under load) is
        spared.
        """
        if not candidates:
            return False
        assert self._loop is not None
        settled = self._loop.time() - _EVICTION_GRACE
        victim = None
        for scanned, conn in enumerate(candidates):
            if scanned == _EVICTION_SCAN:
                break
            if (conn.partial or conn.accepted <= settled) and not _unread_bytes(conn.fd):
                victim = conn
                break
        if victim is None:
            return False
        peer = victim.peer
        assert self._loop is not None
        self.metrics.evicted(reason)
        self._log.log(
            logging.WARNING,
            "connection.evicted",
            reason=reason,
            pid=peer.pid,
            uid=peer.uid,
            gid=peer.gid,
            age=f"{self._loop.time() - victim.accepted:.3f}s",
        )
        self._close(victim, abort=True)
        return True

    # -- deadlines -----------------------------------------------------------------

    def _schedule(self, when: float) -> None:
        """Have :meth:`_expire` run at ``when`` at the latest."""
        timer = self._deadline_timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        assert self._loop is not None
        self._deadline_timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        """Drop every connection past its deadline; schedule the next one."""
        self._deadline_timer = None
        assert self._loop is not None
        now = self._loop.time()
        timeout = self.limits.request_timeout
        while self._waiting:
            conn = next(iter(self._waiting))
            if conn.accepted + timeout > now:
                self._schedule(conn.accepted + timeout)
                break
            self.drop(conn, "read_timeout")
        for conn, deadline in list(self._flushing.items()):
            if deadline <= now:
                self.drop(conn, "write_timeout")
            else:
                self._schedule(deadline)

    def _unwait(self, conn: AesmConnection) -> None:
        if self._waiting.pop(conn, 0) is None:
            by_uid = self._waiting_by_uid[conn.peer.uid]
            del by_uid[conn]
            if not by_uid:
                del self._waiting_by_uid[conn.peer.uid]

    # -- closing -------------------------------------------------------------------

    def drop(self, conn: AesmConnection, reason: str, detail: str | None = None) -> None:
        """Close without a reply, counted by reason."""
        if conn not in self.open:
            return
        self.metrics.dropped_request(reason)
        if detail is not None:
            self._log.log(
                logging.INFO, "request.dropped", reason=detail, uid=conn.peer.uid, pid=conn.peer.pid
            )
        self._close(conn, abort=True)

    def _close(self, conn: AesmConnection, *, abort: bool) -> None:
        self.forget(conn)
        transport = conn.transport
        assert transport is not None
        if abort:
            transport.abort()
        else:
            transport.close()

    def forget(self, conn: AesmConnection) -> None:
        """``conn`` is closed (by us, the client or asyncio): release its slot."""
        if conn not in self.open:
            return
        self.open.discard(conn)
        self._unwait(conn)
        self._flushing.pop(conn, None)
        uid = conn.peer.uid
        left = self._open_by_uid[uid] - 1
        if left:
            self._open_by_uid[uid] = left
        else:
            del self._open_by_uid[uid]
        if not self.open:
            self.idle.set()

    def abort_all(self, reason: str) -> None:
        for conn in list(self.open):
            self.drop(conn, reason)

    def close(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    # -- answering -----------------------------------------------------------------

    def dispatch(self, conn: AesmConnection, body: bytes) -> None:
        self._unwait(conn)
        event = decode_request(body)
        if isinstance(event, CloseWithoutReply):
            # aesmd: "Malformed request received" and the socket is closed.
            self.drop(conn, "malformed", event.reason)
            return
        if isinstance(event, MissingRequiredField):
            self._reply(conn, event, error_response(event.kind, AesmError.UNEXPECTED_ERROR), 0.0)
            return
        started = time.perf_counter()
        if isinstance(event, GetQuoteExRequest) and not self.logic.quotes_may_block:
            # Quotes wait their turn so that cheap requests never queue behind
            # a burst of them (no client starves another): answered at once
            # while none is queued and this loop iteration's slice lasts.
            if not self._quotes and self._in_slice(started):
                self._reply(conn, event, self._answer(event), time.perf_counter() - started)
                return
            assert conn.transport is not None
            conn.transport.pause_reading()  # nothing more is read from it
            self._quotes.append((conn, event, started))
            if not self._quotes_scheduled:
                assert self._loop is not None
                self._loop.call_soon(self._run_quotes)
                self._quotes_scheduled = True
            return
        if self.logic.may_block(event):
            loop = self._loop
            assert loop is not None
            assert conn.transport is not None
            conn.transport.pause_reading()  # nothing more is read from it
            self._pool.submit(self._answer, event).add_done_callback(
                lambda done: loop.call_soon_threadsafe(
                    self._answered_in_worker, conn, event, done, started
                )
            )
            return
        self._reply(conn, event, self._answer(event), time.perf_counter() - started)

    def _in_slice(self, now: float) -> bool:
        """Whether quotes may still be answered inline in this loop iteration."""
        end = self._slice_end
        if end is None:
            self._slice_end = now + _QUOTE_SLICE
            assert self._loop is not None
            self._loop.call_soon(self._end_slice)  # runs early in the next iteration
            return True
        return now < end

    def _end_slice(self) -> None:
        self._slice_end = None

    def _answered_in_worker(
        self,
        conn: AesmConnection,
        event: Request,
        done: Future[Response],
        started: float,
    ) -> None:
        if conn not in self.open or done.cancelled():
            return  # aborted meanwhile (drain timeout), or the pool shut down
        self._reply(conn, event, done.result(), time.perf_counter() - started)

    def _run_quotes(self) -> None:
        """Answer queued quotes, first come first served, for one time slice.

        Between slices the loop takes in new connections and answers their
        other requests at once, so those wait at most one slice however many
        quotes are queued.
        """
        self._quotes_scheduled = False
        quotes = self._quotes
        clock = time.perf_counter
        deadline = clock() + _QUOTE_SLICE
        while quotes:
            conn, event, started = quotes.popleft()
            if conn not in self.open:
                continue  # aborted meanwhile (drain timeout)
            self._reply(conn, event, self._answer(event), clock() - started)
            if clock() >= deadline:
                break
        if quotes:
            assert self._loop is not None
            self._loop.call_soon(self._run_quotes)
            self._quotes_scheduled = True

    def _answer(self, event: Request) -> Response:
        try:
            return self.logic.handle(event)
        except Exception:
            # A bug, not the peer's fault: answer in kind rather than dropping
            # the client without a word.
            _log.exception("request.internal_error", extra={"fields": {"type": event.kind.name}})
            return error_response(event.kind, AesmError.UNEXPECTED_ERROR)

    def _reply(
        self,
        conn: AesmConnection,
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
            self.drop(conn, "internal_error")
            return
        kind = event.kind
        self.metrics.request_answered(kind, code)
        if kind is MessageKind.GET_QUOTE_EX and code == 0:
            self.metrics.quote_served(elapsed)
        if code == AesmError.NETWORK_ERROR and not self._is_ready():
            self._on_not_ready()
        if isinstance(event, GetQuoteExRequest) and _log.isEnabledFor(logging.DEBUG):
            log_event(_log, logging.DEBUG, "quote.served", uid=conn.peer.uid, result=code)
        transport = conn.transport
        assert transport is not None
        if conn.fd >= 0:
            # The transport's buffer is empty (one reply per connection): send
            # directly, and when all of it went out, abort() closes with fewer
            # selector look-ups than close() and no difference to the client.
            try:
                sent = os.write(conn.fd, frame)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(conn, abort=True)  # the client went away
                return
            if sent == len(frame):
                self._close(conn, abort=True)
                return
            frame = frame[sent:]
        transport.write(frame)
        if transport.get_write_buffer_size():
            # The client has not taken the whole reply: it gets the same time
            # to take it as it had to send its request, then is cut off.
            assert self._loop is not None
            deadline = self._loop.time() + self.limits.request_timeout
            self._flushing[conn] = deadline
            self._schedule(deadline)
            transport.close()  # once flushed; connection_lost then forgets it
            return
        self._close(conn, abort=False)
