"""The client sequences of DCAP, Enarx and Gramine against the running daemon, verified by dcap-qvl.

The PCK chain comes from the simulated PCCS (``serve_in_thread``), the
collateral from the same PCCS through dcap-qvl's own client, and the verdict
from unmodified dcap-qvl with the simulated root as trust anchor (DESIGN.md
section 4). Request frames are laid out by hand (section 9 of
spec/aesm-wire.md gives each client's sequence).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dcap_qvl
import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    KEY_ID,
    TIMEOUT_15000,
    MakeConfig,
    MakeReport,
    RunningDaemon,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    ld,
    response_fields,
    run_daemon,
    vi,
)

from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.platform import demo_app_identity

REPORT_DATA = b"end to end through the daemon".ljust(64, b"\x00")


@dataclass
class Stack:
    url: str
    root_der: bytes
    make_config: MakeConfig
    make_report: MakeReport

    def verify(self, quote: bytes) -> Any:
        """dcap-qvl's verdict, with collateral fetched from the running PCCS."""

        async def fetch() -> Any:
            return await dcap_qvl.get_collateral(self.url, quote)

        collateral = asyncio.run(fetch())
        return dcap_qvl.verify_with_root_ca(quote, collateral, self.root_der, int(time.time()))


@pytest.fixture
def stack(sim: Path, make_config: MakeConfig, make_report: MakeReport) -> Iterator[Stack]:
    with serve_in_thread(sim) as pccs:
        yield Stack(pccs.url, (sim / "pcs" / "root-ca.der").read_bytes(), make_config, make_report)


def _fields(reply: bytes | None, kind: int) -> dict[int, int | bytes]:
    assert reply is not None, "closed without a reply"
    return response_fields(reply, kind)


def _quote(daemon: RunningDaemon, stack: Stack, target_info: bytes, buf_size: int) -> bytes:
    report = stack.make_report(target_info, REPORT_DATA)
    fields = _fields(intel_client(daemon.socket, get_quote_ex(report, buf_size)), 17)
    assert fields[1] == 0
    quote = fields[2]
    assert isinstance(quote, bytes)
    assert len(quote) == buf_size
    real = 436 + int.from_bytes(quote[432:436], "little")
    assert quote[real:] == bytes(buf_size - real)
    return quote[:real]


def dcap_out_of_proc(daemon: RunningDaemon, stack: Stack) -> bytes:
    # sgx_qe_get_target_info: size query with an uninitialized size_t, then the
    # real call; sgx_qe_get_quote_size; sgx_qe_get_quote without qe_report_info.
    first = _fields(intel_client(daemon.socket, init_quote_ex(False, 0x5555_AAAA_0000_1111)), 15)
    assert first == {1: 0, 2: bytes(512), 3: 32}
    init = _fields(intel_client(daemon.socket, init_quote_ex(True, 32)), 15)
    size = _fields(intel_client(daemon.socket, get_quote_size_ex()), 16)
    assert isinstance(init[2], bytes)
    assert isinstance(size[2], int)
    return _quote(daemon, stack, init[2], size[2])


def enarx(daemon: RunningDaemon, stack: Stack) -> bytes:
    number = _fields(intel_client(daemon.socket, GET_SUPPORTED_NUM), 21)
    assert number == {1: 0, 2: 1}
    ids = _fields(intel_client(daemon.socket, ld(22, vi(1, 256) + TIMEOUT_15000)), 22)
    key_ids = ids[2]
    assert isinstance(key_ids, bytes)
    # Enarx picks the entry whose u32 at offset 154 is 2 (ECDSA P-256).
    chosen = next(
        key_ids[i : i + 256]
        for i in range(0, len(key_ids), 256)
        if int.from_bytes(key_ids[i + 154 : i + 158], "little") == 2
    )
    assert chosen == KEY_ID
    assert _fields(intel_client(daemon.socket, init_quote_ex(False, key_id=chosen)), 15)[3] == 32
    init = _fields(intel_client(daemon.socket, init_quote_ex(True, 32, key_id=chosen)), 15)
    size = _fields(intel_client(daemon.socket, get_quote_size_ex(key_id=chosen)), 16)
    assert isinstance(init[2], bytes)
    assert isinstance(size[2], int)
    return _quote(daemon, stack, init[2], size[2])


def gramine(daemon: RunningDaemon, stack: Stack) -> bytes:
    # A single InitQuoteEx(true, 32) without timeout, then GetQuoteEx with
    # SGX_QUOTE_MAX_SIZE = 8192 and no qe_report_info.
    init = _fields(intel_client(daemon.socket, ld(15, ld(1, KEY_ID) + vi(3, 1) + vi(4, 32))), 15)
    assert init[1] == 0
    assert isinstance(init[2], bytes)
    assert len(init[2]) == 512
    return _quote(daemon, stack, init[2], 8192)


@pytest.mark.parametrize("client", [dcap_out_of_proc, enarx, gramine])
def test_client_sequence_yields_a_quote_dcap_qvl_rates_up_to_date(
    stack: Stack, client: Callable[[RunningDaemon, Stack], bytes]
) -> None:
    with run_daemon(stack.make_config(pccs_url=stack.url)) as daemon:
        quote = client(daemon, stack)
    verdict = stack.verify(quote)
    assert verdict.status == "UpToDate"
    enclave = json.loads(verdict.to_json())["report"]["SgxEnclave"]
    assert enclave["report_data"] == REPORT_DATA.hex()
    assert enclave["mr_enclave"] == demo_app_identity().mr_enclave.hex()


def test_qe_and_pce_svn_flags_reach_quotes_metrics_and_verdicts(stack: Stack) -> None:
    config = stack.make_config(pccs_url=stack.url, qe_svn="3", pce_svn="14")
    with run_daemon(config) as daemon:
        quote = dcap_out_of_proc(daemon, stack)
        assert daemon.metric("sgx_quote_helper_qe_svn") == 3
        assert daemon.metric("sgx_quote_helper_pce_svn") == 14
        info = daemon.metrics()
        assert 'qe_svn="3"' in info
        assert 'pce_svn="14"' in info
    # Quote header: u16 qe_svn at 8, u16 pce_svn at 10 (sgx_quote_header_t).
    assert int.from_bytes(quote[8:10], "little") == 3
    assert int.from_bytes(quote[10:12], "little") == 14
    # The QE report inside the signature data carries the QE's ISVSVN at 258.
    qe_report = quote[436 + 64 + 64 : 436 + 64 + 64 + 384]
    assert int.from_bytes(qe_report[258:260], "little") == 3
    # sim init's policy: exactly the release's versions are up to date, an
    # older QE is not (the update story of DESIGN.md section 1).
    assert stack.verify(quote).status != "UpToDate"
