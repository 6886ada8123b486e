"""Where verification collateral comes from: a PCCS, through an optional disk cache.

The cache trades freshness for availability and speed: an entry is served
until the collateral's own ``nextUpdate`` (the earliest of TCB Info, QE
Identity and both CRLs), without asking the PCCS. So after a TCB recovery the
cache keeps answering with the *old* TCB Info, and quotes keep their old status,
until that time; a verification without the cache (or with the entry removed)
shows the new status at once. Intel's own QCNL cache makes the same trade.

Entries are keyed by PCCS URL, root key id, FMSPC, PCK CA type and the TCB
evaluation data number asked for (``standard``/``early`` or a number), so
collateral of a simulated root is never served for Intel's and vice versa.
Writes are atomic (temporary file, fsync, rename); an entry that does not
decode is ignored and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sgx_quote_helper._fs import atomic_write
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError
from sgx_quote_helper.pccs import Collateral, PccsClient, UpdateType, quote_fmspc_and_ca
from sgx_quote_helper.verify._anchor import TrustAnchor

_FORMAT = 1


@dataclass(frozen=True)
class CacheKey:
    """What a cached collateral entry is for."""

    pccs_url: str
    root_key_id: str
    fmspc: str
    ca_type: str
    #: ``standard``, ``early`` or a TCB evaluation data number.
    tcb_evaluation: str

    def as_dict(self) -> dict[str, str]:
        return {
            "pccs_url": self.pccs_url,
            "root_key_id": self.root_key_id,
            "fmspc": self.fmspc,
            "ca_type": self.ca_type,
            "tcb_evaluation": self.tcb_evaluation,
        }

    def filename(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest() + ".json"


class CollateralCache:
    """A directory of collateral entries, each served until its ``nextUpdate``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path_for(self, key: CacheKey) -> Path:
        return self.directory / key.filename()

    def get(self, key: CacheKey, now: datetime) -> Collateral | None:
        """The cached collateral for ``key`` if present, intact and not past nextUpdate."""
        path = self.path_for(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entry, dict) or entry.get("format") != _FORMAT:
                return None
            if entry.get("key") != key.as_dict():
                return None
            collateral = Collateral.from_json(json.dumps(entry["collateral"]))
            if now > collateral.next_update:
                return None
        except (OSError, ValueError, KeyError, TypeError, ParseError):
            # Missing, unreadable or corrupt: ignore it; the caller refetches and rewrites.
            return None
        return collateral

    def put(self, key: CacheKey, collateral: Collateral) -> None:
        """Store atomically: a reader sees the old entry or the new one, never a part."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {
            "format": _FORMAT,
            "key": key.as_dict(),
            "next_update": int(collateral.next_update.timestamp()),
            "collateral": json.loads(collateral.to_json()),
        }
        data = json.dumps(entry, indent=1).encode("utf-8")
        atomic_write(self.path_for(key), data, mode=0o600)


@dataclass(frozen=True)
class FetchedCollateral:
    """Collateral for a quote, and how to keep it once it proved good."""

    collateral: Collateral
    #: Set when the collateral came from the network and may be cached.
    cache_key: CacheKey | None = None
    from_cache: bool = False


class CollateralSource(Protocol):
    """Anything that finds the collateral for a quote."""

    def collateral_for(
        self, quote: bytes, *, anchor: TrustAnchor, now: datetime
    ) -> FetchedCollateral: ...

    def keep(self, fetched: FetchedCollateral) -> None:
        """Called once the engine accepted the collateral (for caching)."""


class PccsCollateralSource:
    """Collateral from a PCCS (:class:`~sgx_quote_helper.pccs.PccsClient`), optionally cached."""

    def __init__(
        self,
        client: PccsClient,
        *,
        cache: CollateralCache | None = None,
        update: UpdateType = "standard",
        tcb_evaluation_data_number: int | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.update: UpdateType = update
        self.tcb_evaluation_data_number = tcb_evaluation_data_number

    def collateral_for(
        self, quote: bytes, *, anchor: TrustAnchor, now: datetime
    ) -> FetchedCollateral:
        fmspc, ca = quote_fmspc_and_ca(quote)
        evaluation = (
            str(self.tcb_evaluation_data_number)
            if self.tcb_evaluation_data_number is not None
            else self.update
        )
        key = CacheKey(self.client.base_url, anchor.key_id.hex(), fmspc, ca, evaluation)
        if self.cache is not None:
            cached = self.cache.get(key, now)
            if cached is not None:
                return FetchedCollateral(cached, from_cache=True)
        collateral = self.client.get_collateral(
            fmspc=fmspc,
            ca=ca,
            update=self.update,
            tcb_evaluation_data_number=self.tcb_evaluation_data_number,
        )
        return FetchedCollateral(collateral, cache_key=key if self.cache is not None else None)

    def keep(self, fetched: FetchedCollateral) -> None:
        if self.cache is None or fetched.cache_key is None:
            return
        # A cache that cannot be written only costs a refetch next time.
        with contextlib.suppress(OSError, SgxQuoteHelperError):
            self.cache.put(fetched.cache_key, fetched.collateral)
