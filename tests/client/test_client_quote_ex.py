"""The low-level client against fake AESM servers: wire, transport outcomes, status mapping.

Every outcome is checked for the exact ``sgx_status_t`` Intel's ``libsgx_quote_ex``
returns (spec aesm-wire.md sections 7.2 and 12.4) and the DCAP ``quote3_error_t``
it becomes.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_client_helpers import (
    KEY_ID,
    Close,
    FakeAesm,
    Hang,
    HonestAesm,
    Raw,
    Reply,
    error_facts,
    fake_aesm,
    framed,
    run_as_nobody,
    shared_tmp,
)

from sgx_quote_helper import client
from sgx_quote_helper.aesm import (
    DecodedRequest,
    GetQuoteExResponse,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumResponse,
    GetSupportedAttKeyIDsResponse,
    InitQuoteExResponse,
    Response,
    SelectAttKeyIDResponse,
    encode_frame,
)
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.sgx import AesmError, Quote3Error, QuoteExCall, SgxStatus, aesm_to_sgx

REPORT = bytes(range(256)) + bytes(176)


@pytest.fixture(autouse=True)
def _fresh_mode() -> Iterator[None]:
    client._reset_mode_for_tests()
    yield
    client._reset_mode_for_tests()


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# One invocation per quote-ex call, and the reply type carrying an error for it.
CALLS: dict[QuoteExCall, tuple[Callable[[client.AesmClient], object], type[Response]]] = {
    QuoteExCall.SELECT_ATT_KEY_ID: (lambda c: c.select_att_key_id(None), SelectAttKeyIDResponse),
    QuoteExCall.INIT_QUOTE_EX: (
        lambda c: c.init_quote_ex(KEY_ID, pub_key_id=True),
        InitQuoteExResponse,
    ),
    QuoteExCall.GET_QUOTE_SIZE_EX: (lambda c: c.get_quote_size_ex(KEY_ID), GetQuoteSizeExResponse),
    QuoteExCall.GET_QUOTE_EX: (
        lambda c: c.get_quote_ex(REPORT, KEY_ID, 8192),
        GetQuoteExResponse,
    ),
    QuoteExCall.GET_SUPPORTED_ATT_KEY_ID_NUM: (
        lambda c: c.get_supported_att_key_id_num(),
        GetSupportedAttKeyIDNumResponse,
    ),
    QuoteExCall.GET_SUPPORTED_ATT_KEY_IDS: (
        lambda c: c.get_supported_att_key_ids(1),
        GetSupportedAttKeyIDsResponse,
    ),
}


def failure(call: Callable[[], object]) -> client.QuoteClientError:
    with pytest.raises(client.QuoteClientError) as info:
        call()
    return info.value


# ---- what goes on the wire ----------------------------------------------------------------------


def test_requests_are_intels_frames_one_connection_each(tmp_path: Path) -> None:
    with fake_aesm(tmp_path, HonestAesm()) as server:
        aesm = client.AesmClient(server.path)
        assert aesm.get_quote_size_ex(KEY_ID) > 0
        assert aesm.get_supported_att_key_id_num() == 1
        assert aesm.get_supported_att_key_ids(1) == [KEY_ID]
        size_query = aesm.init_quote_ex(KEY_ID, pub_key_id=False)
        real = aesm.init_quote_ex(KEY_ID, pub_key_id=True)
    # Spec section 5: byte-exact frames, timeout = 15000 (48 98 75) in each.
    assert server.frames[0] == h("0a010000 82018602 0a8002") + KEY_ID + h("489875")
    assert server.frames[1] == h("06000000 aa0103 489875")
    assert server.frames[2] == h("09000000 b20106 088002 489875")
    assert server.frames[3] == h("0b010000 7a8802 0a8002") + KEY_ID + h("1800 489875")
    assert server.frames[4] == h("0d010000 7a8a02 0a8002") + KEY_ID + h("1801 2020 489875")
    assert server.connections == 5
    assert size_query.target_info.to_bytes() == bytes(512)
    assert (size_query.pub_key_id_size, size_query.pub_key_id) == (32, None)
    assert real.pub_key_id == b"\x11" * 32
    assert real.target_info.mr_enclave != bytes(32)


def test_get_quote_ex_frame_and_padded_buffer(tmp_path: Path) -> None:
    info = bytes(16) + bytes(512) + bytes(432)
    with fake_aesm(tmp_path, HonestAesm()) as server:
        result = client.AesmClient(server.path).get_quote_ex(REPORT, KEY_ID, 8192, info)
    frame = server.frames[0]
    assert frame[:8] == h("83060000 8a01ff0c")
    assert frame[-6:] == h("208040 489875")
    assert len(result.quote) == 8192  # the caller's whole buffer, as in C
    assert client.trim_quote(result.quote) == result.quote[: 436 + 1024]
    assert result.qe_report_info is not None
    assert len(result.qe_report_info) == 960


@pytest.mark.parametrize("length", [0, 100, 8191, 8193])
def test_a_quote_buffer_not_of_buf_size_is_a_malformed_quote(tmp_path: Path, length: int) -> None:
    # Intel's aesmd sends exactly buf_size bytes (spec 6.2); a short buffer
    # would otherwise be zero-padded into a "quote" that does not parse.
    quote = (bytes(range(256)) * 40)[:length]
    with fake_aesm(tmp_path, lambda request: Reply(GetQuoteExResponse(0, quote=quote))) as server:
        error = failure(lambda: client.AesmClient(server.path).get_quote_ex(REPORT, KEY_ID, 8192))
    assert isinstance(error, client.UnexpectedError)
    assert (error.sgx_status, error.quote3_error) == (0x0001, 0xE001)
    assert error.call is QuoteExCall.GET_QUOTE_EX
    assert f"the daemon sent a malformed quote: a {length}-byte quote buffer" in str(error)
    assert "AESM-compatible" in error.diagnostics()


def test_select_att_key_id_sends_the_list_only_when_given(tmp_path: Path) -> None:
    listing = h("0000 0000 01000000") + KEY_ID
    with fake_aesm(tmp_path, HonestAesm()) as server:
        aesm = client.AesmClient(server.path)
        assert aesm.select_att_key_id() == KEY_ID
        assert aesm.select_att_key_id(listing) == KEY_ID
    assert server.frames[0] == h("06000000 9a0103 109875")  # timeout is field 2 here
    assert server.requests[1].att_key_id_list == listing  # type: ignore[union-attr]


def test_custom_timeout_is_sent_in_milliseconds(tmp_path: Path) -> None:
    with fake_aesm(tmp_path, HonestAesm()) as server:
        client.AesmClient(server.path, timeout=2.5).get_supported_att_key_id_num()
    assert server.requests[0].timeout == 2500  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.get_quote_ex(b"short", KEY_ID, 8192), "report must be 432 bytes"),
        (lambda c: c.get_quote_ex(REPORT, KEY_ID, 0), "buf_size must be in"),
        (lambda c: c.get_quote_ex(REPORT, KEY_ID, 8192, b"x"), "qe_report_info must be 960"),
        (lambda c: c.get_quote_size_ex(KEY_ID[:158]), "att_key_id must be 256 bytes"),
        (lambda c: c.get_supported_att_key_ids(0), "num must be in"),
        (lambda c: c.init_quote_ex(KEY_ID, pub_key_id=True, pub_key_id_size=0), "pub_key_id_size"),
        (
            lambda c: c.init_quote_ex(KEY_ID, pub_key_id=True, pub_key_id_size="32"),
            "pub_key_id_size must be in 1..4294967294, got '32'",
        ),
        (
            lambda c: c.init_quote_ex(KEY_ID, pub_key_id=True, pub_key_id_size=32.0),
            "pub_key_id_size must be in",
        ),
        (lambda c: c.init_quote_ex(KEY_ID, pub_key_id=None), "pub_key_id must be True or False"),
        (lambda c: c.get_quote_ex("x" * 432, KEY_ID, 8192), "(bytes, bytearray or memoryview)"),
        (lambda c: c.get_quote_ex(432, KEY_ID, 8192), "report must be 432 bytes (bytes"),
        (lambda c: c.get_quote_ex(bytearray(431), KEY_ID, 8192), "report must be 432 bytes, got"),
        (lambda c: c.select_att_key_id("abc"), "att_key_id_list must be bytes (bytes"),
    ],
)
def test_client_side_parameter_checks_send_nothing(
    tmp_path: Path, call: Callable[[client.AesmClient], object], expected: str
) -> None:
    with fake_aesm(tmp_path, HonestAesm()) as server:
        error = failure(lambda: call(client.AesmClient(server.path)))
    assert isinstance(error, client.InvalidParameterError)
    assert (error.sgx_status, error.quote3_error) == (
        SgxStatus.ERROR_INVALID_PARAMETER,
        Quote3Error.ERROR_INVALID_PARAMETER,
    )
    assert expected in str(error)
    assert server.connections == 0


def test_bytes_like_arguments_send_the_same_request_as_bytes(tmp_path: Path) -> None:
    info = bytes(16) + bytes(512) + bytes(432)
    with fake_aesm(tmp_path, HonestAesm()) as server:
        aesm = client.AesmClient(server.path)
        expected = aesm.get_quote_ex(REPORT, KEY_ID, 8192, info)
        for kind in (bytearray, memoryview):
            result = aesm.get_quote_ex(kind(REPORT), kind(KEY_ID), 8192, kind(info))
            assert result == expected
        assert aesm.select_att_key_id(bytearray(h("0000 0000 01000000") + KEY_ID)) == KEY_ID
    assert server.frames[1] == server.frames[2] == server.frames[0]


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (float("inf"), "timeout must be a number of seconds above 0 and at most 4294967.295"),
        (float("nan"), "got nan"),
        (1e12, "got 1000000000000.0"),  # beyond what settimeout() takes
        (4294967.296, "got 4294967.296"),  # beyond the u32 ms of the request
        (0, "got 0"),
        (-1, "got -1"),
        ("5", "timeout must be a number of seconds, got str"),
        (None, "got NoneType"),
        (True, "got bool"),
    ],
)
def test_a_timeout_out_of_range_is_invalid_parameter(timeout: object, message: str) -> None:
    makers: list[Callable[[], object]] = [
        lambda: client.AesmClient("/nonexistent/aesm.socket", timeout),  # type: ignore[arg-type]
        lambda: client.AsyncAesmClient("/nonexistent/aesm.socket", timeout),  # type: ignore[arg-type]
        lambda: client.out_of_process("/nonexistent/aesm.socket", timeout=timeout),  # type: ignore[arg-type]
    ]
    for make in makers:
        with pytest.raises(client.InvalidParameterError, match=re.escape(message)) as info:
            make()
        assert isinstance(info.value, UsageError)
        assert info.value.sgx_status == SgxStatus.ERROR_INVALID_PARAMETER
    assert client.current_mode() is None  # a refused quoter fixes no mode


def test_the_timeout_bounds_work_on_the_socket(tmp_path: Path) -> None:
    with fake_aesm(tmp_path, HonestAesm()) as server:
        for timeout, sent in ((5, 5000), ((2**32 - 1) / 1000, 2**32 - 1)):
            aesm = client.AesmClient(server.path, timeout=timeout)
            assert aesm.get_supported_att_key_id_num() == 1
            assert server.requests[-1].timeout == sent  # type: ignore[union-attr]
    # The smallest timeouts are taken; the request carries 1 ms (see the backlog
    # tests for the connect bound they give).
    assert client.AesmClient(server.path, timeout=1e-9).timeout_ms == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (3, "socket_path must be a path (str or os.PathLike), got int"),
        ("/run/a\0b.socket", "contains a NUL byte"),
        ("", "socket_path is empty"),
        (b"", "socket_path is empty"),
        (["/run/aesm.socket"], "got list"),
    ],
)
def test_a_socket_path_that_is_no_path_is_invalid_parameter(path: object, message: str) -> None:
    for make in (client.AesmClient, client.AsyncAesmClient):
        with pytest.raises(client.InvalidParameterError, match=re.escape(message)):
            make(path)  # type: ignore[arg-type]
    with pytest.raises(client.InvalidParameterError, match=re.escape(message)):
        client._transport.SyncTransport(path)  # type: ignore[arg-type]


def test_a_bytes_socket_path_is_decoded(tmp_path: Path) -> None:
    with fake_aesm(tmp_path, HonestAesm()) as server:
        aesm = client.AesmClient(os.fsencode(server.path))  # type: ignore[arg-type]
        assert aesm.socket_path == str(server.path)
        assert aesm.get_supported_att_key_id_num() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"busy_attempts": "3"},
        {"busy_attempts": 0},
        {"busy_attempts": 2.5},
        {"busy_initial_delay": float("nan")},
        {"busy_max_delay": float("inf")},
        {"busy_initial_delay": "0.1"},
    ],
)
def test_a_retry_policy_out_of_range_is_invalid_parameter(kwargs: dict[str, object]) -> None:
    with pytest.raises(client.InvalidParameterError, match="a RetryPolicy needs"):
        client.RetryPolicy(**kwargs)  # type: ignore[arg-type]


# ---- transport outcomes (spec 7.2) -----------------------------------------------------------


def test_no_socket_is_service_unavailable_with_hints(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "aesm.socket"
    error = failure(lambda: client.AesmClient(path).get_supported_att_key_id_num())
    assert isinstance(error, client.ServiceUnavailableError)
    assert error.sgx_status == SgxStatus.ERROR_SERVICE_UNAVAILABLE
    assert error.quote3_error == Quote3Error.SERVICE_UNAVAILABLE
    assert (int(error.sgx_status), int(error.quote3_error)) == (0x4001, 0xE040)
    text = error.diagnostics()
    for needle in (
        str(path),
        "quote helper",
        "/var/run/aesmd",
        "SGX_ERROR_SERVICE_UNAVAILABLE 0x4001",
        "SGX_QL_SERVICE_UNAVAILABLE 0xE040",
        "given explicitly",
    ):
        assert needle in text, needle


def test_stale_socket_is_service_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "aesm.socket"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a crashed daemon leaves
    try:
        error = failure(lambda: client.AesmClient(path).get_supported_att_key_id_num())
    finally:
        stale.close()
    assert isinstance(error, client.ServiceUnavailableError)
    assert "connection refused" in str(error)
    assert "stale socket" in error.diagnostics()


def test_close_without_reply_is_unexpected_with_allow_list_hint(tmp_path: Path) -> None:
    with fake_aesm(tmp_path, lambda request: Close()) as server:
        error = failure(lambda: client.AesmClient(server.path).get_quote_size_ex(KEY_ID))
    assert isinstance(error, client.UnexpectedError)
    assert (error.sgx_status, error.quote3_error) == (0x0001, 0xE001)
    assert error.call is QuoteExCall.GET_QUOTE_SIZE_EX
    text = error.diagnostics()
    assert "closed the connection without replying" in text
    assert "--allow-uid" in text
    assert f"uid {os.getuid()}" in text
    assert "malformed" in text
    assert "daemon's log" in text


def test_never_replying_is_service_timeout(tmp_path: Path) -> None:
    with fake_aesm(tmp_path, lambda request: Hang()) as server:
        aesm = client.AesmClient(server.path, timeout=0.2)
        error = failure(lambda: aesm.get_quote_ex(REPORT, KEY_ID, 8192))
    assert isinstance(error, client.ServiceTimeoutError)
    assert (error.sgx_status, error.quote3_error) == (0x4002, 0xE042)
    assert "0.2 s" in error.diagnostics()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\x10\x00", "short read"),  # half a length
        (h("64000000") + b"0123456789", "10 of 100 body bytes"),  # body cut short
        (h("ffffffff"), "limit"),  # length above the client's cap
        (h("03000000") + b"\xff\xff\xff", "unusable reply"),  # not protobuf
        (framed(SelectAttKeyIDResponse(0, KEY_ID)), "lacks getQuoteSizeExRes"),  # wrong type
        (encode_frame(h("a2010208 07"), max_body_size=64), "does not support"),  # field 20
    ],
)
def test_broken_replies_are_unexpected(tmp_path: Path, data: bytes, needle: str) -> None:
    with fake_aesm(tmp_path, lambda request: Raw(data)) as server:
        error = failure(lambda: client.AesmClient(server.path).get_quote_size_ex(KEY_ID))
    assert isinstance(error, client.UnexpectedError)
    assert (error.sgx_status, error.quote3_error) == (0x0001, 0xE001)
    assert needle in str(error)


def test_permission_denied_socket_from_an_unprivileged_uid() -> None:
    with shared_tmp() as root, fake_aesm(root, HonestAesm()) as server:
        os.chmod(server.path, 0o700)  # root-only socket in a 0755 directory

        def check() -> dict[str, object]:
            try:
                client.AesmClient(server.path).get_supported_att_key_id_num()
            except client.QuoteClientError as exc:
                return error_facts(exc)
            return {"type": "no error"}

        facts = run_as_nobody(check)
        assert client.AesmClient(server.path).get_supported_att_key_id_num() == 1  # root may
    assert facts["type"] == "ServiceUnavailableError"
    assert (facts["sgx_status"], facts["quote3_error"]) == (0x4001, 0xE040)
    text = str(facts["diagnostics"])
    assert "permission denied" in text
    assert "mode 0700, owner 0:0" in text
    assert "uid 65534, gid 65534" in text
    assert "--socket-mode" in text


# ---- every AESM error code through every call (spec 12.4) -------------------------------------


def error_reply(kind: type[Response], code: int) -> Response:
    """An error reply of ``kind`` with the fields Intel's server always sends."""
    if kind is InitQuoteExResponse:
        return InitQuoteExResponse(code, pub_key_id_size=32)
    if kind is GetQuoteSizeExResponse:
        return GetQuoteSizeExResponse(code, quote_size=0)
    make: Callable[[int], Response] = kind
    return make(code)


@pytest.fixture(scope="module")
def error_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeAesm, Any]]:
    state: dict[str, Response] = {}

    def handler(request: DecodedRequest) -> Reply:
        return Reply(state["reply"])

    with fake_aesm(tmp_path_factory.mktemp("errors"), handler) as server:
        yield server, state


# Spelled out from the spec's tables, independently of sgx._status.
SPEC_CASES = [
    (QuoteExCall.GET_QUOTE_EX, 47, 0x3001, 0xE001),  # forged REPORT: MAC_MISMATCH
    (QuoteExCall.GET_QUOTE_EX, 45, 0x3001, 0xE001),
    (QuoteExCall.GET_QUOTE_EX, 42, 0x8003, 0xE00F),
    (QuoteExCall.GET_QUOTE_SIZE_EX, 42, 0x8003, 0xE00F),
    (QuoteExCall.INIT_QUOTE_EX, 42, 0x0001, 0xE001),  # no override for init
    (QuoteExCall.GET_QUOTE_EX, 18, 0x400A, 0xE043),
    (QuoteExCall.INIT_QUOTE_EX, 19, 0x400A, 0xE043),
    (QuoteExCall.GET_QUOTE_SIZE_EX, 19, 0x0001, 0xE001),
    (QuoteExCall.INIT_QUOTE_EX, 12, 0x4007, 0xE041),
    (QuoteExCall.GET_QUOTE_EX, 13, 0x4007, 0xE041),
    (QuoteExCall.INIT_QUOTE_EX, 50, 0x8002, 0xE010),
    (QuoteExCall.INIT_QUOTE_EX, 44, 0x8005, 0xE011),
    (QuoteExCall.SELECT_ATT_KEY_ID, 38, 0x8001, 0xE00B),
    (QuoteExCall.GET_SUPPORTED_ATT_KEY_IDS, 38, 0x0001, 0xE001),
    (QuoteExCall.GET_QUOTE_EX, 30, 0x4001, 0xE040),
    (QuoteExCall.GET_QUOTE_EX, 3, 0x0002, 0xE002),
    (QuoteExCall.GET_QUOTE_EX, 21, 0x0003, 0xE003),
    (QuoteExCall.GET_QUOTE_EX, 2, 0x2006, 0xE03F),
    (QuoteExCall.GET_QUOTE_EX, 29, 0x2005, 0xE001),
    (QuoteExCall.GET_QUOTE_EX, 20, 0x4006, 0xE001),
    (QuoteExCall.GET_QUOTE_EX, 1, 0x0001, 0xE001),
    (QuoteExCall.GET_QUOTE_EX, 27, 0x0001, 0xE001),  # not an aesm_error_t
    (QuoteExCall.GET_QUOTE_EX, 999, 0x0001, 0xE001),
]


@pytest.mark.parametrize(("call", "code", "sgx", "quote3"), SPEC_CASES)
def test_aesm_codes_map_as_in_the_spec(
    error_server: tuple[FakeAesm, Any], call: QuoteExCall, code: int, sgx: int, quote3: int
) -> None:
    server, state = error_server
    invoke, kind = CALLS[call]
    state["reply"] = error_reply(kind, code)
    error = failure(lambda: invoke(client.AesmClient(server.path)))
    assert (error.sgx_status, error.quote3_error, error.aesm_error) == (sgx, quote3, code)
    assert error.call is call
    assert f"0x{sgx:04X}" in error.diagnostics()
    assert f"0x{quote3:04X}" in error.diagnostics()


def test_every_aesm_code_through_every_call(error_server: tuple[FakeAesm, Any]) -> None:
    server, state = error_server
    aesm = client.AesmClient(server.path)
    checked = 0
    for call, (invoke, kind) in CALLS.items():
        for code in AesmError:
            if code == AesmError.SUCCESS:
                continue
            state["reply"] = error_reply(kind, code)
            error = failure(lambda: invoke(aesm))  # noqa: B023 - called at once
            expected = aesm_to_sgx(code, call)
            assert error.sgx_status == expected, (call, code)
            assert type(error) is client._errors.error_class_for(expected)
            assert error.aesm_error == code
            assert code.c_name in error.diagnostics()
            checked += 1
    assert checked == 6 * (len(AesmError) - 1)


def test_specific_hints_for_common_failures(error_server: tuple[FakeAesm, Any]) -> None:
    server, state = error_server
    aesm = client.AesmClient(server.path)
    state["reply"] = GetQuoteExResponse(47)
    rejected = failure(lambda: aesm.get_quote_ex(REPORT, KEY_ID, 8192))
    assert isinstance(rejected, client.ReportRejectedError)
    assert "not made for the QE's target info" in rejected.diagnostics()
    state["reply"] = InitQuoteExResponse(12, pub_key_id_size=32)
    network = failure(lambda: aesm.init_quote_ex(KEY_ID, pub_key_id=True))
    assert isinstance(network, client.NetworkFailureError)
    assert "cannot reach the PCCS" in network.diagnostics()


# ---- arbitrary bytes from the peer raise only client errors (STYLE: every decoder) ---------


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeAesm, Any]]:
    state: dict[str, bytes] = {"raw": b""}
    with fake_aesm(tmp_path_factory.mktemp("raw"), lambda request: Raw(state["raw"])) as server:
        yield server, state


def _framed_bytes(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + body


@given(
    call=st.sampled_from(list(CALLS)),
    data=st.one_of(st.binary(max_size=48), st.binary(max_size=300).map(_framed_bytes)),
)
def test_arbitrary_replies_raise_only_client_errors(
    raw_server: tuple[FakeAesm, Any], call: QuoteExCall, data: bytes
) -> None:
    server, state = raw_server
    state["raw"] = data
    invoke, _ = CALLS[call]
    error: client.QuoteClientError | None = None
    try:
        invoke(client.AesmClient(server.path, timeout=2.0))  # some bytes are a valid reply
    except client.QuoteClientError as exc:
        error = exc
    if error is not None:
        assert error.call is call
        assert error.sgx_status != SgxStatus.SUCCESS
        assert error.diagnostics()


# ---- the asyncio client shares the flows -----------------------------------------------------


def test_async_client_success_and_failures(tmp_path: Path) -> None:
    async def scenario() -> list[client.QuoteClientError]:
        errors: list[client.QuoteClientError] = []
        with fake_aesm(tmp_path, HonestAesm(), "good.socket") as good:
            aesm = client.AsyncAesmClient(good.path)
            assert await aesm.get_supported_att_key_id_num() == 1
            result = await aesm.get_quote_ex(REPORT, KEY_ID, 4096)
            assert len(result.quote) == 4096
            assert await aesm.select_att_key_id() == KEY_ID
        for name, handler, timeout in (
            ("closes.socket", lambda request: Close(), 1.0),
            ("hangs.socket", lambda request: Hang(), 0.2),
            ("refuses.socket", lambda request: Reply(GetQuoteSizeExResponse(42, 0)), 1.0),
        ):
            with fake_aesm(tmp_path, handler, name) as server:
                try:
                    await client.AsyncAesmClient(server.path, timeout).get_quote_size_ex(KEY_ID)
                except client.QuoteClientError as exc:
                    errors.append(exc)
        try:
            await client.AsyncAesmClient(tmp_path / "none.socket").get_quote_size_ex(KEY_ID)
        except client.QuoteClientError as exc:
            errors.append(exc)
        return errors

    errors = asyncio.run(scenario())
    assert [(type(e).__name__, e.sgx_status, e.quote3_error) for e in errors] == [
        ("UnexpectedError", 0x0001, 0xE001),
        ("ServiceTimeoutError", 0x4002, 0xE042),
        ("AttestationKeyNotInitializedError", 0x8003, 0xE00F),
        ("ServiceUnavailableError", 0x4001, 0xE040),
    ]
    assert "without replying" in errors[0].diagnostics()


def test_default_socket_comes_from_sgx_aesm_addr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", f"unix:{tmp_path}/x.socket")
    aesm = client.AesmClient()
    assert aesm.socket_path == f"{tmp_path}/x.socket"
    assert client.current_mode() is None  # the low-level client fixes no mode
    error = failure(aesm.get_supported_att_key_id_num)
    assert f"taken from SGX_AESM_ADDR='unix:{tmp_path}/x.socket'" in error.diagnostics()


def test_a_directory_at_the_socket_path_is_named_as_a_mount_gone_wrong(tmp_path: Path) -> None:
    path = tmp_path / "aesm.socket"
    path.mkdir()  # what `docker -v SOCKET:SOCKET` leaves when the host had no socket yet
    error = failure(lambda: client.AesmClient(path).get_supported_att_key_id_num())
    assert isinstance(error, client.ServiceUnavailableError)
    assert (error.sgx_status, error.quote3_error) == (0x4001, 0xE040)
    assert f"{path} is a directory, not a socket" in str(error)
    text = error.diagnostics()
    assert "mount" in text
    assert "/var/run/aesmd" in text
    assert "stale socket" not in text
    assert "is not a socket" not in text


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda path: path.write_bytes(b""), "a regular file"),
        (lambda path: os.mkfifo(path), "a named pipe (FIFO)"),
    ],
)
def test_a_file_that_is_not_a_socket_is_named_as_such(
    tmp_path: Path, make: Callable[[Path], object], kind: str
) -> None:
    path = tmp_path / "aesm.socket"
    make(path)
    error = failure(lambda: client.AesmClient(path).get_supported_att_key_id_num())
    assert isinstance(error, client.ServiceUnavailableError)
    assert f"{path} is {kind}, not a socket" in str(error)
    text = error.diagnostics()
    assert "mode 0" in text
    assert "stale socket" not in text
    assert "nobody accepts" not in text
