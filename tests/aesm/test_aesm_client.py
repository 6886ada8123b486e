"""Client side: encoding requests and checking replies (spec/aesm-wire.md sections 6.1, 7.1)."""

from __future__ import annotations

import pytest

from sgx_quote_helper.aesm import (
    CLIENT_TIMEOUT_MS,
    AesmProtocolError,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumResponse,
    GetSupportedAttKeyIDsRequest,
    GetSupportedAttKeyIDsResponse,
    InitQuoteExRequest,
    InitQuoteExResponse,
    LegacyRequest,
    LegacyResponse,
    MessageKind,
    SelectAttKeyIDRequest,
    SelectAttKeyIDResponse,
    decode_response,
    encode_request,
    frame_request,
)
from sgx_quote_helper.errors import ParseError, UsageError

KEY = bytes(range(256))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_client_timeout_is_intels_ipc_latency() -> None:
    assert CLIENT_TIMEOUT_MS == 15000


# ---- Required fields are always on the wire (section 6.1, pitfall 5) ----


def test_b_pub_key_id_false_is_serialized() -> None:
    assert encode_request(InitQuoteExRequest(None, False, None)) == h("7a 02 18 00")


def test_get_quote_ex_empty_report_and_zero_buf_size_are_serialized() -> None:
    assert encode_request(GetQuoteExRequest(b"", None, None, 0)) == h("8a 01 04 0a 00 20 00")


def test_get_supported_att_key_ids_zero_buf_size_is_serialized() -> None:
    assert encode_request(GetSupportedAttKeyIDsRequest(0)) == h("b2 01 02 08 00")


@pytest.mark.parametrize(
    ("request_", "body"),
    [
        pytest.param(GetQuoteSizeExRequest(None), h("82 01 00"), id="GetQuoteSizeEx"),
        pytest.param(SelectAttKeyIDRequest(None), h("9a 01 00"), id="SelectAttKeyID"),
    ],
)
def test_request_with_no_fields_still_sets_its_sub_message(
    request_: GetQuoteSizeExRequest | SelectAttKeyIDRequest, body: bytes
) -> None:
    assert encode_request(request_) == body


def test_select_att_key_id_timeout_is_field_2() -> None:
    assert encode_request(SelectAttKeyIDRequest(None, 15000)) == h("9a 01 03 10 98 75")


def test_legacy_requests_are_never_built() -> None:
    with pytest.raises(UsageError):
        encode_request(LegacyRequest(MessageKind.GET_LAUNCH_TOKEN))


@pytest.mark.parametrize(
    "make",
    [
        lambda: InitQuoteExRequest(None, False, -1),
        lambda: InitQuoteExRequest(None, False, 1 << 64),
        lambda: InitQuoteExRequest(None, 1, None),  # type: ignore[arg-type]
        lambda: GetQuoteExRequest(b"", None, None, 1 << 32),
        lambda: GetQuoteExRequest("report", None, None, 1),  # type: ignore[arg-type]
        lambda: GetQuoteSizeExRequest(None, timeout=1 << 32),
        lambda: GetQuoteSizeExRequest(bytearray(256)),  # type: ignore[arg-type]
        lambda: GetQuoteExResponse(-1),
        lambda: LegacyRequest(MessageKind.GET_QUOTE_EX),
        lambda: LegacyResponse(MessageKind.INIT_QUOTE_EX, 1),
        lambda: GetSupportedAttKeyIDsRequest(True),
    ],
)
def test_out_of_range_values_are_local_errors(make: object) -> None:
    assert callable(make)
    with pytest.raises(UsageError):
        make()


def test_frame_request_caps_the_body() -> None:
    with pytest.raises(UsageError):
        frame_request(SelectAttKeyIDRequest(bytes(70_000)))


# ---- Replies ----


def test_reply_without_the_expected_field_is_a_protocol_error() -> None:
    body = h("82 01 05 08 00 10 fe 24")  # a GetQuoteSizeEx reply
    with pytest.raises(AesmProtocolError, match="lacks getQuoteExRes"):
        decode_response(body, MessageKind.GET_QUOTE_EX)


def test_empty_reply_is_a_protocol_error() -> None:
    with pytest.raises(AesmProtocolError):
        decode_response(b"", MessageKind.INIT_QUOTE_EX)


def test_unsupported_request_response_is_reported() -> None:
    # Response field 20 (section 4.2): never sent by Intel, but explained if seen.
    with pytest.raises(AesmProtocolError, match="does not support GET_SUPPORTED_ATT_KEY_IDS"):
        decode_response(h("a2 01 02 08 01"), MessageKind.GET_SUPPORTED_ATT_KEY_IDS)


@pytest.mark.parametrize("body", [h("ff ff"), h("8a 01 05 08"), h("8a 01 02 0a")])
def test_reply_that_does_not_parse_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        decode_response(body, MessageKind.GET_QUOTE_EX)


def test_newer_server_extra_fields_are_ignored() -> None:
    body = h("8a 01 0c 08 00 12 03 71 71 71 f8 01 07 5a 00") + h("ba 01 00")
    assert decode_response(body, MessageKind.GET_QUOTE_EX) == GetQuoteExResponse(0, quote=b"qqq")


def test_other_response_fields_beside_the_expected_one_are_ignored() -> None:
    body = h("82 01 02 08 00") + h("aa 01 04 08 00 10 01")
    assert decode_response(body, MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM) == (
        GetSupportedAttKeyIDNumResponse(0, 1)
    )


def test_each_kind_decodes_to_its_type() -> None:
    assert isinstance(
        decode_response(h("7a 02 08 00"), MessageKind.INIT_QUOTE_EX), InitQuoteExResponse
    )
    assert isinstance(
        decode_response(h("82 01 02 08 00"), MessageKind.GET_QUOTE_SIZE_EX), GetQuoteSizeExResponse
    )
    assert decode_response(h("9a 01 04 08 00 12 00"), MessageKind.SELECT_ATT_KEY_ID) == (
        SelectAttKeyIDResponse(0, b"")
    )
    assert decode_response(h("b2 01 02 08 03"), MessageKind.GET_SUPPORTED_ATT_KEY_IDS) == (
        GetSupportedAttKeyIDsResponse(3)
    )
    assert decode_response(h("1a 02 08 1e"), MessageKind.GET_LAUNCH_TOKEN) == LegacyResponse(
        MessageKind.GET_LAUNCH_TOKEN, 30
    )
