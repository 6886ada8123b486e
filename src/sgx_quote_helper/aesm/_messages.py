"""Typed AESM messages: what the codec turns bytes into and back.

One frozen dataclass per quote-ex request and response (sections 4.3, 4.4),
one pair of values for all legacy EPID/launch messages (section 4.5), and the
two server-side outcomes that are not requests (section 6.1). Field names are
Intel's; ``None`` means "field absent", which proto2 distinguishes from zero.

Constructing a value checks the ranges of its integer fields (u32 or u64 as in
the schema) and raises :class:`UsageError`: values decoded from the wire are
always in range, so a failure is the caller's mistake. The codec builds the
requests it decodes with :func:`decoded`, which skips those checks because
protobuf has already established them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from sgx_quote_helper.errors import UsageError

_U32_MAX: Final = (1 << 32) - 1
_U64_MAX: Final = (1 << 64) - 1


class MessageKind(enum.IntEnum):
    """Which sub-message of the ``Request`` / ``Response`` wrapper is set.

    The value is the wrapper's field number, the same in both directions
    (sections 4.1 and 4.2). A reply must use the kind of its request.
    """

    INIT_QUOTE = 1
    GET_QUOTE = 2
    GET_LAUNCH_TOKEN = 3
    REPORT_ATTESTATION_ERROR = 4
    GET_WHITE_LIST_SIZE = 10
    GET_WHITE_LIST = 11
    SGX_GET_EXTENDED_EPID_GROUP_ID = 12
    SGX_SWITCH_EXTENDED_EPID_GROUP = 13
    SGX_REGISTER = 14
    INIT_QUOTE_EX = 15
    GET_QUOTE_SIZE_EX = 16
    GET_QUOTE_EX = 17
    CHECK_UPDATE_STATUS = 18
    SELECT_ATT_KEY_ID = 19
    GET_SUPPORTED_ATT_KEY_ID_NUM = 21
    GET_SUPPORTED_ATT_KEY_IDS = 22


#: Legacy EPID and launch messages (section 4.5); answered with
#: AESM_SERVICE_UNAVAILABLE by a service without those bundles (section 6.2).
LEGACY_KINDS: Final = frozenset(
    {
        MessageKind.INIT_QUOTE,
        MessageKind.GET_QUOTE,
        MessageKind.GET_LAUNCH_TOKEN,
        MessageKind.REPORT_ATTESTATION_ERROR,
        MessageKind.GET_WHITE_LIST_SIZE,
        MessageKind.GET_WHITE_LIST,
        MessageKind.SGX_GET_EXTENDED_EPID_GROUP_ID,
        MessageKind.SGX_SWITCH_EXTENDED_EPID_GROUP,
        MessageKind.SGX_REGISTER,
        MessageKind.CHECK_UPDATE_STATUS,
    }
)


def _check_uint(name: str, value: int | None, maximum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise UsageError(f"{name} must be an integer in 0..{maximum}, got {value!r}")


def _check_bytes(name: str, value: bytes | None) -> None:
    if value is not None and not isinstance(value, bytes):
        raise UsageError(f"{name} must be bytes, got {type(value).__name__}")


_T = TypeVar("_T")
#: Per message class, the slot setters of its fields in declaration order.
_SETTERS: dict[type[Any], tuple[Callable[[Any, Any], None], ...]] = {}


def decoded(cls: type[_T], *values: object) -> _T:
    """``cls(*values)`` without the checks of ``__post_init__``; for the codec only.

    The values come from a parsed protobuf message, which has given every
    field its schema type already: ``bytes`` for a bytes field, an ``int``
    within the u32 or u64 range of its field, a ``bool`` for a bool. That is
    all ``__post_init__`` checks, and on the daemon's path it cost as much as
    reading the fields. The slots are set directly, as the frozen
    dataclass's own ``__init__`` does.
    """
    setters = _SETTERS.get(cls)
    if setters is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        setters = _SETTERS[cls] = tuple(getattr(cls, field.name).__set__ for field in fields)
    if len(values) != len(setters):
        raise UsageError(f"{cls.__name__} has {len(setters)} fields, got {len(values)} values")
    message = object.__new__(cls)
    for setter, value in zip(setters, values):  # noqa: B905 - lengths compared above
        setter(message, value)
    return message


# ---- Requests (section 4.3) ----


@dataclass(frozen=True, slots=True)
class InitQuoteExRequest:
    """Get the QE target info and, with ``b_pub_key_id``, the attestation key id hash.

    ``buf_size`` is ignored by the server when ``b_pub_key_id`` is false: DCAP
    sends an uninitialized value there (section 8).
    """

    kind: ClassVar[MessageKind] = MessageKind.INIT_QUOTE_EX

    att_key_id: bytes | None
    b_pub_key_id: bool
    buf_size: int | None
    timeout: int | None = None

    def __post_init__(self) -> None:
        _check_bytes("att_key_id", self.att_key_id)
        if not isinstance(self.b_pub_key_id, bool):
            raise UsageError(f"b_pub_key_id must be a bool, got {self.b_pub_key_id!r}")
        _check_uint("buf_size", self.buf_size, _U64_MAX)
        _check_uint("timeout", self.timeout, _U32_MAX)


@dataclass(frozen=True, slots=True)
class GetQuoteSizeExRequest:
    """Ask for the size of a quote made with the given attestation key."""

    kind: ClassVar[MessageKind] = MessageKind.GET_QUOTE_SIZE_EX

    att_key_id: bytes | None
    timeout: int | None = None

    def __post_init__(self) -> None:
        _check_bytes("att_key_id", self.att_key_id)
        _check_uint("timeout", self.timeout, _U32_MAX)


@dataclass(frozen=True, slots=True)
class GetQuoteExRequest:
    """Quote an application REPORT into a buffer of ``buf_size`` bytes."""

    kind: ClassVar[MessageKind] = MessageKind.GET_QUOTE_EX

    report: bytes
    att_key_id: bytes | None
    qe_report_info: bytes | None
    buf_size: int
    timeout: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.report, bytes):
            raise UsageError(f"report must be bytes, got {type(self.report).__name__}")
        _check_bytes("att_key_id", self.att_key_id)
        _check_bytes("qe_report_info", self.qe_report_info)
        if self.buf_size is None:
            raise UsageError("buf_size is required")
        _check_uint("buf_size", self.buf_size, _U32_MAX)
        _check_uint("timeout", self.timeout, _U32_MAX)


@dataclass(frozen=True, slots=True)
class SelectAttKeyIDRequest:
    """Pick a supported attestation key id, optionally from a list.

    ``att_key_id_list`` is an ``sgx_ql_att_key_id_list_header_t`` followed by
    256-byte ids (section 10). ``timeout`` is field 2 here (section 4.3).
    """

    kind: ClassVar[MessageKind] = MessageKind.SELECT_ATT_KEY_ID

    att_key_id_list: bytes | None
    timeout: int | None = None

    def __post_init__(self) -> None:
        _check_bytes("att_key_id_list", self.att_key_id_list)
        _check_uint("timeout", self.timeout, _U32_MAX)


@dataclass(frozen=True, slots=True)
class GetSupportedAttKeyIDNumRequest:
    """Ask how many attestation key ids the service supports (PSW 2.9.1+)."""

    kind: ClassVar[MessageKind] = MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM

    timeout: int | None = None

    def __post_init__(self) -> None:
        _check_uint("timeout", self.timeout, _U32_MAX)


@dataclass(frozen=True, slots=True)
class GetSupportedAttKeyIDsRequest:
    """Ask for all supported attestation key ids, ``buf_size = count * 256`` (PSW 2.9.1+)."""

    kind: ClassVar[MessageKind] = MessageKind.GET_SUPPORTED_ATT_KEY_IDS

    buf_size: int
    timeout: int | None = None

    def __post_init__(self) -> None:
        if self.buf_size is None:
            raise UsageError("buf_size is required")
        _check_uint("buf_size", self.buf_size, _U32_MAX)
        _check_uint("timeout", self.timeout, _U32_MAX)


@dataclass(frozen=True, slots=True)
class LegacyRequest:
    """An EPID or launch request (section 4.5) whose required fields are present.

    Its content is not kept: the service answers every one with
    AESM_SERVICE_UNAVAILABLE in the matching response (section 6.2).
    """

    kind: MessageKind

    def __post_init__(self) -> None:
        if self.kind not in LEGACY_KINDS:
            raise UsageError(f"{self.kind!r} is not a legacy EPID/launch message")


# ---- Server-side outcomes that are not requests (section 6.1) ----


@dataclass(frozen=True, slots=True)
class MissingRequiredField:
    """A request of ``kind`` lacks a proto2 ``required`` field.

    Intel's server runs nothing and replies ``errorCode = 1``
    (AESM_UNEXPECTED_ERROR) in the matching response (section 6.1).
    """

    kind: MessageKind


@dataclass(frozen=True, slots=True)
class CloseWithoutReply:
    """Drop the request and close the connection without writing anything.

    What Intel's server does when no known request field is set: an empty body,
    only unknown field numbers, only field 20, or a body that is not protobuf
    (section 6.1). ``reason`` is for the log ("Malformed request received").
    """

    reason: str


# ---- Responses (section 4.4) ----


@dataclass(frozen=True, slots=True)
class InitQuoteExResponse:
    """``target_info`` (512 B), ``pub_key_id_size`` and ``pub_key_id`` (section 6.2)."""

    kind: ClassVar[MessageKind] = MessageKind.INIT_QUOTE_EX

    error_code: int
    target_info: bytes | None = None
    pub_key_id_size: int | None = None
    pub_key_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_uint("error_code", self.error_code, _U32_MAX)
        _check_bytes("target_info", self.target_info)
        _check_uint("pub_key_id_size", self.pub_key_id_size, _U64_MAX)
        _check_bytes("pub_key_id", self.pub_key_id)


@dataclass(frozen=True, slots=True)
class GetQuoteSizeExResponse:
    """The quote size; Intel's server always sends it, 0 on error (section 6.2)."""

    kind: ClassVar[MessageKind] = MessageKind.GET_QUOTE_SIZE_EX

    error_code: int
    quote_size: int | None = None

    def __post_init__(self) -> None:
        _check_uint("error_code", self.error_code, _U32_MAX)
        _check_uint("quote_size", self.quote_size, _U32_MAX)


@dataclass(frozen=True, slots=True)
class GetQuoteExResponse:
    """The whole ``buf_size`` quote buffer, and the echoed ``qe_report_info`` (section 6.2)."""

    kind: ClassVar[MessageKind] = MessageKind.GET_QUOTE_EX

    error_code: int
    quote: bytes | None = None
    qe_report_info: bytes | None = None

    def __post_init__(self) -> None:
        _check_uint("error_code", self.error_code, _U32_MAX)
        _check_bytes("quote", self.quote)
        _check_bytes("qe_report_info", self.qe_report_info)


@dataclass(frozen=True, slots=True)
class SelectAttKeyIDResponse:
    """The selected 256-byte attestation key id."""

    kind: ClassVar[MessageKind] = MessageKind.SELECT_ATT_KEY_ID

    error_code: int
    selected_att_key_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_uint("error_code", self.error_code, _U32_MAX)
        _check_bytes("selected_att_key_id", self.selected_att_key_id)


@dataclass(frozen=True, slots=True)
class GetSupportedAttKeyIDNumResponse:
    """How many attestation key ids the service supports."""

    kind: ClassVar[MessageKind] = MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM

    error_code: int
    att_key_id_num: int | None = None

    def __post_init__(self) -> None:
        _check_uint("error_code", self.error_code, _U32_MAX)
        _check_uint("att_key_id_num", self.att_key_id_num, _U32_MAX)


@dataclass(frozen=True, slots=True)
class GetSupportedAttKeyIDsResponse:
    """The supported ids, 256 bytes each, concatenated."""

    kind: ClassVar[MessageKind] = MessageKind.GET_SUPPORTED_ATT_KEY_IDS

    error_code: int
    att_key_ids: bytes | None = None

    def __post_init__(self) -> None:
        _check_uint("error_code", self.error_code, _U32_MAX)
        _check_bytes("att_key_ids", self.att_key_ids)


@dataclass(frozen=True, slots=True)
class LegacyResponse:
    """The reply to a legacy request: only ``errorCode`` is modelled (section 4.5).

    The client never sends legacy requests; the server answers them with
    ``error_code`` AESM_SERVICE_UNAVAILABLE (30), or 1 for a missing field.
    """

    kind: MessageKind
    error_code: int

    def __post_init__(self) -> None:
        if self.kind not in LEGACY_KINDS:
            raise UsageError(f"{self.kind!r} is not a legacy EPID/launch message")
        _check_uint("error_code", self.error_code, _U32_MAX)


#: Every request value the codec handles.
Request: TypeAlias = (
    InitQuoteExRequest
    | GetQuoteSizeExRequest
    | GetQuoteExRequest
    | SelectAttKeyIDRequest
    | GetSupportedAttKeyIDNumRequest
    | GetSupportedAttKeyIDsRequest
    | LegacyRequest
)

#: Every response value the codec handles.
Response: TypeAlias = (
    InitQuoteExResponse
    | GetQuoteSizeExResponse
    | GetQuoteExResponse
    | SelectAttKeyIDResponse
    | GetSupportedAttKeyIDNumResponse
    | GetSupportedAttKeyIDsResponse
    | LegacyResponse
)

#: What :func:`decode_request` returns: a request to execute, a request to
#: answer with ``errorCode = 1``, or an instruction to hang up.
DecodedRequest: TypeAlias = Request | MissingRequiredField | CloseWithoutReply


def response_kind_for(request: Request | MissingRequiredField) -> MessageKind:
    """The only Response field the server may set when answering ``request``.

    Intel's client crashes on a reply of another type (section 14).
    """
    return request.kind


def error_response(kind: MessageKind, error_code: int) -> Response:
    """A reply of ``kind`` carrying only an error, with the fields Intel always sends.

    For a :class:`MissingRequiredField` use ``AESM_UNEXPECTED_ERROR`` (section
    6.1); for a :class:`LegacyRequest` use ``AESM_SERVICE_UNAVAILABLE``
    (section 6.2). ``pub_key_id_size`` and ``quote_size`` are always present in
    Intel's replies, 0 on error (section 6.2). A GetQuoteEx error after the
    request was accepted must also echo ``qe_report_info``; build that reply
    directly.
    """
    if error_code == 0:
        raise UsageError("error_response needs a non-zero AESM error code")
    match kind:
        case MessageKind.INIT_QUOTE_EX:
            return InitQuoteExResponse(error_code, pub_key_id_size=0)
        case MessageKind.GET_QUOTE_SIZE_EX:
            return GetQuoteSizeExResponse(error_code, quote_size=0)
        case MessageKind.GET_QUOTE_EX:
            return GetQuoteExResponse(error_code)
        case MessageKind.SELECT_ATT_KEY_ID:
            return SelectAttKeyIDResponse(error_code)
        case MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM:
            return GetSupportedAttKeyIDNumResponse(error_code)
        case MessageKind.GET_SUPPORTED_ATT_KEY_IDS:
            return GetSupportedAttKeyIDsResponse(error_code)
        case _:
            return LegacyResponse(kind, error_code)
