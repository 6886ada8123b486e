"""The worked byte examples of spec/aesm-wire.md section 5, laid out by hand.

Provenance: every frame below is copied from the section 5 table (length prefix,
outer tag and length, inner fields in ascending order); ``<N B>`` payloads are
filled with recognisable byte patterns. The expected bytes are written out
literally, independent of the codec, so the codec is checked against the spec
and not against itself.
"""

from __future__ import annotations

import pytest

from sgx_quote_helper.aesm import (
    MAX_REQUEST_BODY_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    NEED_DATA,
    FrameDecoder,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumRequest,
    GetSupportedAttKeyIDsRequest,
    InitQuoteExRequest,
    InitQuoteExResponse,
    MessageKind,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    frame_request,
    frame_response,
)

KEY = bytes(range(256))  # <256 B> att_key_id
REPORT = bytes((i * 7) & 0xFF for i in range(432))  # <432 B> report
QE_REPORT_INFO = bytes((i * 13 + 1) & 0xFF for i in range(960))  # <960 B> qe_report_info
TARGET_INFO = bytes((i * 3 + 5) & 0xFF for i in range(512))  # <512 B> target_info
PUB_KEY_ID = bytes(range(100, 132))  # <32 B> pub_key_id


def h(text: str) -> bytes:
    return bytes.fromhex(text)


REQUEST_EXAMPLES: list[tuple[str, Request, bytes, int]] = [
    (
        "GetQuoteSizeExRequest",
        GetQuoteSizeExRequest(att_key_id=KEY, timeout=15000),
        h("0a 01 00 00") + h("82 01 86 02") + h("0a 80 02") + KEY + h("48 98 75"),
        266,
    ),
    (
        "InitQuoteExRequest",
        InitQuoteExRequest(att_key_id=KEY, b_pub_key_id=True, buf_size=32, timeout=15000),
        h("0d 01 00 00") + h("7a 8a 02") + h("0a 80 02") + KEY + h("18 01 20 20 48 98 75"),
        269,
    ),
    (
        "GetQuoteExRequest",
        GetQuoteExRequest(
            report=REPORT, att_key_id=KEY, qe_report_info=None, buf_size=8192, timeout=15000
        ),
        h("c0 02 00 00")
        + h("8a 01 bc 05")
        + h("0a b0 03")
        + REPORT
        + h("12 80 02")
        + KEY
        + h("20 80 40 48 98 75"),
        704,
    ),
    (
        "GetQuoteExRequest+qe_report_info",
        GetQuoteExRequest(
            report=REPORT,
            att_key_id=KEY,
            qe_report_info=QE_REPORT_INFO,
            buf_size=8192,
            timeout=15000,
        ),
        h("83 06 00 00")
        + h("8a 01 ff 0c")
        + h("0a b0 03")
        + REPORT
        + h("12 80 02")
        + KEY
        + h("1a c0 07")
        + QE_REPORT_INFO
        + h("20 80 40 48 98 75"),
        1667,
    ),
    (
        "GetSupportedAttKeyIDNumRequest",
        GetSupportedAttKeyIDNumRequest(timeout=15000),
        h("06 00 00 00 aa 01 03 48 98 75"),
        6,
    ),
    (
        "GetSupportedAttKeyIDsRequest",
        GetSupportedAttKeyIDsRequest(buf_size=256, timeout=15000),
        h("09 00 00 00 b2 01 06 08 80 02 48 98 75"),
        9,
    ),
]

RESPONSE_EXAMPLES: list[tuple[str, Response, Request, bytes, int]] = [
    (
        "GetQuoteSizeExResponse",
        GetQuoteSizeExResponse(error_code=0, quote_size=4734),
        GetQuoteSizeExRequest(att_key_id=KEY),
        h("08 00 00 00 82 01 05 08 00 10 fe 24"),
        8,
    ),
    (
        "InitQuoteExResponse",
        InitQuoteExResponse(
            error_code=0, target_info=TARGET_INFO, pub_key_id_size=32, pub_key_id=PUB_KEY_ID
        ),
        InitQuoteExRequest(att_key_id=KEY, b_pub_key_id=True, buf_size=32),
        h("2c 02 00 00")
        + h("7a a9 04")
        + h("08 00")
        + h("12 80 04")
        + TARGET_INFO
        + h("18 20")
        + h("22 20")
        + PUB_KEY_ID,
        556,
    ),
    (
        "GetQuoteExResponse{errorCode=42}",
        GetQuoteExResponse(error_code=42),
        GetQuoteExRequest(report=REPORT, att_key_id=KEY, qe_report_info=None, buf_size=8192),
        h("05 00 00 00 8a 01 02 08 2a"),
        5,
    ),
    # Not in the table, but the note under it: a zero errorCode is written `08 00`.
    (
        "GetQuoteExResponse{errorCode=0}",
        GetQuoteExResponse(error_code=0),
        GetQuoteExRequest(report=REPORT, att_key_id=KEY, qe_report_info=None, buf_size=8192),
        h("05 00 00 00 8a 01 02 08 00"),
        5,
    ),
]


def _read_one_frame(frame: bytes, max_body_size: int) -> bytes:
    decoder = FrameDecoder(max_body_size=max_body_size)
    decoder.receive_data(frame)
    body = decoder.next_frame()
    assert isinstance(body, bytes)
    assert decoder.next_frame() is NEED_DATA
    return body


@pytest.mark.parametrize(
    ("value", "frame", "body_length"),
    [pytest.param(v, f, n, id=name) for name, v, f, n in REQUEST_EXAMPLES],
)
def test_request_encoder_produces_the_spec_bytes(
    value: Request, frame: bytes, body_length: int
) -> None:
    assert len(frame) == 4 + body_length  # the table is self-consistent
    assert frame[:4] == body_length.to_bytes(4, "little")
    assert encode_request(value) == frame[4:]
    assert frame_request(value) == frame


@pytest.mark.parametrize(
    ("value", "frame"),
    [pytest.param(v, f, id=name) for name, v, f, _ in REQUEST_EXAMPLES],
)
def test_request_decoder_reads_the_spec_bytes(value: Request, frame: bytes) -> None:
    body = _read_one_frame(frame, MAX_REQUEST_BODY_SIZE)
    assert decode_request(body) == value


@pytest.mark.parametrize(
    ("value", "request_", "frame", "body_length"),
    [pytest.param(v, r, f, n, id=name) for name, v, r, f, n in RESPONSE_EXAMPLES],
)
def test_response_encoder_produces_the_spec_bytes(
    value: Response, request_: Request, frame: bytes, body_length: int
) -> None:
    assert len(frame) == 4 + body_length
    assert frame[:4] == body_length.to_bytes(4, "little")
    assert encode_response(value) == frame[4:]
    assert frame_response(value, request=request_) == frame


@pytest.mark.parametrize(
    ("value", "frame"),
    [pytest.param(v, f, id=name) for name, v, _, f, _ in RESPONSE_EXAMPLES],
)
def test_response_decoder_reads_the_spec_bytes(value: Response, frame: bytes) -> None:
    body = _read_one_frame(frame, MAX_RESPONSE_BODY_SIZE)
    assert decode_response(body, value.kind) == value


def test_timeout_15000_is_48_98_75() -> None:
    body = encode_request(GetSupportedAttKeyIDNumRequest(timeout=15000))
    assert body.endswith(h("48 98 75"))


def test_absent_error_code_reads_as_proto2_default_1() -> None:
    # Section 6.1: a proto3-style encoder would drop errorCode 0, and the
    # client would read the default 1. That is why encoders always write it.
    assert decode_response(h("8a 01 00"), MessageKind.GET_QUOTE_EX) == GetQuoteExResponse(1)
