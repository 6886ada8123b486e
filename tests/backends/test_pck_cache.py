"""The daemon's on-disk PCK chain cache: served when the PCCS fails, ignored when corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgx_quote_helper.backends import _certification
from sgx_quote_helper.backends._certification import CachedPckSource, PckChainUnavailable
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery

QUERY = PckCertificateQuery(qe_id=bytes(16), cpu_svn=bytes(16), pce_svn=13, pce_id=bytes(2))
CHAIN = PckCertificate(
    leaf_pem="leaf", issuer_chain_pem="chain", tcbm=bytes(18), fmspc=bytes(6), ca_type="processor"
)


def _down(query: PckCertificateQuery) -> PckCertificate:
    raise UsageError("the PCCS is down")


def _from_cache(cache_dir: Path) -> PckCertificate:
    return CachedPckSource(_down, cache_dir, description="a test PCCS").get(QUERY)


def test_corrupt_entries_are_ignored_like_missing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    CachedPckSource(lambda query: CHAIN, tmp_path, description="a test PCCS").get(QUERY)
    (entry,) = tmp_path.iterdir()
    assert _from_cache(tmp_path) == CHAIN
    intact = entry.read_bytes()
    # Too deeply nested for the JSON parser: no RecursionError, the entry is ignored.
    for nested in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        entry.write_bytes(nested)
        with pytest.raises(PckChainUnavailable, match="no cached chain exists"):
            _from_cache(tmp_path)
    # Larger than any entry this cache writes: not read whole, and ignored.
    entry.write_bytes(intact)
    monkeypatch.setattr(_certification, "_MAX_CACHE_ENTRY_SIZE", len(intact) - 1)
    with pytest.raises(PckChainUnavailable, match="no cached chain exists"):
        _from_cache(tmp_path)
    monkeypatch.setattr(_certification, "_MAX_CACHE_ENTRY_SIZE", len(intact))
    assert _from_cache(tmp_path) == CHAIN
