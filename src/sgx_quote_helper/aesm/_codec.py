"""Bodies to typed values and back, for both ends of the AESM socket.

The generated protobuf classes are used only inside this module. Two rules from
section 6.1 shape the encoders: proto2 presence is explicit, so every required
field and every ``errorCode`` (even 0, ``08 00``) is set and serialized; and a
sub-message with no fields set must still be marked present.

Conversion of protobuf's own errors into :class:`AesmProtocolError` happens in
one place, :func:`_parse`.
"""

from __future__ import annotations

from typing import Final, Literal, TypeVar, cast, overload

from google.protobuf.message import DecodeError, EncodeError, Message

from sgx_quote_helper.aesm import _messages_pb2 as pb
from sgx_quote_helper.aesm._constants import MAX_REQUEST_BODY_SIZE, MAX_RESPONSE_BODY_SIZE
from sgx_quote_helper.aesm._errors import AesmProtocolError
from sgx_quote_helper.aesm._framing import encode_frame
from sgx_quote_helper.aesm._messages import (
    CloseWithoutReply,
    DecodedRequest,
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
    LegacyRequest,
    LegacyResponse,
    MessageKind,
    MissingRequiredField,
    Request,
    Response,
    SelectAttKeyIDRequest,
    SelectAttKeyIDResponse,
    decoded,
    response_kind_for,
)
from sgx_quote_helper.errors import UsageError

# Wrapper field names, by kind (sections 4.1 and 4.2).
_REQUEST_FIELD: Final = {
    MessageKind.INIT_QUOTE: "initQuoteReq",
    MessageKind.GET_QUOTE: "getQuoteReq",
    MessageKind.GET_LAUNCH_TOKEN: "getLicTokenReq",
    MessageKind.REPORT_ATTESTATION_ERROR: "reportErrReq",
    MessageKind.GET_WHITE_LIST_SIZE: "getWhiteListSizeReq",
    MessageKind.GET_WHITE_LIST: "getWhiteListReq",
    MessageKind.SGX_GET_EXTENDED_EPID_GROUP_ID: "sgxGetExtendedEpidGroupIdReq",
    MessageKind.SGX_SWITCH_EXTENDED_EPID_GROUP: "sgxSwitchExtendedEpidGroupReq",
    MessageKind.SGX_REGISTER: "sgxRegisterReq",
    MessageKind.INIT_QUOTE_EX: "initQuoteExReq",
    MessageKind.GET_QUOTE_SIZE_EX: "getQuoteSizeExReq",
    MessageKind.GET_QUOTE_EX: "getQuoteExReq",
    MessageKind.CHECK_UPDATE_STATUS: "checkUpdateStatusReq",
    MessageKind.SELECT_ATT_KEY_ID: "selectAttKeyIDReq",
    MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM: "getSupportedAttKeyIDNumReq",
    MessageKind.GET_SUPPORTED_ATT_KEY_IDS: "getSupportedAttKeyIDsReq",
}
_RESPONSE_FIELD: Final = {
    MessageKind.INIT_QUOTE: "initQuoteRes",
    MessageKind.GET_QUOTE: "getQuoteRes",
    MessageKind.GET_LAUNCH_TOKEN: "getLicTokenRes",
    MessageKind.REPORT_ATTESTATION_ERROR: "reportErrRes",
    MessageKind.GET_WHITE_LIST_SIZE: "getWhiteListSizeRes",
    MessageKind.GET_WHITE_LIST: "getWhiteListRes",
    MessageKind.SGX_GET_EXTENDED_EPID_GROUP_ID: "sgxGetExtendedEpidGroupIdRes",
    MessageKind.SGX_SWITCH_EXTENDED_EPID_GROUP: "sgxSwitchExtendedEpidGroupRes",
    MessageKind.SGX_REGISTER: "sgxRegisterRes",
    MessageKind.INIT_QUOTE_EX: "initQuoteExRes",
    MessageKind.GET_QUOTE_SIZE_EX: "getQuoteSizeExRes",
    MessageKind.GET_QUOTE_EX: "getQuoteExRes",
    MessageKind.CHECK_UPDATE_STATUS: "checkUpdateStatusRes",
    MessageKind.SELECT_ATT_KEY_ID: "selectAttKeyIDRes",
    MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM: "getSupportedAttKeyIDNumRes",
    MessageKind.GET_SUPPORTED_ATT_KEY_IDS: "getSupportedAttKeyIDsRes",
}
_UNSUPPORTED_REQUEST_FIELD: Final = "unsupportedRequestResponse"  # Response field 20

#: Section 6.1: Intel's server takes the first set request field in this order.
DISPATCH_ORDER: Final = tuple(
    MessageKind(number) for number in (3, 1, 2, 4, 18, 10, 11, 12, 13, 14, 15, 16, 17, 19, 21, 22)
)

#: Request field name -> (position in DISPATCH_ORDER, kind), for one pass over a request.
_DISPATCH_RANK: Final = {
    _REQUEST_FIELD[kind]: (rank, kind) for rank, kind in enumerate(DISPATCH_ORDER)
}

_M = TypeVar("_M", bound=Message)


def _parse(message: _M, body: bytes) -> _M:
    """Parse ``body`` into ``message``; the one place protobuf errors are converted."""
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise AesmProtocolError(
            f"{len(body)}-byte AESM body is not a protobuf {type(message).__name__}"
        ) from exc
    return message


def _serialize(message: Message) -> bytes:
    try:
        return message.SerializeToString()
    except EncodeError as exc:  # a required field left unset: a bug in this module
        raise UsageError(f"cannot serialize {type(message).__name__}: {exc}") from exc


# ---- Server side: requests in, responses out ----


def decode_request(body: bytes) -> DecodedRequest:
    """Interpret a request body exactly as Intel's server does (section 6.1).

    Never raises on peer input. Unknown fields inside a known request and
    unknown top-level field numbers beside a known one are ignored, so newer
    clients are served; clients without requests 21/22 (PSW 2.6-2.9) just
    never send them.
    """
    try:
        wrapper = _parse(pb.Request(), body)
    except AesmProtocolError as exc:
        # Intel ignores the parse result but then finds no request set.
        return CloseWithoutReply(str(exc))
    # One pass over the fields present (ListFields) instead of a HasField per
    # request type: the set request field that comes first in DISPATCH_ORDER.
    chosen: tuple[int, MessageKind, Message] | None = None
    for descriptor, value in wrapper.ListFields():
        entry = _DISPATCH_RANK.get(descriptor.name)
        if entry is not None and (chosen is None or entry[0] < chosen[0]):
            chosen = (entry[0], entry[1], value)
    if chosen is None:
        reason = "empty AESM request" if not body else "AESM request sets no known request field"
        return CloseWithoutReply(reason)
    _rank, kind, inner = chosen
    if not inner.IsInitialized():
        return MissingRequiredField(kind)
    # Optional fields read as None when absent (proto2 presence, section 6.1);
    # required ones are present once IsInitialized() holds. Protobuf has typed
    # every value (bytes, u32/u64 ints, bool), so the values are built without
    # re-checking them (decoded).
    has = inner.HasField
    match kind:
        case MessageKind.GET_QUOTE_EX:
            m3 = cast(pb.Request.GetQuoteExRequest, inner)
            return decoded(
                GetQuoteExRequest,
                m3.report,
                m3.att_key_id if has("att_key_id") else None,
                m3.qe_report_info if has("qe_report_info") else None,
                m3.buf_size,
                m3.timeout if has("timeout") else None,
            )
        case MessageKind.INIT_QUOTE_EX:
            m1 = cast(pb.Request.InitQuoteExRequest, inner)
            return decoded(
                InitQuoteExRequest,
                m1.att_key_id if has("att_key_id") else None,
                m1.b_pub_key_id,
                m1.buf_size if has("buf_size") else None,
                m1.timeout if has("timeout") else None,
            )
        case MessageKind.GET_QUOTE_SIZE_EX:
            m2 = cast(pb.Request.GetQuoteSizeExRequest, inner)
            return decoded(
                GetQuoteSizeExRequest,
                m2.att_key_id if has("att_key_id") else None,
                m2.timeout if has("timeout") else None,
            )
        case MessageKind.SELECT_ATT_KEY_ID:
            m4 = cast(pb.Request.SelectAttKeyIDRequest, inner)
            return decoded(
                SelectAttKeyIDRequest,
                m4.att_key_id_list if has("att_key_id_list") else None,
                m4.timeout if has("timeout") else None,
            )
        case MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM:
            m5 = cast(pb.Request.GetSupportedAttKeyIDNumRequest, inner)
            return decoded(GetSupportedAttKeyIDNumRequest, m5.timeout if has("timeout") else None)
        case MessageKind.GET_SUPPORTED_ATT_KEY_IDS:
            m6 = cast(pb.Request.GetSupportedAttKeyIDsRequest, inner)
            return decoded(
                GetSupportedAttKeyIDsRequest,
                m6.buf_size,
                m6.timeout if has("timeout") else None,
            )
        case _:
            return LegacyRequest(kind)


def encode_response(response: Response) -> bytes:
    """The body of a reply; ``errorCode`` is always serialized (section 6.1)."""
    wrapper = pb.Response()
    match response:
        case GetQuoteExResponse():  # first: the daemon's most frequent reply
            m3 = wrapper.getQuoteExRes
            m3.errorCode = response.error_code
            if response.quote is not None:
                m3.quote = response.quote
            if response.qe_report_info is not None:
                m3.qe_report_info = response.qe_report_info
        case InitQuoteExResponse():
            m1 = wrapper.initQuoteExRes
            m1.errorCode = response.error_code
            if response.target_info is not None:
                m1.target_info = response.target_info
            if response.pub_key_id_size is not None:
                m1.pub_key_id_size = response.pub_key_id_size
            if response.pub_key_id is not None:
                m1.pub_key_id = response.pub_key_id
        case GetQuoteSizeExResponse():
            m2 = wrapper.getQuoteSizeExRes
            m2.errorCode = response.error_code
            if response.quote_size is not None:
                m2.quote_size = response.quote_size
        case SelectAttKeyIDResponse():
            m4 = wrapper.selectAttKeyIDRes
            m4.errorCode = response.error_code
            if response.selected_att_key_id is not None:
                m4.selected_att_key_id = response.selected_att_key_id
        case GetSupportedAttKeyIDNumResponse():
            m5 = wrapper.getSupportedAttKeyIDNumRes
            m5.errorCode = response.error_code
            if response.att_key_id_num is not None:
                m5.att_key_id_num = response.att_key_id_num
        case GetSupportedAttKeyIDsResponse():
            m6 = wrapper.getSupportedAttKeyIDsRes
            m6.errorCode = response.error_code
            if response.att_key_ids is not None:
                m6.att_key_ids = response.att_key_ids
        case LegacyResponse():
            # Every legacy response has errorCode as field 1 (section 4.5).
            getattr(wrapper, _RESPONSE_FIELD[response.kind]).errorCode = response.error_code
    return _serialize(wrapper)


def frame_response(response: Response, *, request: Request | MissingRequiredField) -> bytes:
    """The framed reply to ``request``.

    Raises :class:`UsageError` if ``response`` is of another kind than
    ``request``: Intel's client crashes on such a reply (section 14), so the
    server must close without a reply instead.
    """
    expected = response_kind_for(request)
    if response.kind is not expected:
        raise UsageError(
            f"a {expected.name} request cannot be answered with a {response.kind.name} response"
        )
    return encode_frame(encode_response(response), max_body_size=MAX_RESPONSE_BODY_SIZE)


# ---- Client side: requests out, responses in ----


def encode_request(request: Request) -> bytes:
    """The body of a request; required fields are always serialized (section 6.1).

    Legacy requests are never sent by this package; encoding one is a
    :class:`UsageError`.
    """
    wrapper = pb.Request()
    match request:
        case InitQuoteExRequest():
            m1 = wrapper.initQuoteExReq
            if request.att_key_id is not None:
                m1.att_key_id = request.att_key_id
            m1.b_pub_key_id = request.b_pub_key_id  # required: `18 00` when false
            if request.buf_size is not None:
                m1.buf_size = request.buf_size
            if request.timeout is not None:
                m1.timeout = request.timeout
        case GetQuoteSizeExRequest():
            m2 = wrapper.getQuoteSizeExReq
            m2.SetInParent()
            if request.att_key_id is not None:
                m2.att_key_id = request.att_key_id
            if request.timeout is not None:
                m2.timeout = request.timeout
        case GetQuoteExRequest():
            m3 = wrapper.getQuoteExReq
            m3.report = request.report
            if request.att_key_id is not None:
                m3.att_key_id = request.att_key_id
            if request.qe_report_info is not None:
                m3.qe_report_info = request.qe_report_info
            m3.buf_size = request.buf_size
            if request.timeout is not None:
                m3.timeout = request.timeout
        case SelectAttKeyIDRequest():
            m4 = wrapper.selectAttKeyIDReq
            m4.SetInParent()
            if request.att_key_id_list is not None:
                m4.att_key_id_list = request.att_key_id_list
            if request.timeout is not None:
                m4.timeout = request.timeout
        case GetSupportedAttKeyIDNumRequest():
            m5 = wrapper.getSupportedAttKeyIDNumReq
            m5.SetInParent()
            if request.timeout is not None:
                m5.timeout = request.timeout
        case GetSupportedAttKeyIDsRequest():
            m6 = wrapper.getSupportedAttKeyIDsReq
            m6.buf_size = request.buf_size
            if request.timeout is not None:
                m6.timeout = request.timeout
        case LegacyRequest():
            raise UsageError(
                f"{request.kind.name} is a legacy EPID/launch request; this package does not "
                "send those"
            )
    return _serialize(wrapper)


def frame_request(request: Request) -> bytes:
    """The framed request (section 2)."""
    return encode_frame(encode_request(request), max_body_size=MAX_REQUEST_BODY_SIZE)


@overload
def decode_response(
    body: bytes, expected_kind: Literal[MessageKind.INIT_QUOTE_EX]
) -> InitQuoteExResponse: ...
@overload
def decode_response(
    body: bytes, expected_kind: Literal[MessageKind.GET_QUOTE_SIZE_EX]
) -> GetQuoteSizeExResponse: ...
@overload
def decode_response(
    body: bytes, expected_kind: Literal[MessageKind.GET_QUOTE_EX]
) -> GetQuoteExResponse: ...
@overload
def decode_response(
    body: bytes, expected_kind: Literal[MessageKind.SELECT_ATT_KEY_ID]
) -> SelectAttKeyIDResponse: ...
@overload
def decode_response(
    body: bytes, expected_kind: Literal[MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM]
) -> GetSupportedAttKeyIDNumResponse: ...
@overload
def decode_response(
    body: bytes, expected_kind: Literal[MessageKind.GET_SUPPORTED_ATT_KEY_IDS]
) -> GetSupportedAttKeyIDsResponse: ...
@overload
def decode_response(body: bytes, expected_kind: MessageKind) -> Response: ...
def decode_response(body: bytes, expected_kind: MessageKind) -> Response:
    """Interpret a reply to a request of ``expected_kind``.

    Raises :class:`AesmProtocolError` if the body does not parse or does not
    carry the expected response field (section 7.1). Other fields are ignored,
    as Intel's client does. An absent ``errorCode`` reads as its proto2
    default, 1 (section 6.1).
    """
    wrapper = _parse(pb.Response(), body)
    field = _RESPONSE_FIELD[expected_kind]
    if not wrapper.HasField(field):
        if wrapper.HasField(_UNSUPPORTED_REQUEST_FIELD):
            code = wrapper.unsupportedRequestResponse.errorCode
            raise AesmProtocolError(
                f"the AESM service does not support {expected_kind.name} requests "
                f"(UnsupportedRequestResponse, errorCode {code})"
            )
        raise AesmProtocolError(f"AESM reply to a {expected_kind.name} request lacks {field}")
    match expected_kind:
        case MessageKind.INIT_QUOTE_EX:
            m1 = wrapper.initQuoteExRes
            return InitQuoteExResponse(
                error_code=m1.errorCode,
                target_info=m1.target_info if m1.HasField("target_info") else None,
                pub_key_id_size=m1.pub_key_id_size if m1.HasField("pub_key_id_size") else None,
                pub_key_id=m1.pub_key_id if m1.HasField("pub_key_id") else None,
            )
        case MessageKind.GET_QUOTE_SIZE_EX:
            m2 = wrapper.getQuoteSizeExRes
            return GetQuoteSizeExResponse(
                error_code=m2.errorCode,
                quote_size=m2.quote_size if m2.HasField("quote_size") else None,
            )
        case MessageKind.GET_QUOTE_EX:
            m3 = wrapper.getQuoteExRes
            return GetQuoteExResponse(
                error_code=m3.errorCode,
                quote=m3.quote if m3.HasField("quote") else None,
                qe_report_info=m3.qe_report_info if m3.HasField("qe_report_info") else None,
            )
        case MessageKind.SELECT_ATT_KEY_ID:
            m4 = wrapper.selectAttKeyIDRes
            return SelectAttKeyIDResponse(
                error_code=m4.errorCode,
                selected_att_key_id=(
                    m4.selected_att_key_id if m4.HasField("selected_att_key_id") else None
                ),
            )
        case MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM:
            m5 = wrapper.getSupportedAttKeyIDNumRes
            return GetSupportedAttKeyIDNumResponse(
                error_code=m5.errorCode,
                att_key_id_num=m5.att_key_id_num if m5.HasField("att_key_id_num") else None,
            )
        case MessageKind.GET_SUPPORTED_ATT_KEY_IDS:
            m6 = wrapper.getSupportedAttKeyIDsRes
            return GetSupportedAttKeyIDsResponse(
                error_code=m6.errorCode,
                att_key_ids=m6.att_key_ids if m6.HasField("att_key_ids") else None,
            )
        case _:
            # Every legacy response has errorCode as field 1 (section 4.5).
            error_code: int = getattr(wrapper, field).errorCode
            return LegacyResponse(expected_kind, error_code)
