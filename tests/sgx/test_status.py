"""Status codes and the mappings between them.

Provenance of the expected values: the tables of the project spec
``aesm-wire.md`` sections 7.2, 12.1-12.4 and ``dcap-quote.md`` section 10, which
record linux-sgx ``sgx_error.h``, ``aesm_error.h``, ``uae_oal_api.h`` and
``sgx_uae_service.cpp`` at 90873a0c and DCAP ``sgx_ql_lib_common.h``,
``sgx_qve_header.h`` and ``sgx_dcap_quoteverify``/``qe_logic`` at a46ee8ab. They
are an independent transcription of the same headers the module was written
from, so a typo on either side fails here.
"""

from __future__ import annotations

import pytest

from sgx_quote_helper.sgx._status import (
    TCB_STATUS_QV_RESULT,
    AesmError,
    OalStatus,
    Quote3Error,
    QuoteExCall,
    QvResult,
    SgxStatus,
    TcbStatus,
    aesm_to_sgx,
    oal_to_sgx,
    quote3_to_aesm,
    qv_result_for_tcb_status,
    sgx_to_quote3,
)

# -- the enums ----------------------------------------------------------------

# spec 12.1 (names without SGX_).
SPEC_SGX_STATUS = [
    (0x0000, "SUCCESS"),
    (0x0001, "ERROR_UNEXPECTED"),
    (0x0002, "ERROR_INVALID_PARAMETER"),
    (0x0003, "ERROR_OUT_OF_MEMORY"),
    (0x0004, "ERROR_ENCLAVE_LOST"),
    (0x0005, "ERROR_INVALID_STATE"),
    (0x0008, "ERROR_FEATURE_NOT_SUPPORTED"),
    (0x2005, "ERROR_OUT_OF_EPC"),
    (0x2006, "ERROR_NO_DEVICE"),
    (0x3001, "ERROR_MAC_MISMATCH"),
    (0x4001, "ERROR_SERVICE_UNAVAILABLE"),
    (0x4002, "ERROR_SERVICE_TIMEOUT"),
    (0x4003, "ERROR_AE_INVALID_EPIDBLOB"),
    (0x4004, "ERROR_SERVICE_INVALID_PRIVILEGE"),
    (0x4005, "ERROR_EPID_MEMBER_REVOKED"),
    (0x4006, "ERROR_UPDATE_NEEDED"),
    (0x4007, "ERROR_NETWORK_FAILURE"),
    (0x4008, "ERROR_AE_SESSION_INVALID"),
    (0x400A, "ERROR_BUSY"),
    (0x4012, "ERROR_UNRECOGNIZED_PLATFORM"),
    (0x4013, "ERROR_UNSUPPORTED_CONFIG"),
    (0x5002, "ERROR_NO_PRIVILEGE"),
    (0x8001, "ERROR_UNSUPPORTED_ATT_KEY_ID"),
    (0x8002, "ERROR_ATT_KEY_CERTIFICATION_FAILURE"),
    (0x8003, "ERROR_ATT_KEY_UNINITIALIZED"),
    (0x8004, "ERROR_INVALID_ATT_KEY_CERT_DATA"),
    (0x8005, "ERROR_PLATFORM_CERT_UNAVAILABLE"),
]

# spec 12.2 (names without AESM_), complete: 0..51 without 27.
SPEC_AESM = [
    (0, "SUCCESS"),
    (1, "UNEXPECTED_ERROR"),
    (2, "NO_DEVICE_ERROR"),
    (3, "PARAMETER_ERROR"),
    (4, "EPIDBLOB_ERROR"),
    (5, "EPID_REVOKED_ERROR"),
    (6, "GET_LICENSETOKEN_ERROR"),
    (7, "SESSION_INVALID"),
    (8, "MAX_NUM_SESSION_REACHED"),
    (9, "PSDA_UNAVAILABLE"),
    (10, "EPH_SESSION_FAILED"),
    (11, "LONG_TERM_PAIRING_FAILED"),
    (12, "NETWORK_ERROR"),
    (13, "NETWORK_BUSY_ERROR"),
    (14, "PROXY_SETTING_ASSIST"),
    (15, "FILE_ACCESS_ERROR"),
    (16, "SGX_PROVISION_FAILED"),
    (17, "SERVICE_STOPPED"),
    (18, "BUSY"),
    (19, "BACKEND_SERVER_BUSY"),
    (20, "UPDATE_AVAILABLE"),
    (21, "OUT_OF_MEMORY_ERROR"),
    (22, "MSG_ERROR"),
    (23, "THREAD_ERROR"),
    (24, "SGX_DEVICE_NOT_AVAILABLE"),
    (25, "ENABLE_SGX_DEVICE_FAILED"),
    (26, "PLATFORM_INFO_BLOB_INVALID_SIG"),
    (28, "KDF_MISMATCH"),
    (29, "OUT_OF_EPC"),
    (30, "SERVICE_UNAVAILABLE"),
    (31, "UNRECOGNIZED_PLATFORM"),
    (32, "ECDSA_ID_MISMATCH"),
    (33, "PATHNAME_BUFFER_OVERFLOW_ERROR"),
    (34, "ERROR_STORED_KEY"),
    (35, "PUB_KEY_ID_MISMATCH"),
    (36, "INVALID_PCE_SIG_SCHEME"),
    (37, "ATT_KEY_BLOB_ERROR"),
    (38, "UNSUPPORTED_ATT_KEY_ID"),
    (39, "UNSUPPORTED_LOADING_POLICY"),
    (40, "INTERFACE_UNAVAILABLE"),
    (41, "PLATFORM_LIB_UNAVAILABLE"),
    (42, "ATT_KEY_NOT_INITIALIZED"),
    (43, "ATT_KEY_CERT_DATA_INVALID"),
    (44, "NO_PLATFORM_CERT_DATA"),
    (45, "ERROR_REPORT"),
    (46, "ENCLAVE_LOST"),
    (47, "INVALID_REPORT"),
    (48, "ENCLAVE_LOAD_ERROR"),
    (49, "UNABLE_TO_GENERATE_QE_REPORT"),
    (50, "KEY_CERTIFICATION_ERROR"),
    (51, "CONFIG_UNSUPPORTED"),
]

# spec 12.3 and 6 ("Codes above"), names without SGX_QL_.
SPEC_QUOTE3 = [
    (0x0000, "SUCCESS"),
    (0xE001, "ERROR_UNEXPECTED"),
    (0xE002, "ERROR_INVALID_PARAMETER"),
    (0xE003, "ERROR_OUT_OF_MEMORY"),
    (0xE004, "ERROR_ECDSA_ID_MISMATCH"),
    (0xE005, "PATHNAME_BUFFER_OVERFLOW_ERROR"),
    (0xE006, "FILE_ACCESS_ERROR"),
    (0xE007, "ERROR_STORED_KEY"),
    (0xE008, "ERROR_PUB_KEY_ID_MISMATCH"),
    (0xE009, "ERROR_INVALID_PCE_SIG_SCHEME"),
    (0xE00A, "ATT_KEY_BLOB_ERROR"),
    (0xE00B, "UNSUPPORTED_ATT_KEY_ID"),
    (0xE00C, "UNSUPPORTED_LOADING_POLICY"),
    (0xE00D, "INTERFACE_UNAVAILABLE"),
    (0xE00E, "PLATFORM_LIB_UNAVAILABLE"),
    (0xE00F, "ATT_KEY_NOT_INITIALIZED"),
    (0xE010, "ATT_KEY_CERT_DATA_INVALID"),
    (0xE011, "NO_PLATFORM_CERT_DATA"),
    (0xE012, "OUT_OF_EPC"),
    (0xE013, "ERROR_REPORT"),
    (0xE014, "ENCLAVE_LOST"),
    (0xE015, "INVALID_REPORT"),
    (0xE016, "ENCLAVE_LOAD_ERROR"),
    (0xE017, "UNABLE_TO_GENERATE_QE_REPORT"),
    (0xE018, "KEY_CERTIFCATION_ERROR"),
    (0xE019, "NETWORK_ERROR"),
    (0xE01A, "MESSAGE_ERROR"),
    (0xE022, "PCK_CERT_CHAIN_ERROR"),
    (0xE035, "ERROR_INVALID_PRIVILEGE"),
    (0xE03E, "UNSUPPORTED_MODE"),
    (0xE03F, "NO_DEVICE"),
    (0xE040, "SERVICE_UNAVAILABLE"),
    (0xE041, "NETWORK_FAILURE"),
    (0xE042, "SERVICE_TIMEOUT"),
    (0xE043, "ERROR_BUSY"),
    (0xE046, "ERROR_MESSAGE_PARSING_ERROR"),
    (0xE052, "PSW_NOT_AVAILABLE"),
    (0xE0FF, "ERROR_MAX"),
]

# dcap-quote.md section 10.
SPEC_QV = [
    (0x0000, "OK"),
    (0xA001, "CONFIG_NEEDED"),
    (0xA002, "OUT_OF_DATE"),
    (0xA003, "OUT_OF_DATE_CONFIG_NEEDED"),
    (0xA004, "INVALID_SIGNATURE"),
    (0xA005, "REVOKED"),
    (0xA006, "UNSPECIFIED"),
    (0xA007, "SW_HARDENING_NEEDED"),
    (0xA008, "CONFIG_AND_SW_HARDENING_NEEDED"),
    (0xA009, "TD_RELAUNCH_ADVISED"),
    (0xA00A, "TD_RELAUNCH_ADVISED_CONFIG_NEEDED"),
]


@pytest.mark.parametrize(("value", "name"), SPEC_SGX_STATUS)
def test_sgx_status_matches_spec(value: int, name: str) -> None:
    assert SgxStatus(value).name == name
    assert SgxStatus(value).c_name == "SGX_" + name


@pytest.mark.parametrize(("value", "name"), SPEC_AESM)
def test_aesm_error_matches_spec(value: int, name: str) -> None:
    assert AesmError(value).name == name
    assert AesmError(value).c_name == "AESM_" + name


@pytest.mark.parametrize(("value", "name"), SPEC_QUOTE3)
def test_quote3_error_matches_spec(value: int, name: str) -> None:
    assert Quote3Error(value).name == name
    assert Quote3Error(value).c_name == "SGX_QL_" + name


@pytest.mark.parametrize(("value", "name"), SPEC_QV)
def test_qv_result_matches_spec(value: int, name: str) -> None:
    assert QvResult(value).name == name
    assert QvResult(value).c_name == "SGX_QL_QV_RESULT_" + name


def test_aesm_error_is_complete_and_27_is_absent() -> None:
    assert [int(code) for code in AesmError] == [v for v, _ in SPEC_AESM]
    with pytest.raises(ValueError):
        AesmError(27)


def test_enum_sizes_match_the_transcribed_headers() -> None:
    # Unique values per header (aliases excluded): sgx_error.h has 73 entries;
    # sgx_ql_lib_common.h through 0xE068 has 87 (Intel's own Rust bindings of
    # that version list 87 variants); sgx_qve_header.h has 12 with RESULT_MAX.
    assert len(SgxStatus) == 73
    assert len(AesmError) == 51
    assert len(Quote3Error) == 87
    assert len(QvResult) == 12


def test_names_without_error_prefix_keep_their_c_spelling() -> None:
    assert SgxStatus.PTHREAD_EXIT.c_name == "SGX_PTHREAD_EXIT"
    assert (
        SgxStatus.INTERNAL_ERROR_ENCLAVE_CREATE_INTERRUPTED.c_name
        == "SGX_INTERNAL_ERROR_ENCLAVE_CREATE_INTERRUPTED"
    )


def test_quote3_sic_spelling_is_canonical_and_alias_resolves() -> None:
    assert Quote3Error(0xE018) is Quote3Error.KEY_CERTIFCATION_ERROR
    assert Quote3Error["KEY_CERTIFICATION_ERROR"] is Quote3Error.KEY_CERTIFCATION_ERROR
    assert Quote3Error.KEY_CERTIFCATION_ERROR.c_name == "SGX_QL_KEY_CERTIFCATION_ERROR"
    assert Quote3Error["ERROR_MIN"] is Quote3Error.ERROR_UNEXPECTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SGX_ERROR_MAC_MISMATCH", SgxStatus.ERROR_MAC_MISMATCH),
        ("sgx_error_busy", SgxStatus.ERROR_BUSY),
        ("AESM_BUSY", AesmError.BUSY),
        ("SGX_QL_NETWORK_ERROR", Quote3Error.NETWORK_ERROR),
        ("TEE_NETWORK_ERROR", Quote3Error.NETWORK_ERROR),
        ("SGX_QL_KEY_CERTIFICATION_ERROR", Quote3Error.KEY_CERTIFCATION_ERROR),
        ("SGX_QL_QV_RESULT_OUT_OF_DATE", QvResult.OUT_OF_DATE),
        ("tee_qv_result_revoked", QvResult.REVOKED),
    ],
)
def test_from_c_name(text: str, expected: SgxStatus | AesmError | Quote3Error | QvResult) -> None:
    assert type(expected).from_c_name(text) is expected


def test_from_c_name_rejects_other_families_prefixes() -> None:
    assert SgxStatus.from_c_name("SGX_QL_ERROR_UNEXPECTED") is None
    assert Quote3Error.from_c_name("SGX_QL_QV_RESULT_OK") is None
    assert AesmError.from_c_name("BUSY") is None  # the prefix is required here


# -- quote3_error_t -> aesm_error_t (server side) -------------------------------

QUOTE3_TO_AESM_ROWS = [
    (Quote3Error.SUCCESS, AesmError.SUCCESS),
    (Quote3Error.ERROR_UNEXPECTED, AesmError.UNEXPECTED_ERROR),
    (Quote3Error.ERROR_INVALID_PARAMETER, AesmError.PARAMETER_ERROR),
    (Quote3Error.ERROR_OUT_OF_MEMORY, AesmError.OUT_OF_MEMORY_ERROR),
    (Quote3Error.ERROR_ECDSA_ID_MISMATCH, AesmError.ECDSA_ID_MISMATCH),
    (Quote3Error.PATHNAME_BUFFER_OVERFLOW_ERROR, AesmError.PATHNAME_BUFFER_OVERFLOW_ERROR),
    (Quote3Error.FILE_ACCESS_ERROR, AesmError.FILE_ACCESS_ERROR),
    (Quote3Error.ERROR_STORED_KEY, AesmError.ERROR_STORED_KEY),
    (Quote3Error.ERROR_PUB_KEY_ID_MISMATCH, AesmError.PUB_KEY_ID_MISMATCH),
    (Quote3Error.ERROR_INVALID_PCE_SIG_SCHEME, AesmError.INVALID_PCE_SIG_SCHEME),
    (Quote3Error.ATT_KEY_BLOB_ERROR, AesmError.ATT_KEY_BLOB_ERROR),
    (Quote3Error.UNSUPPORTED_ATT_KEY_ID, AesmError.UNSUPPORTED_ATT_KEY_ID),
    (Quote3Error.UNSUPPORTED_LOADING_POLICY, AesmError.UNSUPPORTED_LOADING_POLICY),
    (Quote3Error.INTERFACE_UNAVAILABLE, AesmError.INTERFACE_UNAVAILABLE),
    (Quote3Error.PLATFORM_LIB_UNAVAILABLE, AesmError.PLATFORM_LIB_UNAVAILABLE),
    (Quote3Error.ATT_KEY_NOT_INITIALIZED, AesmError.ATT_KEY_NOT_INITIALIZED),
    (Quote3Error.ATT_KEY_CERT_DATA_INVALID, AesmError.ATT_KEY_CERT_DATA_INVALID),
    (Quote3Error.NO_PLATFORM_CERT_DATA, AesmError.NO_PLATFORM_CERT_DATA),
    (Quote3Error.OUT_OF_EPC, AesmError.OUT_OF_EPC),
    (Quote3Error.ERROR_REPORT, AesmError.ERROR_REPORT),
    (Quote3Error.ENCLAVE_LOST, AesmError.ENCLAVE_LOST),
    (Quote3Error.INVALID_REPORT, AesmError.INVALID_REPORT),
    (Quote3Error.ENCLAVE_LOAD_ERROR, AesmError.ENCLAVE_LOAD_ERROR),
    (Quote3Error.UNABLE_TO_GENERATE_QE_REPORT, AesmError.UNABLE_TO_GENERATE_QE_REPORT),
    (Quote3Error.KEY_CERTIFCATION_ERROR, AesmError.KEY_CERTIFICATION_ERROR),
    (Quote3Error.NETWORK_ERROR, AesmError.NETWORK_ERROR),
    (Quote3Error.MESSAGE_ERROR, AesmError.MSG_ERROR),
]


@pytest.mark.parametrize(("quote3", "aesm"), QUOTE3_TO_AESM_ROWS)
def test_quote3_to_aesm_rows(quote3: Quote3Error, aesm: AesmError) -> None:
    assert quote3_to_aesm(quote3) is aesm
    assert quote3_to_aesm(int(quote3)) is aesm


def test_quote3_to_aesm_covers_exactly_e001_to_e01a_by_name() -> None:
    mapped = {q for q, _ in QUOTE3_TO_AESM_ROWS}
    assert mapped == {Quote3Error(v) for v in [0, *range(0xE001, 0xE01B)]}


@pytest.mark.parametrize(
    "quote3", [q for q in Quote3Error if q not in {r for r, _ in QUOTE3_TO_AESM_ROWS}]
)
def test_quote3_to_aesm_anything_else_is_unexpected(quote3: Quote3Error) -> None:
    assert quote3_to_aesm(quote3) is AesmError.UNEXPECTED_ERROR


@pytest.mark.parametrize("value", [0xE036, 0xE073, 0x1234, -1, 2**40])
def test_quote3_to_aesm_unknown_integers_do_not_raise(value: int) -> None:
    assert quote3_to_aesm(value) is AesmError.UNEXPECTED_ERROR


# -- transport outcome -> sgx_status_t (spec 7.2) -------------------------------


@pytest.mark.parametrize(
    ("oal", "sgx"),
    [
        (OalStatus.SUCCESS, SgxStatus.SUCCESS),
        (OalStatus.ERROR_UNEXPECTED, SgxStatus.ERROR_UNEXPECTED),
        (OalStatus.ERROR_AESM_UNAVAILABLE, SgxStatus.ERROR_SERVICE_UNAVAILABLE),
        (OalStatus.ERROR_TIMEOUT, SgxStatus.ERROR_SERVICE_TIMEOUT),
        (OalStatus.ERROR_INVALID, SgxStatus.ERROR_INVALID_PARAMETER),
        (99, SgxStatus.ERROR_UNEXPECTED),
    ],
)
def test_oal_to_sgx(oal: int, sgx: SgxStatus) -> None:
    assert oal_to_sgx(oal) is sgx


# -- aesm_error_t -> sgx_status_t (client side) ---------------------------------

COMMON_ROWS = [
    (AesmError.SUCCESS, SgxStatus.SUCCESS),
    (AesmError.UPDATE_AVAILABLE, SgxStatus.ERROR_UPDATE_NEEDED),
    (AesmError.PARAMETER_ERROR, SgxStatus.ERROR_INVALID_PARAMETER),
    (AesmError.SERVICE_STOPPED, SgxStatus.ERROR_SERVICE_UNAVAILABLE),
    (AesmError.SERVICE_UNAVAILABLE, SgxStatus.ERROR_SERVICE_UNAVAILABLE),
    (AesmError.ENCLAVE_LOAD_ERROR, SgxStatus.ERROR_SERVICE_UNAVAILABLE),
    (AesmError.ENCLAVE_LOST, SgxStatus.ERROR_SERVICE_UNAVAILABLE),
    (AesmError.OUT_OF_MEMORY_ERROR, SgxStatus.ERROR_OUT_OF_MEMORY),
    (AesmError.BUSY, SgxStatus.ERROR_BUSY),
    (AesmError.UNRECOGNIZED_PLATFORM, SgxStatus.ERROR_UNRECOGNIZED_PLATFORM),
    (AesmError.NETWORK_ERROR, SgxStatus.ERROR_NETWORK_FAILURE),
    (AesmError.NETWORK_BUSY_ERROR, SgxStatus.ERROR_NETWORK_FAILURE),
    (AesmError.PROXY_SETTING_ASSIST, SgxStatus.ERROR_NETWORK_FAILURE),
    (AesmError.NO_DEVICE_ERROR, SgxStatus.ERROR_NO_DEVICE),
    (AesmError.UNEXPECTED_ERROR, SgxStatus.ERROR_UNEXPECTED),
]

_EPID_AND_PROVISIONING = [
    (AesmError.EPIDBLOB_ERROR, SgxStatus.ERROR_AE_INVALID_EPIDBLOB),
    (AesmError.EPID_REVOKED_ERROR, SgxStatus.ERROR_EPID_MEMBER_REVOKED),
    (AesmError.BACKEND_SERVER_BUSY, SgxStatus.ERROR_BUSY),
    (AesmError.SGX_PROVISION_FAILED, SgxStatus.ERROR_UNEXPECTED),
    (AesmError.OUT_OF_EPC, SgxStatus.ERROR_OUT_OF_EPC),
]

OVERRIDES: dict[QuoteExCall, list[tuple[AesmError, SgxStatus]]] = {
    QuoteExCall.SELECT_ATT_KEY_ID: [
        (AesmError.UNSUPPORTED_ATT_KEY_ID, SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID),
    ],
    QuoteExCall.INIT_QUOTE_EX: [
        (AesmError.UNSUPPORTED_ATT_KEY_ID, SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID),
        (AesmError.KEY_CERTIFICATION_ERROR, SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE),
        (AesmError.NO_PLATFORM_CERT_DATA, SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE),
        *_EPID_AND_PROVISIONING,
    ],
    QuoteExCall.GET_QUOTE_SIZE_EX: [
        (AesmError.ATT_KEY_NOT_INITIALIZED, SgxStatus.ERROR_ATT_KEY_UNINITIALIZED),
        (AesmError.ATT_KEY_CERT_DATA_INVALID, SgxStatus.ERROR_UNEXPECTED),
        (AesmError.UNSUPPORTED_ATT_KEY_ID, SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID),
    ],
    QuoteExCall.GET_QUOTE_EX: [
        (AesmError.ATT_KEY_NOT_INITIALIZED, SgxStatus.ERROR_ATT_KEY_UNINITIALIZED),
        (AesmError.ATT_KEY_CERT_DATA_INVALID, SgxStatus.ERROR_UNEXPECTED),
        (AesmError.UNSUPPORTED_ATT_KEY_ID, SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID),
        (AesmError.ERROR_REPORT, SgxStatus.ERROR_MAC_MISMATCH),
        (AesmError.INVALID_REPORT, SgxStatus.ERROR_MAC_MISMATCH),
        (AesmError.UNABLE_TO_GENERATE_QE_REPORT, SgxStatus.ERROR_UNEXPECTED),
        *_EPID_AND_PROVISIONING,
    ],
    QuoteExCall.GET_SUPPORTED_ATT_KEY_ID_NUM: [],
    QuoteExCall.GET_SUPPORTED_ATT_KEY_IDS: [],
}


@pytest.mark.parametrize("call", list(QuoteExCall))
@pytest.mark.parametrize(("aesm", "sgx"), COMMON_ROWS)
def test_aesm_common_table_applies_to_every_call(
    aesm: AesmError, sgx: SgxStatus, call: QuoteExCall
) -> None:
    assert aesm_to_sgx(aesm, call) is sgx


@pytest.mark.parametrize(
    ("call", "aesm", "sgx"),
    [(call, aesm, sgx) for call, rows in OVERRIDES.items() for aesm, sgx in rows],
)
def test_aesm_per_call_overrides(call: QuoteExCall, aesm: AesmError, sgx: SgxStatus) -> None:
    assert aesm_to_sgx(aesm, call) is sgx
    assert aesm_to_sgx(int(aesm), call) is sgx


@pytest.mark.parametrize("call", list(QuoteExCall))
def test_aesm_codes_in_no_table_stay_unexpected(call: QuoteExCall) -> None:
    listed = {aesm for aesm, _ in COMMON_ROWS} | {aesm for aesm, _ in OVERRIDES[call]}
    for aesm in AesmError:
        if aesm not in listed:
            assert aesm_to_sgx(aesm, call) is SgxStatus.ERROR_UNEXPECTED, aesm


@pytest.mark.parametrize("call", list(QuoteExCall))
@pytest.mark.parametrize("code", [27, 52, 1000, -1, 2**40])
def test_aesm_unknown_integers_are_unexpected_not_exceptions(call: QuoteExCall, code: int) -> None:
    assert aesm_to_sgx(code, call) is SgxStatus.ERROR_UNEXPECTED


def test_override_only_when_common_result_is_unexpected() -> None:
    # OUT_OF_EPC is in init's override table but BUSY (common) wins for AESM 18,
    # and AESM 1 never reaches an override table.
    assert aesm_to_sgx(AesmError.BUSY, QuoteExCall.INIT_QUOTE_EX) is SgxStatus.ERROR_BUSY
    assert (
        aesm_to_sgx(AesmError.UNEXPECTED_ERROR, QuoteExCall.GET_QUOTE_EX)
        is SgxStatus.ERROR_UNEXPECTED
    )


# -- sgx_status_t -> quote3_error_t (DCAP) --------------------------------------

SGX_TO_QUOTE3_ROWS = [
    (SgxStatus.SUCCESS, Quote3Error.SUCCESS),
    (SgxStatus.ERROR_UNEXPECTED, Quote3Error.ERROR_UNEXPECTED),
    (SgxStatus.ERROR_INVALID_PARAMETER, Quote3Error.ERROR_INVALID_PARAMETER),
    (SgxStatus.ERROR_OUT_OF_MEMORY, Quote3Error.ERROR_OUT_OF_MEMORY),
    (SgxStatus.ERROR_NO_DEVICE, Quote3Error.NO_DEVICE),
    (SgxStatus.ERROR_SERVICE_UNAVAILABLE, Quote3Error.SERVICE_UNAVAILABLE),
    (SgxStatus.ERROR_NETWORK_FAILURE, Quote3Error.NETWORK_FAILURE),
    (SgxStatus.ERROR_SERVICE_TIMEOUT, Quote3Error.SERVICE_TIMEOUT),
    (SgxStatus.ERROR_BUSY, Quote3Error.ERROR_BUSY),
    (SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID, Quote3Error.UNSUPPORTED_ATT_KEY_ID),
    (SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE, Quote3Error.ATT_KEY_CERT_DATA_INVALID),
    (SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE, Quote3Error.NO_PLATFORM_CERT_DATA),
    (SgxStatus.ERROR_ATT_KEY_UNINITIALIZED, Quote3Error.ATT_KEY_NOT_INITIALIZED),
]


@pytest.mark.parametrize(("sgx", "quote3"), SGX_TO_QUOTE3_ROWS)
def test_sgx_to_quote3_rows(sgx: SgxStatus, quote3: Quote3Error) -> None:
    assert sgx_to_quote3(sgx) is quote3


@pytest.mark.parametrize(
    "sgx", [s for s in SgxStatus if s not in {r for r, _ in SGX_TO_QUOTE3_ROWS}]
)
def test_sgx_to_quote3_anything_else_is_unexpected(sgx: SgxStatus) -> None:
    assert sgx_to_quote3(sgx) is Quote3Error.ERROR_UNEXPECTED


def test_sgx_to_quote3_unknown_integer() -> None:
    assert sgx_to_quote3(0xBEEF) is Quote3Error.ERROR_UNEXPECTED


def test_forged_report_end_to_end() -> None:
    # spec 12.4: forged REPORT -> AESM 45/47 -> MAC_MISMATCH -> DCAP 0xE001.
    for qe_status in (Quote3Error.ERROR_REPORT, Quote3Error.INVALID_REPORT):
        wire = quote3_to_aesm(qe_status)
        client = aesm_to_sgx(wire, QuoteExCall.GET_QUOTE_EX)
        assert client is SgxStatus.ERROR_MAC_MISMATCH
        assert sgx_to_quote3(client) is Quote3Error.ERROR_UNEXPECTED


# -- TCB status -> sgx_ql_qv_result_t ------------------------------------------


@pytest.mark.parametrize(
    ("status", "result"),
    [
        ("UpToDate", QvResult.OK),
        ("SWHardeningNeeded", QvResult.SW_HARDENING_NEEDED),
        ("ConfigurationNeeded", QvResult.CONFIG_NEEDED),
        ("ConfigurationAndSWHardeningNeeded", QvResult.CONFIG_AND_SW_HARDENING_NEEDED),
        ("OutOfDate", QvResult.OUT_OF_DATE),
        ("OutOfDateConfigurationNeeded", QvResult.OUT_OF_DATE_CONFIG_NEEDED),
        ("Revoked", QvResult.REVOKED),
    ],
)
def test_tcb_status_to_qv_result(status: str, result: QvResult) -> None:
    assert TCB_STATUS_QV_RESULT[TcbStatus(status)] is result
    assert TcbStatus.parse(status).qv_result is result
    assert qv_result_for_tcb_status(status) is result


def test_tcb_statuses_are_one_enum_shared_by_pcs_and_verify() -> None:
    from sgx_quote_helper import pcs, verify

    assert verify.TcbStatus is TcbStatus
    assert set(pcs.PLATFORM_TCB_STATUSES) == set(TcbStatus)
    assert set(pcs.QE_TCB_STATUSES) < set(TcbStatus)


@pytest.mark.parametrize("status", ["uptodate", "", "TCBLevelNotFound"])
def test_unknown_tcb_status_fails_closed(status: str) -> None:
    assert qv_result_for_tcb_status(status) is QvResult.UNSPECIFIED
