"""The AESM socket, sync and asyncio, and the drivers that run sans-I/O flows.

The client's logic (what to send, how to read a reply, when to retry) is
written once as *flows*: generators that yield an :class:`Exchange` (send this
request, give me the reply) or a :class:`Sleep`, and return a result. A sync
driver (:func:`run_flow`) and an asyncio driver (:func:`run_flow_async`) carry
them out, so both APIs share every rule; only the socket code differs.

Transport outcomes follow Intel's ``libsgx_quote_ex`` (spec aesm-wire.md
sections 3 and 7.2): one connection per request; ``connect()`` failure is
``SGX_ERROR_SERVICE_UNAVAILABLE`` (0x4001); a read or write that exceeds the
timeout is ``SGX_ERROR_SERVICE_TIMEOUT`` (0x4002); EOF or a short read,
including the daemon closing without a reply, is ``SGX_ERROR_UNEXPECTED``
(0x0001), and so is a reply that does not parse. The timeout (15 s by default,
``IPC_LATENCY``) applies to the write, to the read of the length and to the
read of the body, each on its own. ``connect()`` is not timed by Intel (its
client connects in blocking mode and so waits while the daemon's listen
backlog is full); here it waits likewise, in the kernel, but at most the same
timeout: a flood of connections from another process then delays a quote
instead of failing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
import struct
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeAlias, TypeVar

from sgx_quote_helper.aesm import (
    FRAME_HEADER_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    AesmProtocolError,
    MessageKind,
    Request,
    Response,
    decode_frame_header,
    decode_response,
    frame_request,
)
from sgx_quote_helper.client._errors import (
    InvalidParameterError,
    QuoteClientError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    UnexpectedError,
)
from sgx_quote_helper.client._mode import (
    DEFAULT_SOCKET_PATH,
    SOCKET_MOUNT_ADVICE,
    check_socket_path,
)
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.sgx import QuoteExCall

#: Intel's per-read/write budget (``IPC_LATENCY``, 15000 ms in release builds).
DEFAULT_TIMEOUT = 15.0
#: The largest timeout, in seconds: what the request's u32 millisecond ``timeout``
#: field holds (about 49.7 days). The socket layer takes at most about 292 years
#: (a time_t of nanoseconds); infinity and NaN it does not take at all.
MAX_TIMEOUT = ((1 << 32) - 1) / 1000


def check_timeout(timeout: object) -> float:
    """``timeout`` in seconds as a float, if it is a number above 0 and at most
    ``MAX_TIMEOUT``; anything else is :class:`InvalidParameterError`."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidParameterError(
            f"timeout must be a number of seconds, got {type(timeout).__name__}"
        )
    if not 0 < timeout <= MAX_TIMEOUT:  # NaN is refused too
        raise InvalidParameterError(
            f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:.3f}, "
            f"got {timeout!r}"
        )
    return float(timeout)


T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Exchange:
    """Send ``request`` on a new connection and return the decoded reply."""

    call: QuoteExCall
    request: Request

    @property
    def kind(self) -> MessageKind:
        return self.request.kind


@dataclass(frozen=True)
class Sleep:
    """Wait before the next step (retry back-off)."""

    seconds: float


Step: TypeAlias = Exchange | Sleep
#: A sans-I/O client flow: yields steps, is sent the reply (or ``None`` after a
#: sleep), returns ``T``. Transport errors are thrown into it.
Flow: TypeAlias = Generator[Step, Response | None, T]


# ---- diagnosis of transport failures ---------------------------------------------


def _identity() -> str:
    groups = ",".join(str(g) for g in os.getgroups())
    return f"uid {os.getuid()}, gid {os.getgid()}, groups [{groups}]"


_CLOSED_HINTS = (
    "The daemon closes a connection without replying when it refuses the peer: a quote "
    "helper started with --allow-uid/--allow-gid serves only those ids, and this process "
    "runs as {identity}; it also does so at its connection limit and while shutting down.",
    "It also closes without replying to a malformed or oversized request (what Intel's "
    "aesmd does); this client sends only well-formed quote-ex requests.",
    "See the daemon's log ('peer.rejected' or 'request.dropped') and its metrics "
    "sgx_quote_helper_rejected_peers_total and sgx_quote_helper_dropped_requests_total.",
)


def _where(path: str) -> str:
    return f"out-of-process, AESM socket {path}"


def _socket_facts(path: str) -> str:
    try:
        info = os.stat(path)
    except PermissionError:
        return (
            "a directory above it is not searchable by this process, so it cannot even be stat()ed"
        )
    except OSError as exc:
        return f"stat() fails: {exc.strerror}"
    kind = "socket" if stat.S_ISSOCK(info.st_mode) else "not a socket"
    return f"{kind}, {_mode_owner(info)}"


def _mode_owner(info: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(info.st_mode):04o}, owner {info.st_uid}:{info.st_gid}"


#: What a path that is not a socket is, for the message (``S_ISDIR`` is told apart before).
_FILE_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _refused(path: str, came_from: str) -> tuple[str, list[str]]:
    """ECONNREFUSED: Linux also says it for a path that is not a socket at all."""
    try:
        info = os.stat(path)
    except OSError:
        info = None  # gone since connect(): a daemon stopping and removing it
    if info is not None and stat.S_ISDIR(info.st_mode):
        return f"{path} is a directory, not a socket", [
            f"A directory where the socket belongs is what mounting the socket *file* leaves "
            f"when it did not exist on the host yet (docker -v {path}:{path}, or a hostPath "
            "volume of the socket path): the runtime creates an empty directory there, and "
            "the daemon cannot bind its socket. On the host, stop the daemon, remove that "
            "empty directory and start the daemon again.",
            SOCKET_MOUNT_ADVICE,
            f"If the directory is meant to be there, this client was pointed at it{came_from}: "
            "SGX_AESM_ADDR=unix:/path/to/aesm.socket names the socket itself.",
        ]
    if info is not None and not stat.S_ISSOCK(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a socket")
        return f"{path} is {kind}, not a socket", [
            f"Nothing can connect to it ({_mode_owner(info)}); the quote helper never "
            "creates such a file, and refuses to start on a --socket path that is one.",
            f"Check that {path} is the quote helper's socket: this client uses it{came_from}, "
            "and SGX_AESM_ADDR=unix:/path/to/socket chooses another. If the file is left "
            "over, remove it and (re)start the daemon, which creates its socket there.",
        ]
    if info is None:
        return f"connection refused on {path}", [
            f"Nobody accepted connections on {path}, and it is gone now: the daemon is "
            "stopping or restarting. Check the quote helper's pod or service status and "
            "its log.",
        ]
    return f"connection refused on {path}", [
        f"The file at {path} is a socket ({_mode_owner(info)}), but nobody accepts "
        "connections on it: the daemon has exited and left a stale socket, or is "
        "restarting. Check the quote helper's pod or service status and its log.",
    ]


def connect_error(path: str, exc: OSError, origin: str | None) -> ServiceUnavailableError:
    """The 0x4001 error for a failed ``connect()``, with what to check for its errno."""
    came_from = f" ({origin})" if origin else ""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        message = f"no AESM socket at {path}"
        hints = [
            "Is the quote helper (sgx-quote-helper serve) or aesmd running on this node?",
            SOCKET_MOUNT_ADVICE,
            f"Is {path} the path the daemon serves (serve --socket)? This client uses it"
            f"{came_from}; set SGX_AESM_ADDR=unix:/path/to/socket to choose another.",
        ]
    elif code in (errno.EACCES, errno.EPERM):
        message = f"permission denied connecting to {path}"
        hints = [
            f"Connecting needs write permission on the socket and search (x) permission on "
            f"every directory above it. The socket is {_socket_facts(path)}; this process "
            f"runs as {_identity()}.",
            "The daemon sets the socket's mode and owner with --socket-mode, --socket-owner "
            "and --socket-group (aesmd uses 0777): run the application with a uid or group "
            "allowed there, or widen the mode.",
        ]
    elif code == errno.ECONNREFUSED:
        message, hints = _refused(path, came_from)
    elif code in (errno.EAGAIN, errno.EWOULDBLOCK):
        message = f"the listen backlog of {path} stayed full for the whole timeout"
        hints = [
            "The daemon is not accepting connections fast enough (overloaded, stuck, or "
            "flooded with connections by another process): check its /readyz, connection, "
            "eviction and latency metrics and its log.",
        ]
    else:
        detail = exc.strerror or str(exc)
        message = f"cannot connect to {path}: {detail}"
        hints = [
            f"Check that {path} is the quote helper's socket{came_from} and that this "
            "process may reach it."
        ]
    return ServiceUnavailableError(message, where=_where(path), hints=hints)


def _closed_without_reply(path: str, what: str) -> UnexpectedError:
    hints = [hint.format(identity=_identity()) for hint in _CLOSED_HINTS]
    return UnexpectedError(
        f"the daemon on {path} closed the connection {what}", where=_where(path), hints=hints
    )


def _truncated(path: str, got: int, wanted: int, part: str) -> UnexpectedError:
    return UnexpectedError(
        f"the reply from {path} ended after {got} of {wanted} {part} bytes (short read)",
        where=_where(path),
        hints=[
            "The daemon stopped or crashed while answering, or the peer is not an AESM "
            "service; see the daemon's log."
        ],
    )


def _timed_out(path: str, timeout: float, what: str) -> ServiceTimeoutError:
    return ServiceTimeoutError(
        f"no progress {what} on {path} within {timeout:g} s",
        where=_where(path),
        hints=[
            "The daemon accepted the connection but did not answer in time: check that it is "
            "not stuck or overloaded (/readyz, request-latency metrics, its log), and whether "
            "a slow PCCS stalls its first init after start.",
            f"The budget is {timeout:g} s per read or write (Intel's client uses 15 s).",
        ],
    )


def _bad_reply(path: str, exc: AesmProtocolError) -> UnexpectedError:
    return UnexpectedError(
        f"unusable reply from {path}: {exc.message}",
        where=_where(path),
        hints=[
            "The other end does not speak the AESM protocol as Intel's aesmd does (a reply "
            "that does not parse, of the wrong type, or too long): check that the socket "
            "belongs to the quote helper or aesmd."
        ],
    )


class _ShortRead(SgxQuoteHelperError):
    """EOF inside a reply; turned into an ``UnexpectedError`` before it reaches a caller."""

    def __init__(self, got: int, wanted: int) -> None:
        super().__init__(f"short read: {got} of {wanted} bytes")
        self.got = got
        self.wanted = wanted


class _TransportBase:
    """The socket and timeout both transports use: one connection per request."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] = DEFAULT_SOCKET_PATH,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        origin: str | None = None,
    ) -> None:
        self.timeout = check_timeout(timeout)
        self.socket_path = check_socket_path(socket_path)
        self.origin = origin

    @property
    def where(self) -> str:
        return _where(self.socket_path)

    def _reply_failure(
        self, stage: str, exc: BaseException
    ) -> tuple[QuoteClientError, BaseException | None]:
        """The client error for ``exc``, raised while ``stage``, and the cause to chain."""
        path, timeout = self.socket_path, self.timeout
        if isinstance(exc, TimeoutError):
            return _timed_out(path, timeout, stage), None
        if isinstance(exc, (_ShortRead, asyncio.IncompleteReadError)):
            if isinstance(exc, _ShortRead):
                got, wanted = exc.got, exc.wanted
            else:
                got, wanted = len(exc.partial), exc.expected or 0
            if stage == "waiting for the reply" and got == 0:
                return _closed_without_reply(path, "without replying"), None
            part = "length" if stage == "waiting for the reply" else "body"
            return _truncated(path, got, wanted, part), None
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            return _closed_without_reply(path, f"while {stage}"), None
        if isinstance(exc, AesmProtocolError):
            return _bad_reply(path, exc), exc
        return UnexpectedError(
            f"socket error on {path} while {stage}: {exc}", where=self.where
        ), exc

    def _connect_failure(self, exc: OSError) -> tuple[QuoteClientError, BaseException | None]:
        """The client error for a failed (or timed out) connect, and the cause to chain."""
        if isinstance(exc, TimeoutError):
            timed_out = OSError(errno.EAGAIN, "connect timed out")
            return connect_error(self.socket_path, timed_out, self.origin), None
        return connect_error(self.socket_path, exc, self.origin), exc

    def _decode(self, body: bytes, step: Exchange) -> Response:
        try:
            return decode_response(body, step.kind)
        except AesmProtocolError as exc:
            raise _bad_reply(self.socket_path, exc) from exc


#: What can go wrong on the socket once connected, mapped by ``_reply_failure``.
_REPLY_FAILURES = (_ShortRead, asyncio.IncompleteReadError, AesmProtocolError, OSError)


# ---- connecting ----------------------------------------------------------------------


def connect_within(sock: socket.socket, path: str, timeout: float) -> None:
    """Blocking ``connect()`` that waits at most ``timeout`` for room in the backlog.

    A non-blocking connect to a Unix socket whose listen backlog is full fails
    at once with EAGAIN. A blocking one sleeps in the kernel until the server
    accepts (what Intel's client does, without a bound); ``SO_SNDTIMEO`` bounds
    that sleep, after which connect fails with EAGAIN.
    """
    sock.setblocking(True)
    # At least 1 us: an SO_SNDTIMEO of 0 would mean no bound at all.
    micros = max(1, round(timeout * 1_000_000))
    bound = struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, bound)
    try:
        sock.connect(path)
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("@ll", 0, 0))


# ---- sync transport ------------------------------------------------------------------


def _recv_exactly(sock: socket.socket, size: int, timeout: float) -> bytes:
    """``size`` bytes, within ``timeout`` seconds for the whole read."""
    deadline = time.monotonic() + timeout
    chunks = bytearray()
    while len(chunks) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(min(size - len(chunks), 65536))
        if not chunk:
            raise _ShortRead(len(chunks), size)
        chunks += chunk
    return bytes(chunks)


class SyncTransport(_TransportBase):
    """One blocking Unix-socket connection per request."""

    def exchange(self, step: Exchange) -> Response:
        path, timeout = self.socket_path, self.timeout
        frame = frame_request(step.request)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                connect_within(sock, path, timeout)
            except OSError as exc:
                error, cause = self._connect_failure(exc)
                raise error from cause
            sock.settimeout(timeout)
            stage = "sending the request"
            try:
                sock.sendall(frame)  # the send is bounded by the socket timeout
                stage = "waiting for the reply"
                header = _recv_exactly(sock, FRAME_HEADER_SIZE, timeout)
                length = decode_frame_header(header, max_body_size=MAX_RESPONSE_BODY_SIZE)
                stage = "reading the reply"
                body = _recv_exactly(sock, length, timeout)
            except _REPLY_FAILURES as exc:
                error, cause = self._reply_failure(stage, exc)
                raise error from cause
        finally:
            sock.close()
        return self._decode(body, step)


# ---- asyncio transport ---------------------------------------------------------------


class AsyncTransport(_TransportBase):
    """One asyncio Unix-socket connection per request."""

    async def exchange(self, step: Exchange) -> Response:
        path, timeout = self.socket_path, self.timeout
        frame = frame_request(step.request)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:
                # The backlog is full: wait for room in the kernel, as the
                # sync transport does, in a thread (asyncio would take EAGAIN
                # for a connect in progress and report success).
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, connect_within, sock, path, timeout)
                sock.setblocking(False)
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except OSError as exc:
            sock.close()
            error, cause = self._connect_failure(exc)
            raise error from cause
        except BaseException:
            sock.close()
            raise
        stage = "sending the request"
        try:
            writer.write(frame)
            await asyncio.wait_for(writer.drain(), timeout)
            stage = "waiting for the reply"
            header = await asyncio.wait_for(reader.readexactly(FRAME_HEADER_SIZE), timeout)
            length = decode_frame_header(header, max_body_size=MAX_RESPONSE_BODY_SIZE)
            stage = "reading the reply"
            body = await asyncio.wait_for(reader.readexactly(length), timeout)
        except _REPLY_FAILURES as exc:
            error, cause = self._reply_failure(stage, exc)
            raise error from cause
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return self._decode(body, step)


# ---- drivers -------------------------------------------------------------------------


class Transport(Protocol):
    """What :func:`run_flow` needs: blocking request/reply exchanges."""

    @property
    def where(self) -> str: ...

    def exchange(self, step: Exchange) -> Response: ...


class AsyncTransportLike(Protocol):
    """What :func:`run_flow_async` needs."""

    @property
    def where(self) -> str: ...

    async def exchange(self, step: Exchange) -> Response: ...


@dataclass(frozen=True)
class _Done(Generic[T]):
    """The flow returned ``value``."""

    value: T


#: What the last step of a flow came to: a reply, ``None`` after a sleep, or a
#: transport error to throw into the flow.
_Outcome: TypeAlias = Response | QuoteClientError | None


def _next_step(flow: Flow[T], outcome: _Outcome, where: str) -> Step | _Done[T]:
    """Hand ``outcome`` to ``flow``: its next step, or what it returned.

    An error the flow lets out is annotated with ``where`` and raised.
    """
    try:
        if isinstance(outcome, QuoteClientError):
            return flow.throw(outcome)
        return flow.send(outcome)
    except StopIteration as stop:
        return _Done(stop.value)
    except QuoteClientError as exc:
        if exc.where is None:
            exc.where = where
        raise


def _exchange_failed(exc: QuoteClientError, step: Exchange) -> QuoteClientError:
    """A transport error of ``step``, marked with the call it failed (unless it names one)."""
    if exc.call is None:
        exc.call = step.call
    return exc


def run_flow(flow: Flow[T], transport: Transport) -> T:
    """Carry out ``flow`` with blocking I/O."""
    outcome: _Outcome = None
    while True:
        step = _next_step(flow, outcome, transport.where)
        if isinstance(step, _Done):
            return step.value
        outcome = None
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            continue
        try:
            outcome = transport.exchange(step)
        except QuoteClientError as exc:
            outcome = _exchange_failed(exc, step)


async def run_flow_async(flow: Flow[T], transport: AsyncTransportLike) -> T:
    """Carry out ``flow`` with asyncio I/O."""
    outcome: _Outcome = None
    while True:
        step = _next_step(flow, outcome, transport.where)
        if isinstance(step, _Done):
            return step.value
        outcome = None
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            continue
        try:
            outcome = await transport.exchange(step)
        except QuoteClientError as exc:
            outcome = _exchange_failed(exc, step)


def expect(response: Response | None, cls: type[R]) -> R:
    """Narrow a flow's received value to the reply class its exchange asked for."""
    if not isinstance(response, cls):  # decode_response guarantees it; a driver bug otherwise
        raise UnexpectedError(f"internal error: expected a {cls.__name__}, got {response!r}")
    return response
