"""Verification of SGX DCAP quotes (dcap-qvl as the engine) and appraisal policies.

``Verifier`` checks that a quote is genuine against one trust anchor (Intel's SGX
root unless another is passed explicitly) and returns a
:class:`VerificationResult`, or raises a :class:`VerificationError` leaf. Policies
(:class:`MrEnclave`, :class:`AcceptStatuses`, :class:`AllOf`, ...) then judge the
result and raise :class:`AppraisalError` naming the claim that failed.
"""

from sgx_quote_helper.pccs import INTEL_ROOT_PUBLIC_KEY
from sgx_quote_helper.sgx import TcbStatus
from sgx_quote_helper.verify._anchor import (
    INTEL_ROOT_CA_SHA256,
    TrustAnchor,
    root_key_id,
)
from sgx_quote_helper.verify._collateral import (
    CacheKey,
    CollateralCache,
    CollateralSource,
    FetchedCollateral,
    PccsCollateralSource,
)
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
    UntrustedRoot,
    ValidityPeriodError,
    VerificationError,
)
from sgx_quote_helper.verify._policy import (
    AcceptStatuses,
    AllOf,
    AnyOf,
    AppraisalError,
    ClaimFailure,
    IsvProdId,
    MaxCollateralAge,
    MinIsvSvn,
    MrEnclave,
    MrSigner,
    NoDebug,
    Policy,
    RejectAdvisories,
    ReportData,
    ReportDataPrefix,
    UnsafeNoAppraisal,
    appraise,
    load_policy,
    policy_from_mapping,
)
from sgx_quote_helper.verify._result import TcbLevelResult, VerificationResult, report_to_dict
from sgx_quote_helper.verify._verifier import Verifier

__all__ = [
    "INTEL_ROOT_CA_SHA256",
    "INTEL_ROOT_PUBLIC_KEY",
    "AcceptStatuses",
    "AllOf",
    "AnyOf",
    "AppraisalError",
    "CacheKey",
    "CertificateChainError",
    "CertificateExpired",
    "ClaimFailure",
    "CollateralCache",
    "CollateralExpired",
    "CollateralMismatch",
    "CollateralNotYetValid",
    "CollateralSource",
    "CrlExpired",
    "DebugEnclave",
    "FetchedCollateral",
    "InvalidCollateral",
    "InvalidSignature",
    "IsvProdId",
    "MalformedQuote",
    "MaxCollateralAge",
    "MinIsvSvn",
    "MrEnclave",
    "MrSigner",
    "NoDebug",
    "PccsCollateralSource",
    "Policy",
    "QeIdentityMismatch",
    "RejectAdvisories",
    "ReportData",
    "ReportDataPrefix",
    "Revoked",
    "TcbLevelResult",
    "TcbNotSupported",
    "TcbStatus",
    "TrustAnchor",
    "UnrecognizedEngineError",
    "UnsafeNoAppraisal",
    "UnsupportedQuote",
    "UntrustedRoot",
    "ValidityPeriodError",
    "VerificationError",
    "VerificationResult",
    "Verifier",
    "appraise",
    "load_policy",
    "policy_from_mapping",
    "report_to_dict",
    "root_key_id",
]
