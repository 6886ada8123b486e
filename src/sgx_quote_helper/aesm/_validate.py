"""The server-side size and selection rules of section 6.2, as pure functions.

Each ``check_*`` returns the ``aesm_error_t`` number the server must reply with,
:data:`AESM_SUCCESS` (0) when the request may go on to the quoting backend.
Rules are checked in the order of the section 6.2 table, so the first violated
rule decides the code.

``supported`` is the list of 256-byte attestation key ids the service offers
(for an ECDSA-only service: the default ECDSA id of section 11.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from sgx_quote_helper.aesm._constants import (
    AESM_OUT_OF_MEMORY_ERROR,
    AESM_PARAMETER_ERROR,
    AESM_SERVICE_UNAVAILABLE,
    AESM_SUCCESS,
    AESM_UNSUPPORTED_ATT_KEY_ID,
    ATT_KEY_ID_ALGORITHM_OFFSET,
    ATT_KEY_ID_BASE_SIZE,
    ATT_KEY_ID_LIST_HEADER_SIZE,
    ATT_KEY_ID_SIZE,
    DEFAULT_QUOTING_TYPE,
    MAX_ATT_KEY_IDS_IN_LIST,
    MAX_QUOTE_BUF_SIZE,
    PUB_KEY_ID_SIZE,
    QE_REPORT_INFO_SIZE,
    REPORT_SIZE,
)
from sgx_quote_helper.aesm._messages import (
    GetQuoteExRequest,
    GetQuoteSizeExRequest,
    GetSupportedAttKeyIDsRequest,
    InitQuoteExRequest,
    SelectAttKeyIDRequest,
)
from sgx_quote_helper.errors import UsageError


def _bases(supported: Sequence[bytes]) -> list[bytes]:
    for key_id in supported:
        if len(key_id) < ATT_KEY_ID_BASE_SIZE:
            raise UsageError(
                f"a supported att key id has {len(key_id)} bytes; "
                f"at least {ATT_KEY_ID_BASE_SIZE} are compared"
            )
    return [key_id[:ATT_KEY_ID_BASE_SIZE] for key_id in supported]


def _matches(att_key_id: bytes, supported: Sequence[bytes]) -> bool:
    # The server compares only the sgx_ql_att_key_id_t part (section 11.2).
    if len(supported) == 1 and len(supported[0]) >= ATT_KEY_ID_BASE_SIZE:
        # An ECDSA-only service, on every quote: no list to build.
        return att_key_id[:ATT_KEY_ID_BASE_SIZE] == supported[0][:ATT_KEY_ID_BASE_SIZE]
    return att_key_id[:ATT_KEY_ID_BASE_SIZE] in _bases(supported)


def check_att_key_id(att_key_id: bytes | None, supported: Sequence[bytes]) -> int:
    """Present and at least 256 bytes (3); first 158 bytes match a supported id (38)."""
    if att_key_id is None or len(att_key_id) < ATT_KEY_ID_SIZE:
        return AESM_PARAMETER_ERROR
    if not _matches(att_key_id, supported):
        return AESM_UNSUPPORTED_ATT_KEY_ID
    return AESM_SUCCESS


def check_init_quote_ex(request: InitQuoteExRequest, supported: Sequence[bytes]) -> int:
    """Section 6.2, InitQuoteEx.

    With ``b_pub_key_id`` true, ``buf_size`` must be exactly 32; with false it is
    ignored entirely, because DCAP's first call sends an uninitialized size
    (section 8). An absent ``buf_size`` counts as 0 (section 14).
    """
    code = check_att_key_id(request.att_key_id, supported)
    if code != AESM_SUCCESS:
        return code
    if request.b_pub_key_id and request.buf_size != PUB_KEY_ID_SIZE:
        return AESM_PARAMETER_ERROR
    return AESM_SUCCESS


def check_get_quote_size_ex(request: GetQuoteSizeExRequest, supported: Sequence[bytes]) -> int:
    """Section 6.2, GetQuoteSizeEx: the att key id rules only."""
    return check_att_key_id(request.att_key_id, supported)


def check_get_quote_ex(request: GetQuoteExRequest, supported: Sequence[bytes]) -> int:
    """Section 6.2, GetQuoteEx.

    Att key id (3 / 38), ``report`` exactly 432 bytes (3), ``qe_report_info``
    absent or exactly 960 bytes (3). Beyond Intel: a ``buf_size`` above
    :data:`MAX_QUOTE_BUF_SIZE` is refused with AESM_OUT_OF_MEMORY_ERROR (21)
    instead of allocating it, since the zero-padded buffer is sent back whole.
    """
    code = check_att_key_id(request.att_key_id, supported)
    if code != AESM_SUCCESS:
        return code
    if len(request.report) != REPORT_SIZE:
        return AESM_PARAMETER_ERROR
    if request.qe_report_info is not None and len(request.qe_report_info) != QE_REPORT_INFO_SIZE:
        return AESM_PARAMETER_ERROR
    if request.buf_size > MAX_QUOTE_BUF_SIZE:
        return AESM_OUT_OF_MEMORY_ERROR
    return AESM_SUCCESS


def _select_candidates(
    request: SelectAttKeyIDRequest, supported: Sequence[bytes]
) -> int | list[bytes]:
    """The matching ids, or the error number (section 6.2, SelectAttKeyID)."""
    id_list = request.att_key_id_list
    if id_list is None:
        # No list: every available id is a candidate.
        candidates = list(supported)
        return candidates if candidates else AESM_UNSUPPORTED_ATT_KEY_ID
    if len(id_list) < ATT_KEY_ID_LIST_HEADER_SIZE + ATT_KEY_ID_SIZE:
        return AESM_PARAMETER_ERROR
    # sgx_ql_att_key_id_list_header_t: id u16, version u16, num_att_ids u32 (section 10).
    header_id = int.from_bytes(id_list[0:2], "little")
    version = int.from_bytes(id_list[2:4], "little")
    count = int.from_bytes(id_list[4:8], "little")
    if header_id != 0 or version != 0 or count > MAX_ATT_KEY_IDS_IN_LIST:
        return AESM_PARAMETER_ERROR
    if len(id_list) != ATT_KEY_ID_LIST_HEADER_SIZE + count * ATT_KEY_ID_SIZE:
        return AESM_PARAMETER_ERROR
    entries = [
        id_list[start : start + ATT_KEY_ID_SIZE]
        for start in range(ATT_KEY_ID_LIST_HEADER_SIZE, len(id_list), ATT_KEY_ID_SIZE)
    ]
    candidates = [entry for entry in entries if _matches(entry, supported)]
    return candidates if candidates else AESM_UNSUPPORTED_ATT_KEY_ID


def check_select_att_key_id(request: SelectAttKeyIDRequest, supported: Sequence[bytes]) -> int:
    """Section 6.2, SelectAttKeyID.

    A list, if present: at least 8 + 256 bytes, header ``id == 0`` and
    ``version == 0``, at most 10 ids, size exactly ``8 + n * 256`` (3); some
    entry's first 158 bytes match a supported id (38).
    """
    result = _select_candidates(request, supported)
    return result if isinstance(result, int) else AESM_SUCCESS


def select_att_key_id(
    request: SelectAttKeyIDRequest,
    supported: Sequence[bytes],
    *,
    default_algorithm_id: int = DEFAULT_QUOTING_TYPE,
) -> bytes:
    """The id a successful SelectAttKeyID reply carries (section 6.2).

    A single candidate is returned as is; among several, the first whose
    ``algorithm_id`` equals the default quoting type, else the first. Call
    after :func:`check_select_att_key_id` returned 0; otherwise this raises
    :class:`UsageError`.
    """
    result = _select_candidates(request, supported)
    if isinstance(result, int):
        raise UsageError(f"SelectAttKeyID request fails validation with AESM error {result}")
    for candidate in result:
        offset = ATT_KEY_ID_ALGORITHM_OFFSET
        if int.from_bytes(candidate[offset : offset + 4], "little") == default_algorithm_id:
            return candidate
    return result[0]


def check_get_supported_att_key_id_num(supported_count: int) -> int:
    """Section 6.2, GetSupportedAttKeyIDNum: no id at all is AESM_SERVICE_UNAVAILABLE (30)."""
    return AESM_SERVICE_UNAVAILABLE if supported_count == 0 else AESM_SUCCESS


def check_get_supported_att_key_ids(
    request: GetSupportedAttKeyIDsRequest, supported_count: int
) -> int:
    """Section 6.2, GetSupportedAttKeyIDs: ``buf_size`` is exactly ``count * 256`` (3)."""
    if request.buf_size % ATT_KEY_ID_SIZE != 0:
        return AESM_PARAMETER_ERROR
    if request.buf_size // ATT_KEY_ID_SIZE != supported_count:
        return AESM_PARAMETER_ERROR
    return AESM_SUCCESS
