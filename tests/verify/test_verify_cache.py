"""Collateral through the PCCS client, and the on-disk cache in front of it.

A small PCCS in the test serves the real Intel collateral of ``tests/assets``
and counts requests, so the tests can see when the network is (not) used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote as percent_encode

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgx_quote_helper.pccs import Collateral, PccsClient
from sgx_quote_helper.verify import (
    CacheKey,
    CollateralCache,
    InvalidSignature,
    TcbStatus,
    TrustAnchor,
    UnsafeNoAppraisal,
    VerificationResult,
    Verifier,
)

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = (ASSETS / "intel-sgx-quote-v3.bin").read_bytes()
COLLATERAL = Collateral.from_json((ASSETS / "intel-sgx-quote-v3.collateral.json").read_text())
JULY_1 = datetime(2025, 7, 1, tzinfo=UTC)
API = "/sgx/certification/v4"


class CountingPccs:
    """Serves ``collateral`` as a PCCS v4 does; counts every request."""

    def __init__(self) -> None:
        self.collateral = COLLATERAL
        self.requests = 0
        self.app = Starlette(
            routes=[
                Route(f"{API}/pckcrl", self.pckcrl),
                Route(f"{API}/tcb", self.tcb),
                Route(f"{API}/qe/identity", self.qe_identity),
                Route(f"{API}/rootcacrl", self.rootcacrl),
            ]
        )

    def _chain(self, name: str, pem: str) -> dict[str, str]:
        self.requests += 1
        return {name: percent_encode(pem, safe="")}

    async def pckcrl(self, request: Request) -> Response:
        c = self.collateral
        return Response(
            c.pck_crl, headers=self._chain("SGX-PCK-CRL-Issuer-Chain", c.pck_crl_issuer_chain)
        )

    async def tcb(self, request: Request) -> Response:
        c = self.collateral
        body = json.dumps(
            {"tcbInfo": json.loads(c.tcb_info), "signature": c.tcb_info_signature.hex()}
        )
        return Response(body, headers=self._chain("TCB-Info-Issuer-Chain", c.tcb_info_issuer_chain))

    async def qe_identity(self, request: Request) -> Response:
        c = self.collateral
        body = json.dumps(
            {
                "enclaveIdentity": json.loads(c.qe_identity),
                "signature": c.qe_identity_signature.hex(),
            }
        )
        headers = self._chain("SGX-Enclave-Identity-Issuer-Chain", c.qe_identity_issuer_chain)
        return Response(body, headers=headers)

    async def rootcacrl(self, request: Request) -> Response:
        self.requests += 1
        return Response(self.collateral.root_ca_crl.hex())


def _verify(url: str, cache_dir: Path) -> VerificationResult:
    with Verifier(pccs=url, cache_dir=cache_dir) as verifier:
        return verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())


@pytest.fixture
def pccs() -> Iterator[tuple[str, CountingPccs]]:
    service = CountingPccs()
    config = uvicorn.Config(
        service.app, host="127.0.0.1", port=0, log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        server.should_exit = True
        thread.join(10)


def test_without_cache_every_verification_fetches(pccs: tuple[str, CountingPccs]) -> None:
    url, service = pccs
    with Verifier(pccs=url) as verifier:
        for _ in range(2):
            result = verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
            assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert service.requests == 8


def test_second_verification_makes_no_request(
    pccs: tuple[str, CountingPccs], tmp_path: Path
) -> None:
    url, service = pccs
    with Verifier(pccs=url, cache_dir=tmp_path) as verifier:
        first = verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
    assert service.requests == 4
    # A new verifier (another process, say) with the same cache directory.
    with PccsClient(url) as client:
        second = Verifier(pccs=client, cache_dir=tmp_path).verify(
            QUOTE, now=JULY_1, policy=UnsafeNoAppraisal()
        )
    assert service.requests == 4
    assert second.status == first.status
    assert second.advisory_ids == first.advisory_ids
    (entry,) = tmp_path.iterdir()
    assert entry.suffix == ".json"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_corrupt_entry_is_ignored_and_replaced(
    pccs: tuple[str, CountingPccs], tmp_path: Path
) -> None:
    url, service = pccs
    _verify(url, tmp_path)
    (entry,) = tmp_path.iterdir()
    for damage in (b"", b"{not json", b'{"format": 1}', entry.read_bytes()[:100]):
        entry.write_bytes(damage)
        before = service.requests
        result = _verify(url, tmp_path)
        assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
        assert service.requests == before + 4
        assert json.loads(entry.read_text())["format"] == 1


def test_cache_serves_old_collateral_until_next_update(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    key = CacheKey("https://pccs", "00" * 48, "00A067110000", "processor", "standard")
    assert cache.get(key, JULY_1) is None
    cache.put(key, COLLATERAL)
    assert cache.get(key, JULY_1) == COLLATERAL
    assert cache.get(key, COLLATERAL.next_update) == COLLATERAL
    assert cache.get(key, datetime.fromtimestamp(1752919279, UTC)) is None
    # Keyed by every part: another PCCS, root, FMSPC, CA or evaluation number misses.
    for other in (
        dataclasses.replace(key, pccs_url="https://other"),
        dataclasses.replace(key, root_key_id="11" * 48),
        dataclasses.replace(key, fmspc="00906ED50000"),
        dataclasses.replace(key, ca_type="platform"),
        dataclasses.replace(key, tcb_evaluation="17"),
    ):
        assert cache.get(other, JULY_1) is None
    # An entry copied under another key's name is not served for it.
    os.replace(cache.path_for(key), cache.path_for(dataclasses.replace(key, ca_type="platform")))
    assert cache.get(dataclasses.replace(key, ca_type="platform"), JULY_1) is None


def test_simulated_and_intel_roots_do_not_share_entries(
    pccs: tuple[str, CountingPccs], tmp_path: Path
) -> None:
    url, _ = pccs
    _verify(url, tmp_path)
    cache = CollateralCache(tmp_path)
    key = CacheKey(url, TrustAnchor.intel().key_id.hex(), "00A067110000", "processor", "standard")
    assert cache.get(key, JULY_1) == COLLATERAL
    assert cache.get(dataclasses.replace(key, root_key_id="ab" * 48), JULY_1) is None


def test_refused_collateral_is_not_cached(pccs: tuple[str, CountingPccs], tmp_path: Path) -> None:
    url, service = pccs
    bad = bytearray(COLLATERAL.tcb_info_signature)
    bad[0] ^= 1
    service.collateral = dataclasses.replace(COLLATERAL, tcb_info_signature=bytes(bad))
    with pytest.raises(InvalidSignature):
        _verify(url, tmp_path)
    assert list(tmp_path.iterdir()) == []
    service.collateral = COLLATERAL
    _verify(url, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1


def test_unwritable_cache_only_costs_a_refetch(
    pccs: tuple[str, CountingPccs], tmp_path: Path
) -> None:
    url, service = pccs
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with Verifier(pccs=url, cache_dir=blocker / "cache") as verifier:
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
    assert service.requests == 8
