"""The PCCS client against a hostile PCCS on loopback: huge, compressed and dripping answers.

Regressions of an audit: the client read any body whole (a 3 GiB answer took
``verify`` to 3 GB and a MemoryError, a 2 MB gzip bomb to 4 GB) and its timeout
bounded each read only (a PCCS dripping a byte a second held ``verify
--pccs-timeout 3`` for minutes). Each server here stops after a bounded amount
of data, so a client without the limits gets a wrong answer, not a hang.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable
from io import BufferedIOBase

import pytest
from http_support import HostileHttpServer, head

from sgx_quote_helper.pccs import (
    AsyncPccsClient,
    PccsBusy,
    PccsClient,
    PccsHttpError,
    PccsResponseError,
    PccsUnreachable,
)
from sgx_quote_helper.pccs._client import MAX_RESPONSE_SIZE
from sgx_quote_helper.sgx import Quote3Error

BLOCK = b" " * (1 << 20)
#: More than the limit, so a client without one reads it all and fails later.
OVER_LIMIT_BLOCKS = MAX_RESPONSE_SIZE // len(BLOCK) + 2


def _declared_huge(path: str, out: BufferedIOBase) -> None:
    out.write(head(200, {"Content-Length": str(3 << 30)}))
    for _ in range(OVER_LIMIT_BLOCKS):
        out.write(BLOCK)


def _chunked_huge(path: str, out: BufferedIOBase) -> None:
    out.write(head(200, {"Transfer-Encoding": "chunked"}))
    for _ in range(OVER_LIMIT_BLOCKS):
        out.write(b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n")
    out.write(b"0\r\n\r\n")


def _gzip_bomb(path: str, out: BufferedIOBase) -> None:
    body = gzip.compress(b"\0" * (4 * MAX_RESPONSE_SIZE))
    out.write(head(200, {"Content-Length": str(len(body)), "Content-Encoding": "gzip"}))
    out.write(body)


def _drip(path: str, out: BufferedIOBase) -> None:
    out.write(head(200, {"Content-Length": "200"}))
    for _ in range(200):  # 10 s at most
        out.write(b" ")
        out.flush()
        time.sleep(0.05)


DRIPPED_HEAD = head(200, {"X-Padding": "x" * 150, "Content-Length": "0"})


class _HeadDrip:
    """Drips :data:`DRIPPED_HEAD` a byte at a time (10 s at most): every read gets a
    byte in time. ``sent`` is how many bytes went out before the client hung up."""

    def __init__(self) -> None:
        self.sent = 0
        self.done = threading.Event()

    def __call__(self, path: str, out: BufferedIOBase) -> None:
        try:
            for byte in DRIPPED_HEAD:
                out.write(bytes([byte]))
                out.flush()
                self.sent += 1
                time.sleep(0.05)
        finally:
            self.done.set()


def _drip_head(path: str, out: BufferedIOBase) -> None:
    _HeadDrip()(path, out)


@pytest.mark.parametrize("answer", [_declared_huge, _chunked_huge], ids=["length", "chunked"])
def test_a_body_over_the_limit_is_refused(answer: Callable[[str, BufferedIOBase], None]) -> None:
    with (
        HostileHttpServer(answer) as server,
        PccsClient(server.url) as client,
        pytest.raises(PccsResponseError) as info,
    ):
        client.get_pck_crl()
    assert f"{MAX_RESPONSE_SIZE}-byte limit" in str(info.value)
    assert info.value.quote3_error is Quote3Error.MESSAGE_ERROR
    assert "SGX_QL_MESSAGE_ERROR 0xE01A" in info.value.diagnostics()


def test_async_client_refuses_a_body_over_the_limit() -> None:
    async def fetch(url: str) -> None:
        async with AsyncPccsClient(url) as client:
            await client.get_pck_crl()

    with HostileHttpServer(_chunked_huge) as server, pytest.raises(PccsResponseError) as info:
        asyncio.run(fetch(server.url))
    assert f"{MAX_RESPONSE_SIZE}-byte limit" in str(info.value)


def test_a_compressed_body_is_refused_and_not_asked_for() -> None:
    with (
        HostileHttpServer(_gzip_bomb) as server,
        PccsClient(server.url) as client,
        pytest.raises(PccsResponseError, match=r"compressed body \(Content-Encoding: gzip\)"),
    ):
        client.get_tcb_info("00A067110000")
    assert server.requests[0][1]["Accept-Encoding"] == "identity"


def test_the_timeout_bounds_the_whole_answer() -> None:
    with (
        HostileHttpServer(_drip) as server,
        PccsClient(server.url, timeout=0.5) as client,
        pytest.raises(PccsUnreachable) as info,
    ):
        client.get_qe_identity()
    assert "no answer within 0.5s for QE Identity" in str(info.value)
    assert info.value.quote3_error is Quote3Error.NETWORK_ERROR


def test_the_timeout_bounds_dripping_headers() -> None:
    drip = _HeadDrip()
    with (
        HostileHttpServer(drip) as server,
        PccsClient(server.url, timeout=0.5) as client,
        pytest.raises(PccsUnreachable) as info,
    ):
        client.get_qe_identity()
    assert "no answer within 0.5s for QE Identity (ReadTimeout)" in str(info.value)
    # The client hung up at its deadline, not after reading every dripped byte.
    assert drip.done.wait(30)
    assert drip.sent < len(DRIPPED_HEAD) - 2


@pytest.mark.parametrize("answer", [_drip, _drip_head], ids=["body", "head"])
def test_async_client_timeout_bounds_the_whole_answer(
    answer: Callable[[str, BufferedIOBase], None],
) -> None:
    async def fetch(url: str) -> None:
        async with AsyncPccsClient(url, timeout=0.5) as client:
            await client.get_qe_identity()

    with HostileHttpServer(answer) as server, pytest.raises(PccsUnreachable) as info:
        asyncio.run(fetch(server.url))
    assert "no answer within 0.5s for QE Identity" in str(info.value)


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, "120"), (503, "Wed, 21 Oct 2099 07:28:00 GMT")]
)
def test_busy_pccs_shows_retry_after_and_says_try_later(status: int, retry_after: str) -> None:
    # Regression: a 429/503 said "check the request parameters" and dropped Retry-After.
    def busy(path: str, out: BufferedIOBase) -> None:
        out.write(head(status, {"Retry-After": retry_after, "Content-Length": "0"}))

    with (
        HostileHttpServer(busy) as server,
        PccsClient(server.url) as client,
        pytest.raises(PccsBusy) as info,
    ):
        client.get_tcb_info("00A067110000")
    assert isinstance(info.value, PccsHttpError)
    assert info.value.status_code == status
    assert info.value.retry_after == retry_after
    text = info.value.diagnostics()
    assert f"(Retry-After: {retry_after!r})" in text
    assert "try again later" in text
    assert "request parameters" not in text


def test_other_statuses_keep_the_generic_hint() -> None:
    def teapot(path: str, out: BufferedIOBase) -> None:
        out.write(head(400, {"Error-Code": "InvalidParameter", "Content-Length": "0"}))

    with (
        HostileHttpServer(teapot) as server,
        PccsClient(server.url) as client,
        pytest.raises(PccsHttpError) as info,
    ):
        client.get_tcb_info("00A067110000")
    assert not isinstance(info.value, PccsBusy)
    assert info.value.retry_after is None
    assert "request parameters" in info.value.diagnostics()
