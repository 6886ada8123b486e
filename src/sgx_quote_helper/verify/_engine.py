"""dcap-qvl as the verification engine, and its refusals as typed errors.

dcap-qvl 0.7.0 (pinned) reports every refusal as a ``ValueError`` whose text is
the only thing that says what went wrong. :data:`RULES` maps those texts to the
outcomes of dcap-quote.md section 10; the tests run real dcap-qvl calls on real
inputs and assert the exact texts, so an engine upgrade that rewords one fails
the build instead of silently degrading an error to "unrecognised".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import dcap_qvl

from sgx_quote_helper.pccs import Collateral
from sgx_quote_helper.sgx import Quote3Error
from sgx_quote_helper.verify._anchor import TrustAnchor
from sgx_quote_helper.verify._errors import (
    CertificateChainError,
    CertificateExpired,
    CollateralExpired,
    CollateralMismatch,
    CollateralNotYetValid,
    CrlExpired,
    DebugEnclave,
    InvalidCollateral,
    InvalidSignature,
    MalformedQuote,
    QeIdentityMismatch,
    Revoked,
    TcbNotSupported,
    UnrecognizedEngineError,
    UnsupportedQuote,
    VerificationError,
)

#: The prefix dcap-qvl puts before the reason of a failed verification.
ENGINE_PREFIX = "Verification failed: "


@dataclass(frozen=True)
class Rule:
    """One engine message pattern and the outcome it stands for."""

    pattern: str
    error: type[VerificationError]
    meaning: str
    quote3_error: Quote3Error | None = None
    #: The engine checks collateral before this point (dcap-quote.md section 2
    #: order), so the collateral itself was accepted and may be cached.
    collateral_verified: bool = False
    status: str | None = None

    def matches(self, message: str) -> bool:
        return re.search(self.pattern, message) is not None


Q3 = Quote3Error

#: Ordered: the first match wins, so specific causes precede generic wrappers
#: ("Failed to verify certificate chain ... CertRevoked" is a revocation).
RULES: tuple[Rule, ...] = (
    Rule(
        r"TCB status is invalid: Revoked",
        Revoked,
        "the platform's TCB level (or the QE's) is revoked",
        Q3.TCB_REVOKED,
        collateral_verified=True,
        status="Revoked",
    ),
    Rule(
        r"\bCertRevoked\b",
        Revoked,
        "a certificate of the PCK chain is revoked (listed on its issuer's CRL)",
        Q3.PCK_REVOKED,
    ),
    Rule(r"Debug mode is enabled", DebugEnclave, "the attested enclave has the DEBUG attribute"),
    Rule(
        r"\bCrlExpired\b|certificate revocation list expired",
        CrlExpired,
        "a CRL is past its nextUpdate",
        Q3.SGX_CRL_EXPIRED,
    ),
    Rule(
        r"TCBInfo expired",
        CollateralExpired,
        "the TCB Info is past its nextUpdate",
        Q3.SGX_TCB_INFO_EXPIRED,
    ),
    Rule(
        r"QE Identity expired",
        CollateralExpired,
        "the QE Identity is past its nextUpdate",
        Q3.SGX_ENCLAVE_IDENTITY_EXPIRED,
    ),
    Rule(
        r"Collateral expired",
        CollateralExpired,
        "the collateral is past its earliest expiration",
        Q3.SGX_TCB_INFO_EXPIRED,
    ),
    Rule(
        r"TCBInfo issue date is in the future",
        CollateralNotYetValid,
        "the TCB Info was issued after the verification time",
        Q3.SGX_TCB_INFO_EXPIRED,
    ),
    Rule(
        r"QE Identity issue date is in the future",
        CollateralNotYetValid,
        "the QE Identity was issued after the verification time",
        Q3.SGX_ENCLAVE_IDENTITY_EXPIRED,
    ),
    Rule(
        r"\bCertExpired\b|\bCertNotValidYet\b|certificate expired",
        CertificateExpired,
        "a certificate is not valid at the verification time",
        Q3.SGX_PCK_CERT_CHAIN_EXPIRED,
    ),
    Rule(
        r"ISV enclave report signature is invalid",
        InvalidSignature,
        "the attestation key's signature over the quote header and enclave report is invalid",
        Q3.RESULT_INVALID_SIGNATURE,
        collateral_verified=True,
    ),
    Rule(
        r"QE report hash mismatch",
        InvalidSignature,
        "the QE report does not bind the attestation key "
        "(report_data != SHA-256(attest_pub_key || qe_auth_data))",
        Q3.QE_REPORT_INVALID_SIGNATURE,
        collateral_verified=True,
    ),
    Rule(
        r"Signature is invalid for qe_report",
        InvalidSignature,
        "the PCK key's signature over the QE report is invalid",
        Q3.QE_REPORT_INVALID_SIGNATURE,
        collateral_verified=True,
    ),
    Rule(
        r"Signature is invalid for tcb_info",
        InvalidSignature,
        "the TCB Signing key's signature over the TCB Info is invalid",
        Q3.TCBINFO_MISMATCH,
    ),
    Rule(
        r"Signature is invalid for qe_identity",
        InvalidSignature,
        "the TCB Signing key's signature over the QE Identity is invalid",
        Q3.QEIDENTITY_MISMATCH,
    ),
    Rule(
        r"InvalidCrlSignatureForPublicKey",
        InvalidSignature,
        "a CRL's signature does not verify with its issuer's key",
        Q3.CRL_UNSUPPORTED_FORMAT,
    ),
    Rule(
        r"InvalidSignatureForPublicKey",
        InvalidSignature,
        "a certificate's signature does not verify with its issuer's key",
        Q3.PCK_CERT_CHAIN_ERROR,
    ),
    Rule(
        r"\bUnknownIssuer\b",
        CertificateChainError,
        "a certificate chain does not lead to the trust anchor",
        Q3.PCK_CERT_CHAIN_ERROR,
    ),
    Rule(
        r"Failed to (verify certificate chain|parse PCK certificate|extract PCK certificates)"
        r"|Failed to parse certificate|Failed to load root ca",
        CertificateChainError,
        "a certificate of the chain is malformed or not acceptable",
        Q3.PCK_CERT_CHAIN_ERROR,
    ),
    Rule(
        r"Fmspc mismatch|Fmspc length mismatch|quote with non-(SGX|TDX) TCB info",
        CollateralMismatch,
        "the TCB Info is for another platform (FMSPC) or TEE type than the quote",
        Q3.TCBINFO_MISMATCH,
    ),
    Rule(
        r"QE (MRSIGNER|ISVPRODID|MISCSELECT|ATTRIBUTES) mismatch|QE report validation failed"
        r"|No TCB levels found in QE Identity|Unsupported QE Identity id",
        QeIdentityMismatch,
        "the QE report does not match the QE Identity",
        Q3.QEIDENTITY_MISMATCH,
        collateral_verified=True,
    ),
    Rule(
        r"No matching TCB level found",
        TcbNotSupported,
        "no TCB level of the TCB Info matches the platform's PCK TCB",
        Q3.TCB_NOT_SUPPORTED,
        collateral_verified=True,
    ),
    Rule(
        r"Failed to parse (root CA CRL|PCK CRL)|invalid certificate revocation list"
        r"|Failed to decode hex-encoded|CRL",
        InvalidCollateral,
        "a CRL of the collateral does not decode or is not signed by its issuer",
        Q3.CRL_UNSUPPORTED_FORMAT,
    ),
    Rule(
        r"TCB ?Info|tcb_info|TCB level",
        InvalidCollateral,
        "the TCB Info does not decode",
        Q3.TCBINFO_UNSUPPORTED_FORMAT,
    ),
    Rule(
        r"QE Identity|qe_identity",
        InvalidCollateral,
        "the QE Identity does not decode",
        Q3.QEIDENTITY_UNSUPPORTED_FORMAT,
    ),
    Rule(
        r"Unsupported quote version|Invalid TEE type|Unsupported DCAP attestation key type"
        r"|Unsupported DCAP PCK cert format|Unsupported certification data type"
        r"|SGX TEE quote must have version",
        UnsupportedQuote,
        "the quote is of a kind the engine does not verify",
        Q3.QUOTE_FORMAT_UNSUPPORTED,
    ),
    Rule(
        r"Failed to decode quote|Unknown QE vendor ID|Invalid QE auth data length",
        MalformedQuote,
        "the quote does not decode as an Intel QE3 quote",
        Q3.QUOTE_FORMAT_UNSUPPORTED,
    ),
)


def classify(engine_message: str) -> VerificationError:
    """The typed error for a dcap-qvl refusal message."""
    reason = engine_message.removeprefix(ENGINE_PREFIX)
    # Keep the first line; dcap-qvl appends "Caused by:" chains on later lines.
    detail = " ".join(line.strip() for line in reason.splitlines() if line.strip())
    for rule in RULES:
        if rule.matches(reason):
            return rule.error(
                f"{rule.meaning} (dcap-qvl: {detail})",
                engine_message=engine_message,
                status=rule.status,
                quote3_error=rule.quote3_error,
                collateral_fault=not rule.collateral_verified,
            )
    return UnrecognizedEngineError(
        f"dcap-qvl refused the quote: {detail}",
        engine_message=engine_message,
        collateral_fault=True,
    )


def make_engine(anchor: TrustAnchor) -> Any:
    """A ``dcap_qvl.QuoteVerifier`` for ``anchor``, to be reused across verifications."""
    return dcap_qvl.QuoteVerifier(anchor.certificate_der)


def run_engine(
    quote: bytes, collateral: Collateral, anchor: TrustAnchor, now: int, *, engine: Any = None
) -> dict[str, Any]:
    """dcap-qvl's verification at ``now`` against ``anchor``; its claims as JSON.

    ``QuotePolicy.claims_only`` makes dcap-qvl verify everything (signatures,
    chains, CRLs, validity times, TCB level, QE identity) without judging the
    resulting status, which the caller maps and the appraisal policy judges.
    ``engine`` is :func:`make_engine` of the same anchor (made here if omitted).
    """
    verifier = engine if engine is not None else make_engine(anchor)
    try:
        claims = verifier.verify_with_policy(
            quote, collateral.to_dcap_qvl(), now, dcap_qvl.QuotePolicy.claims_only(now)
        )
    except (ValueError, RuntimeError) as exc:
        raise classify(detailed_refusal(quote, collateral, anchor, now) or str(exc)) from None
    value = json.loads(claims.to_json())
    if not isinstance(value, dict):
        raise UnrecognizedEngineError("dcap-qvl returned claims that are not a JSON object")
    return value


class Verdict(NamedTuple):
    """What dcap-qvl's one-shot verification reports besides "genuine": the converged
    TCB status, its advisory IDs and the PCK certificate's PPID."""

    status: str
    advisory_ids: tuple[str, ...]
    ppid: bytes


def run_verdict(quote: bytes, collateral: Collateral, anchor: TrustAnchor, now: int) -> Verdict:
    """dcap-qvl's whole verification at ``now`` against ``anchor``, without its claims.

    dcap-qvl 0.7.0 runs the same checks for this one-shot call as for
    :func:`run_engine` (both are its ``verify_impl``: collateral signatures and
    chains, the PCK chain against both CRLs, QE report, report-data binding, QE
    Identity, quote signature, validity times, TCB level, debug attribute);
    only the claims are not built (two CRL parses, the collateral's time window
    and a JSON export), which is what a verifier that already knows the claims
    for this certification data and collateral saves. A refusal carries its
    "Caused by" chain here, so it is classified as it stands.
    """
    engine_collateral = collateral.to_dcap_qvl()
    try:
        if anchor.certificate_der is None:
            report = dcap_qvl.verify(quote, engine_collateral, now)
        else:
            report = dcap_qvl.verify_with_root_ca(
                quote, engine_collateral, anchor.certificate_der, now
            )
    except (ValueError, RuntimeError) as exc:
        raise classify(str(exc)) from None
    return Verdict(str(report.status), tuple(report.advisory_ids), bytes(report.ppid))


def detailed_refusal(
    quote: bytes, collateral: Collateral, anchor: TrustAnchor, now: int
) -> str | None:
    """The refusal text of dcap-qvl's one-shot ``verify``, which keeps the cause.

    The claims API drops the "Caused by" chain ("Failed to verify certificate
    chain" alone, where ``verify`` adds "CertRevoked"), so a refusal is asked
    again of the one-shot call with the same trust anchor. ``None`` if it accepts.
    """
    try:
        if anchor.certificate_der is None:
            dcap_qvl.verify(quote, collateral.to_dcap_qvl(), now)
        else:
            dcap_qvl.verify_with_root_ca(
                quote, collateral.to_dcap_qvl(), anchor.certificate_der, now
            )
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None
