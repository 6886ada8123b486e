"""The ``proxy`` backend: QE3 and the PCE behind an upstream AESM socket.

The daemon keeps its own protocol handling, access control, limits, metrics
and drain, and quotes through an upstream that speaks the same protocol: the
host's Intel aesmd, or another quote helper. Each backend call is one AESM
request on a new upstream connection (one request per connection, aesm-wire.md
section 3), and the upstream's answer is relayed with the same meaning: its
``errorCode`` unchanged (:attr:`QuoteError.aesm_code`), its quote bytes
(trimmed to the quote's own length, which the daemon pads to the client's
``buf_size`` again) and its filled-in ``qe_report_info``.

When the upstream cannot be used (no socket, refused, no answer within
``timeout``, closed early, a frame that does not decode or is of the wrong
kind) the client gets AESM_SERVICE_UNAVAILABLE (30), which Intel's client turns
into ``SGX_ERROR_SERVICE_UNAVAILABLE`` (0x4001), exactly what it reports when
it cannot reach aesmd itself (section 7.2). The event is counted through
``on_failure`` and logged, and :meth:`ProxyBackend.healthy` turns false until
an exchange succeeds again.

Only the quote-ex ECDSA path is relayed: the attestation key ids offered are
Intel's default ECDSA P-256 id (what an ECDSA-only aesmd offers), and legacy
EPID or launch requests are answered by the daemon itself (service
unavailable), as for every backend.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sgx_quote_helper._logging import log_event
from sgx_quote_helper.aesm import (
    CLIENT_TIMEOUT_MS,
    FRAME_HEADER_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    PUB_KEY_ID_SIZE,
    QE_REPORT_INFO_SIZE,
    TARGET_INFO_SIZE,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumRequest,
    InitQuoteExRequest,
    InitQuoteExResponse,
    MessageKind,
    Request,
    Response,
    decode_frame_header,
    decode_response,
    frame_request,
)
from sgx_quote_helper.backends._base import (
    BackendCall,
    BackendFactory,
    BackendInfo,
    BackendOptions,
    InitQuoteResult,
    QuoteError,
    QuoteResult,
)
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError, UsageError
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    AesmError,
    AttKeyId,
    AttKeyIdExt,
    QeReportInfo,
    Quote3Error,
    TargetInfo,
    quote3_to_aesm,
)

_log = logging.getLogger("sgx_quote_helper.backends.proxy")

#: Seconds the whole upstream exchange (connect, send, receive) may take. Below
#: Intel's client's own 15 s read timeout (aesm-wire.md section 7.3), so a
#: client behind the proxy gets "service unavailable" rather than timing out.
DEFAULT_UPSTREAM_TIMEOUT = 10.0

#: Why an upstream exchange failed (the ``reason`` of the metric and the log).
FAILURE_REASONS = ("unreachable", "timeout", "closed", "malformed")

# Offset of the u32 signature_data_len in a v3 quote, and the fixed part's size
# (aesm-wire.md section 10, ``sgx_quote3_t``).
_QUOTE_SIG_LEN_OFFSET = 432
_QUOTE_FIXED_SIZE = 436

_R = TypeVar("_R", bound=Response)


class UpstreamFailure(SgxQuoteHelperError):
    """An exchange with the upstream that produced no usable reply (internal:
    it becomes a :class:`QuoteError` with AESM_SERVICE_UNAVAILABLE)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _aesm_to_quote3(code: int) -> int:
    """The ``quote3_error_t`` whose AESM code is ``code`` (for diagnostics only).

    Intel's table maps 0xE001..0xE01A one-to-one onto AESM codes; the codes a
    service answers on its own (30 service unavailable, 18 busy) have DCAP
    counterparts too (``sgx_status_to_quote3_error``).
    """
    if code == AesmError.SERVICE_UNAVAILABLE:
        return int(Quote3Error.SERVICE_UNAVAILABLE)
    if code in (AesmError.BUSY, AesmError.BACKEND_SERVER_BUSY):
        return int(Quote3Error.ERROR_BUSY)
    for status in Quote3Error:
        if 0xE001 <= status <= 0xE01A and quote3_to_aesm(status) == code:
            return int(status)
    return int(Quote3Error.ERROR_UNEXPECTED)


class ProxyBackend:
    """:class:`~sgx_quote_helper.backends.QuoteBackend` relaying to an upstream AESM.

    Thread-safe: every call opens its own upstream connection, so the daemon's
    worker threads may call it concurrently (the upstream serialises its QE).
    """

    def __init__(
        self,
        upstream: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_UPSTREAM_TIMEOUT,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"the upstream timeout must be positive, got {timeout}")
        self.upstream = Path(upstream)
        self.timeout = timeout
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._healthy = False
        self._quote_size: int | None = None
        self._key_id_ext = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()

    # -- QuoteBackend --------------------------------------------------------

    def info(self) -> BackendInfo:
        # The QE/PCE SVNs are the upstream's; they appear in its quotes' headers
        # but no AESM request reports them, so 0 stands for "not known here".
        return BackendInfo(name="proxy", qe_svn=0, pce_svn=0, simulated=False)

    def may_block(self, call: BackendCall) -> bool:
        """Every call is a round trip to the upstream: a worker thread."""
        return True

    def supported_att_key_ids(self) -> list[AttKeyIdExt]:
        return [DEFAULT_ECDSA_ATT_KEY_ID]

    def init_quote(self, att_key_id: AttKeyId) -> InitQuoteResult:
        reply = self._call(
            InitQuoteExRequest(
                att_key_id=self._wire_key_id(att_key_id),
                b_pub_key_id=True,
                buf_size=PUB_KEY_ID_SIZE,
                timeout=CLIENT_TIMEOUT_MS,
            ),
            InitQuoteExResponse,
        )
        self._check_code(reply.error_code, "InitQuoteEx")
        target_info = reply.target_info
        if target_info is None or len(target_info) != TARGET_INFO_SIZE:
            raise self._garbage(f"InitQuoteEx reply without a {TARGET_INFO_SIZE}-byte target_info")
        pub_key_id = reply.pub_key_id
        if pub_key_id is not None and len(pub_key_id) != PUB_KEY_ID_SIZE:
            raise self._garbage(f"InitQuoteEx reply with a {len(pub_key_id)}-byte pub_key_id")
        return InitQuoteResult(
            target_info=TargetInfo.from_bytes(target_info), pub_key_id=pub_key_id
        )

    def quote_size(self, att_key_id: AttKeyId) -> int:
        reply = self._call(
            GetQuoteSizeExRequest(
                att_key_id=self._wire_key_id(att_key_id), timeout=CLIENT_TIMEOUT_MS
            ),
            GetQuoteSizeExResponse,
        )
        self._check_code(reply.error_code, "GetQuoteSizeEx")
        size = reply.quote_size
        if not size or size < _QUOTE_FIXED_SIZE:
            raise self._garbage(f"GetQuoteSizeEx reply with quote_size {size}")
        self._quote_size = size
        return size

    def get_quote(
        self, report: bytes, att_key_id: AttKeyId, qe_report_info: QeReportInfo | None
    ) -> QuoteResult:
        sent_info = qe_report_info.to_bytes() if qe_report_info is not None else None
        buf_size = self._quote_size or self.quote_size(att_key_id)
        reply = self._get_quote(report, att_key_id, sent_info, buf_size)
        if reply.error_code == AesmError.PARAMETER_ERROR:
            # The upstream's quotes may have grown (a longer PCK chain after a
            # TCB recovery): ask for the size again and retry once.
            fresh = self.quote_size(att_key_id)
            if fresh != buf_size:
                reply = self._get_quote(report, att_key_id, sent_info, fresh)
        self._check_code(reply.error_code, "GetQuoteEx")
        quote = reply.quote or b""
        if len(quote) < _QUOTE_FIXED_SIZE:
            raise self._garbage(f"GetQuoteEx reply with a {len(quote)}-byte quote")
        length = _QUOTE_FIXED_SIZE + int.from_bytes(
            quote[_QUOTE_SIG_LEN_OFFSET:_QUOTE_FIXED_SIZE], "little"
        )
        if length > len(quote):
            raise self._garbage(
                f"GetQuoteEx reply whose quote claims {length} bytes in a {len(quote)}-byte buffer"
            )
        filled: QeReportInfo | None = None
        if sent_info is not None:
            echoed = reply.qe_report_info
            if echoed is None or len(echoed) != QE_REPORT_INFO_SIZE:
                raise self._garbage("GetQuoteEx reply without the 960-byte qe_report_info")
            filled = QeReportInfo.from_bytes(echoed)
        return QuoteResult(quote=quote[:length], qe_report_info=filled)

    def close(self) -> None:
        """Nothing to release: every exchange used its own connection."""

    # -- BackendHealth ---------------------------------------------------------

    def healthy(self) -> bool:
        return self._healthy

    def probe(self) -> None:
        """One cheap request (GetSupportedAttKeyIDNum, no QE involved)."""
        try:
            self._exchange(GetSupportedAttKeyIDNumRequest(timeout=CLIENT_TIMEOUT_MS))
        except QuoteError:
            return  # counted, logged and reflected in healthy() by _exchange

    # -- helpers ---------------------------------------------------------------

    def _wire_key_id(self, att_key_id: AttKeyId) -> bytes:
        if att_key_id is DEFAULT_ECDSA_ATT_KEY_ID.base:
            return self._key_id_ext
        return AttKeyIdExt(base=att_key_id).to_bytes()

    def _get_quote(
        self, report: bytes, att_key_id: AttKeyId, qe_report_info: bytes | None, buf_size: int
    ) -> GetQuoteExResponse:
        return self._call(
            GetQuoteExRequest(
                report=report,
                att_key_id=self._wire_key_id(att_key_id),
                qe_report_info=qe_report_info,
                buf_size=buf_size,
                timeout=CLIENT_TIMEOUT_MS,
            ),
            GetQuoteExResponse,
        )

    def _check_code(self, code: int, call: str) -> None:
        """Relay a non-zero upstream ``errorCode`` as it is."""
        if code == 0:
            return
        try:
            name = AesmError(code).name
        except ValueError:
            name = "not an aesm_error_t"
        raise QuoteError(
            _aesm_to_quote3(code),
            f"the upstream AESM at {self.upstream} answered {call} with AESM error {code} "
            f"({name}); it is relayed unchanged",
            aesm_code=code,
        )

    def _garbage(self, detail: str) -> QuoteError:
        return self._failed(UpstreamFailure("malformed", detail))

    def _call(self, request: Request, expected: type[_R]) -> _R:
        reply = self._exchange(request)
        if not isinstance(reply, expected):  # pragma: no cover - decode_response checks the kind
            raise self._garbage(f"a {type(reply).__name__} in reply to {request.kind.name}")
        return reply

    def _exchange(self, request: Request) -> Response:
        """Send one request on a new connection and decode the reply, within ``timeout``."""
        deadline = time.monotonic() + self.timeout
        try:
            body = self._transact(frame_request(request), deadline)
            try:
                reply = decode_response(body, MessageKind(request.kind))
            except ParseError as exc:
                raise UpstreamFailure("malformed", f"undecodable reply: {exc}") from None
        except UpstreamFailure as failure:
            raise self._failed(failure) from None
        if not self._healthy:
            with self._lock:
                if not self._healthy:
                    self._healthy = True
                    log_event(_log, logging.INFO, "upstream.available", upstream=str(self.upstream))
        return reply

    def _transact(self, frame: bytes, deadline: float) -> bytes:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _step(sock, deadline, "connect", lambda: sock.connect(str(self.upstream)))
            _step(sock, deadline, "send", lambda: sock.sendall(frame))
            header = _read_exactly(sock, FRAME_HEADER_SIZE, deadline)
            try:
                length = decode_frame_header(header, max_body_size=MAX_RESPONSE_BODY_SIZE)
            except ParseError as exc:
                raise UpstreamFailure("malformed", str(exc)) from None
            return _read_exactly(sock, length, deadline)
        finally:
            sock.close()

    def _failed(self, failure: UpstreamFailure) -> QuoteError:
        with self._lock:
            was_healthy, self._healthy = self._healthy, False
        if self._on_failure is not None:
            self._on_failure(failure.reason)
        log_event(
            _log,
            logging.WARNING if was_healthy else logging.INFO,
            "upstream.failed",
            upstream=str(self.upstream),
            reason=failure.reason,
            detail=failure.detail,
        )
        return QuoteError(
            Quote3Error.SERVICE_UNAVAILABLE,
            f"the upstream AESM at {self.upstream} is unusable ({failure.reason}: "
            f"{failure.detail}); check that it runs and that --upstream names its socket",
            aesm_code=AesmError.SERVICE_UNAVAILABLE,
        )


def _step(sock: socket.socket, deadline: float, what: str, action: Callable[[], None]) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UpstreamFailure("timeout", f"no time left to {what}")
    sock.settimeout(remaining)
    try:
        action()
    except TimeoutError:
        raise UpstreamFailure("timeout", f"{what} took longer than the upstream timeout") from None
    except (BrokenPipeError, ConnectionResetError) as exc:
        if what == "connect":
            raise UpstreamFailure("unreachable", f"{what}: {exc.strerror}") from None
        raise UpstreamFailure("closed", f"the upstream closed the connection ({what})") from None
    except OSError as exc:
        raise UpstreamFailure("unreachable", f"{what}: {exc.strerror or exc}") from None


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    received = bytearray()
    while len(received) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamFailure("timeout", "no complete reply within the upstream timeout")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(size - len(received), 1 << 16))
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", "no complete reply within the upstream timeout"
            ) from None
        except OSError as exc:
            raise UpstreamFailure("closed", f"receive: {exc.strerror or exc}") from None
        if not chunk:
            raise UpstreamFailure(
                "closed",
                f"the upstream closed the connection after {len(received)} of {size} bytes",
            )
        received += chunk
    return bytes(received)


def _missing_options(options: BackendOptions) -> list[str]:
    return ["--upstream PATH"] if options.upstream is None else []


def _create(options: BackendOptions) -> ProxyBackend:
    if options.upstream is None:
        raise UsageError("the proxy backend needs --upstream PATH (the upstream AESM socket)")
    return ProxyBackend(
        options.upstream, timeout=options.upstream_timeout, on_failure=options.on_upstream_failure
    )


PROXY_BACKEND = BackendFactory(
    name="proxy",
    summary="an upstream AESM socket: the host's aesmd or another quote helper (needs --upstream)",
    missing_options=_missing_options,
    create=_create,
)

__all__ = ["DEFAULT_UPSTREAM_TIMEOUT", "FAILURE_REASONS", "PROXY_BACKEND", "ProxyBackend"]
