"""The SGX/DCAP data model: structures, quote codec, PCK extension, status codes.

Pure: bytes in, values out. No sockets, files or clocks.
"""

from sgx_quote_helper.sgx._layout import Field, Layout, Struct
from sgx_quote_helper.sgx._structs import (
    ATT_KEY_ID_MATCH_LEN,
    DEFAULT_ECDSA_ATT_KEY_ID,
    INTEL_QE_VENDOR_ID,
    QE3_MRSIGNER,
    QE3_PROD_ID,
    XFRM_LEGACY,
    AttKeyAlgorithm,
    AttKeyId,
    AttKeyIdExt,
    AttKeyIdListHeader,
    AttributeFlags,
    Attributes,
    QeReportInfo,
    QuoteHeader,
    Report,
    ReportBody,
    TargetInfo,
)

__all__ = [
    "ATT_KEY_ID_MATCH_LEN",
    "DEFAULT_ECDSA_ATT_KEY_ID",
    "INTEL_QE_VENDOR_ID",
    "QE3_MRSIGNER",
    "QE3_PROD_ID",
    "XFRM_LEGACY",
    "AttKeyAlgorithm",
    "AttKeyId",
    "AttKeyIdExt",
    "AttKeyIdListHeader",
    "AttributeFlags",
    "Attributes",
    "Field",
    "Layout",
    "QeReportInfo",
    "QuoteHeader",
    "Report",
    "ReportBody",
    "Struct",
    "TargetInfo",
]
