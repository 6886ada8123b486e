"""Numbers fixed by the AESM protocol (spec/aesm-wire.md)."""

from __future__ import annotations

from typing import Final

from sgx_quote_helper.sgx import AesmError

# ---- Framing (section 2) ----

#: The frame header: a little-endian u32 body length.
FRAME_HEADER_SIZE: Final = 4

#: Largest request body the server accepts. Intel has no cap (section 2); the
#: largest real request, GetQuoteEx with a 960-byte qe_report_info, is 1667 bytes
#: (section 5), so 64 KiB leaves room for newer clients' extra fields.
MAX_REQUEST_BODY_SIZE: Final = 64 * 1024

#: Largest response body the client accepts. A GetQuoteEx reply carries a quote
#: buffer of the request's ``buf_size`` bytes (section 6.2), so this is larger.
MAX_RESPONSE_BODY_SIZE: Final = 1024 * 1024

#: Largest GetQuoteEx ``buf_size`` the server honours: the reply (quote buffer,
#: echoed 960-byte qe_report_info and a few bytes of envelope) must still fit in
#: :data:`MAX_RESPONSE_BODY_SIZE`. Larger requests get AESM_OUT_OF_MEMORY_ERROR,
#: which is what Intel's server returns when it cannot allocate the buffer.
MAX_QUOTE_BUF_SIZE: Final = MAX_RESPONSE_BODY_SIZE - 4096

#: The ``timeout`` Intel's client puts in every request, in milliseconds
#: (``IPC_LATENCY``, section 7.3). The server never reads it (section 6.1).
CLIENT_TIMEOUT_MS: Final = 15000

# ---- Structure sizes (sections 6.2, 10, 11) ----

#: ``sgx_att_key_id_ext_t``, the ``att_key_id`` on the wire.
ATT_KEY_ID_SIZE: Final = 256
#: ``sgx_ql_att_key_id_t``, the prefix of an att key id the server compares.
ATT_KEY_ID_BASE_SIZE: Final = 158
#: Offset of the u32 ``algorithm_id`` inside an att key id.
ATT_KEY_ID_ALGORITHM_OFFSET: Final = 154
#: ``sgx_ql_att_key_id_list_header_t`` (``id`` u16, ``version`` u16, ``num_att_ids`` u32).
ATT_KEY_ID_LIST_HEADER_SIZE: Final = 8
#: Most ids a SelectAttKeyID list may carry.
MAX_ATT_KEY_IDS_IN_LIST: Final = 10
#: ``sgx_report_t``.
REPORT_SIZE: Final = 432
#: ``sgx_target_info_t``.
TARGET_INFO_SIZE: Final = 512
#: ``sgx_qe_report_info_t`` / ``sgx_ql_qe_report_info_t``.
QE_REPORT_INFO_SIZE: Final = 960
#: ``sizeof(ref_sha256_hash_t)``: the ECDSA ``pub_key_id`` and the only
#: InitQuoteEx ``buf_size`` accepted with ``b_pub_key_id = true``.
PUB_KEY_ID_SIZE: Final = 32

# ---- Attestation key algorithms (section 11.1, ``sgx_quote_3.h``) ----

ALGORITHM_EPID: Final = 0
ALGORITHM_EPID_LINKABLE: Final = 1
ALGORITHM_ECDSA_P256: Final = 2
#: The configured default quoting type of AESM (``aesm_quoting_type.h``).
DEFAULT_QUOTING_TYPE: Final = ALGORITHM_ECDSA_P256

# ---- aesm_error_t values used on the wire (section 12.2) ----
# Plain ints for the pure validators; the numbers are those of ``AesmError``.

AESM_SUCCESS: Final = int(AesmError.SUCCESS)
AESM_UNEXPECTED_ERROR: Final = int(AesmError.UNEXPECTED_ERROR)
AESM_PARAMETER_ERROR: Final = int(AesmError.PARAMETER_ERROR)
AESM_OUT_OF_MEMORY_ERROR: Final = int(AesmError.OUT_OF_MEMORY_ERROR)
AESM_SERVICE_UNAVAILABLE: Final = int(AesmError.SERVICE_UNAVAILABLE)
AESM_UNSUPPORTED_ATT_KEY_ID: Final = int(AesmError.UNSUPPORTED_ATT_KEY_ID)
AESM_ATT_KEY_NOT_INITIALIZED: Final = int(AesmError.ATT_KEY_NOT_INITIALIZED)
AESM_ERROR_REPORT: Final = int(AesmError.ERROR_REPORT)
AESM_INVALID_REPORT: Final = int(AesmError.INVALID_REPORT)
