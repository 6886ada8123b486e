"""The low-level API: one function per ``libsgx_quote_ex`` call, same semantics.

Each call is a flow (see :mod:`._transport`) built from the sans-I/O AESM
codec; :class:`AesmClient` runs them with blocking sockets and
:class:`AsyncAesmClient` with asyncio. Client-side checks, the request sent and
what is taken from the reply follow spec aesm-wire.md section 7.1; reply codes
become ``sgx_status_t`` exactly as Intel's client maps them (``aesm_to_sgx``,
section 12.4), raised as :class:`~sgx_quote_helper.client.QuoteClientError`
leaves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeAlias

from sgx_quote_helper.aesm import (
    ATT_KEY_ID_SIZE,
    CLIENT_TIMEOUT_MS,
    PUB_KEY_ID_SIZE,
    QE_REPORT_INFO_SIZE,
    REPORT_SIZE,
    TARGET_INFO_SIZE,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumRequest,
    GetSupportedAttKeyIDNumResponse,
    GetSupportedAttKeyIDsRequest,
    GetSupportedAttKeyIDsResponse,
    InitQuoteExRequest,
    InitQuoteExResponse,
    SelectAttKeyIDRequest,
    SelectAttKeyIDResponse,
)
from sgx_quote_helper.client._errors import (
    InvalidParameterError,
    UnexpectedError,
    aesm_code_text,
    aesm_hints,
    error_class_for,
)
from sgx_quote_helper.client._mode import resolve_socket_path
from sgx_quote_helper.client._transport import (
    DEFAULT_TIMEOUT,
    AsyncTransport,
    Exchange,
    Flow,
    SyncTransport,
    check_timeout,
    expect,
    run_flow,
    run_flow_async,
)
from sgx_quote_helper.sgx import (
    AttKeyIdExt,
    QeReportInfo,
    QuoteExCall,
    Report,
    TargetInfo,
    aesm_to_sgx,
)

_U32_MAX = (1 << 32) - 1

#: An attestation key id: the 256-byte ``sgx_att_key_id_ext_t``, raw or parsed.
AttKeyIdLike: TypeAlias = bytes | bytearray | memoryview | AttKeyIdExt


@dataclass(frozen=True)
class InitQuoteExResult:
    """What ``sgx_init_quote_ex`` fills in.

    ``target_info`` is all zeros for the size query (``pub_key_id=False``);
    ``pub_key_id`` is ``None`` then, and also when the reply's key id does not
    have the announced size (Intel's client leaves its buffer untouched).
    """

    target_info: TargetInfo
    pub_key_id_size: int
    pub_key_id: bytes | None


@dataclass(frozen=True)
class GetQuoteExResult:
    """What ``sgx_get_quote_ex`` fills in.

    ``quote`` is the caller's whole buffer of ``buf_size`` bytes, zero-padded,
    as the daemon sends it (a reply of another length is refused);
    :func:`~sgx_quote_helper.client.trim_quote` gives the real quote.
    ``qe_report_info`` is the 960-byte buffer after the call (``None`` if none
    was passed).
    """

    quote: bytes
    qe_report_info: bytes | None


def timeout_ms(timeout: float) -> int:
    """The request's ``timeout`` field: the client's budget in ms, as Intel sends it."""
    return max(1, min(_U32_MAX, round(timeout * 1000)))


def _is_int_in(value: object, low: int, high: int) -> bool:
    """Whether ``value`` is an ``int`` (not a ``bool``) in ``low..high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _invalid(call: QuoteExCall, message: str) -> InvalidParameterError:
    return InvalidParameterError(
        message,
        call=call,
        hints=[
            "The client refused the argument before sending anything (as Intel's client "
            "does): REPORT 432 bytes, att_key_id 256, qe_report_info 960, buffer sizes "
            "above 0 and within a u32."
        ],
    )


#: What a byte-string argument may be: converted to ``bytes`` once, at the boundary.
BytesLike: TypeAlias = bytes | bytearray | memoryview


def bytes_arg(value: object, size: int | None, name: str, call: QuoteExCall) -> bytes:
    """``value`` as ``bytes`` if it is bytes-like (of ``size`` bytes, when given).

    Anything else is refused by its type, before it is converted (``bytes(432)``
    is 432 zeros, ``bytes(10**9)`` a gigabyte).
    """
    exact = f"{size} bytes" if size is not None else "bytes"
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _invalid(
            call,
            f"{name} must be {exact} (bytes, bytearray or memoryview), got {type(value).__name__}",
        )
    got = value.nbytes if isinstance(value, memoryview) else len(value)
    if size is not None and got != size:
        raise _invalid(call, f"{name} must be {size} bytes, got {got}")
    return bytes(value)


def _key_bytes(att_key_id: AttKeyIdLike, call: QuoteExCall) -> bytes:
    if isinstance(att_key_id, AttKeyIdExt):
        return att_key_id.to_bytes()
    return bytes_arg(att_key_id, ATT_KEY_ID_SIZE, "att_key_id", call)


def _sized(
    value: BytesLike | Report | QeReportInfo, size: int, name: str, call: QuoteExCall
) -> bytes:
    if isinstance(value, Report | QeReportInfo):
        return value.to_bytes()
    return bytes_arg(value, size, name, call)


def check_reply(call: QuoteExCall, error_code: int) -> None:
    """Raise the mapped error for a non-zero ``errorCode`` (``aesm_to_sgx``)."""
    if error_code == 0:
        return
    status = aesm_to_sgx(error_code, call)
    raise error_class_for(status)(
        f"the quoting service answered {aesm_code_text(error_code)}",
        sgx_status=status,
        call=call,
        aesm_error=error_code,
        hints=aesm_hints(error_code),
    )


def malformed_quote(detail: str) -> UnexpectedError:
    """``SGX_ERROR_UNEXPECTED`` for a successful GetQuoteEx whose quote buffer is not one.

    Intel's aesmd (and the quote helper) sends the caller's whole zero-padded
    buffer, exactly ``buf_size`` bytes, opening with a quote of ``436 + u32 at
    432`` bytes (spec aesm-wire.md sections 6.2 and 10). Intel's client would
    accept a shorter buffer and pad it; a quote cut short then reads as a
    short "quote" of zeros, so this client refuses it (Enarx checks the length
    the same way).
    """
    return UnexpectedError(
        f"the daemon sent a malformed quote: {detail}",
        call=QuoteExCall.GET_QUOTE_EX,
        hints=[
            "An AESM-compatible daemon answers GetQuoteEx with the whole zero-padded buffer "
            "of buf_size bytes, starting with the quote (436 bytes plus signature_data_len). "
            "The daemon on this socket is not AESM-compatible or has a bug: see its log and "
            "version. Do not use this reply as a quote."
        ],
    )


def _missing(call: QuoteExCall, what: str) -> UnexpectedError:
    return UnexpectedError(
        f"the reply reports success but {what}",
        call=call,
        hints=["The daemon is not AESM-compatible or has a bug; see its log and version."],
    )


# ---- one flow per call -----------------------------------------------------------------


def select_att_key_id_flow(
    att_key_id_list: BytesLike | None, *, timeout: int = CLIENT_TIMEOUT_MS
) -> Flow[bytes]:
    """``sgx_select_att_key_id``: the 256-byte id the service picks (from the list)."""
    call = QuoteExCall.SELECT_ATT_KEY_ID
    listing = None
    if att_key_id_list is not None:
        listing = bytes_arg(att_key_id_list, None, "att_key_id_list", call)
    request = SelectAttKeyIDRequest(listing or None, timeout=timeout)
    reply = expect((yield Exchange(call, request)), SelectAttKeyIDResponse)
    check_reply(call, reply.error_code)
    selected = reply.selected_att_key_id
    if selected is None or len(selected) != ATT_KEY_ID_SIZE:
        raise _missing(call, f"carries no {ATT_KEY_ID_SIZE}-byte selected_att_key_id")
    return selected


def init_quote_ex_flow(
    att_key_id: AttKeyIdLike,
    *,
    pub_key_id: bool,
    pub_key_id_size: int = PUB_KEY_ID_SIZE,
    timeout: int = CLIENT_TIMEOUT_MS,
) -> Flow[InitQuoteExResult]:
    """``sgx_init_quote_ex``: the size query (``pub_key_id=False``) or the real call.

    The real call asks for a ``pub_key_id_size``-byte key id (32 for ECDSA,
    the only size the service accepts).
    """
    call = QuoteExCall.INIT_QUOTE_EX
    key = _key_bytes(att_key_id, call)
    if not isinstance(pub_key_id, bool):
        raise _invalid(call, f"pub_key_id must be True or False, got {pub_key_id!r}")
    if pub_key_id and not _is_int_in(pub_key_id_size, 1, _U32_MAX - 1):
        raise _invalid(
            call, f"pub_key_id_size must be in 1..{_U32_MAX - 1}, got {pub_key_id_size!r}"
        )
    request = InitQuoteExRequest(
        att_key_id=key,
        b_pub_key_id=pub_key_id,
        buf_size=pub_key_id_size if pub_key_id else None,
        timeout=timeout,
    )
    reply = expect((yield Exchange(call, request)), InitQuoteExResponse)
    check_reply(call, reply.error_code)
    if reply.target_info is None or len(reply.target_info) != TARGET_INFO_SIZE:
        raise _missing(call, f"carries no {TARGET_INFO_SIZE}-byte target_info")
    size = reply.pub_key_id_size or 0
    key_id = reply.pub_key_id
    if not pub_key_id or key_id is None or len(key_id) != size or size > pub_key_id_size:
        key_id = None  # Intel's client copies it only under these conditions
    return InitQuoteExResult(TargetInfo.from_bytes(reply.target_info), size, key_id)


def get_quote_size_ex_flow(
    att_key_id: AttKeyIdLike, *, timeout: int = CLIENT_TIMEOUT_MS
) -> Flow[int]:
    """``sgx_get_quote_size_ex``; a reply without ``quote_size`` reads as 0, as in Intel's."""
    call = QuoteExCall.GET_QUOTE_SIZE_EX
    request = GetQuoteSizeExRequest(_key_bytes(att_key_id, call), timeout=timeout)
    reply = expect((yield Exchange(call, request)), GetQuoteSizeExResponse)
    check_reply(call, reply.error_code)
    return reply.quote_size or 0


def get_quote_ex_flow(
    report: BytesLike | Report,
    att_key_id: AttKeyIdLike,
    buf_size: int,
    qe_report_info: BytesLike | QeReportInfo | None = None,
    *,
    timeout: int = CLIENT_TIMEOUT_MS,
) -> Flow[GetQuoteExResult]:
    """``sgx_get_quote_ex`` into a buffer of ``buf_size`` bytes."""
    call = QuoteExCall.GET_QUOTE_EX
    raw_report = _sized(report, REPORT_SIZE, "report", call)
    key = _key_bytes(att_key_id, call)
    sent_info = (
        None
        if qe_report_info is None
        else _sized(qe_report_info, QE_REPORT_INFO_SIZE, "qe_report_info", call)
    )
    if not _is_int_in(buf_size, 1, _U32_MAX):
        raise _invalid(call, f"buf_size must be in 1..{_U32_MAX}, got {buf_size!r}")
    request = GetQuoteExRequest(raw_report, key, sent_info, buf_size, timeout=timeout)
    reply = expect((yield Exchange(call, request)), GetQuoteExResponse)
    check_reply(call, reply.error_code)
    quote = reply.quote
    if quote is None:
        raise _missing(call, "carries no quote")
    if len(quote) != buf_size:
        raise malformed_quote(
            f"a {len(quote)}-byte quote buffer for a {buf_size}-byte request (the reply "
            "carries the whole buffer, exactly buf_size bytes)"
        )
    info_after: bytes | None = None
    if sent_info is not None:
        echoed = reply.qe_report_info
        # C semantics: the reply is copied over the caller's buffer if it fits.
        if echoed is not None and len(echoed) <= QE_REPORT_INFO_SIZE:
            info_after = echoed + sent_info[len(echoed) :]
        else:
            info_after = sent_info
    return GetQuoteExResult(quote, info_after)


def get_supported_att_key_id_num_flow(*, timeout: int = CLIENT_TIMEOUT_MS) -> Flow[int]:
    """``sgx_get_supported_att_key_id_num``; a missing count reads as 0."""
    call = QuoteExCall.GET_SUPPORTED_ATT_KEY_ID_NUM
    request = GetSupportedAttKeyIDNumRequest(timeout=timeout)
    reply = expect((yield Exchange(call, request)), GetSupportedAttKeyIDNumResponse)
    check_reply(call, reply.error_code)
    return reply.att_key_id_num or 0


def get_supported_att_key_ids_flow(
    num: int, *, timeout: int = CLIENT_TIMEOUT_MS
) -> Flow[list[bytes]]:
    """``sgx_get_supported_att_key_ids``: ``num`` 256-byte ids (``buf_size = num * 256``)."""
    call = QuoteExCall.GET_SUPPORTED_ATT_KEY_IDS
    limit = _U32_MAX // ATT_KEY_ID_SIZE
    if not _is_int_in(num, 1, limit):
        raise _invalid(call, f"num must be in 1..{limit}, got {num!r}")
    request = GetSupportedAttKeyIDsRequest(num * ATT_KEY_ID_SIZE, timeout=timeout)
    reply = expect((yield Exchange(call, request)), GetSupportedAttKeyIDsResponse)
    check_reply(call, reply.error_code)
    ids = reply.att_key_ids or b""
    if len(ids) % ATT_KEY_ID_SIZE or len(ids) > num * ATT_KEY_ID_SIZE:
        raise _missing(call, f"carries {len(ids)} bytes of key ids for a {num}-id buffer")
    return [ids[i : i + ATT_KEY_ID_SIZE] for i in range(0, len(ids), ATT_KEY_ID_SIZE)]


# ---- the clients ---------------------------------------------------------------------------


class _ClientBase:
    def __init__(self, socket_path: str | os.PathLike[str] | None, timeout: float) -> None:
        self._timeout = check_timeout(timeout)
        path, origin = resolve_socket_path(socket_path)
        self._path = path
        self._origin = origin
        self._timeout_ms = timeout_ms(self._timeout)

    @property
    def socket_path(self) -> str:
        return self._path

    @property
    def timeout(self) -> float:
        """Seconds allowed for the write, the length read and the body read, each."""
        return self._timeout

    @property
    def timeout_ms(self) -> int:
        """The ``timeout`` field sent in every request (15000 at the default, as Intel's)."""
        return self._timeout_ms

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r}, timeout={self._timeout:g})"


class AesmClient(_ClientBase):
    """Blocking quote-ex client: one connection per call, Intel's semantics.

    ``socket_path`` defaults to the socket ``SGX_AESM_ADDR`` names (when it is
    an absolute path or ``unix:PATH``), else ``/var/run/aesmd/aesm.socket``.
    Making a client does not fix the process's quoting mode.
    """

    def __init__(
        self, socket_path: str | os.PathLike[str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(socket_path, timeout)
        self.transport = SyncTransport(self._path, timeout=self._timeout, origin=self._origin)

    def select_att_key_id(self, att_key_id_list: BytesLike | None = None) -> bytes:
        return run_flow(
            select_att_key_id_flow(att_key_id_list, timeout=self._timeout_ms), self.transport
        )

    def init_quote_ex(
        self, att_key_id: AttKeyIdLike, *, pub_key_id: bool, pub_key_id_size: int = PUB_KEY_ID_SIZE
    ) -> InitQuoteExResult:
        flow = init_quote_ex_flow(
            att_key_id,
            pub_key_id=pub_key_id,
            pub_key_id_size=pub_key_id_size,
            timeout=self._timeout_ms,
        )
        return run_flow(flow, self.transport)

    def get_quote_size_ex(self, att_key_id: AttKeyIdLike) -> int:
        return run_flow(
            get_quote_size_ex_flow(att_key_id, timeout=self._timeout_ms), self.transport
        )

    def get_quote_ex(
        self,
        report: BytesLike | Report,
        att_key_id: AttKeyIdLike,
        buf_size: int,
        qe_report_info: BytesLike | QeReportInfo | None = None,
    ) -> GetQuoteExResult:
        flow = get_quote_ex_flow(
            report, att_key_id, buf_size, qe_report_info, timeout=self._timeout_ms
        )
        return run_flow(flow, self.transport)

    def get_supported_att_key_id_num(self) -> int:
        return run_flow(get_supported_att_key_id_num_flow(timeout=self._timeout_ms), self.transport)

    def get_supported_att_key_ids(self, num: int) -> list[bytes]:
        return run_flow(
            get_supported_att_key_ids_flow(num, timeout=self._timeout_ms), self.transport
        )


class AsyncAesmClient(_ClientBase):
    """The asyncio twin of :class:`AesmClient` (same flows, asyncio sockets)."""

    def __init__(
        self, socket_path: str | os.PathLike[str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(socket_path, timeout)
        self.transport = AsyncTransport(self._path, timeout=self._timeout, origin=self._origin)

    async def select_att_key_id(self, att_key_id_list: BytesLike | None = None) -> bytes:
        return await run_flow_async(
            select_att_key_id_flow(att_key_id_list, timeout=self._timeout_ms), self.transport
        )

    async def init_quote_ex(
        self, att_key_id: AttKeyIdLike, *, pub_key_id: bool, pub_key_id_size: int = PUB_KEY_ID_SIZE
    ) -> InitQuoteExResult:
        flow = init_quote_ex_flow(
            att_key_id,
            pub_key_id=pub_key_id,
            pub_key_id_size=pub_key_id_size,
            timeout=self._timeout_ms,
        )
        return await run_flow_async(flow, self.transport)

    async def get_quote_size_ex(self, att_key_id: AttKeyIdLike) -> int:
        return await run_flow_async(
            get_quote_size_ex_flow(att_key_id, timeout=self._timeout_ms), self.transport
        )

    async def get_quote_ex(
        self,
        report: BytesLike | Report,
        att_key_id: AttKeyIdLike,
        buf_size: int,
        qe_report_info: BytesLike | QeReportInfo | None = None,
    ) -> GetQuoteExResult:
        flow = get_quote_ex_flow(
            report, att_key_id, buf_size, qe_report_info, timeout=self._timeout_ms
        )
        return await run_flow_async(flow, self.transport)

    async def get_supported_att_key_id_num(self) -> int:
        return await run_flow_async(
            get_supported_att_key_id_num_flow(timeout=self._timeout_ms), self.transport
        )

    async def get_supported_att_key_ids(self, num: int) -> list[bytes]:
        return await run_flow_async(
            get_supported_att_key_ids_flow(num, timeout=self._timeout_ms), self.transport
        )
