"""Server-side size and selection rules (spec/aesm-wire.md section 6.2)."""

from __future__ import annotations

import pytest

from sgx_quote_helper.aesm import (
    AESM_OUT_OF_MEMORY_ERROR,
    AESM_PARAMETER_ERROR,
    AESM_SERVICE_UNAVAILABLE,
    AESM_SUCCESS,
    AESM_UNSUPPORTED_ATT_KEY_ID,
    MAX_QUOTE_BUF_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetSupportedAttKeyIDsRequest,
    InitQuoteExRequest,
    SelectAttKeyIDRequest,
    check_att_key_id,
    check_get_quote_ex,
    check_get_quote_size_ex,
    check_get_supported_att_key_id_num,
    check_get_supported_att_key_ids,
    check_init_quote_ex,
    check_select_att_key_id,
    encode_response,
    select_att_key_id,
)
from sgx_quote_helper.errors import UsageError


def key_id(algorithm_id: int, *, prod_id: int = 1, tail: bytes = b"") -> bytes:
    """An sgx_att_key_id_ext_t laid out as in section 11.2, with QE3's production MRSIGNER."""
    raw = bytearray(256)
    raw[4:6] = (32).to_bytes(2, "little")  # mrsigner_length
    raw[6:38] = bytes.fromhex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff")
    raw[54:58] = prod_id.to_bytes(4, "little")
    raw[154:158] = algorithm_id.to_bytes(4, "little")
    raw[158 : 158 + len(tail)] = tail
    return bytes(raw)


ECDSA = key_id(2)
EPID = key_id(0)
OTHER = key_id(2, prod_id=7)
SUPPORTED = [ECDSA]
REPORT = bytes(432)
QE_REPORT_INFO = bytes(960)


def id_list(*ids: bytes, header_id: int = 0, version: int = 0, count: int | None = None) -> bytes:
    n = len(ids) if count is None else count
    header = (
        header_id.to_bytes(2, "little") + version.to_bytes(2, "little") + n.to_bytes(4, "little")
    )
    return header + b"".join(ids)


# ---- att_key_id (InitQuoteEx, GetQuoteSizeEx, GetQuoteEx) ----


@pytest.mark.parametrize(
    ("att_key_id", "code"),
    [
        pytest.param(None, AESM_PARAMETER_ERROR, id="absent"),
        pytest.param(ECDSA[:255], AESM_PARAMETER_ERROR, id="255-bytes"),
        pytest.param(ECDSA[:158], AESM_PARAMETER_ERROR, id="only-the-base"),
        pytest.param(ECDSA, AESM_SUCCESS, id="exact"),
        pytest.param(ECDSA + b"\x01" * 16, AESM_SUCCESS, id="longer-than-256"),
        pytest.param(key_id(2, tail=b"\xff" * 98), AESM_SUCCESS, id="differs-after-158"),
        pytest.param(OTHER, AESM_UNSUPPORTED_ATT_KEY_ID, id="other-prod-id"),
        pytest.param(EPID, AESM_UNSUPPORTED_ATT_KEY_ID, id="epid-on-ecdsa-only"),
    ],
)
def test_att_key_id_rules(att_key_id: bytes | None, code: int) -> None:
    assert check_att_key_id(att_key_id, SUPPORTED) == code
    assert check_get_quote_size_ex(GetQuoteSizeExRequest(att_key_id), SUPPORTED) == code
    assert check_init_quote_ex(InitQuoteExRequest(att_key_id, True, 32), SUPPORTED) == code
    assert check_get_quote_ex(GetQuoteExRequest(REPORT, att_key_id, None, 8192), SUPPORTED) == code


def test_supported_ids_must_cover_the_compared_base() -> None:
    with pytest.raises(UsageError):
        check_att_key_id(ECDSA, [ECDSA[:100]])


# ---- InitQuoteEx ----


@pytest.mark.parametrize(
    ("b_pub_key_id", "buf_size", "code"),
    [
        (True, 32, AESM_SUCCESS),
        (True, 31, AESM_PARAMETER_ERROR),
        (True, 64, AESM_PARAMETER_ERROR),
        (True, 0, AESM_PARAMETER_ERROR),
        (True, None, AESM_PARAMETER_ERROR),
        (False, None, AESM_SUCCESS),
        (False, 0, AESM_SUCCESS),
        (False, 0xDEAD_BEEF_CAFE, AESM_SUCCESS),  # DCAP's uninitialized size_t, section 8
    ],
)
def test_init_quote_ex_buf_size(b_pub_key_id: bool, buf_size: int | None, code: int) -> None:
    assert check_init_quote_ex(InitQuoteExRequest(ECDSA, b_pub_key_id, buf_size), SUPPORTED) == code


def test_init_quote_ex_key_id_is_checked_before_buf_size() -> None:
    assert check_init_quote_ex(InitQuoteExRequest(OTHER, True, 0), SUPPORTED) == (
        AESM_UNSUPPORTED_ATT_KEY_ID
    )


# ---- GetQuoteEx ----


@pytest.mark.parametrize(
    ("report", "qe_report_info", "buf_size", "code"),
    [
        (REPORT, None, 8192, AESM_SUCCESS),
        (REPORT, QE_REPORT_INFO, 8192, AESM_SUCCESS),
        (REPORT[:-1], None, 8192, AESM_PARAMETER_ERROR),
        (REPORT + b"\x00", None, 8192, AESM_PARAMETER_ERROR),
        (b"", None, 8192, AESM_PARAMETER_ERROR),
        (REPORT, QE_REPORT_INFO[:-1], 8192, AESM_PARAMETER_ERROR),
        (REPORT, QE_REPORT_INFO + b"\x00", 8192, AESM_PARAMETER_ERROR),
        (REPORT, b"", 8192, AESM_PARAMETER_ERROR),
        (REPORT, None, MAX_QUOTE_BUF_SIZE, AESM_SUCCESS),
        (REPORT, None, MAX_QUOTE_BUF_SIZE + 1, AESM_OUT_OF_MEMORY_ERROR),
        (REPORT, None, 0xFFFF_FFFF, AESM_OUT_OF_MEMORY_ERROR),
    ],
)
def test_get_quote_ex_sizes(
    report: bytes, qe_report_info: bytes | None, buf_size: int, code: int
) -> None:
    request = GetQuoteExRequest(report, ECDSA, qe_report_info, buf_size)
    assert check_get_quote_ex(request, SUPPORTED) == code


def test_largest_honoured_quote_buffer_fits_a_response_frame() -> None:
    reply = GetQuoteExResponse(0, quote=bytes(MAX_QUOTE_BUF_SIZE), qe_report_info=QE_REPORT_INFO)
    assert len(encode_response(reply)) <= MAX_RESPONSE_BODY_SIZE


# ---- SelectAttKeyID ----


@pytest.mark.parametrize(
    ("att_key_id_list", "code"),
    [
        pytest.param(None, AESM_SUCCESS, id="no-list"),
        pytest.param(id_list(ECDSA), AESM_SUCCESS, id="one-matching"),
        pytest.param(id_list(EPID, OTHER, ECDSA), AESM_SUCCESS, id="match-among-others"),
        pytest.param(id_list(EPID, OTHER), AESM_UNSUPPORTED_ATT_KEY_ID, id="no-match"),
        pytest.param(b"", AESM_PARAMETER_ERROR, id="empty"),
        pytest.param(id_list(), AESM_PARAMETER_ERROR, id="header-only"),
        pytest.param(id_list(ECDSA)[:-1], AESM_PARAMETER_ERROR, id="short-by-one"),
        pytest.param(id_list(ECDSA) + b"\x00", AESM_PARAMETER_ERROR, id="long-by-one"),
        pytest.param(id_list(ECDSA, count=2), AESM_PARAMETER_ERROR, id="count-too-big"),
        pytest.param(id_list(ECDSA, ECDSA, count=1), AESM_PARAMETER_ERROR, id="count-too-small"),
        pytest.param(id_list(ECDSA, header_id=1), AESM_PARAMETER_ERROR, id="header-id"),
        pytest.param(id_list(ECDSA, version=1), AESM_PARAMETER_ERROR, id="header-version"),
        pytest.param(id_list(*[ECDSA] * 10), AESM_SUCCESS, id="ten-ids"),
        pytest.param(id_list(*[ECDSA] * 11), AESM_PARAMETER_ERROR, id="eleven-ids"),
    ],
)
def test_select_att_key_id_list_rules(att_key_id_list: bytes | None, code: int) -> None:
    assert check_select_att_key_id(SelectAttKeyIDRequest(att_key_id_list), SUPPORTED) == code


def test_select_without_list_and_nothing_supported() -> None:
    assert check_select_att_key_id(SelectAttKeyIDRequest(None), []) == AESM_UNSUPPORTED_ATT_KEY_ID


def test_select_returns_single_match_as_is() -> None:
    entry = key_id(2, tail=b"client-specific")
    request = SelectAttKeyIDRequest(id_list(OTHER, entry))
    assert select_att_key_id(request, SUPPORTED) == entry


def test_select_prefers_default_quoting_type_among_several() -> None:
    supported = [EPID, ECDSA]
    assert select_att_key_id(SelectAttKeyIDRequest(None), supported) == ECDSA
    assert select_att_key_id(SelectAttKeyIDRequest(id_list(EPID, ECDSA)), supported) == ECDSA
    # Without a default-type candidate, the first wins.
    assert select_att_key_id(SelectAttKeyIDRequest(id_list(EPID)), supported) == EPID
    assert (
        select_att_key_id(
            SelectAttKeyIDRequest(id_list(EPID, ECDSA)), supported, default_algorithm_id=0
        )
        == EPID
    )


def test_select_on_an_invalid_request_is_a_local_error() -> None:
    with pytest.raises(UsageError):
        select_att_key_id(SelectAttKeyIDRequest(b""), SUPPORTED)


# ---- GetSupportedAttKeyIDNum / GetSupportedAttKeyIDs ----


def test_supported_att_key_id_num() -> None:
    assert check_get_supported_att_key_id_num(1) == AESM_SUCCESS
    assert check_get_supported_att_key_id_num(3) == AESM_SUCCESS
    assert check_get_supported_att_key_id_num(0) == AESM_SERVICE_UNAVAILABLE


@pytest.mark.parametrize(
    ("buf_size", "count", "code"),
    [
        (256, 1, AESM_SUCCESS),
        (768, 3, AESM_SUCCESS),
        (255, 1, AESM_PARAMETER_ERROR),
        (257, 1, AESM_PARAMETER_ERROR),
        (512, 1, AESM_PARAMETER_ERROR),
        (0, 1, AESM_PARAMETER_ERROR),
        (256, 3, AESM_PARAMETER_ERROR),
    ],
)
def test_supported_att_key_ids_buf_size(buf_size: int, count: int, code: int) -> None:
    assert check_get_supported_att_key_ids(GetSupportedAttKeyIDsRequest(buf_size), count) == code
