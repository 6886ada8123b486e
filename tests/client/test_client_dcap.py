"""The high-level, DCAP-shaped API against scripted AESM servers.

Two-step init, the re-init retry on ATT_KEY_NOT_INITIALIZED, BUSY back-off,
trimming of the padded quote buffer, and the QE report check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from test_client_helpers import (
    Action,
    Close,
    HonestAesm,
    Reply,
    app_report,
    fake_aesm,
    fake_quote,
)

from sgx_quote_helper import client
from sgx_quote_helper.aesm import (
    DecodedRequest,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExResponse,
    InitQuoteExRequest,
    InitQuoteExResponse,
)
from sgx_quote_helper.platform import SimulatedCpu, demo_app_identity
from sgx_quote_helper.sgx import QeReportInfo, Quote3Error, SgxStatus

FAST = client.RetryPolicy(busy_attempts=3, busy_initial_delay=0.01, busy_max_delay=0.02)
NONCE = bytes(range(16))
APP = demo_app_identity()

SIZE = "GetQuoteSizeExRequest"
QUOTE = "GetQuoteExRequest"
INIT = "InitQuoteExRequest"


@pytest.fixture(autouse=True)
def _fresh_mode() -> Iterator[None]:
    client._reset_mode_for_tests()
    yield
    client._reset_mode_for_tests()


def qe_report_info() -> QeReportInfo:
    return QeReportInfo(nonce=NONCE, app_enclave_target_info=APP.target_info())


def init_flags(server_requests: Sequence[object]) -> list[bool]:
    return [r.b_pub_key_id for r in server_requests if isinstance(r, InitQuoteExRequest)]


def test_get_target_info_is_the_two_step_init(tmp_path: Path) -> None:
    aesm = HonestAesm()
    with fake_aesm(tmp_path, aesm) as server:
        target = client.out_of_process(server.path).get_target_info()
    assert target == aesm.qe_target
    assert server.kinds() == [INIT, INIT]
    first, second = server.requests
    assert isinstance(first, InitQuoteExRequest)
    assert isinstance(second, InitQuoteExRequest)
    assert (first.b_pub_key_id, first.buf_size) == (False, None)
    assert (second.b_pub_key_id, second.buf_size, second.timeout) == (True, 32, 15000)


def test_a_pub_key_id_size_other_than_32_is_refused(tmp_path: Path) -> None:
    with (
        fake_aesm(tmp_path, HonestAesm(pub_key_id_size=48)) as server,
        pytest.raises(client.UnexpectedError, match="48-byte pub_key_id") as info,
    ):
        client.out_of_process(server.path).get_target_info()
    assert (info.value.sgx_status, info.value.quote3_error) == (0x0001, 0xE001)
    assert server.kinds() == [INIT]  # DCAP stops after the size query too


def test_get_quote_trims_the_padded_buffer(tmp_path: Path) -> None:
    aesm = HonestAesm()
    report = app_report(aesm.cpu, aesm.qe_target, b"hello")
    with fake_aesm(tmp_path, aesm) as server:
        quoter = client.out_of_process(server.path)
        assert quoter.get_quote_size() == aesm.quote_size()
        quote = quoter.get_quote(report)
    assert quote == fake_quote(report.to_bytes())
    assert server.kinds() == [SIZE, SIZE, QUOTE]
    assert server.requests[-1].buf_size == aesm.quote_size()  # type: ignore[union-attr]


def test_att_key_not_initialized_reinits_and_retries_once(tmp_path: Path) -> None:
    aesm = HonestAesm(script={QUOTE: [Reply(GetQuoteExResponse(42))]})
    report = app_report(aesm.cpu, aesm.qe_target)
    with fake_aesm(tmp_path, aesm) as server:
        quote = client.out_of_process(server.path).get_quote(report)
    assert quote == fake_quote(report.to_bytes())
    assert server.kinds() == [SIZE, QUOTE, INIT, INIT, SIZE, QUOTE]
    assert init_flags(server.requests) == [False, True]


def test_att_key_not_initialized_twice_gives_up(tmp_path: Path) -> None:
    lost: list[Action] = [Reply(GetQuoteExResponse(42)), Reply(GetQuoteExResponse(42))]
    aesm = HonestAesm(script={QUOTE: lost})
    with (
        fake_aesm(tmp_path, aesm) as server,
        pytest.raises(client.AttestationKeyNotInitializedError) as info,
    ):
        client.out_of_process(server.path).get_quote(bytes(432))
    assert (info.value.sgx_status, info.value.quote3_error) == (0x8003, 0xE00F)
    assert server.kinds().count(QUOTE) == 2


def test_quote_size_reinits_when_the_key_is_gone(tmp_path: Path) -> None:
    aesm = HonestAesm(script={SIZE: [Reply(GetQuoteSizeExResponse(42, 0))]})
    with fake_aesm(tmp_path, aesm) as server:
        size = client.out_of_process(server.path).get_quote_size()
    assert size == aesm.quote_size()
    assert server.kinds() == [SIZE, INIT, INIT, SIZE]


def test_report_rejected_after_a_reinit_says_the_qe_may_have_changed(tmp_path: Path) -> None:
    aesm = HonestAesm(
        script={QUOTE: [Reply(GetQuoteExResponse(42)), Reply(GetQuoteExResponse(47))]}
    )
    with fake_aesm(tmp_path, aesm) as server, pytest.raises(client.ReportRejectedError) as info:
        client.out_of_process(server.path).get_quote(bytes(432))
    assert (info.value.sgx_status, info.value.quote3_error) == (0x3001, 0xE001)
    assert "initialized again" in info.value.diagnostics()


def test_busy_is_retried_with_backoff(tmp_path: Path) -> None:
    busy: list[Action] = [Reply(GetQuoteExResponse(18)), Reply(GetQuoteExResponse(18))]
    aesm = HonestAesm(script={QUOTE: busy})
    report = app_report(aesm.cpu, aesm.qe_target)
    with fake_aesm(tmp_path, aesm) as server:
        started = time.monotonic()
        quote = client.out_of_process(server.path, retry=FAST).get_quote(report)
        elapsed = time.monotonic() - started
    assert quote == fake_quote(report.to_bytes())
    assert server.kinds() == [SIZE, QUOTE, QUOTE, QUOTE]
    assert elapsed >= 0.01 + 0.02


def test_busy_retries_are_bounded(tmp_path: Path) -> None:
    aesm = HonestAesm(script={INIT: [Reply(InitQuoteExResponse(18, pub_key_id_size=32))] * 9})
    with fake_aesm(tmp_path, aesm) as server:
        started = time.monotonic()
        with pytest.raises(client.ServiceBusyError) as info:
            client.out_of_process(server.path, retry=FAST).get_target_info()
        elapsed = time.monotonic() - started
    assert (info.value.sgx_status, info.value.quote3_error) == (0x400A, 0xE043)
    assert server.kinds() == [INIT] * FAST.busy_attempts
    assert elapsed < 1.0


def test_default_retry_policy_is_bounded() -> None:
    policy = client.RetryPolicy()
    delays, delay = [], policy.busy_initial_delay
    for _ in range(policy.busy_attempts - 1):
        delays.append(delay)
        delay = min(delay * 2, policy.busy_max_delay)
    assert sum(delays) <= 1.0
    with pytest.raises(client.InvalidParameterError):
        client.RetryPolicy(busy_attempts=0)


def test_transport_errors_are_not_retried(tmp_path: Path) -> None:
    with (
        fake_aesm(tmp_path, lambda request: Close()) as server,
        pytest.raises(client.UnexpectedError),
    ):
        client.out_of_process(server.path, retry=FAST).get_quote(bytes(432))
    assert server.kinds() == [SIZE]


def test_a_quote_size_of_zero_is_refused(tmp_path: Path) -> None:
    aesm = HonestAesm(script={SIZE: [Reply(GetQuoteSizeExResponse(0))]})
    with (
        fake_aesm(tmp_path, aesm) as server,
        pytest.raises(client.UnexpectedError, match="quote size of 0"),
    ):
        client.out_of_process(server.path).get_quote(bytes(432))


# ---- the QE report in qe_report_info -----------------------------------------------------------


def test_qe_report_info_is_returned_and_verified(tmp_path: Path) -> None:
    aesm = HonestAesm()
    report = app_report(aesm.cpu, aesm.qe_target)
    check = client.sim_qe_report_mac_check(aesm.cpu, APP)
    with fake_aesm(tmp_path, aesm) as server:
        result = client.out_of_process(server.path).get_quote_result(
            report,
            qe_report_info=qe_report_info(),
            verify_qe_report=True,
            check_qe_report_mac=check,
        )
    assert result.qe_report_info is not None
    assert result.qe_report_info.nonce == NONCE
    data = result.qe_report_info.qe_report.body.report_data
    assert data[32:] == bytes(32)
    client.verify_qe_report(qe_report_info(), result.qe_report_info, result.quote, check)


def test_a_qe_report_not_bound_to_the_quote_is_refused(tmp_path: Path) -> None:
    aesm = HonestAesm(tamper=True)
    with fake_aesm(tmp_path, aesm) as server:
        quoter = client.out_of_process(server.path)
        unchecked = quoter.get_quote(bytes(432), qe_report_info=qe_report_info().to_bytes())
        with pytest.raises(client.QeReportVerificationError) as info:
            quoter.get_quote(bytes(432), qe_report_info=qe_report_info(), verify_qe_report=True)
    assert unchecked == fake_quote(bytes(432))  # without verify_qe_report nothing is checked
    error = info.value
    assert error.quote3_error == Quote3Error.ERROR_REPORT
    assert int(error.quote3_error) == 0xE013
    assert "SHA256(nonce || quote)" in str(error)


def test_a_qe_report_with_a_bad_mac_is_refused(tmp_path: Path) -> None:
    aesm = HonestAesm()
    other_cpu = SimulatedCpu(bytes(range(1, 33)), bytes(16), None)
    with (
        fake_aesm(tmp_path, aesm) as server,
        pytest.raises(client.QeReportVerificationError) as info,
    ):
        client.out_of_process(server.path).get_quote(
            bytes(432),
            qe_report_info=qe_report_info(),
            verify_qe_report=True,
            check_qe_report_mac=client.sim_qe_report_mac_check(other_cpu, APP),
        )
    assert info.value.sgx_status == SgxStatus.ERROR_MAC_MISMATCH
    assert "MAC does not verify" in str(info.value)


def test_verify_without_qe_report_info_is_a_usage_error() -> None:
    quoter = client.out_of_process("/nonexistent/aesm.socket")
    with pytest.raises(client.InvalidParameterError, match="needs a qe_report_info"):
        quoter.get_quote(bytes(432), verify_qe_report=True)
    with pytest.raises(client.InvalidParameterError, match="960 bytes"):
        quoter.get_quote(bytes(432), qe_report_info=b"short")


def test_verify_qe_report_checks_the_echo() -> None:
    sent = qe_report_info()
    other = sent.replace(nonce=bytes(16))
    with pytest.raises(client.QeReportVerificationError, match="another nonce"):
        client.verify_qe_report(sent, other, b"quote")
    with pytest.raises(client.QeReportVerificationError, match="no qe_report_info"):
        client.verify_qe_report(sent, None, b"quote")


# ---- trimming ---------------------------------------------------------------------------------


def test_trim_quote_reads_the_v3_length() -> None:
    quote = fake_quote(bytes(432))
    assert client.trim_quote(quote + bytes(100)) == quote
    assert client.trim_quote(quote) == quote


@pytest.mark.parametrize(
    ("buffer", "needle"),
    [
        (bytes(100), "less than a quote's fixed 436"),
        (bytes(1000), "version 0"),
        ((5).to_bytes(2, "little") + bytes(998), "version 5"),
        (fake_quote(bytes(432))[:-1], "claims 1460 bytes but the buffer holds 1459"),
        # A quote cut after its header, zero-padded: signature_data_len reads 0.
        (fake_quote(bytes(432))[:100] + bytes(4549), "claims 436 bytes, less than"),
        # One byte short of the smallest ECDSA signature data (576 + 2 + 6).
        (fake_quote(bytes(432))[:432] + (583).to_bytes(4, "little") + bytes(600), "1019 bytes"),
    ],
)
def test_trim_quote_refuses_what_is_not_an_sgx_quote(buffer: bytes, needle: str) -> None:
    with pytest.raises(client.UnexpectedError, match=needle) as info:
        client.trim_quote(buffer)
    assert (info.value.sgx_status, info.value.quote3_error) == (0x0001, 0xE001)
    assert "the daemon sent a malformed quote" in str(info.value)


def test_trim_quote_keeps_intels_quote_from_a_gramine_sized_buffer() -> None:
    intel = (Path(__file__).parents[1] / "assets" / "intel-sgx-quote-v3.bin").read_bytes()
    assert client.trim_quote(intel + bytes(8192 - len(intel))) == intel
    assert client.trim_quote(intel) == intel


def test_a_quote_cut_short_inside_its_buffer_is_refused(tmp_path: Path) -> None:
    # What a daemon that loses the quote's tail sends: the buffer has the right
    # size, but the quote in it ends after 100 bytes (the rest is padding).
    aesm = HonestAesm()

    def cut(request: DecodedRequest) -> Action:
        if not isinstance(request, GetQuoteExRequest):
            return aesm(request)
        start = fake_quote(request.report)[:100]
        return Reply(GetQuoteExResponse(0, quote=start + bytes(request.buf_size - len(start))))

    report = app_report(aesm.cpu, aesm.qe_target)
    with fake_aesm(tmp_path, cut) as server:
        quoter = client.out_of_process(server.path)
        with pytest.raises(client.UnexpectedError, match="malformed quote") as info:
            quoter.get_quote(report)
    assert (info.value.sgx_status, info.value.quote3_error) == (0x0001, 0xE001)


# ---- asyncio ----------------------------------------------------------------------------------


def test_async_quoter_runs_the_same_flows(tmp_path: Path) -> None:
    aesm = HonestAesm(
        script={QUOTE: [Reply(GetQuoteExResponse(18)), Reply(GetQuoteExResponse(42))]}
    )
    report = app_report(aesm.cpu, aesm.qe_target)

    async def scenario(path: Path) -> tuple[object, bytes, int]:
        quoter = client.async_out_of_process(path, retry=FAST)
        target = await quoter.get_target_info()
        quote = await quoter.get_quote(
            report, qe_report_info=qe_report_info(), verify_qe_report=True
        )
        size = await quoter.get_quote_size()
        await quoter.aclose()
        return target, quote, size

    with fake_aesm(tmp_path, aesm) as server:
        target, quote, size = asyncio.run(scenario(server.path))
    assert target == aesm.qe_target
    assert quote == fake_quote(report.to_bytes())
    assert size == aesm.quote_size()
    assert server.kinds() == [INIT, INIT, SIZE, QUOTE, QUOTE, INIT, INIT, SIZE, QUOTE, SIZE]
    assert server.connections == len(server.requests) == 10
