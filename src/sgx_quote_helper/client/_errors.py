"""Errors of the client library: every failure names its SGX codes and what to check.

A failed quote-ex call has an ``sgx_status_t`` (what Intel's ``libsgx_quote_ex``
returns, spec aesm-wire.md sections 7.2 and 12.4) and the DCAP
``quote3_error_t`` it becomes (``sgx_status_to_quote3_error``). DCAP folds many
causes into ``SGX_QL_ERROR_UNEXPECTED`` (0xE001): a refused REPORT, a closed
connection and a broken reply all look alike there. These exceptions keep the
real cause (the AESM ``errorCode``, the errno of ``connect()``, the socket path)
and the hints only the client knows; :meth:`QuoteClientError.diagnostics` prints
them in the package's one format (``sgx_quote_helper.errors``).

Leaves exist for the statuses an application may want to catch on their own;
every other status is a plain :class:`QuoteClientError` with that status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from sgx_quote_helper.errors import CodedError, ErrorCode, UsageError, code_text
from sgx_quote_helper.sgx import (
    AesmError,
    Quote3Error,
    QuoteExCall,
    SgxStatus,
    sgx_to_quote3,
)


def aesm_code_text(code: int) -> str:
    """``AESM_BUSY 18``, or ``AESM error 27 (not in aesm_error_t)``."""
    try:
        return code_text(AesmError(code))
    except ValueError:
        return f"AESM error {code} (not in aesm_error_t)"


class QuoteClientError(CodedError):
    """A quoting call failed; root of the client library's status-carrying errors.

    Attributes:
        sgx_status: the ``sgx_status_t`` Intel's quote-ex client returns here.
        quote3_error: the DCAP ``quote3_error_t`` an application sees through
            DCAP. Out of process it is ``sgx_to_quote3(sgx_status)``; in process
            it is the code DCAP's in-process library returns itself, which keeps
            distinctions (0xE015 INVALID_REPORT, 0xE035 INVALID_PRIVILEGE) that
            the out-of-process mapping folds into 0xE001.
        call: the quote-ex function (``sgx_get_quote_ex``...), when one applies.
        aesm_error: the ``errorCode`` the daemon replied with, if it replied.
        where: the socket path, or ``"in-process"``.
        hints: what to check, most specific first.
    """

    #: The status a leaf stands for when none is given.
    default_status: ClassVar[SgxStatus] = SgxStatus.ERROR_UNEXPECTED
    #: The DCAP code a leaf stands for when it is not ``sgx_to_quote3(sgx_status)``.
    default_quote3: ClassVar[Quote3Error | None] = None

    def __init__(
        self,
        message: str,
        *,
        sgx_status: SgxStatus | None = None,
        quote3_error: Quote3Error | None = None,
        call: QuoteExCall | None = None,
        aesm_error: int | None = None,
        where: str | None = None,
        hints: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hints=tuple(hints))
        self.sgx_status = self.default_status if sgx_status is None else sgx_status
        if quote3_error is None:
            quote3_error = self.default_quote3
        if quote3_error is None:
            quote3_error = sgx_to_quote3(self.sgx_status)
        self.quote3_error = quote3_error
        self.call = call
        self.aesm_error = aesm_error
        self.where = where

    def codes(self) -> tuple[ErrorCode, ...]:
        return (self.sgx_status, self.quote3_error)

    def headline(self) -> str:
        prefix = f"{self.call.value}: " if self.call is not None else ""
        return f"{prefix}{self.message}"

    def details(self) -> list[tuple[str, str]]:
        """The codes at each layer, and the socket (or in-process) quoted through."""
        chain = (
            f"sgx_status_t {code_text(self.sgx_status)} -> "
            f"quote3_error_t {code_text(self.quote3_error)}"
        )
        if self.aesm_error is not None:
            chain = f"wire errorCode {aesm_code_text(self.aesm_error)} -> {chain}"
        lines = [("codes", chain)]
        if self.where is not None:
            lines.append(("quoting through", self.where))
        return lines


class ServiceUnavailableError(QuoteClientError):
    """The quoting service cannot be reached or cannot run its enclaves (0x4001).

    Out of process: ``connect()`` failed (no socket, permission denied, nobody
    listening), or the daemon answered AESM 17, 30, 46 or 48.
    """

    default_status = SgxStatus.ERROR_SERVICE_UNAVAILABLE


class ServiceTimeoutError(QuoteClientError):
    """The daemon accepted the connection but a read or write timed out (0x4002)."""

    default_status = SgxStatus.ERROR_SERVICE_TIMEOUT


class UnexpectedError(QuoteClientError):
    """``SGX_ERROR_UNEXPECTED`` (0x0001): closed without reply, a broken reply, AESM 1..."""

    default_status = SgxStatus.ERROR_UNEXPECTED


class InvalidParameterError(QuoteClientError, UsageError):
    """An argument was refused by the client's own checks or by the daemon (0x0002)."""

    default_status = SgxStatus.ERROR_INVALID_PARAMETER


class ServiceBusyError(QuoteClientError):
    """The service is busy (0x400A); the high-level API retries it with back-off."""

    default_status = SgxStatus.ERROR_BUSY


class NetworkFailureError(QuoteClientError):
    """The daemon could not reach the PCCS for the PCK certificate (0x4007)."""

    default_status = SgxStatus.ERROR_NETWORK_FAILURE


class ReportRejectedError(QuoteClientError):
    """The QE refused the application REPORT (0x3001 ``SGX_ERROR_MAC_MISMATCH``).

    There is no ``SGX_ERROR_INVALID_REPORT``: AESM 45/47 become a MAC mismatch.
    """

    default_status = SgxStatus.ERROR_MAC_MISMATCH


class AttestationKeyNotInitializedError(QuoteClientError):
    """No attestation key is ready (0x8003 -> DCAP 0xE00F); init quote again."""

    default_status = SgxStatus.ERROR_ATT_KEY_UNINITIALIZED


class UnsupportedAttKeyIdError(QuoteClientError):
    """The service does not support the attestation key id (0x8001)."""

    default_status = SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID


class PlatformCertUnavailableError(QuoteClientError):
    """The platform's PCK certificate is unavailable (0x8005 -> DCAP 0xE011)."""

    default_status = SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE


class AttKeyCertificationError(QuoteClientError):
    """The PCE could not certify the attestation key (0x8002 -> DCAP 0xE010)."""

    default_status = SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE


class NoDeviceError(QuoteClientError):
    """The SGX device (in simulation: the platform directory) is unusable (0x2006)."""

    default_status = SgxStatus.ERROR_NO_DEVICE


class ProvisioningAccessDeniedError(QuoteClientError):
    """In-process quoting without access to the provisioning secret.

    ``SGX_ERROR_SERVICE_INVALID_PRIVILEGE`` (0x4004) is what loading the PCE or
    QE3 fails with in a process that may not open ``/dev/sgx_provision``; DCAP's
    in-process library reports it as ``SGX_QL_ERROR_INVALID_PRIVILEGE`` (0xE035).
    """

    default_status = SgxStatus.ERROR_SERVICE_INVALID_PRIVILEGE
    default_quote3 = Quote3Error.ERROR_INVALID_PRIVILEGE


class QeReportVerificationError(QuoteClientError):
    """The QE report returned with ``qe_report_info`` does not vouch for the quote.

    Checked by the client: the nonce and target info echoed, ``report_data[:32]
    == SHA256(nonce || quote)``, and (when a MAC check is given) the QE report's
    MAC. The DCAP code is ``SGX_QL_ERROR_REPORT`` (0xE013), which DCAP's own
    verification libraries return when a QE/QvE report does not match.
    """

    default_status = SgxStatus.ERROR_UNEXPECTED
    default_quote3 = Quote3Error.ERROR_REPORT


class ModeConflictError(UsageError):
    """In-process and out-of-process quoting were both used in one process.

    They are mutually exclusive within an application (Intel's DCAP library
    fixes its mode at load time; the AKS quote helper documents the same). DCAP
    answers in-process-only calls in out-of-process mode with
    ``SGX_QL_UNSUPPORTED_MODE`` (0xE03E).
    """


_LEAVES: dict[SgxStatus, type[QuoteClientError]] = {
    SgxStatus.ERROR_SERVICE_UNAVAILABLE: ServiceUnavailableError,
    SgxStatus.ERROR_SERVICE_TIMEOUT: ServiceTimeoutError,
    SgxStatus.ERROR_UNEXPECTED: UnexpectedError,
    SgxStatus.ERROR_INVALID_PARAMETER: InvalidParameterError,
    SgxStatus.ERROR_BUSY: ServiceBusyError,
    SgxStatus.ERROR_NETWORK_FAILURE: NetworkFailureError,
    SgxStatus.ERROR_MAC_MISMATCH: ReportRejectedError,
    SgxStatus.ERROR_ATT_KEY_UNINITIALIZED: AttestationKeyNotInitializedError,
    SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID: UnsupportedAttKeyIdError,
    SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE: PlatformCertUnavailableError,
    SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE: AttKeyCertificationError,
    SgxStatus.ERROR_NO_DEVICE: NoDeviceError,
    SgxStatus.ERROR_SERVICE_INVALID_PRIVILEGE: ProvisioningAccessDeniedError,
}


def error_class_for(status: SgxStatus) -> type[QuoteClientError]:
    """The most specific exception class for ``status``."""
    return _LEAVES.get(status, QuoteClientError)


# ---- what to check, per cause -------------------------------------------------

#: AESM codes whose meaning is more specific than the sgx_status_t they map to.
_AESM_HINTS: dict[int, str] = {
    AesmError.UNEXPECTED_ERROR: (
        "The daemon failed in an unspecified way or the request lacked a required "
        "field; its log records the request, the AESM code and the quote3_error_t."
    ),
    AesmError.INVALID_REPORT: (
        "The QE could not verify the REPORT's MAC: the REPORT was not made for the QE's "
        "target info (make it with EREPORT against the target info from get_target_info / "
        "sgx_init_quote_ex on this node, after the daemon's latest restart or upgrade), or "
        "it was altered in transit."
    ),
    AesmError.ERROR_REPORT: (
        "The QE refused the REPORT for a reason other than its MAC; the daemon's log says which."
    ),
    AesmError.NETWORK_ERROR: (
        "The daemon cannot reach the PCCS for this platform's PCK certificate: check its "
        "--pccs-url, that the PCCS is up and reachable from the node, TLS trust and proxy "
        "settings; a daemon that just started answers this until its first PCK fetch works."
    ),
    AesmError.ATT_KEY_NOT_INITIALIZED: (
        "The daemon has no certified attestation key (it restarted, upgraded or rotated "
        "it): call init quote again (get_target_info), make a new REPORT and retry."
    ),
    AesmError.UNSUPPORTED_ATT_KEY_ID: (
        "The daemon does not support this attestation key id; ask it which ids it "
        "supports (get_supported_att_key_ids) and use the ECDSA-P256 one."
    ),
    AesmError.SERVICE_UNAVAILABLE: (
        "The daemon is up but its quoting service is unavailable (no ECDSA key ids, or a "
        "legacy EPID/launch request); check the daemon's log and backend."
    ),
    AesmError.BUSY: "The daemon is busy; retry with back-off, check its concurrency limits.",
}


def aesm_hints(code: int) -> list[str]:
    """What to check for a reply with ``errorCode = code``, when the client knows more
    than the status it becomes (otherwise none: ``explain.guide`` has the status)."""
    specific = _AESM_HINTS.get(code)
    return [] if specific is None else [specific]
