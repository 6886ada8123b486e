"""The QuoteBackend interface: the only way to reach QE3 and the PCE.

Both the daemon (``service``) and the client's in-process mode quote through
this interface, so in-process and out-of-process share one implementation of
quoting. It mirrors DCAP's ``sgx_ql_init_quote`` / ``sgx_ql_get_quote_size`` /
``sgx_ql_get_quote``, which is what AESM's ECDSA bundle calls (aesm-wire.md
section 6.2, "Server ECDSA path").

Each implementation registers one :class:`BackendFactory` in the package's
``__init__`` (its name, a one-line summary, the options it needs and how it is
built); ``--backend`` offers exactly the registered names: ``sim`` (the
simulated platform), ``dcap`` (Intel's ``libsgx_dcap_ql.so.1`` on real
hardware) and ``proxy`` (an upstream AESM). Failures are raised as
:class:`QuoteError` carrying the DCAP ``quote3_error_t`` (the daemon maps it to
the AESM error code with ``quote3_to_aesm``), or the AESM code itself where a
backend already has one (an upstream's reply).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.errors import CodedError, ErrorCode
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery
from sgx_quote_helper.sgx import (
    AesmError,
    AttKeyId,
    AttKeyIdExt,
    QeReportInfo,
    Quote3Error,
    TargetInfo,
)

if TYPE_CHECKING:
    from sgx_quote_helper.backends._dcap import DcapOptions


class QuoteError(CodedError):
    """A quoting failure, with the DCAP ``quote3_error_t`` it corresponds to.

    ``code`` is a ``Quote3Error`` value (an ``int``, so that a backend can pass
    on a value Intel's library returned that this package does not know);
    ``detail`` says what happened and what to check. ``aesm_code``, when set,
    is the ``aesm_error_t`` to answer instead of the one Intel's table derives
    from ``code``: an upstream AESM's own reply (relayed unchanged), or a
    service-level condition without a ``quote3_error_t`` to AESM mapping
    (AESM_SERVICE_UNAVAILABLE, AESM_BUSY).
    """

    def __init__(
        self,
        code: int,
        detail: str,
        *,
        hints: Sequence[str] | None = None,
        aesm_code: int | None = None,
    ) -> None:
        super().__init__(detail, hints=hints)
        self.code = int(code)
        self.detail = detail
        self.aesm_code = None if aesm_code is None else int(aesm_code)

    def codes(self) -> tuple[ErrorCode, ...]:
        codes: list[ErrorCode] = [quote3_code(self.code)]
        if self.aesm_code is not None:
            # The wire code this failure is answered with, when it is not
            # Intel's mapping of ``code``.
            with contextlib.suppress(ValueError):
                codes.append(AesmError(self.aesm_code))
        return tuple(codes)


def quote3_code(code: int) -> ErrorCode:
    """``code`` as a ``Quote3Error`` member, or a stand-in naming an unknown value."""
    try:
        return Quote3Error(code)
    except ValueError:
        return _UnknownQuote3Error(code)


@dataclass(frozen=True)
class _UnknownQuote3Error:
    """A ``quote3_error_t`` value outside the enum (a newer DCAP release's code)."""

    value: int

    @property
    def c_name(self) -> str:
        return "unknown quote3_error_t"

    @property
    def display_value(self) -> str:
        return f"0x{self.value:04X}"

    def __int__(self) -> int:
        return self.value


@dataclass(frozen=True)
class InitQuoteResult:
    """What ``sgx_ql_init_quote`` returns: the QE's target info and key id hash."""

    target_info: TargetInfo
    #: The ``ECDSA_ID``: SHA-256(attestation public key ‖ QE auth data), 32 bytes,
    #: which equals the first half of the QE report's report data. ``None`` when
    #: the backend cannot learn it (Intel's ``sgx_qe_get_target_info`` does not
    #: return it); the reply then omits ``pub_key_id``, which Intel's client
    #: treats as "buffer left untouched".
    pub_key_id: bytes | None
    #: True when no usable key was persisted and this call generated one (a
    #: fresh platform, or a sealed blob that failed to unseal): where DCAP
    #: would have answered ATT_KEY_NOT_INITIALIZED to a quote before it.
    key_generated: bool = False


@dataclass(frozen=True)
class QuoteResult:
    """A quote (exact length, not padded) and the filled-in QE report info."""

    quote: bytes
    qe_report_info: QeReportInfo | None


@dataclass(frozen=True)
class BackendInfo:
    """Versions a backend hosts, reported by metrics, logs and ``doctor``."""

    name: str
    qe_svn: int
    pce_svn: int
    simulated: bool


class BackendCall(enum.Enum):
    """The backend calls that the daemon may run off its event loop."""

    INIT_QUOTE = "init_quote"
    QUOTE_SIZE = "quote_size"
    GET_QUOTE = "get_quote"


@runtime_checkable
class QuoteBackend(Protocol):
    """QE3/PCE behind one interface.

    Every call is synchronous. A call for which :meth:`may_block` is true is
    run by the daemon in a bounded pool of worker threads; the others run on
    its event loop, where they must return within about a millisecond.
    """

    def info(self) -> BackendInfo: ...

    def may_block(self, call: BackendCall) -> bool:
        """Whether ``call`` can wait on I/O or take long (network, a device, a lock).

        The simulated QE answers ``quote_size`` and ``get_quote`` in tens of
        microseconds (inline) but its ``init_quote`` may fetch the PCK chain
        from a PCCS (worker). Intel's library and an upstream AESM block on
        every call. When in doubt, answer ``True``: a worker thread costs tens
        of microseconds, a blocked event loop stalls every client.
        """
        ...

    def supported_att_key_ids(self) -> list[AttKeyIdExt]:
        """The attestation key ids this backend can quote with."""
        ...

    def init_quote(self, att_key_id: AttKeyId) -> InitQuoteResult:
        """Generate or load the attestation key and certify it (QE report by the PCE)."""
        ...

    def quote_size(self, att_key_id: AttKeyId) -> int:
        """Exact size of the quotes ``get_quote`` will return for this key."""
        ...

    def get_quote(
        self, report: bytes, att_key_id: AttKeyId, qe_report_info: QeReportInfo | None
    ) -> QuoteResult:
        """Verify the application REPORT (targeted at the QE) and quote it.

        ``report`` is the raw 432-byte ``sgx_report_t`` as the client sent it
        (the daemon has checked its length): a QE verifies its MAC over exactly
        these bytes, and a backend that needs a parsed
        :class:`~sgx_quote_helper.sgx.Report` makes one itself.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class BackendHealth(Protocol):
    """Optional: a backend whose quoting depends on something that can go away.

    The ``proxy`` backend implements it (its upstream AESM may stop answering).
    The daemon's readiness is its own readiness *and* ``healthy()``; while
    unhealthy, the daemon calls ``probe()`` (blocking, in a worker thread)
    every few seconds so that readiness comes back without client traffic.
    """

    def healthy(self) -> bool:
        """Whether the last exchange with the dependency succeeded."""
        ...

    def probe(self) -> None:
        """Check the dependency now (blocking) and update ``healthy()``."""
        ...


@runtime_checkable
class AttestationKeyStatus(Protocol):
    """Optional: what a backend can tell about its attestation key, for metrics.

    A backend that manages the key itself (the simulated QE) implements it; one
    that fronts Intel's library or another AESM need not.
    """

    def attestation_key_created(self) -> float | None:
        """When the key in use was generated (Unix time), if known."""
        ...

    @property
    def att_key_blob_errors(self) -> int:
        """Sealed key blobs found unusable (and replaced) since start."""
        ...


#: Where the PCK certificate comes from: a PCCS client, or an embedded manufacturer.
PckSource = Callable[[PckCertificateQuery], PckCertificate]


@dataclass(frozen=True)
class BackendOptions:
    """Everything a backend may be built from; each backend takes what applies to it.

    A backend that needs a new input adds a field here (and a setting to the
    daemon's configuration table that fills it).
    """

    #: A simulated platform directory (``DIR/platform`` of ``sim init``).
    platform_dir: Path | None = None
    #: Where the backend keeps its sealed attestation key.
    state_dir: Path | None = None
    #: The PCK certificate chain for quotes' certification data.
    pck_source: PckSource | None = None
    #: QE3 and PCE ISVSVNs the (simulated) release hosts.
    qe_svn: int = QE_SVN
    pce_svn: int = PCE_SVN
    #: The upstream AESM socket (``proxy``) and the budget of one exchange with it.
    upstream: Path | None = None
    upstream_timeout: float = 10.0
    #: Called with a reason each time the upstream gives no usable reply (a metric).
    on_upstream_failure: Callable[[str], None] | None = None
    #: Intel's libraries, enclaves and devices (``dcap``); ``None``: the defaults.
    dcap: DcapOptions | None = None


@dataclass(frozen=True)
class BackendFactory:
    """One registered backend: the single place that names it."""

    #: What ``--backend`` takes.
    name: str
    #: One line for ``--backend``'s help and the daemon's docs.
    summary: str
    #: The options a user must give for this backend, named as flags (for
    #: example ``--platform DIR``), that are missing from ``options``.
    missing_options: Callable[[BackendOptions], list[str]]
    #: Build the backend; raises ``UsageError`` for missing inputs.
    create: Callable[[BackendOptions], QuoteBackend]
    #: Whether several daemon worker processes may each build one over the same
    #: state directory (one logical QE: the first to initialize seals the key,
    #: the others load it). A backend owning a device, a library or an upstream
    #: connection leaves it false, and the daemon runs one worker.
    shareable: bool = False
    #: Whether the daemon must give it a PCK certificate source and a state
    #: directory (the simulated QE); Intel's library and an upstream AESM get
    #: their certificates themselves.
    uses_pck_source: bool = False
