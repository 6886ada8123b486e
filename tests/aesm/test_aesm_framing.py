"""Frame codec (spec/aesm-wire.md section 2): whole, byte by byte, trailing garbage, caps."""

from __future__ import annotations

import pytest

from sgx_quote_helper.aesm import (
    CONNECTION_CLOSED,
    MAX_REQUEST_BODY_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    NEED_DATA,
    AesmProtocolError,
    FrameDecoder,
    decode_frame_header,
    encode_frame,
)
from sgx_quote_helper.errors import ParseError, UsageError

# GetSupportedAttKeyIDsRequest{buf_size=256, timeout=15000} from section 5.
FRAME = bytes.fromhex("09 00 00 00 b2 01 06 08 80 02 48 98 75")
BODY = FRAME[4:]


def test_caps_fit_the_largest_legitimate_messages() -> None:
    assert MAX_REQUEST_BODY_SIZE >= 1667  # GetQuoteEx with qe_report_info, section 5
    assert MAX_REQUEST_BODY_SIZE == 64 * 1024
    assert MAX_RESPONSE_BODY_SIZE == 1024 * 1024


def test_encode_frame_prefixes_little_endian_length() -> None:
    assert encode_frame(BODY, max_body_size=MAX_REQUEST_BODY_SIZE) == FRAME
    assert encode_frame(b"", max_body_size=0) == b"\x00\x00\x00\x00"


def test_encode_frame_refuses_oversized_body_as_local_error() -> None:
    with pytest.raises(UsageError):
        encode_frame(b"x" * 11, max_body_size=10)


def test_whole_frame() -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(FRAME)
    assert decoder.next_frame() == BODY
    assert decoder.next_frame() is NEED_DATA
    assert decoder.trailing_data == b""


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    for i in range(len(FRAME) - 1):
        decoder.receive_data(FRAME[i : i + 1])
        assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(FRAME[-1:])
    assert decoder.next_frame() == BODY


def test_header_and_body_in_two_writes_like_intels_client() -> None:
    # Section 14: libsgx_quote_ex writes the length and the body separately.
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(FRAME[:4])
    assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(FRAME[4:])
    assert decoder.next_frame() == BODY


def test_trailing_garbage_is_left_in_the_buffer() -> None:
    garbage = b"\xde\xad\xbe\xef\x00garbage"
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(FRAME + garbage)
    assert decoder.next_frame() == BODY
    assert decoder.trailing_data == garbage


def test_two_frames_back_to_back() -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(FRAME + b"\x00\x00\x00\x00" + FRAME)
    assert decoder.next_frame() == BODY
    assert decoder.next_frame() == b""
    assert decoder.next_frame() == BODY
    assert decoder.next_frame() is NEED_DATA


def test_huge_length_prefix_is_rejected_before_any_body_arrives() -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(b"\xff\xff\xff\xff")  # 4 GiB announced, nothing else sent
    with pytest.raises(AesmProtocolError, match="limit"):
        decoder.next_frame()
    assert decoder.trailing_data == b"\xff\xff\xff\xff"  # nothing was allocated for the body


def test_length_exactly_at_the_cap_is_accepted_one_above_is_not() -> None:
    cap = 16
    ok = FrameDecoder(max_body_size=cap)
    ok.receive_data(cap.to_bytes(4, "little") + b"a" * cap)
    assert ok.next_frame() == b"a" * cap
    over = FrameDecoder(max_body_size=cap)
    over.receive_data((cap + 1).to_bytes(4, "little"))
    with pytest.raises(AesmProtocolError):
        over.next_frame()


def test_protocol_error_is_a_parse_error_and_sticky() -> None:
    decoder = FrameDecoder(max_body_size=8)
    decoder.receive_data(b"\x09\x00\x00\x00")
    with pytest.raises(ParseError):
        decoder.next_frame()
    with pytest.raises(AesmProtocolError):
        decoder.next_frame()


def test_clean_close_between_frames() -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(FRAME)
    decoder.receive_data(b"")
    assert decoder.next_frame() == BODY
    assert decoder.next_frame() is CONNECTION_CLOSED


@pytest.mark.parametrize("cut", [1, 3, 4, 5, len(FRAME) - 1])
def test_close_inside_a_frame_is_a_protocol_error(cut: int) -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(FRAME[:cut])
    assert decoder.next_frame() is NEED_DATA
    decoder.receive_data(b"")
    with pytest.raises(AesmProtocolError, match="stream ended"):
        decoder.next_frame()


def test_data_after_eof_is_a_local_error() -> None:
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    decoder.receive_data(b"")
    with pytest.raises(UsageError):
        decoder.receive_data(b"x")


def test_decode_frame_header() -> None:
    assert decode_frame_header(FRAME[:4], max_body_size=MAX_REQUEST_BODY_SIZE) == 9
    with pytest.raises(AesmProtocolError):
        decode_frame_header(b"\x01\x00\x10\x00", max_body_size=MAX_RESPONSE_BODY_SIZE)
    with pytest.raises(UsageError):
        decode_frame_header(b"\x00\x00", max_body_size=MAX_RESPONSE_BODY_SIZE)


def test_max_body_size_must_be_a_u32() -> None:
    with pytest.raises(UsageError):
        FrameDecoder(max_body_size=1 << 32)
