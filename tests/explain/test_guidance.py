"""``explain``: readings of a status code, what it means and what to check."""

from __future__ import annotations

import dataclasses

import pytest

from sgx_quote_helper.errors import CodedError
from sgx_quote_helper.explain import Explanation, explain, guide
from sgx_quote_helper.sgx import AesmError, Quote3Error, QuoteExCall, QvResult, SgxStatus


def _readings(text: str) -> list[tuple[str, int, str]]:
    return [(e.family, e.value, e.reading) for e in explain(text)]


def test_bare_digits_are_read_as_decimal_and_as_hex() -> None:
    assert _readings("12") == [("aesm_error_t", 12, "decimal"), ("aesm_error_t", 0x12, "hex")]
    assert [e.name for e in explain("12")] == ["AESM_NETWORK_ERROR", "AESM_BUSY"]


def test_0x_prefix_is_hex_only() -> None:
    assert _readings("0x12") == [("aesm_error_t", 0x12, "hex")]


@pytest.mark.parametrize("text", ["0xE019", "0xe019", "e019", "E019", "57369"])
def test_numeric_forms_of_network_error(text: str) -> None:
    assert [e.name for e in explain(text)] == ["SGX_QL_NETWORK_ERROR"]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("SGX_QL_NETWORK_ERROR", "SGX_QL_NETWORK_ERROR"),
        ("aesm_busy", "AESM_BUSY"),
        ("Sgx_Error_Mac_Mismatch", "SGX_ERROR_MAC_MISMATCH"),
        ("TEE_ERROR_MESSAGE_PARSING_ERROR", "SGX_QL_ERROR_MESSAGE_PARSING_ERROR"),
        ("SGX_QL_QV_RESULT_OUT_OF_DATE", "SGX_QL_QV_RESULT_OUT_OF_DATE"),
    ],
)
def test_c_names(text: str, name: str) -> None:
    (only,) = explain(text)
    assert only.name == name
    assert only.reading == "name"


def test_value_in_several_families_gives_each() -> None:
    assert {e.family for e in explain("0")} == {
        "sgx_status_t",
        "aesm_error_t",
        "quote3_error_t",
        "sgx_ql_qv_result_t",
    }
    assert {e.name for e in explain("KEY_CERTIFICATION_ERROR")} == {
        "AESM_KEY_CERTIFICATION_ERROR",
        "SGX_QL_KEY_CERTIFCATION_ERROR",
    }


def test_integer_argument() -> None:
    (only,) = explain(0x4001)
    assert only.name == "SGX_ERROR_SERVICE_UNAVAILABLE"
    assert only.reading == "value"


@pytest.mark.parametrize("text", ["", "   ", "0x", "0xZZ", "nonsense", "0xE073", "AESM_27", "-1"])
def test_unknown_gives_empty_list(text: str) -> None:
    assert explain(text) == []


def test_aesm_reading_carries_the_per_call_sgx_status() -> None:
    (invalid_report,) = explain("47")
    calls = dict(invalid_report.quote_ex)
    assert set(calls) == set(QuoteExCall)
    assert calls[QuoteExCall.GET_QUOTE_EX] is SgxStatus.ERROR_MAC_MISMATCH
    assert calls[QuoteExCall.INIT_QUOTE_EX] is SgxStatus.ERROR_UNEXPECTED
    assert invalid_report.dcap is None


def test_quote_ex_status_reading_carries_the_dcap_status() -> None:
    (mac,) = explain("0x3001")
    assert mac.dcap is Quote3Error.ERROR_UNEXPECTED
    assert mac.quote_ex == ()
    # A status no quote-ex call returns gets no DCAP line.
    (pcl,) = explain("0x6001")
    assert pcl.dcap is None


def test_explanation_is_frozen() -> None:
    (item,) = explain("0x4001")
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.meaning = "changed"  # type: ignore[misc]


def test_as_dict_shape() -> None:
    (item,) = explain("47")
    data = item.as_dict()
    assert data["hex"] == "0x002F"
    assert data["name"] == "AESM_INVALID_REPORT"
    assert data["quote_ex"] == {
        call.value: {
            "value": int(status),
            "hex": f"0x{int(status):04X}",
            "name": status.c_name,
        }
        for call, status in item.quote_ex
    }
    assert "dcap" not in data


ALL_MEMBERS = [*SgxStatus, *AesmError, *Quote3Error, *QvResult]


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=[m.c_name for m in ALL_MEMBERS])
def test_every_code_has_a_meaning_and_a_check(
    member: SgxStatus | AesmError | Quote3Error | QvResult,
) -> None:
    found = [e for e in explain(member.c_name) if e.family == member.c_type()]
    assert len(found) == 1
    item: Explanation = found[0]
    assert item.value == int(member)
    assert item.meaning.endswith(".")
    assert len(item.meaning) >= 10
    assert item.check.endswith((".", "?"))
    assert len(item.check) >= 10


# Guidance for the codes users meet (kubernetes.md section 6): the text names the
# thing to check, not just the code.
@pytest.mark.parametrize(
    ("code", "needles"),
    [
        ("0x4001", ["/var/run/aesmd", "SGX_AESM_ADDR", "--socket"]),
        ("0x4002", ["15-second"]),
        ("0xE019", ["PCCS", "TLS", "proxy"]),
        ("12", ["PCCS", "proxy"]),
        ("0xE00B", ["key id", "plugin"]),
        ("38", ["ECDSA"]),
        ("0x3001", ["target info"]),
        ("0x4004", ["/dev/sgx_provision"]),
        ("0xE035", ["/dev/sgx_provision"]),
        ("0x2006", ["/dev/sgx_enclave"]),
        ("0xE00F", ["init quote"]),
        ("0x8003", ["init quote"]),
        ("42", ["init quote"]),
        ("0xE011", ["registered", "PCCS"]),
        ("0xE022", ["PCK", "root"]),
        ("0xE046", ["Azure", "QPL"]),
        ("0xE001", ["libsgx_quote_ex.so.1", "/dev/sgx_provision"]),
        ("0x2005", ["EPC"]),
        ("0x400a", ["Retry"]),
        ("0xA002", ["Relying party", "quote helper"]),
    ],
)
def test_common_codes_have_specific_guidance(code: str, needles: list[str]) -> None:
    text = " ".join(e.meaning + " " + e.check for e in explain(code))
    for needle in needles:
        assert needle in text, (code, needle)


def test_guide_gives_the_check_of_each_code() -> None:
    (item,) = [e for e in explain(0x4001) if e.family == "sgx_status_t"]
    assert guide(SgxStatus.ERROR_SERVICE_UNAVAILABLE) == [item.check]
    assert guide(AesmError.BUSY) == [explain("AESM_BUSY")[0].check]


def test_errors_without_hints_take_the_guide_when_shown() -> None:
    error = CodedError(
        "no socket", codes=(SgxStatus.ERROR_SERVICE_UNAVAILABLE, Quote3Error.SERVICE_UNAVAILABLE)
    )
    assert "check:" not in error.diagnostics()
    shown = error.diagnostics(guide)
    assert shown.startswith(
        "no socket [SGX_ERROR_SERVICE_UNAVAILABLE 0x4001; SGX_QL_SERVICE_UNAVAILABLE 0xE040]"
    )
    # Both codes share the socket advice: it appears once.
    assert shown.count("check:") == 1
    assert "/var/run/aesmd" in shown
    # Hints of its own win over the general guidance.
    specific = CodedError("x", codes=(SgxStatus.ERROR_BUSY,), hints=["the one thing"])
    assert specific.diagnostics(guide).splitlines()[1:] == ["  check: the one thing"]


def test_the_socket_mount_advice_is_written_once() -> None:
    from sgx_quote_helper.client import SOCKET_MOUNT_ADVICE

    (item,) = [e for e in explain("0x4001") if e.family == "sgx_status_t"]
    assert SOCKET_MOUNT_ADVICE in item.check
