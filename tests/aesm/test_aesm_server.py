"""Server side: decoding and dispatch as Intel's aesmd does (spec/aesm-wire.md section 6.1).

Request bodies are built by hand from the tags of sections 4.1 and 4.3 with a
small varint helper, never with the codec under test. The client frames are
shaped after what each named client sends (section 9).
"""

from __future__ import annotations

import itertools

import pytest

from sgx_quote_helper.aesm import (
    AESM_SERVICE_UNAVAILABLE,
    AESM_SUCCESS,
    AESM_UNEXPECTED_ERROR,
    DISPATCH_ORDER,
    LEGACY_KINDS,
    CloseWithoutReply,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumRequest,
    GetSupportedAttKeyIDsRequest,
    InitQuoteExRequest,
    InitQuoteExResponse,
    LegacyRequest,
    LegacyResponse,
    MessageKind,
    MissingRequiredField,
    SelectAttKeyIDRequest,
    check_init_quote_ex,
    decode_request,
    error_response,
    frame_response,
    response_kind_for,
)
from sgx_quote_helper.errors import UsageError


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return tag(number, 2) + varint(len(payload)) + payload


def uint(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return tag(number, 0) + varint(value)


# Section 11.2: the default ECDSA attestation key id that DCAP and Gramine send.
DEFAULT_ECDSA_KEY_ID = bytearray(256)
DEFAULT_ECDSA_KEY_ID[0x00:0x30] = bytes.fromhex(
    "00 00 00 00 20 00 8c 4f 57 75 d7 96 50 3e 96 13"
    "7f 77 c6 8a 82 9a 00 56 ac 8d ed 70 14 0b 08 1b"
    "09 44 90 c5 7b ff 00 00 00 00 00 00 00 00 00 00"
)
DEFAULT_ECDSA_KEY_ID[0x36] = 1  # prod_id
DEFAULT_ECDSA_KEY_ID[0x9A] = 2  # algorithm_id
KEY = bytes(DEFAULT_ECDSA_KEY_ID)
REPORT = bytes(range(256)) + bytes(176)

# A minimal *initialized* inner message for every request kind (required fields
# present, section 4.3 and 4.5), and whether the empty inner message lacks one.
MINIMAL_INNER: dict[MessageKind, bytes] = {
    MessageKind.INIT_QUOTE: b"",
    MessageKind.GET_QUOTE: ld(1, b"") + uint(2, 0) + ld(3, b"") + uint(6, 0),
    MessageKind.GET_LAUNCH_TOKEN: ld(1, b"") + ld(2, b"") + ld(3, b""),
    MessageKind.REPORT_ATTESTATION_ERROR: ld(1, b"") + uint(2, 0) + uint(3, 0),
    MessageKind.GET_WHITE_LIST_SIZE: b"",
    MessageKind.GET_WHITE_LIST: b"",
    MessageKind.SGX_GET_EXTENDED_EPID_GROUP_ID: b"",
    MessageKind.SGX_SWITCH_EXTENDED_EPID_GROUP: b"",
    MessageKind.SGX_REGISTER: ld(1, b"") + uint(2, 0),
    MessageKind.INIT_QUOTE_EX: uint(3, 0),
    MessageKind.GET_QUOTE_SIZE_EX: b"",
    MessageKind.GET_QUOTE_EX: ld(1, b"") + uint(4, 0),
    MessageKind.CHECK_UPDATE_STATUS: uint(2, 0) + uint(3, 0),
    MessageKind.SELECT_ATT_KEY_ID: b"",
    MessageKind.GET_SUPPORTED_ATT_KEY_ID_NUM: b"",
    MessageKind.GET_SUPPORTED_ATT_KEY_IDS: uint(1, 0),
}
HAS_REQUIRED = {kind for kind, inner in MINIMAL_INNER.items() if inner}


def test_dispatch_order_is_the_one_in_section_6_1() -> None:
    assert [int(k) for k in DISPATCH_ORDER] == [
        3,
        1,
        2,
        4,
        18,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        19,
        21,
        22,
    ]
    assert set(DISPATCH_ORDER) == set(MessageKind)


# ---- Close without reply ----


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(ld(20, uint(1, 1)), id="field-20-only"),
        pytest.param(ld(20, b""), id="empty-field-20"),
        pytest.param(ld(23, b"\x08\x00"), id="unknown-23"),
        pytest.param(ld(5, b""), id="removed-ps-field-5"),
        pytest.param(ld(9, uint(9, 1)), id="removed-ps-field-9"),
        pytest.param(uint(99, 7) + ld(1000, b"x"), id="unknown-numbers"),
        pytest.param(uint(15, 1), id="field-15-with-wrong-wire-type"),
        pytest.param(b"\xff\xff\xff", id="not-protobuf"),
        pytest.param(bytes.fromhex("7a 05 18"), id="truncated"),
        pytest.param(b"\x00", id="field-number-0"),
    ],
)
def test_bodies_that_get_no_reply(body: bytes) -> None:
    outcome = decode_request(body)
    assert isinstance(outcome, CloseWithoutReply)
    assert outcome.reason


# ---- Missing required fields -> errorCode 1 in the matching response ----


@pytest.mark.parametrize("kind", sorted(HAS_REQUIRED))
def test_missing_required_field_is_answered_with_error_1(kind: MessageKind) -> None:
    outcome = decode_request(ld(kind, b""))
    assert outcome == MissingRequiredField(kind)
    assert response_kind_for(outcome) is kind
    reply = error_response(kind, AESM_UNEXPECTED_ERROR)
    assert reply.kind is kind
    frame = frame_response(reply, request=outcome)
    # errorCode 1 is written explicitly (`08 01`), inside the request's own field.
    assert frame[4:].startswith(tag(kind, 2))
    assert b"\x08\x01" in frame[4:]


@pytest.mark.parametrize(
    ("inner", "missing"),
    [
        pytest.param(ld(1, KEY) + uint(4, 32) + uint(9, 15000), "b_pub_key_id", id="InitQuoteEx"),
        pytest.param(ld(2, KEY) + uint(4, 8192), "report", id="GetQuoteEx-report"),
        pytest.param(ld(1, REPORT) + ld(2, KEY), "buf_size", id="GetQuoteEx-buf_size"),
    ],
)
def test_quote_ex_required_fields(inner: bytes, missing: str) -> None:
    number = 15 if missing == "b_pub_key_id" else 17
    assert decode_request(ld(number, inner)) == MissingRequiredField(MessageKind(number))


def test_missing_required_replies_carry_intels_always_present_fields() -> None:
    # InitQuoteEx always carries pub_key_id_size, GetQuoteSizeEx quote_size (section 6.2).
    assert error_response(MessageKind.INIT_QUOTE_EX, 1) == InitQuoteExResponse(1, pub_key_id_size=0)
    assert error_response(MessageKind.GET_QUOTE_SIZE_EX, 1) == GetQuoteSizeExResponse(
        1, quote_size=0
    )
    assert error_response(MessageKind.GET_QUOTE_EX, 1) == GetQuoteExResponse(1)
    req = MissingRequiredField(MessageKind.INIT_QUOTE_EX)
    assert frame_response(error_response(req.kind, 1), request=req) == bytes.fromhex(
        "06 00 00 00 7a 04 08 01 18 00"
    )


# ---- Legacy EPID / launch requests -> errorCode 30 in the matching response ----


@pytest.mark.parametrize("kind", sorted(LEGACY_KINDS))
def test_legacy_requests_get_service_unavailable_in_their_own_field(kind: MessageKind) -> None:
    request = decode_request(ld(kind, MINIMAL_INNER[kind] + uint(9, 15000)))
    assert request == LegacyRequest(kind)
    reply = error_response(response_kind_for(request), AESM_SERVICE_UNAVAILABLE)
    assert reply == LegacyResponse(kind, AESM_SERVICE_UNAVAILABLE)
    body = ld(kind, bytes.fromhex("08 1e"))
    assert frame_response(reply, request=request) == len(body).to_bytes(4, "little") + body


def test_gramine_launch_token_request_is_a_legacy_request() -> None:
    # Section 4.5: outer field 3; MRENCLAVE=1, modulus=2, attributes=3, timeout=9 (10000).
    inner = ld(1, bytes(32)) + ld(2, bytes(384)) + ld(3, bytes(16)) + uint(9, 10000)
    assert decode_request(ld(3, inner)) == LegacyRequest(MessageKind.GET_LAUNCH_TOKEN)


# ---- Dispatch order ----


@pytest.mark.parametrize(
    ("first", "second"),
    list(itertools.pairwise(DISPATCH_ORDER)),
    ids=lambda k: k.name,
)
def test_first_set_field_in_dispatch_order_wins(first: MessageKind, second: MessageKind) -> None:
    # Written in the opposite byte order, so the winner is not simply the first on the wire.
    body = ld(second, MINIMAL_INNER[second]) + ld(first, MINIMAL_INNER[first])
    outcome = decode_request(body)
    assert not isinstance(outcome, CloseWithoutReply)
    assert outcome.kind is first


def test_launch_token_beats_quote_ex() -> None:
    body = ld(15, uint(3, 1)) + ld(3, MINIMAL_INNER[MessageKind.GET_LAUNCH_TOKEN])
    assert decode_request(body) == LegacyRequest(MessageKind.GET_LAUNCH_TOKEN)


def test_missing_required_in_the_winning_field_is_not_rescued_by_a_later_one() -> None:
    body = ld(17, b"") + ld(19, b"")  # GetQuoteEx lacks report and buf_size
    assert decode_request(body) == MissingRequiredField(MessageKind.GET_QUOTE_EX)


# ---- Clients of every age ----


def test_dcap_first_init_quote_ex_with_garbage_buf_size() -> None:
    # Section 8: DCAP passes an uninitialized size_t next to b_pub_key_id=false.
    garbage = 0x7FFD_3A9C_11F0_0E58
    body = ld(15, ld(1, KEY) + uint(3, 0) + uint(4, garbage) + uint(9, 15000))
    request = decode_request(body)
    assert request == InitQuoteExRequest(KEY, b_pub_key_id=False, buf_size=garbage, timeout=15000)
    assert isinstance(request, InitQuoteExRequest)
    assert check_init_quote_ex(request, [KEY]) == AESM_SUCCESS


def test_dcap_garbage_buf_size_may_use_all_64_bits() -> None:
    body = ld(15, ld(1, KEY) + uint(3, 0) + uint(4, (1 << 64) - 1))
    request = decode_request(body)
    assert isinstance(request, InitQuoteExRequest)
    assert request.buf_size == (1 << 64) - 1
    assert check_init_quote_ex(request, [KEY]) == AESM_SUCCESS


def test_intel_size_only_init_quote_ex_sends_buf_size_0() -> None:
    # Section 14: sgx_init_quote_ex with a NULL key buffer: false, buf_size 0.
    body = ld(15, ld(1, KEY) + uint(3, 0) + uint(4, 0) + uint(9, 15000))
    assert decode_request(body) == InitQuoteExRequest(KEY, False, 0, 15000)


def test_gramine_single_init_quote_ex_without_timeout() -> None:
    body = ld(15, ld(1, KEY) + uint(3, 1) + uint(4, 32))
    assert decode_request(body) == InitQuoteExRequest(KEY, True, 32)


@pytest.mark.parametrize("timeout", [15000, 10000, 1_000_000, 30_000_000])
def test_timeout_in_any_unit_is_accepted(timeout: int) -> None:
    # Section 6.1: ms (Intel, inclavare, OE), us (Fortanix, Oasis, Enarx).
    body = ld(16, ld(1, KEY) + uint(9, timeout))
    assert decode_request(body) == GetQuoteSizeExRequest(KEY, timeout)


def test_inclavare_select_att_key_id_timeout_is_field_2() -> None:
    assert decode_request(bytes.fromhex("9a 01 03 10 98 75")) == SelectAttKeyIDRequest(None, 15000)


def test_psw_2_6_to_2_9_client_flow_without_requests_21_and_22() -> None:
    # A pre-2.9.1 client only knows 15, 16, 17 and 19; it never enumerates ids.
    flow = [
        ld(19, uint(2, 15000)),
        ld(15, ld(1, KEY) + uint(3, 0) + uint(9, 15000)),
        ld(15, ld(1, KEY) + uint(3, 1) + uint(4, 32) + uint(9, 15000)),
        ld(16, ld(1, KEY) + uint(9, 15000)),
        ld(17, ld(1, REPORT) + ld(2, KEY) + uint(4, 4734) + uint(9, 15000)),
    ]
    assert [decode_request(body) for body in flow] == [
        SelectAttKeyIDRequest(None, 15000),
        InitQuoteExRequest(KEY, False, None, 15000),
        InitQuoteExRequest(KEY, True, 32, 15000),
        GetQuoteSizeExRequest(KEY, 15000),
        GetQuoteExRequest(REPORT, KEY, None, 4734, 15000),
    ]


def test_psw_2_9_1_client_enumerates_key_ids() -> None:
    assert decode_request(ld(21, uint(9, 15000))) == GetSupportedAttKeyIDNumRequest(15000)
    assert decode_request(ld(22, uint(1, 256) + uint(9, 15000))) == GetSupportedAttKeyIDsRequest(
        256, 15000
    )


def test_newer_client_with_unknown_fields_inside_a_known_message() -> None:
    inner = (
        ld(1, REPORT)
        + ld(2, KEY)
        + uint(4, 8192)
        + uint(9, 15000)
        + uint(10, 1)  # unknown varint
        + ld(11, b"future")  # unknown bytes
        + tag(12, 5) + b"\x01\x02\x03\x04"  # unknown fixed32
        + tag(13, 1) + bytes(8)  # unknown fixed64
        + tag(14, 3) + uint(1, 5) + tag(14, 4)  # unknown group
    )  # fmt: skip
    assert decode_request(ld(17, inner)) == GetQuoteExRequest(REPORT, KEY, None, 8192, 15000)


def test_newer_client_with_unknown_top_level_fields_beside_a_known_one() -> None:
    body = ld(23, b"\x08\x01") + ld(16, ld(1, KEY)) + ld(20, b"") + uint(40, 3) + ld(5, b"")
    assert decode_request(body) == GetQuoteSizeExRequest(KEY)


def test_repeated_sub_message_is_merged_as_protobuf_does() -> None:
    body = ld(16, ld(1, b"old")) + ld(16, ld(1, KEY) + uint(9, 1))
    assert decode_request(body) == GetQuoteSizeExRequest(KEY, 1)


# ---- Replies only in the request's own field ----


def test_frame_response_refuses_a_reply_of_another_kind() -> None:
    request = GetQuoteSizeExRequest(KEY)
    with pytest.raises(UsageError, match="GET_QUOTE_SIZE_EX"):
        frame_response(GetQuoteExResponse(0), request=request)
    with pytest.raises(UsageError):
        frame_response(
            LegacyResponse(MessageKind.INIT_QUOTE, 30), request=LegacyRequest(MessageKind.GET_QUOTE)
        )


def test_response_kind_for_every_request_kind() -> None:
    assert response_kind_for(InitQuoteExRequest(KEY, True, 32)) is MessageKind.INIT_QUOTE_EX
    assert response_kind_for(GetQuoteExRequest(REPORT, KEY, None, 1)) is MessageKind.GET_QUOTE_EX
    assert response_kind_for(LegacyRequest(MessageKind.SGX_REGISTER)) is MessageKind.SGX_REGISTER
    for kind in MessageKind:
        assert error_response(kind, 1).kind is kind


def test_error_response_needs_an_error() -> None:
    with pytest.raises(UsageError):
        error_response(MessageKind.GET_QUOTE_EX, 0)


def test_oversized_reply_is_a_local_error() -> None:
    request = GetQuoteExRequest(REPORT, KEY, None, 1)
    with pytest.raises(UsageError):
        frame_response(GetQuoteExResponse(0, quote=bytes(2 * 1024 * 1024)), request=request)
