"""``sgx-quote-helper inspect`` on Intel's real quote in every input form, and on bad input.

Expected values are those of the project's vector description
(``vectors/README.md``), as in ``tests/sgx/test_quote.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest

from sgx_quote_helper._cli import main
from sgx_quote_helper.sgx import PpidCleartext, Quote, Report2Body

QUOTE_FILE = "intel-sgx-quote-v3.bin"

REPORT_KEYS = {
    "cpu_svn",
    "misc_select",
    "attributes",
    "mr_enclave",
    "mr_signer",
    "isv_prod_id",
    "isv_svn",
    "config_svn",
    "report_data",
    "debug",
}

# vectors/README.md, "Expected parsed values".
EXPECTED_JSON = {
    "version": 3,
    "att_key_type": 2,
    "tee_type": 0,
    "qe_svn": 10,
    "pce_svn": 15,
    "qe_vendor_id": "939a7233f79c4ca9940a0db3957f0607",
    "user_data": "3987622ee6968a54977c8626ef47123500000000",
    "report": {
        "cpu_svn": "0b0b1a18ffff04000000000000000000",
        "misc_select": 0,
        "attributes": "0500000000000000e700000000000000",
        "mr_enclave": "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
        "mr_signer": "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6",
        "isv_prod_id": 0,
        "isv_svn": 0,
        "config_svn": 0,
        "report_data": (b"Hello, world!" + bytes(51)).hex(),
        "debug": False,
    },
    "signature_data_len": 4164,
    "qe_report": {
        "cpu_svn": "0b0b1a18ffff04000000000000000000",
        "misc_select": 0,
        "attributes": "1500000000000000e700000000000000",
        "mr_enclave": "96b347a64e5a045e27369c26e6dcda51fd7c850e9b3a3a79e718f43261dee1e4",
        "mr_signer": "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff",
        "isv_prod_id": 1,
        "isv_svn": 10,
        "config_svn": 0,
        "report_data": "c261bb882e542aa8d7f9e99a00efcb11cf2ee66fa9c6861f9230d3f803a275fd"
        + "00" * 32,
        "debug": False,
    },
    "qe_auth_data": bytes(range(32)).hex(),
    "certification_data": {"type": 5, "size": 3548},
    "pck": {
        "fmspc": "00a067110000",
        "pce_id": "0000",
        "pce_svn": 13,
        "cpu_svn": "0b0b0202ff0100000000000000000000",
        "tcb_components": [11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "ppid": "d04ec06d4e6d92dc90d0ad3cf5ee2ddf",
        "sgx_type": 0,
    },
}


@pytest.fixture
def quote_bytes(assets: Path) -> bytes:
    return (assets / QUOTE_FILE).read_bytes()


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _forms(quote: bytes) -> dict[str, bytes]:
    return {
        "raw": quote,
        "hex": quote.hex().encode() + b"\n",
        "hex-upper-wrapped": b"\n".join(
            quote.hex().upper().encode()[i : i + 64] for i in range(0, 2 * len(quote), 64)
        ),
        "base64": base64.b64encode(quote),
        "base64-wrapped": base64.encodebytes(quote),
    }


@pytest.mark.parametrize("form", list(_forms(b"").keys()))
def test_json_output(
    form: str, quote_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, f"quote.{form}", _forms(quote_bytes)[form])
    assert main(["inspect", path, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    document = json.loads(out)
    assert set(document) == set(EXPECTED_JSON)
    assert set(document["report"]) == REPORT_KEYS
    assert set(document["qe_report"]) == REPORT_KEYS
    assert set(document["certification_data"]) == {"type", "size"}
    assert set(document["pck"]) == {
        "fmspc",
        "pce_id",
        "pce_svn",
        "cpu_svn",
        "tcb_components",
        "ppid",
        "sgx_type",
    }
    assert document == EXPECTED_JSON


@pytest.mark.parametrize("form", ["raw", "hex", "base64-wrapped"])
def test_human_output(
    form: str, quote_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "quote", _forms(quote_bytes)[form])
    assert main(["inspect", path]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    given_as = "raw" if form == "raw" else form.split("-")[0]
    assert out.splitlines()[0] == f"Quote v3 (SGX), 4600 bytes, given as {given_as}"
    expected_fragments = [
        "qe_svn             10",
        "pce_svn            15",
        "qe_vendor_id       939a7233f79c4ca9940a0db3957f0607 (Intel)",
        "mr_enclave         33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb",
        "mr_signer          8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff",
        "flags 0x0000000000000005 (INIT, MODE64BIT)",
        "flags 0x0000000000000015 (INIT, MODE64BIT, PROVISION_KEY)",
        "debug              no",
        "type               5 (PCK_CERT_CHAIN)",
        "size               3548 bytes",
        "trailing NUL       yes",
        "CN=Intel SGX PCK Certificate",
        "CN=Intel SGX PCK Processor CA",
        "CN=Intel SGX Root CA",
        "valid          2023-09-20T21:53:43Z to 2030-09-20T21:53:43Z",
        "form               Processor CA, 5 entries",
        "fmspc              00a067110000",
        "pce_svn            13",
        "tcb_components     11 11 2 2 255 1 0 0 0 0 0 0 0 0 0 0",
        "sgx_type           0 (STANDARD)",
    ]
    for fragment in expected_fragments:
        assert fragment in out, fragment


def test_json_without_pck_chain(
    quote_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Replace the chain by type-1 certification data (PPID in clear text).
    quote = Quote.from_bytes(quote_bytes)
    ppid = PpidCleartext(b"\x01" * 16, b"\x02" * 16, 13, b"\x00\x00")
    other = Quote(
        header=quote.header,
        report_body=quote.report_body,
        sig=quote.sig,
        attest_pub_key=quote.attest_pub_key,
        qe_report=quote.qe_report,
        qe_report_sig=quote.qe_report_sig,
        qe_auth_data=quote.qe_auth_data,
        certification_data=ppid,
    )
    path = _write(tmp_path, "ppid.bin", other.to_bytes())
    assert main(["inspect", path, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["pck"] is None
    assert document["certification_data"] == {"type": 1, "size": 36}
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "type               1 (PPID_CLEARTEXT)" in out
    assert "PCK certificate chain" not in out


def _one_clear_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("sgx-quote-helper: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"   \n", "only whitespace"),
        (b"this is not a quote!\n", "neither hex"),
        (b"garbage\n", "not a valid quote"),
        (b"\x03\x00\x02\x00" + bytes(100), "truncated"),
        (bytes(5000), "version 0 is not supported"),
    ],
)
def test_invalid_input_exits_non_zero_with_one_line(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "bad", content)
    for extra in ([], ["--json"]):
        assert main(["inspect", path, *extra]) != 0
        out, err = capsys.readouterr()
        assert out == ""
        assert message in _one_clear_error_line(err)


def test_truncated_real_quote(
    quote_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "cut.hex", quote_bytes[:-1].hex().encode())
    assert main(["inspect", path]) != 0
    line = _one_clear_error_line(capsys.readouterr().err)
    assert "read as hex, 4599 bytes" in line


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.bin"
    assert main(["inspect", str(missing)]) != 0
    line = _one_clear_error_line(capsys.readouterr().err)
    assert str(missing) in line
    assert "no such file" in line


def test_directory_instead_of_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path)]) != 0
    assert "is a directory" in _one_clear_error_line(capsys.readouterr().err)


def test_stdin(
    quote_bytes: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class _Stdin:
        buffer = io.BytesIO(base64.encodebytes(quote_bytes))

    monkeypatch.setattr("sys.stdin", _Stdin())
    assert main(["inspect", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED_JSON


def test_v4_tdx_quote(
    quote_bytes: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A v4 TDX quote (built from the real one's parts): the report keys are the TD body's.
    quote = Quote.from_bytes(quote_bytes)
    tdx = dataclasses.replace(
        quote,
        header=dataclasses.replace(quote.header, version=4, tee_type=0x81),
        report_body=Report2Body(mr_td=b"\x11" * 48),
    )
    path = _write(tmp_path, "tdx.bin", tdx.to_bytes())
    assert main(["inspect", path, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == set(EXPECTED_JSON)
    assert (document["version"], document["tee_type"]) == (4, 0x81)
    assert document["report"]["mr_td"] == "11" * 48
    assert document["pck"] == EXPECTED_JSON["pck"]
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Quote v4 (TDX)")
    assert "TD report body" in out


def test_oversized_input_is_refused_as_verify_refuses_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same cap and message as every other command reading a quote (_fs.read_limited).
    from sgx_quote_helper.sgx import MAX_ENCODED_QUOTE_SIZE

    big = tmp_path / "big.txt"
    big.write_bytes(b"0" * (MAX_ENCODED_QUOTE_SIZE + 1))
    assert main(["inspect", str(big)]) == 2
    err = capsys.readouterr().err
    assert f"{big} is larger than {MAX_ENCODED_QUOTE_SIZE} bytes" in err
    assert "it should hold a quote (raw, hex or base64)" in err
    stdin = io.TextIOWrapper(io.BytesIO(bytes(MAX_ENCODED_QUOTE_SIZE + 1)))
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["inspect", "-"]) == 2
    assert "stdin is larger than" in capsys.readouterr().err
