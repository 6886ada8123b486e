"""Where a backend gets the PCK certificate chain it puts into quotes.

Certification data type 5 carries the platform's PCK leaf, the PCK CA and the
root. A backend asks a :class:`PckCertificateSource` for them; the source is a
PCCS (through :mod:`sgx_quote_helper.pccs`) or, in simulation, the embedded
manufacturer of the ``sim init`` directory.

:class:`CachedPckSource` keeps the last good answer in memory and in the state
directory, so a daemon keeps quoting while the PCCS is briefly unreachable and
survives a restart during an outage. ``get`` never performs network I/O for a
query it has answered before; ``refresh`` (run off the event loop) does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from sgx_quote_helper._fs import InputTooLargeError, MiB, atomic_write, make_directory, read_limited
from sgx_quote_helper._logging import log_event
from sgx_quote_helper.errors import CodedError, SgxQuoteHelperError, UsageError
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery

PckCertificateSource = Callable[[PckCertificateQuery], PckCertificate]

_log = logging.getLogger("sgx_quote_helper.backends.certification")
#: The largest PCK cache entry read: a PCK certificate and its chain are a few KB;
#: a larger file is not one this cache wrote, and is ignored.
_MAX_CACHE_ENTRY_SIZE = 1 * MiB


class PckChainUnavailable(CodedError):
    """No PCK certificate chain could be had from the PCCS or the cache."""


def _cache_key(query: PckCertificateQuery) -> str:
    # The encrypted PPID is left out: RSA-OAEP is randomized, so it differs
    # between processes for the same platform, and the QE-ID names it already.
    material = b"|".join(
        [query.qe_id, query.cpu_svn, query.pce_svn.to_bytes(2, "little"), query.pce_id]
    )
    return hashlib.sha256(material).hexdigest()[:32]


class CachedPckSource:
    """A PCK source with a memory and on-disk cache in front of an upstream.

    ``on_outcome`` is called with ``"fetched"``, ``"cache"`` (upstream failed,
    a cached chain was served) or ``"failed"``, for metrics; ``on_chain`` with
    every chain fetched or served from the cache. ``close_upstream``
    releases what the upstream holds (a PCCS client's connection pool); the
    source owns it and :meth:`close` calls it once.
    """

    def __init__(
        self,
        upstream: PckCertificateSource,
        cache_dir: Path | None,
        *,
        description: str,
        on_outcome: Callable[[str], None] | None = None,
        on_chain: Callable[[PckCertificate], None] | None = None,
        close_upstream: Callable[[], None] | None = None,
    ) -> None:
        self._upstream = upstream
        self._close_upstream = close_upstream
        self._cache_dir = cache_dir
        self.description = description
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._on_chain = on_chain or (lambda certificate: None)
        self._memory: dict[str, tuple[PckCertificateQuery, PckCertificate, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, query: PckCertificateQuery) -> PckCertificate:
        return self.get(query)

    def close(self) -> None:
        """Release the upstream (a PCCS client made for this source); idempotent."""
        close, self._close_upstream = self._close_upstream, None
        if close is not None:
            close()

    def get(self, query: PckCertificateQuery) -> PckCertificate:
        """The chain for ``query``: from memory, else fetched, else from disk."""
        with self._lock:
            hit = self._memory.get(_cache_key(query))
        if hit is not None:
            return hit[1]
        return self.refresh(query)

    def refresh(self, query: PckCertificateQuery) -> PckCertificate:
        """Fetch from upstream; on failure serve the cached chain if there is one."""
        key = _cache_key(query)
        try:
            certificate = self._upstream(query)
        except SgxQuoteHelperError as exc:
            cached = self._memory_or_disk(key, query)
            if cached is None:
                self._on_outcome("failed")
                raise PckChainUnavailable(
                    f"cannot get the PCK certificate chain from {self.description} and no "
                    f"cached chain exists: {exc}",
                    hints=exc.hints if isinstance(exc, CodedError) else (),
                ) from exc
            self._on_outcome("cache")
            self._on_chain(cached)
            _log.warning(
                "pck_chain.served_from_cache",
                extra={"fields": {"source": self.description, "error": exc.diagnostics()}},
            )
            return cached
        with self._lock:
            self._memory[key] = (query, certificate, time.time())
        self._store(key, certificate)
        self._on_outcome("fetched")
        self._on_chain(certificate)
        return certificate

    def refresh_all(self) -> None:
        """Re-fetch every chain answered so far (a periodic background task)."""
        with self._lock:
            queries = [entry[0] for entry in self._memory.values()]
        for query in queries:
            try:
                self.refresh(query)
            except PckChainUnavailable:
                continue

    def _memory_or_disk(self, key: str, query: PckCertificateQuery) -> PckCertificate | None:
        with self._lock:
            hit = self._memory.get(key)
        if hit is not None:
            return hit[1]
        certificate = self._load(key)
        if certificate is not None:
            with self._lock:
                self._memory[key] = (query, certificate, time.time())
        return certificate

    def _path(self, key: str) -> Path | None:
        return None if self._cache_dir is None else self._cache_dir / f"pck-{key}.json"

    def _load(self, key: str) -> PckCertificate | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            document = json.loads(read_limited(path, _MAX_CACHE_ENTRY_SIZE, "a cached PCK chain"))
            return PckCertificate(
                leaf_pem=str(document["leaf_pem"]),
                issuer_chain_pem=str(document["issuer_chain_pem"]),
                tcbm=bytes.fromhex(document["tcbm"]),
                fmspc=bytes.fromhex(document["fmspc"]),
                ca_type=str(document["ca_type"]),
            )
        except FileNotFoundError:
            return None
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
            InputTooLargeError,
        ) as exc:
            _log.warning(
                "pck_chain.cache_unreadable", extra={"fields": {"path": str(path), "error": exc}}
            )
            return None

    def _store(self, key: str, certificate: PckCertificate) -> None:
        path = self._path(key)
        if path is None:
            return
        document = asdict(certificate)
        document["tcbm"] = certificate.tcbm.hex()
        document["fmspc"] = certificate.fmspc.hex()
        try:
            make_directory(path.parent, 0o700)
            atomic_write(path, json.dumps(document).encode(), mode=0o600)
        except OSError as exc:
            # A cache that cannot be written costs resilience, not correctness.
            log_event(
                _log,
                logging.WARNING,
                "pck_chain.cache_write_failed",
                path=str(path),
                error=exc.strerror or str(exc),
                effect="the PCK certificate chain is not cached, so it cannot be served from "
                "the cache while the PCCS is unreachable",
                hint="check that the state directory (--state-dir) is a writable directory",
            )


def find_sim_dir(platform_dir: Path) -> Path | None:
    """The ``sim init`` directory a platform directory belongs to, if any.

    ``DIR/platform`` and ``DIR/platforms/NAME`` both belong to ``DIR``, whose
    manufacturer lives in ``DIR/pcs``.
    """
    for candidate in (platform_dir.parent, platform_dir.parent.parent):
        if (candidate / "pcs").is_dir():
            return candidate
    return None


def pck_source_for(
    *,
    pccs_url: str | None,
    platform_dir: Path | None,
    cache_dir: Path | None,
    pccs_insecure: bool = False,
    pccs_ca_file: Path | None = None,
    on_outcome: Callable[[str], None] | None = None,
    on_chain: Callable[[PckCertificate], None] | None = None,
) -> CachedPckSource:
    """The PCK chain source a backend should use, from the configuration.

    A PCCS URL wins; without one, a simulated platform is certified by the
    embedded manufacturer of its ``sim init`` directory (DESIGN.md section 4).
    The source owns the PCCS client it creates: call its ``close()`` when done.
    """
    if pccs_url:
        from sgx_quote_helper.pccs import PccsClient

        client = PccsClient(pccs_url, verify_tls=not pccs_insecure, ca_file=pccs_ca_file)
        return CachedPckSource(
            client.get_pck_certificate,
            cache_dir,
            description=f"the PCCS at {pccs_url}",
            on_outcome=on_outcome,
            on_chain=on_chain,
            close_upstream=client.close,
        )
    sim_dir = find_sim_dir(platform_dir) if platform_dir is not None else None
    if sim_dir is None:
        where = (
            f"the platform directory {platform_dir} is not inside a `sim init` directory "
            "(no pcs/ next to it), so no simulated manufacturer can certify it"
            if platform_dir is not None
            else "no platform directory and no PCCS URL"
        )
        raise UsageError(
            f"no PCK certificate source: {where}; give --pccs-url URL, or the platform "
            "directory of a `sim init DIR` (DIR/platform, with its manufacturer in DIR/pcs)"
        )
    from sgx_quote_helper.pcs import Manufacturer

    manufacturer = Manufacturer.load(sim_dir)
    return CachedPckSource(
        manufacturer.issue_pck_certificate,
        cache_dir,
        description=f"the embedded simulated manufacturer in {sim_dir / 'pcs'}",
        on_outcome=on_outcome,
        on_chain=on_chain,
    )
