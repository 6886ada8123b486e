"""Quoting backends: the :class:`QuoteBackend` interface and its implementations.

Every backend is registered once, in :data:`BACKENDS` below: its name (what
``--backend`` takes), a summary, the options it needs and how it is built.
Only registered backends are offered: ``sim`` (the simulated platform), ``dcap``
(Intel's DCAP quote library on SGX hardware) and ``proxy`` (an upstream AESM
socket).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends._base import (
    AttestationKeyStatus,
    BackendCall,
    BackendFactory,
    BackendHealth,
    BackendInfo,
    BackendOptions,
    InitQuoteResult,
    PckSource,
    QuoteBackend,
    QuoteError,
    QuoteResult,
)
from sgx_quote_helper.backends._certification import pck_source_for
from sgx_quote_helper.backends._dcap import (
    DCAP_BACKEND,
    DcapBackend,
    DcapOptions,
    DcapStartupError,
    check_quote_provider,
)
from sgx_quote_helper.backends._dcap import check_devices as check_dcap_devices
from sgx_quote_helper.backends._proxy import DEFAULT_UPSTREAM_TIMEOUT, PROXY_BACKEND, ProxyBackend
from sgx_quote_helper.backends._sim import SIM_BACKEND, SimBackend
from sgx_quote_helper.errors import UsageError

#: The registered backends, by name; the first is the default.
BACKENDS: Mapping[str, BackendFactory] = {
    factory.name: factory for factory in (SIM_BACKEND, DCAP_BACKEND, PROXY_BACKEND)
}
#: Backend names accepted by ``--backend``.
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
DEFAULT_BACKEND = BACKEND_NAMES[0]


def backend_factory(name: str) -> BackendFactory:
    """The registered backend called ``name``; ``UsageError`` for any other name."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(
            f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}"
        ) from None


def check_backend_options(name: str, options: BackendOptions) -> None:
    """Raise ``UsageError`` naming what backend ``name`` needs and ``options`` lacks."""
    missing = backend_factory(name).missing_options(options)
    if missing:
        raise UsageError(f"the {name} backend needs {', '.join(missing)}")


def create_backend(
    name: str,
    *,
    platform_dir: str | os.PathLike[str] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    pck_source: PckSource | None = None,
    qe_svn: int = QE_SVN,
    pce_svn: int = PCE_SVN,
    upstream: str | os.PathLike[str] | None = None,
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT,
    on_upstream_failure: Callable[[str], None] | None = None,
    dcap: DcapOptions | None = None,
) -> QuoteBackend:
    """The backend called ``name``, built from the options that apply to it."""
    factory = backend_factory(name)
    return factory.create(
        BackendOptions(
            platform_dir=None if platform_dir is None else Path(platform_dir),
            state_dir=None if state_dir is None else Path(state_dir),
            pck_source=pck_source,
            qe_svn=qe_svn,
            pce_svn=pce_svn,
            upstream=None if upstream is None else Path(upstream),
            upstream_timeout=upstream_timeout,
            on_upstream_failure=on_upstream_failure,
            dcap=dcap,
        )
    )


__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "DEFAULT_UPSTREAM_TIMEOUT",
    "AttestationKeyStatus",
    "BackendCall",
    "BackendFactory",
    "BackendHealth",
    "BackendInfo",
    "BackendOptions",
    "DcapBackend",
    "DcapOptions",
    "DcapStartupError",
    "InitQuoteResult",
    "PckSource",
    "ProxyBackend",
    "QuoteBackend",
    "QuoteError",
    "QuoteResult",
    "SimBackend",
    "backend_factory",
    "check_backend_options",
    "check_dcap_devices",
    "check_quote_provider",
    "create_backend",
    "pck_source_for",
]
