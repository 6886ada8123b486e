"""Where verification collateral comes from: a PCCS, kept in memory and optionally on disk.

A :class:`PccsCollateralSource` keeps the collateral the engine accepted, in
memory (and in a :class:`CollateralCache` directory if given), and serves it
without asking the PCCS until the earlier of the collateral's own
``nextUpdate`` (the earliest of TCB Info, QE Identity and both CRLs) and
``max_age`` after it was fetched. That trades freshness for speed and
availability: after a TCB recovery a kept copy answers with the *old* TCB Info,
and quotes keep their old status, for up to ``max_age``. A new source (a new
``Verifier``, as every ``verify`` command makes) starts empty and sees the new
status at once. Intel's QCNL cache makes the same trade.

Concurrent requests for the same collateral share one fetch (the first caller
fetches, the others wait for its result or its error), and every method is safe
to call from several threads at once.

Entries are keyed by PCCS URL, root key id, FMSPC, PCK CA type and the TCB
evaluation data number asked for (``standard``/``early`` or a number), so
collateral of a simulated root is never served for Intel's and vice versa.
Disk writes are atomic (temporary file, fsync, rename); an entry that does not
decode is ignored and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from sgx_quote_helper._fs import InputTooLargeError, atomic_write, read_limited
from sgx_quote_helper._time import Clock, utc_now
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError, UsageError
from sgx_quote_helper.pccs import (
    MAX_COLLATERAL_JSON_SIZE,
    CaType,
    Collateral,
    PccsClient,
    UpdateType,
    quote_fmspc_and_ca,
)
from sgx_quote_helper.verify._anchor import TrustAnchor

_FORMAT = 2
#: How long a source serves collateral it fetched, at most (its nextUpdate may come first).
DEFAULT_MAX_COLLATERAL_AGE = timedelta(hours=1)
_NO_AGE = timedelta(0)
#: The largest cache entry read: collateral JSON, re-encoded with indentation, and a
#: few fields; a larger file is not one this cache wrote, and is ignored.
_MAX_ENTRY_SIZE = 2 * MAX_COLLATERAL_JSON_SIZE
#: How many cache keys a source keeps made before it starts over.
_MAX_KEYS = 4096


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

    def get(
        self, key: CacheKey, now: datetime, *, fetched_after: datetime | None = None
    ) -> Collateral | None:
        """The cached collateral for ``key`` if present, intact and not past nextUpdate.

        With ``fetched_after``, an entry fetched before that time counts as absent.
        """
        found = self.get_entry(key, now)
        if found is None:
            return None
        collateral, fetched_at = found
        if fetched_after is not None and fetched_at < fetched_after:
            return None
        return collateral

    def get_entry(self, key: CacheKey, now: datetime) -> tuple[Collateral, datetime] | None:
        """The cached collateral for ``key`` and when it was fetched, as :meth:`get`."""
        path = self.path_for(key)
        try:
            entry = json.loads(read_limited(path, _MAX_ENTRY_SIZE, "a cache entry"))
            if not isinstance(entry, dict) or entry.get("format") != _FORMAT:
                return None
            if entry.get("key") != key.as_dict():
                return None
            collateral = Collateral.from_json(json.dumps(entry["collateral"]))
            fetched_at = datetime.fromtimestamp(int(entry["fetched_at"]), UTC)
            if now > collateral.next_update:
                return None
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            OverflowError,
            RecursionError,
            ParseError,
            InputTooLargeError,
        ):
            # Missing, unreadable or corrupt: ignore it; the caller refetches and rewrites.
            return None
        return collateral, fetched_at

    def put(
        self, key: CacheKey, collateral: Collateral, *, fetched_at: datetime | None = None
    ) -> None:
        """Store atomically: a reader sees the old entry or the new one, never a part."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {
            "format": _FORMAT,
            "key": key.as_dict(),
            "fetched_at": int((fetched_at or utc_now()).timestamp()),
            "next_update": int(collateral.next_update.timestamp()),
            "collateral": json.loads(collateral.to_json()),
        }
        data = json.dumps(entry, indent=1).encode("utf-8")
        atomic_write(self.path_for(key), data, mode=0o600)


@dataclass(frozen=True)
class FetchedCollateral:
    """Collateral for a quote, and how to keep it once it proved good."""

    collateral: Collateral
    #: Set when the collateral came from the network and may be kept.
    cache_key: CacheKey | None = None
    from_cache: bool = False
    #: When it was fetched (by the source's clock); set with ``cache_key``.
    fetched_at: datetime | None = None


class CollateralSource(Protocol):
    """Anything that finds the collateral for a quote."""

    def collateral_for(
        self, quote: bytes, *, anchor: TrustAnchor, now: datetime
    ) -> FetchedCollateral: ...

    def keep(self, fetched: FetchedCollateral) -> None:
        """Called once the engine accepted the collateral (for caching)."""


class _Flight:
    """One fetch in progress, and how many callers wait for it besides its leader."""

    def __init__(self) -> None:
        self.outcome: Future[Collateral] = Future()
        self.followers = 0


class _Kept:
    """Collateral a source keeps, and the answer it serves while it is fresh."""

    __slots__ = ("collateral", "fetched_at", "served", "stale_at")

    def __init__(self, collateral: Collateral, fetched_at: datetime, max_age: timedelta) -> None:
        self.collateral = collateral
        self.fetched_at = fetched_at
        #: Served until then by the clock (``max_age`` after the fetch).
        self.stale_at = fetched_at + max_age
        #: One immutable answer for every verification it serves.
        self.served = FetchedCollateral(collateral, from_cache=True)


class PccsCollateralSource:
    """Collateral from a PCCS (:class:`~sgx_quote_helper.pccs.PccsClient`), kept as the
    module says: in memory, and in ``cache`` if given, for at most ``max_age``
    (``timedelta(0)``: never kept, every verification fetches). ``clock`` is read
    for the age; tests inject their own.
    """

    def __init__(
        self,
        client: PccsClient,
        *,
        cache: CollateralCache | None = None,
        update: UpdateType = "standard",
        tcb_evaluation_data_number: int | None = None,
        max_age: timedelta = DEFAULT_MAX_COLLATERAL_AGE,
        clock: Clock = utc_now,
    ) -> None:
        if max_age < timedelta(0):
            raise UsageError(f"the maximum collateral age must not be negative, got {max_age}")
        self.client = client
        self.cache = cache
        self.update: UpdateType = update
        self.tcb_evaluation_data_number = tcb_evaluation_data_number
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[CacheKey, _Kept] = {}
        self._in_flight: dict[CacheKey, _Flight] = {}
        # Each CacheKey is made once, not per verification.
        self._keys: dict[tuple[str, bytes, str, str, str], CacheKey] = {}

    def collateral_for(
        self,
        quote: bytes,
        *,
        anchor: TrustAnchor,
        now: datetime,
        target: tuple[str, CaType] | None = None,
    ) -> FetchedCollateral:
        """The collateral for ``quote`` (``target``: its FMSPC and PCK CA type, if known)."""
        fmspc, ca = target if target is not None else quote_fmspc_and_ca(quote)
        key = self._key(anchor, fmspc, ca)
        keeping = self.max_age > _NO_AGE
        if keeping:
            kept = self._kept_for(key, now)
            if kept is not None:
                return kept.served
        collateral, fetched_at = self._fetch(key, fmspc, ca, anchor.public_key)
        return FetchedCollateral(
            collateral, cache_key=key if keeping else None, fetched_at=fetched_at
        )

    def _key(self, anchor: TrustAnchor, fmspc: str, ca: CaType) -> CacheKey:
        url, number = self.client.base_url, self.tcb_evaluation_data_number
        evaluation = str(number) if number is not None else self.update
        known = (url, anchor.public_key, fmspc, ca, evaluation)
        key = self._keys.get(known)
        if key is None:
            key = CacheKey(url, anchor.key_id.hex(), fmspc, ca, evaluation)
            with self._lock:
                if len(self._keys) >= _MAX_KEYS:
                    self._keys.clear()
                self._keys[known] = key
        return key

    @staticmethod
    def _fresh(kept: _Kept, now: datetime, clock_now: datetime) -> bool:
        # The age by the clock; nextUpdate against the verification time, which
        # a caller may fix in the past (the engine judges validity at that time).
        return clock_now < kept.stale_at and now <= kept.collateral.next_update

    def _kept_for(self, key: CacheKey, now: datetime) -> _Kept | None:
        clock_now = self._clock()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                if self._fresh(kept, now, clock_now):
                    return kept
                del self._kept[key]
        if self.cache is None:
            return None
        found = self.cache.get_entry(key, now)
        if found is None:
            return None
        kept = _Kept(*found, self.max_age)
        if not self._fresh(kept, now, clock_now):
            return None
        with self._lock:
            return self._kept.setdefault(key, kept)

    def _fetch(
        self, key: CacheKey, fmspc: str, ca: CaType, root_public_key: bytes
    ) -> tuple[Collateral, datetime]:
        """One fetch per key at a time: later callers wait for the first one's outcome."""
        with self._lock:
            flight = self._in_flight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._in_flight[key] = _Flight()
            else:
                flight.followers += 1
        if not leader:
            return flight.outcome.result(), self._clock()
        fetched_at = self._clock()
        try:
            collateral = self.client.get_collateral(
                fmspc=fmspc,
                ca=ca,
                update=self.update,
                tcb_evaluation_data_number=self.tcb_evaluation_data_number,
                # The root's CRL distribution point is used only if it is the anchor's.
                root_public_key=root_public_key,
            )
        except BaseException as exc:
            flight.outcome.set_exception(exc)
            raise
        else:
            flight.outcome.set_result(collateral)
        finally:
            with self._lock:
                del self._in_flight[key]
        return collateral, fetched_at

    def keep(self, fetched: FetchedCollateral) -> None:
        key = fetched.cache_key
        if key is None:
            return
        fetched_at = fetched.fetched_at or self._clock()
        with self._lock:
            current = self._kept.get(key)
            if current is None or current.fetched_at <= fetched_at:
                self._kept[key] = _Kept(fetched.collateral, fetched_at, self.max_age)
        if self.cache is None:
            return
        # A cache that cannot be written only costs a refetch next time.
        with contextlib.suppress(OSError, SgxQuoteHelperError):
            self.cache.put(key, fetched.collateral, fetched_at=fetched_at)
