"""Conformance of the running daemon with Intel's aesmd on the wire (spec/aesm-wire.md).

The suite runs twice: against the daemon with the ``sim`` backend, and against
the daemon with the ``proxy`` backend in front of a second (``sim``) daemon,
which must be indistinguishable on the wire.

Every request is laid out by hand from sections 4 and 5 and sent the way
Intel's client sends it (the 4-byte length and the body as two writes,
section 14); replies are checked byte for byte where the spec fixes them, and
field by field with an independent protobuf reader otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    KEY_ID,
    TIMEOUT_15000,
    DaemonProcess,
    MakeReport,
    RunningDaemon,
    config_for,
    daemon_process,
    exchange,
    frame,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    ld,
    read_reply,
    report_maker,
    response_fields,
    run_daemon,
    varint,
    vi,
)

from sgx_quote_helper.service import load_config

REPORT_DATA = b"conformance".ljust(64, b"\x00")


@dataclass
class Daemon:
    running: RunningDaemon | DaemonProcess
    target_info: bytes
    pub_key_id: bytes
    quote_size: int
    report: bytes
    make_report: MakeReport

    @property
    def socket(self) -> Path:
        return self.running.socket

    def call(self, body: bytes) -> bytes | None:
        return intel_client(self.socket, body)


@contextlib.contextmanager
def _front(backend: str, sim: Path, run_dir: Path) -> Iterator[RunningDaemon | DaemonProcess]:
    """The daemon under test: the sim backend (in one process or two worker
    processes), or the proxy backend in front of one."""
    if backend == "sim":
        with run_daemon(config_for(sim, run_dir)) as running:
            yield running
        return
    if backend == "sim-workers":
        with daemon_process(sim, run_dir, "--workers", "2") as process:
            yield process
        return
    upstream = run_dir / "upstream.socket"
    with (
        run_daemon(config_for(sim, run_dir, socket=str(upstream))),
        run_daemon(
            load_config(
                {
                    "backend": "proxy",
                    "upstream": str(upstream),
                    "socket": str(run_dir / "aesm.socket"),
                    "admin_listen": "127.0.0.1:0",
                },
                environ={},
            )
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module", params=["sim", "sim-workers", "proxy"])
def daemon(
    request: pytest.FixtureRequest,
    sim_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    module_run_dir: Path,
) -> Iterator[Daemon]:
    sim = tmp_path_factory.mktemp("conformance") / "sim"
    shutil.copytree(sim_template, sim)
    with _front(request.param, sim, module_run_dir) as running:
        init = intel_client(running.socket, init_quote_ex(True, 32))
        assert init is not None
        fields = response_fields(init, 15)
        size = intel_client(running.socket, get_quote_size_ex())
        assert size is not None
        quote_size = response_fields(size, 16)[2]
        target_info, pub_key_id = fields[2], fields[4]
        assert isinstance(target_info, bytes)
        assert isinstance(pub_key_id, bytes)
        assert isinstance(quote_size, int)
        make = report_maker(sim)
        yield Daemon(
            running, target_info, pub_key_id, quote_size, make(target_info, REPORT_DATA), make
        )


def quote_length(quote: bytes) -> int:
    """Section 6.2: a v3 quote is 436 bytes plus the u32 at offset 432."""
    return 436 + int.from_bytes(quote[432:436], "little")


# ---- section 5, the worked examples ----


def test_get_supported_att_key_id_num_reply_is_byte_exact(daemon: Daemon) -> None:
    request = bytes.fromhex("06000000 aa0103 489875")
    assert request == frame(GET_SUPPORTED_NUM)
    reply = exchange(daemon.socket, [request[:4], request[4:]])
    assert reply == bytes.fromhex("07000000 aa0104 0800 1001")


def test_init_quote_ex_size_query_ignores_a_garbage_buf_size(daemon: Daemon) -> None:
    # DCAP's sgx_qe_get_target_info: b_pub_key_id = false next to an
    # uninitialized size_t (section 8).
    body = ld(15, ld(1, KEY_ID) + vi(3, 0) + vi(4, 0x7FFD_1234_ABCD_EF01) + TIMEOUT_15000)
    reply = daemon.call(body)
    inner = b"\x08\x00" + b"\x12\x80\x04" + bytes(512) + b"\x18\x20"
    assert reply == frame(b"\x7a" + bytes.fromhex("8704") + inner)


@pytest.mark.parametrize("buf_size", [None, 0])
def test_init_quote_ex_size_query_with_absent_or_zero_size(
    daemon: Daemon, buf_size: int | None
) -> None:
    fields = response_fields(daemon.call(init_quote_ex(False, buf_size)) or b"", 15)
    assert fields == {1: 0, 2: bytes(512), 3: 32}


def test_init_quote_ex_reply_has_the_layout_of_section_5(daemon: Daemon) -> None:
    request = bytes.fromhex("0d010000 7a8a02 0a8002") + KEY_ID + bytes.fromhex("1801 2020 489875")
    assert request == frame(init_quote_ex(True, 32))
    reply = exchange(daemon.socket, [request[:4], request[4:]])
    assert reply is not None
    assert reply[:12] == bytes.fromhex("2c020000 7aa904 0800 128004")
    assert reply[12 + 512 :] == bytes.fromhex("1820 2220") + daemon.pub_key_id
    assert len(reply) == 4 + 556
    target_info = reply[12 : 12 + 512]
    assert target_info == daemon.target_info
    assert target_info != bytes(512)


def test_get_quote_size_ex_reply(daemon: Daemon) -> None:
    request = bytes.fromhex("0a010000 82018602 0a8002") + KEY_ID + bytes.fromhex("489875")
    assert request == frame(get_quote_size_ex())
    reply = exchange(daemon.socket, [request[:4], request[4:]])
    # Section 5: 08 00 00 00 82 01 05 08 00 10 <two-byte varint size>.
    assert 1 << 7 <= daemon.quote_size < 1 << 14
    assert reply == bytes.fromhex("08000000 820105 0800 10") + varint(daemon.quote_size)


def test_get_quote_ex_fills_exactly_buf_size_zero_padded(daemon: Daemon) -> None:
    request = (
        bytes.fromhex("c0020000 8a01bc05 0ab003")
        + daemon.report
        + bytes.fromhex("128002")
        + KEY_ID
        + bytes.fromhex("208040 489875")
    )
    assert request == frame(get_quote_ex(daemon.report, 8192))
    reply = exchange(daemon.socket, [request[:4], request[4:]])
    assert reply is not None
    # 8a 01 <8197> 08 00 12 80 40 <8192 B>
    assert reply[:13] == bytes.fromhex("09200000 8a018540 0800 128040")
    quote = reply[13:]
    assert len(quote) == 8192
    real = quote_length(quote)
    assert real == daemon.quote_size
    assert quote[real:] == bytes(8192 - real)
    assert quote[48 + 320 : 48 + 384] == REPORT_DATA  # the enclave's report data


def test_get_quote_ex_with_qe_report_info_echoes_and_fills_it(daemon: Daemon) -> None:
    nonce = bytes(range(16))
    app_target_info = bytes([7]) * 32 + bytes(480)  # the enclave's own target info
    qe_report_info = nonce + app_target_info + bytes(432)
    body = get_quote_ex(daemon.report, 8192, qe_report_info=qe_report_info)
    request = frame(body)
    assert request[:8] == bytes.fromhex("83060000 8a01ff0c")
    reply = exchange(daemon.socket, [request[:4], request[4:]])
    fields = response_fields(reply or b"", 17)
    assert fields[1] == 0
    quote, echoed = fields[2], fields[3]
    assert isinstance(quote, bytes)
    assert isinstance(echoed, bytes)
    assert len(quote) == 8192
    assert len(echoed) == 960
    assert echoed[:528] == nonce + app_target_info
    qe_report_body = echoed[528 : 528 + 384]
    # Section 6.2: the QE report's REPORTDATA is SHA256(nonce || quote) || 0^32.
    real_quote = quote[: quote_length(quote)]
    assert qe_report_body[320:352] == hashlib.sha256(nonce + real_quote).digest()
    assert qe_report_body[352:384] == bytes(32)


def test_get_quote_ex_error_reply_is_byte_exact(daemon: Daemon) -> None:
    forged = bytearray(daemon.report)
    forged[416] ^= 0x01  # one bit of the MAC
    reply = daemon.call(get_quote_ex(bytes(forged), 8192))
    # GetQuoteExResponse{errorCode=47 AESM_INVALID_REPORT} (section 5 shape).
    assert reply == bytes.fromhex("05000000 8a0102 082f")


def test_a_report_targeted_at_another_enclave_is_an_invalid_report(daemon: Daemon) -> None:
    other_target = bytes([0x42]) * 32 + bytes(480)
    report = daemon.make_report(other_target, REPORT_DATA)
    assert daemon.call(get_quote_ex(report, 8192)) == bytes.fromhex("05000000 8a0102 082f")


def test_a_forged_report_with_qe_report_info_still_echoes_it(daemon: Daemon) -> None:
    forged = bytearray(daemon.report)
    forged[64] ^= 0xFF  # MRENCLAVE changed after the MAC was computed
    qe_report_info = bytes(range(16)) + bytes(512) + bytes(432)
    reply = daemon.call(get_quote_ex(bytes(forged), 8192, qe_report_info=qe_report_info))
    assert response_fields(reply or b"", 17) == {1: 47, 3: qe_report_info}


def test_quote_buffer_too_small_is_a_parameter_error(daemon: Daemon) -> None:
    fields = response_fields(daemon.call(get_quote_ex(daemon.report, 1000)) or b"", 17)
    assert fields == {1: 3}


def test_quote_buffer_of_exactly_the_quote_size(daemon: Daemon) -> None:
    fields = response_fields(daemon.call(get_quote_ex(daemon.report, daemon.quote_size)) or b"", 17)
    quote = fields[2]
    assert isinstance(quote, bytes)
    assert len(quote) == daemon.quote_size == quote_length(quote)


# ---- section 6.2: sizes and key ids ----


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        pytest.param(init_quote_ex(True, 64), 15, id="init-buf-size-64"),
        pytest.param(init_quote_ex(True, 0), 15, id="init-buf-size-0"),
        pytest.param(init_quote_ex(True, 32, key_id=KEY_ID[:255]), 15, id="init-key-id-255"),
        pytest.param(init_quote_ex(True, 32, key_id=None), 15, id="init-no-key-id"),
        pytest.param(get_quote_size_ex(key_id=KEY_ID[:200]), 16, id="size-key-id-200"),
        pytest.param(get_quote_size_ex(key_id=None), 16, id="size-no-key-id"),
        pytest.param(ld(22, vi(1, 512) + TIMEOUT_15000), 22, id="ids-buf-size-512"),
        pytest.param(ld(22, vi(1, 255) + TIMEOUT_15000), 22, id="ids-buf-size-255"),
        pytest.param(ld(19, ld(1, bytes(8) + KEY_ID[:100])), 19, id="select-short-list"),
    ],
)
def test_wrong_sizes_are_parameter_errors(daemon: Daemon, body: bytes, kind: int) -> None:
    assert response_fields(daemon.call(body) or b"", kind)[1] == 3


@pytest.mark.parametrize(
    ("report_size", "qe_report_info_size", "key_id_size"),
    [(431, None, 256), (433, None, 256), (432, 959, 256), (432, 961, 256), (432, None, 157)],
)
def test_get_quote_ex_wrong_sizes(
    daemon: Daemon, report_size: int, qe_report_info_size: int | None, key_id_size: int
) -> None:
    report = (daemon.report + bytes(8))[:report_size]
    qe_report_info = None if qe_report_info_size is None else bytes(qe_report_info_size)
    reply = daemon.call(
        get_quote_ex(report, 8192, key_id=KEY_ID[:key_id_size], qe_report_info=qe_report_info)
    )
    expected: dict[int, int | bytes] = {1: 3}
    if qe_report_info is not None:
        expected[3] = qe_report_info  # echoed even on error (section 6.2)
    assert response_fields(reply or b"", 17) == expected


def _other_key_id(offset: int, value: int) -> bytes:
    key_id = bytearray(KEY_ID)
    key_id[offset] = value
    return bytes(key_id)


P384_KEY_ID = _other_key_id(0x9A, 3)  # algorithm_id = ECDSA P-384
DEBUG_SIGNER_KEY_ID = _other_key_id(6, 0xE4)  # another MRSIGNER


@pytest.mark.parametrize("key_id", [P384_KEY_ID, DEBUG_SIGNER_KEY_ID], ids=["p384", "mrsigner"])
def test_unsupported_key_ids(daemon: Daemon, key_id: bytes) -> None:
    init = response_fields(daemon.call(init_quote_ex(True, 32, key_id=key_id)) or b"", 15)
    size = response_fields(daemon.call(get_quote_size_ex(key_id=key_id)) or b"", 16)
    quote = response_fields(
        daemon.call(get_quote_ex(daemon.report, 8192, key_id=key_id)) or b"", 17
    )
    assert (init[1], size[1], quote[1]) == (38, 38, 38)
    assert size[2] == 0  # quote_size is always present (section 6.2)


def test_only_the_first_158_bytes_of_a_key_id_are_compared(daemon: Daemon) -> None:
    key_id = KEY_ID[:158] + bytes([0xAA]) * 98 + bytes(10)  # 266 bytes, junk after the base
    fields = response_fields(daemon.call(get_quote_size_ex(key_id=key_id)) or b"", 16)
    assert fields == {1: 0, 2: daemon.quote_size}


def test_get_supported_att_key_ids_and_select(daemon: Daemon) -> None:
    ids = daemon.call(ld(22, vi(1, 256) + TIMEOUT_15000))
    assert ids == frame(bytes.fromhex("b2018502 0800 128002") + KEY_ID)
    select = daemon.call(ld(19, vi(2, 15000)))  # no list; timeout is field 2 here
    assert select == frame(bytes.fromhex("9a018502 0800 128002") + KEY_ID)
    listed = bytes(8)[:4] + (2).to_bytes(4, "little") + P384_KEY_ID + KEY_ID
    chosen = daemon.call(ld(19, ld(1, listed) + vi(2, 15000)))
    assert chosen == frame(bytes.fromhex("9a018502 0800 128002") + KEY_ID)
    only_p384 = bytes(4) + (1).to_bytes(4, "little") + P384_KEY_ID
    assert response_fields(daemon.call(ld(19, ld(1, only_p384))) or b"", 19) == {1: 38}


# ---- section 6.1: legacy, missing fields, unknown requests ----

LEGACY_REQUESTS = {
    1: TIMEOUT_15000,  # InitQuote
    2: ld(1, bytes(432)) + vi(2, 0) + ld(3, bytes(16)) + vi(6, 2048),  # GetQuote
    3: ld(1, bytes(32)) + ld(2, bytes(384)) + ld(3, bytes(16)),  # GetLaunchToken
    4: ld(1, bytes(101)) + vi(2, 1) + vi(3, 28),  # ReportAttestationError
    10: TIMEOUT_15000,  # GetWhiteListSize
    11: vi(1, 100),  # GetWhiteList
    12: b"",  # SGXGetExtendedEpidGroupId
    13: vi(1, 0),  # SGXSwitchExtendedEpidGroup
    14: ld(1, bytes(8)) + vi(2, 1),  # SGXRegister
    18: vi(2, 28) + vi(3, 0),  # CheckUpdateStatus
}


@pytest.mark.parametrize("number", sorted(LEGACY_REQUESTS))
def test_legacy_requests_get_service_unavailable_in_kind(daemon: Daemon, number: int) -> None:
    reply = daemon.call(ld(number, LEGACY_REQUESTS[number]))
    # errorCode 30 AESM_SERVICE_UNAVAILABLE in the Response field of the same number.
    assert reply == frame(ld(number, b"\x08\x1e"))


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        pytest.param(init_quote_ex(None), 15, id="init-no-b_pub_key_id"),
        pytest.param(get_quote_ex(None, 8192), 17, id="quote-no-report"),
        pytest.param(get_quote_ex(b"r" * 432, None), 17, id="quote-no-buf_size"),
        pytest.param(ld(22, TIMEOUT_15000), 22, id="ids-no-buf_size"),
        pytest.param(ld(2, ld(1, bytes(432))), 2, id="legacy-get-quote-incomplete"),
        pytest.param(ld(14, vi(2, 1)), 14, id="legacy-register-no-buf"),
    ],
)
def test_missing_required_fields_are_unexpected_errors(
    daemon: Daemon, body: bytes, kind: int
) -> None:
    assert response_fields(daemon.call(body) or b"", kind)[1] == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(ld(20, b""), id="field-20-only"),
        pytest.param(ld(20, vi(1, 1)), id="field-20-with-code"),
        pytest.param(ld(23, TIMEOUT_15000), id="unknown-23"),
        pytest.param(ld(99, b"\x08\x01"), id="unknown-99"),
        pytest.param(vi(15, 1), id="known-number-wrong-wire-type"),
        pytest.param(b"\xff\xff\xff", id="not-protobuf"),
        pytest.param(ld(17, b"\x0a\xff\x01"), id="truncated-inner"),
    ],
)
def test_unknown_empty_or_unparsable_requests_are_closed_without_reply(
    daemon: Daemon, body: bytes
) -> None:
    assert daemon.call(body) is None
    # ... and the daemon carries on.
    assert daemon.call(GET_SUPPORTED_NUM) == bytes.fromhex("07000000 aa0104 0800 1001")


def test_dispatch_order_takes_the_first_request_of_intels_order(daemon: Daemon) -> None:
    # Both GetQuoteSizeEx (16) and GetSupportedAttKeyIDNum (21) set: 16 comes first.
    reply = daemon.call(get_quote_size_ex() + GET_SUPPORTED_NUM)
    assert response_fields(reply or b"", 16) == {1: 0, 2: daemon.quote_size}


# ---- clients old and new ----


def test_newer_clients_with_unknown_fields_are_served(daemon: Daemon) -> None:
    inner = ld(1, KEY_ID) + TIMEOUT_15000 + vi(10, 7) + ld(42, b"future")
    reply = daemon.call(ld(16, inner) + ld(30, b"\x08\x01"))
    assert response_fields(reply or b"", 16) == {1: 0, 2: daemon.quote_size}
    inner_quote = ld(1, daemon.report) + ld(2, KEY_ID) + vi(4, 8192) + vi(12, 1)
    reply = daemon.call(ld(17, inner_quote))
    assert response_fields(reply or b"", 17)[1] == 0


def test_psw_2_6_to_2_9_clients_without_requests_21_and_22(daemon: Daemon) -> None:
    # Before 2.9.1 the key id came from SelectAttKeyID with a list (or was
    # hard-coded); then the InitQuoteEx / GetQuoteSizeEx / GetQuoteEx flow.
    listed = bytes(4) + (1).to_bytes(4, "little") + KEY_ID
    selected = response_fields(daemon.call(ld(19, ld(1, listed) + vi(2, 15000))) or b"", 19)
    assert selected == {1: 0, 2: KEY_ID}
    assert response_fields(daemon.call(init_quote_ex(False)) or b"", 15)[3] == 32
    init = response_fields(daemon.call(init_quote_ex(True, 32)) or b"", 15)
    assert init[2] == daemon.target_info
    size = response_fields(daemon.call(get_quote_size_ex()) or b"", 16)[2]
    assert isinstance(size, int)
    quote = response_fields(daemon.call(get_quote_ex(daemon.report, size)) or b"", 17)
    assert quote[1] == 0


def test_the_timeout_field_is_never_read(daemon: Daemon) -> None:
    for timeout in (0, 1, 15000, 1_000_000, 30_000_000, 0xFFFFFFFF):
        body = ld(21, vi(9, timeout))
        assert daemon.call(body) == bytes.fromhex("07000000 aa0104 0800 1001")


# ---- framing as Intel's and other clients write it ----


def test_header_and_body_in_separate_writes_with_a_pause(daemon: Daemon) -> None:
    request = frame(get_quote_size_ex())
    reply = exchange(daemon.socket, [request[:4], request[4:]], pause=0.05)
    assert response_fields(reply or b"", 16)[1] == 0


def test_a_request_trickled_one_byte_at_a_time(daemon: Daemon) -> None:
    request = frame(GET_SUPPORTED_NUM)
    reply = exchange(daemon.socket, [request[i : i + 1] for i in range(len(request))], pause=0.002)
    assert reply == bytes.fromhex("07000000 aa0104 0800 1001")


def test_bytes_after_the_frame_are_ignored(daemon: Daemon) -> None:
    # One request per connection (section 3): a second frame is never read.
    request = frame(GET_SUPPORTED_NUM) + frame(get_quote_size_ex()) + b"\xde\xad"
    assert exchange(daemon.socket, request) == bytes.fromhex("07000000 aa0104 0800 1001")


def test_one_request_per_connection(daemon: Daemon) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.socket))
        sock.sendall(frame(GET_SUPPORTED_NUM))
        assert read_reply(sock) == bytes.fromhex("07000000 aa0104 0800 1001")
        # The daemon closes after its reply, as aesmd does (section 3).
        assert sock.recv(100) == b""


# ---- two details found with Intel's own client (issue 11) ----


def test_a_too_small_buffer_is_checked_before_the_report_mac(daemon: Daemon) -> None:
    # aesmd with DCAP's quote library checks buf_size first: a forged REPORT
    # with a too-small buffer is AESM_PARAMETER_ERROR (3; the client sees
    # SGX_ERROR_INVALID_PARAMETER 0x0002), not INVALID_REPORT (47).
    forged = bytearray(daemon.report)
    forged[416] ^= 0x01
    small = daemon.quote_size - 1
    assert response_fields(daemon.call(get_quote_ex(bytes(forged), small)) or b"", 17) == {1: 3}
    assert response_fields(daemon.call(get_quote_ex(daemon.report, small)) or b"", 17) == {1: 3}
    big = daemon.quote_size
    assert response_fields(daemon.call(get_quote_ex(bytes(forged), big)) or b"", 17) == {1: 47}


def test_a_fresh_platform_needs_init_quote_ex_before_quotes(
    sim_template: Path, tmp_path: Path, module_run_dir: Path
) -> None:
    """Before the first InitQuoteEx, size and quote requests get ATT_KEY_NOT_INITIALIZED.

    That is what aesmd answers on a platform where no attestation key was ever
    generated (DCAP finds no key blob). The daemon generated and certified the
    key at start-up (to be ready), but keeps it from clients until one asks
    for it; once persisted, a restarted daemon answers without InitQuoteEx.
    """
    sim = tmp_path / "sim"
    shutil.copytree(sim_template, sim)
    config = config_for(sim, module_run_dir / "fresh", admin_listen="")
    (module_run_dir / "fresh").mkdir(exist_ok=True)
    with run_daemon(config) as running:
        size = response_fields(intel_client(running.socket, get_quote_size_ex()) or b"", 16)
        assert size == {1: 42, 2: 0}  # AESM_ATT_KEY_NOT_INITIALIZED, quote_size 0
        init = response_fields(intel_client(running.socket, init_quote_ex(True, 32)) or b"", 15)
        assert init[1] == 0
        target_info = init[2]
        assert isinstance(target_info, bytes)
        report = report_maker(sim)(target_info, REPORT_DATA)
        size = response_fields(intel_client(running.socket, get_quote_size_ex()) or b"", 16)
        assert size[1] == 0
        assert isinstance(size[2], int)
        quote = response_fields(
            intel_client(running.socket, get_quote_ex(report, size[2])) or b"", 17
        )
        assert quote[1] == 0
    # Restarted with the key persisted: no InitQuoteEx needed, as on aesmd.
    with run_daemon(config) as running:
        size = response_fields(intel_client(running.socket, get_quote_size_ex()) or b"", 16)
        assert size[1] == 0
