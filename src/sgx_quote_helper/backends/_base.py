"""The QuoteBackend interface: the only way to reach QE3 and the PCE.

Both the daemon (``service``) and the client's in-process mode quote through
this interface, so in-process and out-of-process share one implementation of
quoting. It mirrors DCAP's ``sgx_ql_init_quote`` / ``sgx_ql_get_quote_size`` /
``sgx_ql_get_quote``, which is what AESM's ECDSA bundle calls (aesm-wire.md
section 6.2, "Server ECDSA path").

Implementations: ``sim`` (the simulated platform), ``dcap`` (Intel's
``libsgx_dcap_ql.so.1`` on real hardware) and ``proxy`` (an upstream AESM).
Failures are raised as :class:`QuoteError` carrying the DCAP ``quote3_error_t``
(the daemon maps it to the AESM error code with ``quote3_to_aesm``), or the
AESM code itself where a backend already has one (an upstream's reply).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.sgx import AttKeyId, AttKeyIdExt, QeReportInfo, TargetInfo


class QuoteError(SgxQuoteHelperError):
    """A quoting failure, with the DCAP ``quote3_error_t`` it corresponds to.

    ``code`` is a ``Quote3Error`` value; ``detail`` says what to check.
    ``aesm_code``, when set, is the ``aesm_error_t`` to answer instead of the
    one Intel's table derives from ``code``: an upstream AESM's own reply
    (relayed unchanged), or a service-level condition that has no
    ``quote3_error_t`` to AESM mapping (AESM_SERVICE_UNAVAILABLE, AESM_BUSY).
    """

    def __init__(self, code: int, detail: str, *, aesm_code: int | None = None) -> None:
        super().__init__(detail)
        self.code = int(code)
        self.detail = detail
        self.aesm_code = None if aesm_code is None else int(aesm_code)

    def diagnostics(self) -> str:
        from sgx_quote_helper.sgx._status import Quote3Error

        try:
            name = f"SGX_QL_{Quote3Error(self.code).name}"
        except ValueError:
            name = "unknown quote3_error_t"
        return f"{self.detail} [{name} 0x{self.code:04X}]"


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


@runtime_checkable
class QuoteBackend(Protocol):
    """QE3/PCE behind one interface. Methods may block briefly (one signature)."""

    def info(self) -> BackendInfo: ...

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
