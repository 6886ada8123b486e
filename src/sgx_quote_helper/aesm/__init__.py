"""The AESM wire protocol, sans-I/O (spec/aesm-wire.md).

Bytes in, typed values out, and back; no sockets, files or clocks. The daemon
and the client are thin adapters around these functions:

Server (one request per connection, section 3)::

    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    ... decoder.receive_data(chunk); body = decoder.next_frame() ...
    event = decode_request(body)
    # CloseWithoutReply -> close; MissingRequiredField -> error_response(kind, 1);
    # LegacyRequest -> error_response(kind, 30); otherwise check_* then execute.
    writer.write(frame_response(response, request=event))

Client::

    writer.write(frame_request(GetQuoteSizeExRequest(att_key_id, CLIENT_TIMEOUT_MS)))
    length = decode_frame_header(await reader.readexactly(4),
                                 max_body_size=MAX_RESPONSE_BODY_SIZE)
    reply = decode_response(await reader.readexactly(length), MessageKind.GET_QUOTE_SIZE_EX)

Peer garbage raises :class:`AesmProtocolError` (a ``ParseError``); misuse of
this API raises :class:`sgx_quote_helper.errors.UsageError`. Generated protobuf
classes stay private to this package.
"""

from sgx_quote_helper.aesm._codec import (
    DISPATCH_ORDER,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    frame_request,
    frame_response,
)
from sgx_quote_helper.aesm._constants import (
    AESM_ATT_KEY_NOT_INITIALIZED,
    AESM_ERROR_REPORT,
    AESM_INVALID_REPORT,
    AESM_OUT_OF_MEMORY_ERROR,
    AESM_PARAMETER_ERROR,
    AESM_SERVICE_UNAVAILABLE,
    AESM_SUCCESS,
    AESM_UNEXPECTED_ERROR,
    AESM_UNSUPPORTED_ATT_KEY_ID,
    ALGORITHM_ECDSA_P256,
    ALGORITHM_EPID,
    ALGORITHM_EPID_LINKABLE,
    ATT_KEY_ID_ALGORITHM_OFFSET,
    ATT_KEY_ID_BASE_SIZE,
    ATT_KEY_ID_LIST_HEADER_SIZE,
    ATT_KEY_ID_SIZE,
    CLIENT_TIMEOUT_MS,
    DEFAULT_QUOTING_TYPE,
    FRAME_HEADER_SIZE,
    MAX_ATT_KEY_IDS_IN_LIST,
    MAX_QUOTE_BUF_SIZE,
    MAX_REQUEST_BODY_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    PUB_KEY_ID_SIZE,
    QE_REPORT_INFO_SIZE,
    REPORT_SIZE,
    TARGET_INFO_SIZE,
)
from sgx_quote_helper.aesm._errors import AesmProtocolError
from sgx_quote_helper.aesm._framing import (
    CONNECTION_CLOSED,
    NEED_DATA,
    ConnectionClosed,
    FrameDecoder,
    NeedData,
    decode_frame_header,
    encode_frame,
    whole_frame,
)
from sgx_quote_helper.aesm._messages import (
    LEGACY_KINDS,
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
    error_response,
    response_kind_for,
)
from sgx_quote_helper.aesm._validate import (
    check_att_key_id,
    check_get_quote_ex,
    check_get_quote_size_ex,
    check_get_supported_att_key_id_num,
    check_get_supported_att_key_ids,
    check_init_quote_ex,
    check_select_att_key_id,
    select_att_key_id,
)

__all__ = [
    "AESM_ATT_KEY_NOT_INITIALIZED",
    "AESM_ERROR_REPORT",
    "AESM_INVALID_REPORT",
    "AESM_OUT_OF_MEMORY_ERROR",
    "AESM_PARAMETER_ERROR",
    "AESM_SERVICE_UNAVAILABLE",
    "AESM_SUCCESS",
    "AESM_UNEXPECTED_ERROR",
    "AESM_UNSUPPORTED_ATT_KEY_ID",
    "ALGORITHM_ECDSA_P256",
    "ALGORITHM_EPID",
    "ALGORITHM_EPID_LINKABLE",
    "ATT_KEY_ID_ALGORITHM_OFFSET",
    "ATT_KEY_ID_BASE_SIZE",
    "ATT_KEY_ID_LIST_HEADER_SIZE",
    "ATT_KEY_ID_SIZE",
    "CLIENT_TIMEOUT_MS",
    "CONNECTION_CLOSED",
    "DEFAULT_QUOTING_TYPE",
    "DISPATCH_ORDER",
    "FRAME_HEADER_SIZE",
    "LEGACY_KINDS",
    "MAX_ATT_KEY_IDS_IN_LIST",
    "MAX_QUOTE_BUF_SIZE",
    "MAX_REQUEST_BODY_SIZE",
    "MAX_RESPONSE_BODY_SIZE",
    "NEED_DATA",
    "PUB_KEY_ID_SIZE",
    "QE_REPORT_INFO_SIZE",
    "REPORT_SIZE",
    "TARGET_INFO_SIZE",
    "AesmProtocolError",
    "CloseWithoutReply",
    "ConnectionClosed",
    "DecodedRequest",
    "FrameDecoder",
    "GetQuoteExRequest",
    "GetQuoteExResponse",
    "GetQuoteSizeExRequest",
    "GetQuoteSizeExResponse",
    "GetSupportedAttKeyIDNumRequest",
    "GetSupportedAttKeyIDNumResponse",
    "GetSupportedAttKeyIDsRequest",
    "GetSupportedAttKeyIDsResponse",
    "InitQuoteExRequest",
    "InitQuoteExResponse",
    "LegacyRequest",
    "LegacyResponse",
    "MessageKind",
    "MissingRequiredField",
    "NeedData",
    "Request",
    "Response",
    "SelectAttKeyIDRequest",
    "SelectAttKeyIDResponse",
    "check_att_key_id",
    "check_get_quote_ex",
    "check_get_quote_size_ex",
    "check_get_supported_att_key_id_num",
    "check_get_supported_att_key_ids",
    "check_init_quote_ex",
    "check_select_att_key_id",
    "decode_frame_header",
    "decode_request",
    "decode_response",
    "encode_frame",
    "encode_request",
    "encode_response",
    "error_response",
    "frame_request",
    "frame_response",
    "response_kind_for",
    "select_att_key_id",
    "whole_frame",
]
