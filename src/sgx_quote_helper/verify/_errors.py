"""Why a quote was refused: one root, typed leaves with ``diagnostics()``.

Each leaf carries the ``sgx_ql_qv_result_t`` that Intel's verifier reports for
the same outcome (dcap-quote.md section 10: bad signatures 0xA004, revocation
0xA005, anything else 0xA006) and, where QVL has one, the ``quote3_error_t``.

Failures to *obtain* collateral are not here: they are
:class:`~sgx_quote_helper.pccs.PccsError` leaves, since they say nothing about
the quote. Appraisal failures (the quote is genuine but not what the relying
party accepts) are :class:`~sgx_quote_helper.verify.AppraisalError`.
"""

from __future__ import annotations

from sgx_quote_helper.errors import CodedError, ErrorCode
from sgx_quote_helper.sgx import Quote3Error, QvResult


class VerificationError(CodedError):
    """The quote did not verify: it is not a genuine quote from a trusted platform."""

    #: ``sgx_ql_qv_result_t`` Intel's verifier gives for this outcome.
    qv_result: QvResult = QvResult.UNSPECIFIED
    #: ``quote3_error_t`` of QVL for this outcome, if it has one.
    quote3_error: Quote3Error | None = None
    #: What this means in practice, and what to check.
    hints = ("reject the quote; the engine message gives the cause",)
    #: Whether the fault lies with the collateral (so it must not be cached).
    collateral_fault: bool = False

    def __init__(
        self,
        message: str,
        *,
        engine_message: str | None = None,
        status: str | None = None,
        quote3_error: Quote3Error | None = None,
        collateral_fault: bool | None = None,
    ) -> None:
        super().__init__(message)
        #: The verification engine's own words (dcap-qvl), when it refused.
        self.engine_message = engine_message
        #: The TCB status behind the refusal (only ``Revoked`` has one).
        self.status = status
        if quote3_error is not None:
            self.quote3_error = quote3_error
        if collateral_fault is not None:
            self.collateral_fault = collateral_fault

    def headline(self) -> str:
        return f"quote verification failed: {self.message}"

    def codes(self) -> tuple[ErrorCode, ...]:
        if self.quote3_error is None:
            return (self.qv_result,)
        return (self.qv_result, self.quote3_error)


class MalformedQuote(VerificationError):
    """The bytes are not a well-formed SGX ECDSA quote."""

    quote3_error = Quote3Error.QUOTE_FORMAT_UNSUPPORTED
    hints = ("the input is not a DCAP SGX quote v3, or it was truncated or altered",)


class UnsupportedQuote(MalformedQuote):
    """A quote of a kind this verifier does not handle (TDX, P-384, PPID-only cert data)."""

    hints = (
        "only SGX ECDSA-P256 quotes carrying their PCK certificate chain (certification "
        "data type 5) are verified",
    )


class InvalidSignature(VerificationError):
    """A signature over the quote, the QE report, a CRL or the collateral is wrong."""

    qv_result = QvResult.INVALID_SIGNATURE
    quote3_error = Quote3Error.RESULT_INVALID_SIGNATURE
    hints = ("the quote or its collateral was altered, or they come from another root of trust",)


class CertificateChainError(VerificationError):
    """A certificate chain (PCK, or the collateral signer's) does not lead to the trust anchor."""

    quote3_error = Quote3Error.PCK_CERT_CHAIN_ERROR
    hints = (
        "the chain does not end at the trust anchor: for simulated quotes pass the simulated "
        "root (--root-ca DIR/pcs/root-ca.der); otherwise the quote or collateral was altered",
    )


class UntrustedRoot(CertificateChainError):
    """The quote's PCK chain ends at a root other than the trust anchor.

    Intel's QvE refuses the same way: it compares the chain's root with the
    one root it trusts (dcap-quote.md section 11.1).
    """


class Revoked(VerificationError):
    """The platform's TCB level, its PCK certificate, or a CA is revoked."""

    qv_result = QvResult.REVOKED
    quote3_error = Quote3Error.TCB_REVOKED
    hints = ("reject the quote; the platform must be updated (and re-provisioned)",)


class ValidityPeriodError(VerificationError):
    """Some collateral or certificate is not valid at the verification time."""

    hints = (
        "fetch fresh collateral from the PCCS (or verify at a time inside the "
        "collateral's validity, --at); check the clock",
    )


class CollateralExpired(ValidityPeriodError):
    """TCB Info, QE Identity or a CRL is past its nextUpdate.

    Intel's QvE treats expired collateral as non-terminal (it sets
    ``collateral_expiration_status``); dcap-qvl refuses, and so does this verifier.
    """

    quote3_error = Quote3Error.SGX_TCB_INFO_EXPIRED


class CrlExpired(CollateralExpired):
    """A CRL (root CA or PCK CA) is past its nextUpdate."""

    quote3_error = Quote3Error.SGX_CRL_EXPIRED


class CollateralNotYetValid(ValidityPeriodError):
    """TCB Info or QE Identity is issued after the verification time."""

    quote3_error = Quote3Error.SGX_TCB_INFO_EXPIRED


class CertificateExpired(ValidityPeriodError):
    """A certificate in the PCK chain or the signing chain is outside its validity."""

    quote3_error = Quote3Error.SGX_PCK_CERT_CHAIN_EXPIRED


class CollateralMismatch(VerificationError):
    """The collateral is for another platform family (FMSPC) or TEE type."""

    quote3_error = Quote3Error.TCBINFO_MISMATCH
    collateral_fault = True
    hints = ("fetch the TCB Info for the FMSPC in the quote's PCK certificate",)


class InvalidCollateral(VerificationError):
    """Collateral that does not decode (bad CRL, TCB Info or QE Identity)."""

    quote3_error = Quote3Error.TCBINFO_UNSUPPORTED_FORMAT
    collateral_fault = True
    hints = ("the PCCS served corrupt or unsupported collateral; refetch it, check the PCCS",)


class QeIdentityMismatch(VerificationError):
    """The QE that signed the quote is not the one the QE Identity describes."""

    quote3_error = Quote3Error.QEIDENTITY_MISMATCH
    hints = (
        "the quote was not made by the Quoting Enclave the collateral describes (MRSIGNER, "
        "ISVPRODID, attributes or ISVSVN)",
    )


class TcbNotSupported(VerificationError):
    """No TCB level of the TCB Info matches the platform (section 10, step 4)."""

    quote3_error = Quote3Error.TCB_NOT_SUPPORTED
    hints = (
        "the platform's TCB is below every level the TCB Info lists: the TCB Info is for "
        "another platform or the platform is too old to attest",
    )


class DebugEnclave(VerificationError):
    """The attested enclave runs in debug mode (ATTRIBUTES.DEBUG set).

    Its memory can be read by the host, so nothing it attests can be trusted;
    dcap-qvl 0.7.0 refuses such quotes outright.
    """

    hints = ("rebuild and sign the enclave for production (DEBUG attribute clear)",)


class UnrecognizedEngineError(VerificationError):
    """The engine refused the quote with a message this wrapper does not know."""

    hints = ("reject the quote; the engine message gives the cause",)
