"""Quoting backends: the :class:`QuoteBackend` interface and its implementations.

``sim`` (the simulated platform), ``dcap`` (Intel's DCAP quote library on SGX
hardware) and ``proxy`` (an upstream AESM socket), all built by
:func:`create_backend`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends._base import (
    AttestationKeyStatus,
    BackendHealth,
    BackendInfo,
    InitQuoteResult,
    QuoteBackend,
    QuoteError,
    QuoteResult,
)
from sgx_quote_helper.backends._dcap import (
    DcapBackend,
    DcapOptions,
    DcapStartupError,
    check_quote_provider,
)
from sgx_quote_helper.backends._dcap import check_devices as check_dcap_devices
from sgx_quote_helper.backends._proxy import DEFAULT_UPSTREAM_TIMEOUT, ProxyBackend
from sgx_quote_helper.backends._sim import PckSource, SimBackend
from sgx_quote_helper.errors import UsageError

#: Backend names accepted by ``--backend``.
BACKEND_NAMES = ("sim", "dcap", "proxy")


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
    if name == "sim":
        missing = [
            option
            for option, value in (
                ("--platform", platform_dir),
                ("--state-dir", state_dir),
                ("a PCK certificate source (--pccs-url or an embedded manufacturer)", pck_source),
            )
            if value is None
        ]
        if missing or platform_dir is None or state_dir is None or pck_source is None:
            raise UsageError(f"the sim backend needs {', '.join(missing)}")
        return SimBackend(
            platform_dir, state_dir, pck_source=pck_source, qe_svn=qe_svn, pce_svn=pce_svn
        )
    if name == "proxy":
        if upstream is None:
            raise UsageError("the proxy backend needs --upstream PATH (the upstream AESM socket)")
        return ProxyBackend(upstream, timeout=upstream_timeout, on_failure=on_upstream_failure)
    if name == "dcap":
        return DcapBackend(dcap or DcapOptions())
    raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_UPSTREAM_TIMEOUT",
    "AttestationKeyStatus",
    "BackendHealth",
    "BackendInfo",
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
    "check_dcap_devices",
    "check_quote_provider",
    "create_backend",
]
