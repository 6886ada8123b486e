"""The exact dcap-qvl 0.7.0 refusal texts the error mapping relies on.

Each case makes a real dcap-qvl call on real inputs (the Intel vector of
``tests/assets``, intact or with one byte changed) and asserts the exact text.
If an engine release rewords a message, this fails, instead of the wrapper
silently degrading a typed error to :class:`UnrecognizedEngineError`. Texts
produced only by the simulated stack (revocation, debug enclaves, no matching
TCB level) are asserted in ``test_verify_sim_end_to_end.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dcap_qvl
import pytest

from sgx_quote_helper.pccs import Collateral
from sgx_quote_helper.sgx import QvResult
from sgx_quote_helper.verify import (
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
    TrustAnchor,
    UnrecognizedEngineError,
    UnsupportedQuote,
    VerificationError,
)
from sgx_quote_helper.verify._engine import classify, detailed_refusal, run_engine

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = (ASSETS / "intel-sgx-quote-v3.bin").read_bytes()
COLLATERAL = Collateral.from_json((ASSETS / "intel-sgx-quote-v3.collateral.json").read_text())
JULY_1 = 1751328000


def test_engine_version_is_pinned() -> None:
    assert dcap_qvl.__version__ == "0.7.0"


def _flip(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


def _collateral_with(field: str) -> Collateral:
    value: bytes = getattr(COLLATERAL, field)
    changes = {field: _flip(value, len(value) // 2)}
    return dataclasses.replace(COLLATERAL, **changes)  # type: ignore[arg-type]


# (name, quote, collateral, now, exact engine text, error class)
CASES: list[tuple[str, bytes, Collateral, int, str, type[VerificationError]]] = [
    (
        "tcb info not yet valid",
        QUOTE,
        COLLATERAL,
        1750330570,
        "Verification failed: TCBInfo issue date is in the future",
        CollateralNotYetValid,
    ),
    (
        "qe identity expired",
        QUOTE,
        COLLATERAL,
        1752919279,
        "Verification failed: QE Identity expired",
        CollateralExpired,
    ),
    (
        "crl expired",
        QUOTE,
        COLLATERAL,
        1790000000,
        "Verification failed: CrlExpired { time: UnixTime(1790000000), "
        "next_update: UnixTime(1775215317) }",
        CrlExpired,
    ),
    (
        "quote signature",
        _flip(QUOTE, 440),
        COLLATERAL,
        JULY_1,
        "Verification failed: ISV enclave report signature is invalid",
        InvalidSignature,
    ),
    (
        "report body",
        _flip(QUOTE, 100),
        COLLATERAL,
        JULY_1,
        "Verification failed: ISV enclave report signature is invalid",
        InvalidSignature,
    ),
    (
        "attestation key binding",
        _flip(QUOTE, 510),
        COLLATERAL,
        JULY_1,
        "Verification failed: QE report hash mismatch",
        InvalidSignature,
    ),
    (
        "qe auth data binding",
        _flip(QUOTE, 1020),
        COLLATERAL,
        JULY_1,
        "Verification failed: QE report hash mismatch",
        InvalidSignature,
    ),
    (
        "qe report",
        _flip(QUOTE, 600),
        COLLATERAL,
        JULY_1,
        "Verification failed: Signature is invalid for qe_report in quote",
        InvalidSignature,
    ),
    (
        "qe report signature",
        _flip(QUOTE, 960),
        COLLATERAL,
        JULY_1,
        "Verification failed: Signature is invalid for qe_report in quote",
        InvalidSignature,
    ),
    (
        "qe vendor id",
        _flip(QUOTE, 12),
        COLLATERAL,
        JULY_1,
        "Verification failed: Unknown QE vendor ID",
        MalformedQuote,
    ),
    (
        "quote version",
        _flip(QUOTE, 0),
        COLLATERAL,
        JULY_1,
        "Verification failed: Failed to decode quote\n\nCaused by:\n    Unsupported quote version",
        UnsupportedQuote,
    ),
    (
        "tcb info signature",
        QUOTE,
        _collateral_with("tcb_info_signature"),
        JULY_1,
        "Verification failed: Signature is invalid for tcb_info in quote_collateral",
        InvalidSignature,
    ),
    (
        "qe identity signature",
        QUOTE,
        _collateral_with("qe_identity_signature"),
        JULY_1,
        "Verification failed: Signature is invalid for qe_identity in quote_collateral",
        InvalidSignature,
    ),
    (
        "root ca crl",
        QUOTE,
        _collateral_with("root_ca_crl"),
        JULY_1,
        "Verification failed: Failed to parse root CA CRL\n\nCaused by:\n"
        "    InvalidCrlSignatureForPublicKey",
        InvalidSignature,
    ),
    (
        "pck crl",
        QUOTE,
        _collateral_with("pck_crl"),
        JULY_1,
        "Verification failed: Failed to parse PCK CRL\n\nCaused by:\n    BadDerTime",
        InvalidCollateral,
    ),
]


@pytest.mark.parametrize(
    ("quote", "collateral", "now", "text", "error"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_engine_text_and_its_mapping(
    quote: bytes, collateral: Collateral, now: int, text: str, error: type[VerificationError]
) -> None:
    # The claims API refuses too, but drops the cause; the wrapper asks the
    # one-shot call again, whose exact text is what the mapping reads.
    with pytest.raises(ValueError, match=r"^Verification failed: "):
        dcap_qvl.QuoteVerifier(None).verify_with_policy(
            quote, collateral.to_dcap_qvl(), now, dcap_qvl.QuotePolicy.claims_only(now)
        )
    with pytest.raises(ValueError) as raw:
        dcap_qvl.verify(quote, collateral.to_dcap_qvl(), now)
    assert str(raw.value) == text
    assert detailed_refusal(quote, collateral, TrustAnchor.intel(), now) == text
    with pytest.raises(error) as mapped:
        run_engine(quote, collateral, TrustAnchor.intel(), now)
    assert type(mapped.value) is error
    assert mapped.value.engine_message == text


#: How dcap-qvl's plain ``verify`` words a chain failure (its cause on the last line).
CHAIN = "Verification failed: Failed to verify certificate chain\n\nCaused by:\n    "


@pytest.mark.parametrize(
    ("text", "error", "qv_result"),
    [
        ("Verification failed: TCB status is invalid: Revoked", Revoked, QvResult.REVOKED),
        (
            CHAIN + "CertRevoked",
            Revoked,
            QvResult.REVOKED,
        ),
        ("Verification failed: Debug mode is enabled", DebugEnclave, QvResult.UNSPECIFIED),
        ("Verification failed: No matching TCB level found", TcbNotSupported, QvResult.UNSPECIFIED),
        ("Verification failed: Fmspc mismatch", CollateralMismatch, QvResult.UNSPECIFIED),
        (
            "Verification failed: QE MRSIGNER mismatch: expected 00, got 11",
            QeIdentityMismatch,
            QvResult.UNSPECIFIED,
        ),
        ("Verification failed: TCBInfo expired", CollateralExpired, QvResult.UNSPECIFIED),
        (
            "Verification failed: QE Identity issue date is in the future",
            CollateralNotYetValid,
            QvResult.UNSPECIFIED,
        ),
        (
            CHAIN + "CertExpired",
            CertificateExpired,
            QvResult.UNSPECIFIED,
        ),
        (
            CHAIN + "UnknownIssuer",
            CertificateChainError,
            QvResult.UNSPECIFIED,
        ),
        (
            CHAIN + "InvalidSignatureForPublicKey",
            InvalidSignature,
            QvResult.INVALID_SIGNATURE,
        ),
        (
            "Verification failed: Unsupported DCAP PCK cert format: 3. Use get_collateral()",
            UnsupportedQuote,
            QvResult.UNSPECIFIED,
        ),
    ],
)
def test_classification_of_other_engine_texts(
    text: str, error: type[VerificationError], qv_result: QvResult
) -> None:
    mapped = classify(text)
    assert type(mapped) is error
    assert mapped.qv_result is qv_result
    # One line naming the codes, then what to check (the common diagnostics format).
    first, *rest = mapped.diagnostics().splitlines()
    assert first == str(mapped)
    assert qv_result.c_name in first
    assert rest
    assert all(line.startswith("  check: ") for line in rest)


def test_unknown_text_is_unrecognised_not_accepted() -> None:
    mapped = classify("Verification failed: something new")
    assert type(mapped) is UnrecognizedEngineError
    assert mapped.qv_result is QvResult.UNSPECIFIED
    assert "something new" in mapped.diagnostics()
