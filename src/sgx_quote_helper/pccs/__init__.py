"""Client for any PCCS v4 service: PCK certificates, CRLs, TCB Info, QE Identity.

Works against this project's simulated PCCS, Intel's PCCS, a cloud provider's
caching service, or Intel PCS itself (dcap-quote.md section 7). Every failure is
a :class:`PccsError` leaf that says what it means in practice and names the DCAP
``quote3_error_t`` Intel's libraries report for it.
"""

from sgx_quote_helper.pccs._client import (
    API_PREFIX,
    DEFAULT_TIMEOUT,
    INTEL_PCS_URL,
    INTEL_ROOT_PUBLIC_KEY,
    AsyncPccsClient,
    CaType,
    PccsClient,
    PckCrl,
    UpdateType,
    normalize_base_url,
    pck_fmspc_and_ca,
    quote_fmspc_and_ca,
)
from sgx_quote_helper.pccs._collateral import MAX_COLLATERAL_JSON_SIZE, Collateral
from sgx_quote_helper.pccs._errors import (
    PccsBusy,
    PccsError,
    PccsHttpError,
    PccsNotAService,
    PccsNotFound,
    PccsPlatformNotFound,
    PccsResponseError,
    PccsUnreachable,
)
from sgx_quote_helper.pccs._signed import SignedCollateral, signed_bytes, signed_text
from sgx_quote_helper.pccs._types import PckCertificate, PckCertificateQuery

__all__ = [
    "API_PREFIX",
    "DEFAULT_TIMEOUT",
    "INTEL_PCS_URL",
    "INTEL_ROOT_PUBLIC_KEY",
    "MAX_COLLATERAL_JSON_SIZE",
    "AsyncPccsClient",
    "CaType",
    "Collateral",
    "PccsBusy",
    "PccsClient",
    "PccsError",
    "PccsHttpError",
    "PccsNotAService",
    "PccsNotFound",
    "PccsPlatformNotFound",
    "PccsResponseError",
    "PccsUnreachable",
    "PckCertificate",
    "PckCertificateQuery",
    "PckCrl",
    "SignedCollateral",
    "UpdateType",
    "normalize_base_url",
    "pck_fmspc_and_ca",
    "quote_fmspc_and_ca",
    "signed_bytes",
    "signed_text",
]
