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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote as percent_encode

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.pccs import Collateral, PccsClient, PccsUnreachable
from sgx_quote_helper.verify import (
    CacheKey,
    CollateralCache,
    InvalidSignature,
    PccsCollateralSource,
    TcbStatus,
    TrustAnchor,
    UnsafeNoAppraisal,
    VerificationResult,
    Verifier,
    _collateral,
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


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeClient:
    """A PccsClient stand-in that counts fetches and can hold them until released."""

    base_url = "https://pccs.example"

    def __init__(self, *, block: bool = False, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error
        self.entered = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()

    def get_collateral(self, **_: object) -> Collateral:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        return COLLATERAL


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


def test_one_verifier_keeps_what_it_fetched(pccs: tuple[str, CountingPccs]) -> None:
    url, service = pccs
    with Verifier(pccs=url) as verifier:
        for _ in range(3):
            result = verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
            assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert service.requests == 4
    # A new verifier (a new `verify` command) starts empty and asks the PCCS again.
    with Verifier(pccs=url) as verifier:
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
    assert service.requests == 8


def test_max_age_zero_fetches_for_every_verification(pccs: tuple[str, CountingPccs]) -> None:
    url, service = pccs
    with Verifier(pccs=url, max_collateral_age=timedelta(0)) as verifier:
        for _ in range(2):
            verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
    assert service.requests == 8


def test_kept_collateral_expires_at_max_age(pccs: tuple[str, CountingPccs]) -> None:
    url, service = pccs
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    with Verifier(pccs=url, max_collateral_age=timedelta(minutes=10), clock=clock) as verifier:
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
        clock.advance(timedelta(minutes=9, seconds=59))
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
        assert service.requests == 4
        clock.advance(timedelta(seconds=1))
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
        assert service.requests == 8
        # Kept again from the refetch, for another ten minutes.
        clock.advance(timedelta(minutes=5))
        verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
        assert service.requests == 8


def test_kept_collateral_expires_at_next_update() -> None:
    client = FakeClient()
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    source = PccsCollateralSource(client, max_age=timedelta(days=365), clock=clock)  # type: ignore[arg-type]
    anchor = TrustAnchor.intel()
    fetched = source.collateral_for(QUOTE, anchor=anchor, now=JULY_1)
    source.keep(fetched)
    kept = source.collateral_for(QUOTE, anchor=anchor, now=COLLATERAL.next_update)
    assert kept.from_cache
    assert client.calls == 1
    after = COLLATERAL.next_update + timedelta(seconds=1)
    assert not source.collateral_for(QUOTE, anchor=anchor, now=after).from_cache
    assert client.calls == 2


def test_concurrent_requests_share_one_fetch() -> None:
    client = FakeClient(block=True)
    source = PccsCollateralSource(client)  # type: ignore[arg-type]
    anchor = TrustAnchor.intel()
    results: list[Collateral] = []

    def verify_one() -> None:
        results.append(source.collateral_for(QUOTE, anchor=anchor, now=JULY_1).collateral)

    threads = [threading.Thread(target=verify_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert client.entered.wait(10)
    (flight,) = source._in_flight.values()
    deadline = time.monotonic() + 10
    while flight.followers < 7:  # every other caller joined the one fetch
        assert time.monotonic() < deadline
        time.sleep(0.001)
    client.release.set()
    for thread in threads:
        thread.join(10)
    assert client.calls == 1
    assert results == [COLLATERAL] * 8
    assert source._in_flight == {}


def test_a_failed_fetch_fails_every_caller_waiting_for_it() -> None:
    client = FakeClient(block=True, error=PccsUnreachable("PCCS down"))
    source = PccsCollateralSource(client)  # type: ignore[arg-type]
    anchor = TrustAnchor.intel()
    errors: list[BaseException] = []

    def verify_one() -> None:
        try:
            source.collateral_for(QUOTE, anchor=anchor, now=JULY_1)
        except PccsUnreachable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=verify_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert client.entered.wait(10)
    (flight,) = source._in_flight.values()
    deadline = time.monotonic() + 10
    while flight.followers < 3:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    client.release.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4
    assert client.calls == 1
    # Nothing was kept: the next request fetches again.
    client.error = None
    assert not source.collateral_for(QUOTE, anchor=anchor, now=JULY_1).from_cache
    assert client.calls == 2


def test_many_threads_verify_with_one_verifier(pccs: tuple[str, CountingPccs]) -> None:
    url, service = pccs
    statuses: list[TcbStatus] = []
    with Verifier(pccs=url) as verifier:

        def work() -> None:
            for _ in range(5):
                result = verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
                statuses.append(result.status)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert statuses == [TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED] * 40
    # Whole collateral sets only, and far fewer than one per verification.
    assert service.requests % 4 == 0
    assert service.requests < 40 * 4


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
        assert json.loads(entry.read_text())["format"] == 2


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
    for _ in range(2):
        with Verifier(pccs=url, cache_dir=blocker / "cache") as verifier:
            verifier.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
    assert service.requests == 8


def test_disk_entries_expire_at_max_age(pccs: tuple[str, CountingPccs], tmp_path: Path) -> None:
    url, service = pccs
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    age = timedelta(hours=2)

    def verify_fresh() -> None:
        with Verifier(pccs=url, cache_dir=tmp_path, max_collateral_age=age, clock=clock) as v:
            v.verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())

    verify_fresh()
    clock.advance(timedelta(hours=1))
    verify_fresh()  # a new verifier, served from disk
    assert service.requests == 4
    clock.advance(timedelta(hours=1))
    verify_fresh()
    assert service.requests == 8


def test_deeply_nested_or_oversized_entries_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like any other corrupt entry: no RecursionError, no unbounded read.
    cache = CollateralCache(tmp_path)
    key = CacheKey("https://pccs", "00" * 48, "00A067110000", "processor", "standard")
    cache.put(key, COLLATERAL)
    assert cache.get(key, JULY_1) == COLLATERAL
    intact = cache.path_for(key).read_bytes()
    for nested in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        cache.path_for(key).write_bytes(nested)
        assert cache.get(key, JULY_1) is None
    # An entry larger than any this cache writes is not read whole, and not served.
    cache.path_for(key).write_bytes(intact)
    monkeypatch.setattr(_collateral, "_MAX_ENTRY_SIZE", len(intact) - 1)
    assert cache.get(key, JULY_1) is None
    monkeypatch.setattr(_collateral, "_MAX_ENTRY_SIZE", len(intact))
    assert cache.get(key, JULY_1) == COLLATERAL


def test_deeply_nested_tcb_info_is_a_parse_error() -> None:
    nested = dataclasses.replace(COLLATERAL, tcb_info="[" * 100_000 + "]" * 100_000)
    with pytest.raises(ParseError, match=r"TCB Info is not usable JSON: .* nested too deeply"):
        nested.tcb_info_object()
