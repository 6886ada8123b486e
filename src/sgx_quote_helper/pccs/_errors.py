"""Errors of the PCCS client: what a failed request means for attestation.

Each leaf names the DCAP ``quote3_error_t`` that Intel's quote provider library
(QCNL) reports for the same situation, so that a user who knows the DCAP codes
recognises it, and says what to check.
"""

from __future__ import annotations

from sgx_quote_helper.errors import CodedError, ErrorCode, ParseError
from sgx_quote_helper.sgx import Quote3Error


class PccsError(CodedError):
    """A request to a PCCS (or Intel PCS) did not give usable data."""

    #: The DCAP status Intel's libraries report for this situation.
    quote3_error: Quote3Error = Quote3Error.UNABLE_TO_GET_COLLATERAL
    hints = ("the PCCS URL and the PCCS logs",)

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url

    def codes(self) -> tuple[ErrorCode, ...]:
        return (self.quote3_error,)

    def headline(self) -> str:
        return f"{self.message} ({self.url})" if self.url else self.message


class PccsUnreachable(PccsError):
    """No HTTP answer: connection refused, DNS, TLS, proxy or timeout.

    This is what ``SGX_QL_NETWORK_ERROR`` (0xE019) means on a DCAP platform: the
    quote provider library could not reach its PCCS, so neither a PCK
    certificate nor verification collateral can be had.
    """

    quote3_error = Quote3Error.NETWORK_ERROR
    hints = (
        "the PCCS is down or unreachable: check that it runs, the URL (scheme, host, port), "
        "TLS settings (CA file, or a self-signed PCCS certificate) and the proxy settings "
        "(HTTP(S)_PROXY, NO_PROXY)",
    )


class PccsNotFound(PccsError):
    """HTTP 404: the PCCS has no data for this platform or FMSPC.

    A PCCS serves what it has cached or could fetch from Intel; a 404 means it
    was never populated for this platform (not registered, or offline PCCS
    without imported data) or the FMSPC/CA in the request is wrong.
    """

    quote3_error = Quote3Error.NO_QUOTE_COLLATERAL_DATA
    hints = (
        "the PCCS is not populated for this platform: register the platform (PCK "
        "certificates) or import its collateral, and check the FMSPC and CA type",
    )


class PccsPlatformNotFound(PccsNotFound):
    """HTTP 404 on ``/pckcert``: the PCCS knows no PCK certificate for this platform."""

    quote3_error = Quote3Error.NO_PLATFORM_CERT_DATA
    hints = (
        "the PCCS has no PCK certificate for this platform: register it (PCKIDRetrievalTool "
        "or the simulated manufacturer) and check QE ID, CPUSVN, PCESVN and PCE ID",
    )


class PccsNotAService(PccsNotFound):
    """HTTP 404 from a server that does not answer as a PCCS does: a wrong URL.

    Calling it "not populated" would send the user to register a platform when
    the URL points at something else (a web server, the daemon's admin port).
    """

    hints = (
        "the URL is probably not a PCCS v4: check the host, the port (not, e.g., the "
        "quote helper's admin listener) and the path prefix (https://HOST:PORT, the client "
        "adds /sgx/certification/v4/); if it is a PCCS, it is not populated for this "
        "platform: register the platform or import its collateral",
    )


class PccsHttpError(PccsError):
    """Any other non-200 answer, with the service's own ``Error-Code``/``Error-Message``."""

    hints = ("see the PCCS error code and message; check the request parameters and PCCS logs",)

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status_code: int,
        error_code: str | None = None,
        error_message: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = error_message
        #: The service's ``Retry-After`` (seconds or an HTTP date), as it sent it.
        self.retry_after = retry_after


class PccsBusy(PccsHttpError):
    """HTTP 429 or 503: the service is overloaded, rate-limiting or down for now.

    Nothing is wrong with the request; Intel PCS rate-limits per subscription
    key, and a PCCS answers 503 while it cannot reach Intel PCS to fill its cache.
    """

    hints = (
        "the PCCS is busy or temporarily unavailable: try again later (after its "
        "Retry-After, if it gave one); if it persists, check the PCCS logs, its load and "
        "its connection to Intel PCS (and, for Intel PCS, the subscription key's rate limit)",
    )


class PccsResponseError(PccsError, ParseError):
    """A 200 answer whose body or headers are not what PCCS v4 sends."""

    quote3_error = Quote3Error.MESSAGE_ERROR
    hints = (
        "the service is not a PCCS v4 (or returned corrupt data): check the URL path and version",
    )
