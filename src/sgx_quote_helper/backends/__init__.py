"""Quoting backends: the :class:`QuoteBackend` interface and its implementations.

Every backend is registered once, in :data:`BACKENDS` below: its name (what
``--backend`` takes), a summary, the options it needs and how it is built.
Only registered backends are offered. Today that is ``sim`` (the simulated
platform); ``dcap`` (Intel's DCAP quote library on SGX hardware) and ``proxy``
(an upstream AESM socket) join by adding their :class:`BackendFactory` here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends._base import (
    AttestationKeyStatus,
    BackendCall,
    BackendFactory,
    BackendInfo,
    BackendOptions,
    InitQuoteResult,
    PckSource,
    QuoteBackend,
    QuoteError,
    QuoteResult,
)
from sgx_quote_helper.backends._sim import SIM_BACKEND, SimBackend
from sgx_quote_helper.errors import UsageError

#: The registered backends, by name; the first is the default.
BACKENDS: Mapping[str, BackendFactory] = {factory.name: factory for factory in (SIM_BACKEND,)}
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
        )
    )


__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "AttestationKeyStatus",
    "BackendCall",
    "BackendFactory",
    "BackendInfo",
    "BackendOptions",
    "InitQuoteResult",
    "PckSource",
    "QuoteBackend",
    "QuoteError",
    "QuoteResult",
    "SimBackend",
    "backend_factory",
    "check_backend_options",
    "create_backend",
]
