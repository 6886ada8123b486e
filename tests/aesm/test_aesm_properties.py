"""Hypothesis properties: round trips, and "peer garbage raises only AesmProtocolError"."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgx_quote_helper.aesm import (
    CONNECTION_CLOSED,
    DISPATCH_ORDER,
    LEGACY_KINDS,
    MAX_REQUEST_BODY_SIZE,
    NEED_DATA,
    AesmProtocolError,
    CloseWithoutReply,
    FrameDecoder,
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
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    frame_request,
    frame_response,
    whole_frame,
)
from sgx_quote_helper.errors import UsageError

#: Example counts scale with the Hypothesis profile of tests/conftest.py (base
#: 100 in ``dev``): decoders fed garbage get 20x (2000 in dev), round trips 3x.
_BASE = settings().max_examples
FUZZ = settings(
    max_examples=20 * _BASE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ROUND_TRIP = settings(max_examples=3 * _BASE, deadline=None)

u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, (1 << 64) - 1)
blob = st.binary(max_size=300)


def opt(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | strategy


quote_ex_requests: st.SearchStrategy[Request] = st.one_of(
    st.builds(InitQuoteExRequest, opt(blob), st.booleans(), opt(u64), opt(u32)),
    st.builds(GetQuoteSizeExRequest, opt(blob), opt(u32)),
    st.builds(GetQuoteExRequest, blob, opt(blob), opt(blob), u32, opt(u32)),
    st.builds(SelectAttKeyIDRequest, opt(blob), opt(u32)),
    st.builds(GetSupportedAttKeyIDNumRequest, opt(u32)),
    st.builds(GetSupportedAttKeyIDsRequest, u32, opt(u32)),
)
responses: st.SearchStrategy[Response] = st.one_of(
    st.builds(InitQuoteExResponse, u32, opt(blob), opt(u64), opt(blob)),
    st.builds(GetQuoteSizeExResponse, u32, opt(u32)),
    st.builds(GetQuoteExResponse, u32, opt(blob), opt(blob)),
    st.builds(SelectAttKeyIDResponse, u32, opt(blob)),
    st.builds(GetSupportedAttKeyIDNumResponse, u32, opt(u32)),
    st.builds(GetSupportedAttKeyIDsResponse, u32, opt(blob)),
    st.builds(LegacyResponse, st.sampled_from(sorted(LEGACY_KINDS)), u32),
)


# Seed corpora for mutation: one valid body per message shape, with short
# payloads so that most mutations hit tags and lengths rather than payload bytes.
REQUEST_SEEDS = [
    encode_request(value)
    for value in (
        InitQuoteExRequest(b"k" * 8, False, 0x7FFD_3A9C_11F0_0E58, 15000),
        InitQuoteExRequest(b"k" * 8, True, 32, 15000),
        GetQuoteSizeExRequest(b"k" * 8, 15000),
        GetQuoteSizeExRequest(None),
        GetQuoteExRequest(b"r" * 8, b"k" * 8, b"q" * 8, 8192, 15000),
        SelectAttKeyIDRequest(b"l" * 8, 15000),
        GetSupportedAttKeyIDNumRequest(15000),
        GetSupportedAttKeyIDsRequest(256, 15000),
    )
] + [
    bytes.fromhex(text)
    for text in (
        "1a 06 0a 00 12 00 1a 00",  # GetLaunchToken (legacy)
        "72 04 0a 00 10 00",  # SGXRegister (legacy)
        "92 01 04 10 00 18 00",  # CheckUpdateStatus (legacy)
        "a2 01 02 08 01",  # field 20 only
        "7a 02 18 01 1a 06 0a 00 12 00 1a 00",  # two requests
    )
]
RESPONSE_SEEDS = [
    encode_response(value)
    for value in (
        InitQuoteExResponse(0, b"t" * 8, 32, b"p" * 8),
        GetQuoteSizeExResponse(0, 4734),
        GetQuoteExResponse(0, b"q" * 8, b"i" * 8),
        GetQuoteExResponse(42),
        SelectAttKeyIDResponse(0, b"s" * 8),
        GetSupportedAttKeyIDNumResponse(0, 1),
        GetSupportedAttKeyIDsResponse(0, b"a" * 8),
        LegacyResponse(MessageKind.GET_LAUNCH_TOKEN, 30),
    )
] + [bytes.fromhex("a2 01 02 08 01")]
FRAME_SEEDS = [len(body).to_bytes(4, "little") + body for body in REQUEST_SEEDS]


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed body with one random flip, cut or insertion (few draws: cheap to generate)."""

    def apply(seed: bytes, op: int, position: int, chunk: bytes) -> bytes:
        data = bytearray(seed)
        at = position % (len(data) + 1)
        if op == 0 and at < len(data):
            data[at] ^= chunk[0] or 0xFF
        elif op == 1:
            del data[at : at + len(chunk)]
        else:
            data[at:at] = chunk
        return bytes(data)

    return st.builds(
        apply,
        st.sampled_from(seeds),
        st.integers(0, 2),
        st.integers(0, 1 << 16),
        st.binary(min_size=1, max_size=4),
    )


garbage_requests = st.binary(max_size=400) | mutated(REQUEST_SEEDS)
garbage_responses = st.binary(max_size=400) | mutated(RESPONSE_SEEDS)
garbage_frames = st.binary(max_size=300) | mutated(FRAME_SEEDS)


def _feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    frames = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        if cut > start:  # an empty chunk would mean end of stream
            decoder.receive_data(data[start:cut])
            start = cut
        while isinstance(frame := decoder.next_frame(), bytes):
            frames.append(frame)
    return frames


# ---- Round trips ----


@ROUND_TRIP
@given(quote_ex_requests)
def test_request_round_trip(request_: Request) -> None:
    assert decode_request(encode_request(request_)) == request_


@ROUND_TRIP
@given(responses)
def test_response_round_trip(response: Response) -> None:
    assert decode_response(encode_response(response), response.kind) == response


@ROUND_TRIP
@given(quote_ex_requests, st.lists(st.integers(0, 2000), max_size=6))
def test_framed_request_round_trip_in_any_split(request_: Request, cuts: list[int]) -> None:
    frame = frame_request(request_)
    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    cuts = [c for c in cuts if c <= len(frame)]
    assert [decode_request(body) for body in _feed_in_chunks(decoder, frame, cuts)] == [request_]


@ROUND_TRIP
@given(responses)
def test_framed_reply_to_its_request_kind(response: Response) -> None:
    request_ = MissingRequiredField(response.kind)
    frame = frame_response(response, request=request_)
    assert int.from_bytes(frame[:4], "little") == len(frame) - 4
    assert decode_response(frame[4:], response.kind) == response


def _empty_field(kind: MessageKind) -> bytes:
    """Wrapper field ``kind`` holding an empty sub-message, hand-encoded."""
    tag = kind << 3 | 2
    return (bytes([tag]) if tag < 0x80 else bytes([tag & 0x7F | 0x80, tag >> 7])) + b"\x00"


@ROUND_TRIP
@given(
    st.sets(st.sampled_from(DISPATCH_ORDER), min_size=1).flatmap(
        lambda s: st.permutations(sorted(s))
    )
)
def test_dispatch_picks_first_kind_in_section_6_1_order(present: list[MessageKind]) -> None:
    # Empty sub-messages: kinds with required fields come back as
    # MissingRequiredField, the others as requests, but always of the winning kind.
    outcome = decode_request(b"".join(_empty_field(kind) for kind in present))
    expected = next(kind for kind in DISPATCH_ORDER if kind in present)
    assert not isinstance(outcome, CloseWithoutReply)
    assert outcome.kind is expected


# ---- Peer garbage ----


@FUZZ
@given(garbage_requests)
def test_decode_request_never_raises(body: bytes) -> None:
    outcome = decode_request(body)
    if isinstance(outcome, CloseWithoutReply | MissingRequiredField | LegacyRequest):
        return
    # Whatever was accepted is a well-formed value that re-encodes to the same meaning,
    # and passes the checks its constructor makes (the decoder skips them).
    assert decode_request(encode_request(outcome)) == outcome
    assert dataclasses.replace(outcome) == outcome


@FUZZ
@given(garbage_responses)
def test_decode_response_raises_only_protocol_errors(body: bytes) -> None:
    for kind in MessageKind:  # every expectation a client can have of one reply
        try:
            response = decode_response(body, kind)
        except AesmProtocolError:
            continue
        assert response.kind is kind


def _decode_stream(chunks: list[bytes]) -> tuple[list[bytes], str]:
    """Frames decoded from ``chunks`` followed by EOF, and how the stream ended."""
    decoder = FrameDecoder(max_body_size=256)
    frames: list[bytes] = []
    try:
        for chunk in [*chunks, b""]:
            decoder.receive_data(chunk)
            while isinstance(frame := decoder.next_frame(), bytes):
                frames.append(frame)
            if frame is CONNECTION_CLOSED:
                return frames, "closed"
    except AesmProtocolError:
        return frames, "protocol error"
    raise AssertionError("a decoder at end of stream must close or fail")


@FUZZ
@given(garbage_frames)
def test_frame_decoder_raises_only_protocol_errors(data: bytes) -> None:
    whole = _decode_stream([data])
    byte_by_byte = _decode_stream([data[i : i + 1] for i in range(len(data))])
    assert whole == byte_by_byte  # the split never changes the outcome
    assert all(len(frame) <= 256 for frame in whole[0])


@FUZZ
@given(st.one_of(garbage_frames, st.sampled_from(FRAME_SEEDS)), st.sampled_from([256, 4096]))
def test_whole_frame_is_the_decoders_first_frame(data: bytes, cap: int) -> None:
    """The one-read shortcut gives the decoder's first frame, or None where the
    decoder needs more bytes or refuses the frame (then the daemon feeds it)."""
    decoder = FrameDecoder(max_body_size=cap)
    if data:  # b"" would be the end of the stream, which a read never hands over
        decoder.receive_data(data)
    try:
        first = decoder.next_frame()
    except AesmProtocolError:
        first = NEED_DATA
    assert whole_frame(data, max_body_size=cap) == (first if first is not NEED_DATA else None)


@pytest.mark.parametrize("kind", sorted(LEGACY_KINDS))
def test_legacy_replies_round_trip_but_legacy_requests_are_never_built(kind: MessageKind) -> None:
    # The server decodes legacy requests (see test_aesm_server.py) and answers
    # them; this package never sends one, so their content is not modelled.
    reply = LegacyResponse(kind, 30)
    assert decode_response(encode_response(reply), kind) == reply
    with pytest.raises(UsageError):
        encode_request(LegacyRequest(kind))
