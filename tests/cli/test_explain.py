"""`sgx-quote-helper explain CODE [--json]`."""

from __future__ import annotations

import json

import pytest

from sgx_quote_helper._cli import main
from sgx_quote_helper.explain import explain


def test_explains_a_hex_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "0xE019"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("quote3_error_t 0xE019 SGX_QL_NETWORK_ERROR\n")
    assert "meaning:" in out
    assert "check:" in out
    assert "PCCS" in out


def test_bare_digits_print_both_readings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "12"]) == 0
    out = capsys.readouterr().out
    assert "aesm_error_t 12 (0x000C) AESM_NETWORK_ERROR  [read as decimal]" in out
    assert "aesm_error_t 18 (0x0012) AESM_BUSY  [read as hex]" in out
    assert "SGX_ERROR_NETWORK_FAILURE (0x4007) from every quote-ex call" in out


def test_aesm_code_shows_what_each_call_returns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "AESM_INVALID_REPORT"]) == 0
    out = capsys.readouterr().out
    assert "SGX_ERROR_MAC_MISMATCH (0x3001) from sgx_get_quote_ex" in out
    assert "SGX_ERROR_UNEXPECTED (0x0001) from sgx_select_att_key_id" in out
    assert "[read as" not in out


def test_sgx_status_shows_the_dcap_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "0x3001"]) == 0
    out = capsys.readouterr().out
    assert "SGX_QL_ERROR_UNEXPECTED (0xE001)" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--json", "12"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["name"], d["reading"]) for d in data] == [
        ("AESM_NETWORK_ERROR", "decimal"),
        ("AESM_BUSY", "hex"),
    ]
    assert data[0]["value"] == 12
    assert data[0]["quote_ex"]["sgx_get_quote_ex"]["name"] == "SGX_ERROR_NETWORK_FAILURE"
    assert set(data[0]) >= {"family", "value", "hex", "name", "meaning", "check"}


def test_json_output_of_a_verification_result(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "SGX_QL_QV_RESULT_OUT_OF_DATE", "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert only["family"] == "sgx_ql_qv_result_t"
    assert only["hex"] == "0xA002"
    assert "quote_ex" not in only
    assert "dcap" not in only


@pytest.mark.parametrize("argv", [["explain", "nonsense"], ["explain", "--json", "0xE073"]])
def test_unknown_code_is_one_line_on_stderr(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("sgx-quote-helper: explain: ")
    assert repr(argv[-1]) in captured.err


@pytest.mark.parametrize(
    "code",
    ["9" * 4301, "0x" + "f" * 4301, "1" * 11, "0x1" + "0" * 8],
    ids=["4301-decimal-digits", "4301-hex-digits", "11-digits", "33-bit-hex"],
)
def test_a_number_too_long_for_any_code_is_unknown(
    code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Codes are 32-bit values; Python refuses to convert 4301 decimal digits at all.
    assert explain(code) == []
    assert main(["explain", code]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "is not a known sgx_status_t" in captured.err
    assert len(captured.err) < 300  # the input is echoed cut


def test_leading_zeros_do_not_count_as_digits() -> None:
    assert [e.name for e in explain("0x" + "0" * 20 + "E019")] == ["SGX_QL_NETWORK_ERROR"]
