"""``sgx-quote-helper verify`` on the real Intel quote and collateral of ``tests/assets``."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from sgx_quote_helper._cli import main
from sgx_quote_helper._cli._verify import parse_time
from sgx_quote_helper.errors import UsageError

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = ASSETS / "intel-sgx-quote-v3.bin"
COLLATERAL = ASSETS / "intel-sgx-quote-v3.collateral.json"
AT = "2025-07-01T00:00:00Z"
STATUS = "ConfigurationAndSWHardeningNeeded"
MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def base(quote: Path = QUOTE) -> list[str]:
    return [str(quote), "--collateral", str(COLLATERAL), "--at", AT]


def test_accepted_status_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *base(), "--accept-status", STATUS)
    assert code == 0
    assert err == ""
    assert f"verified: {STATUS} (SGX_QL_QV_RESULT_CONFIG_AND_SW_HARDENING_NEEDED 0xA008)" in out
    assert "INTEL-SA-00289, INTEL-SA-00615" in out
    assert "appraisal: passed" in out
    assert "SIMULATED" not in out


def test_default_policy_names_the_status(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *base())
    assert code == 1
    assert "appraisal: FAILED" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("sgx-quote-helper: error: appraisal failed: status: expected ")
    assert f"UpToDate, got {STATUS}" in lines[0]
    assert "Traceback" not in err


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, *base(), "--accept-status", STATUS, "--mrenclave", MRENCLAVE, "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["verified"] is True
    assert data["status"] == STATUS
    assert data["qv_result"] == {
        "value": 0xA008,
        "name": "SGX_QL_QV_RESULT_CONFIG_AND_SW_HARDENING_NEEDED",
    }
    assert data["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert data["simulated"] is False
    assert data["report"]["mr_enclave"] == MRENCLAVE
    assert data["qe_tcb"]["status"] == "UpToDate"
    assert data["platform_tcb"]["status"] == STATUS
    assert data["collateral_expires"] == "2025-07-19T10:01:18Z"
    assert data["root_key_id"].startswith("46e403bd34f05a3f")
    assert data["appraisal"]["passed"] is True
    assert data["appraisal"]["failures"] == []


def test_json_appraisal_failures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *base(), "--isv-prod-id", "3", "--json")
    assert code == 1
    failures = json.loads(out)["appraisal"]["failures"]
    assert [f["claim"] for f in failures] == ["isv_prod_id", "status"]
    assert failures[0] == {"claim": "isv_prod_id", "expected": "3", "actual": "0"}
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("at", "error_type", "text"),
    [
        ("1750330570", "CollateralNotYetValid", "TCBInfo issue date is in the future"),
        ("1752919279", "CollateralExpired", "QE Identity expired"),
        ("2026-10-01T00:00:00+02:00", "CrlExpired", "CrlExpired"),
    ],
)
def test_verification_failure_is_one_line(
    capsys: pytest.CaptureFixture[str], at: str, error_type: str, text: str
) -> None:
    args = [str(QUOTE), "--collateral", str(COLLATERAL), "--at", at]
    code, out, err = run(capsys, *args, "--accept-status", STATUS)
    assert code == 1
    assert out == ""
    # One line naming the error and its codes, then what to check.
    first, *checks = err.splitlines()
    assert first.startswith("sgx-quote-helper: error: quote verification failed: ")
    assert text in first
    assert "0xA006" in first
    assert checks
    assert all(line.startswith("  check: ") for line in checks)

    code, out, err = run(capsys, *args, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["verified"] is False
    assert data["error"]["type"] == error_type
    assert data["error"]["qv_result"]["value"] == 0xA006
    assert text in data["error"]["engine_message"]


@pytest.mark.parametrize("at", ["1750330571", "1752919278", "2025-07-19T10:01:18Z"])
def test_window_edges(capsys: pytest.CaptureFixture[str], at: str) -> None:
    args = [str(QUOTE), "--collateral", str(COLLATERAL), "--at", at, "--accept-status", STATUS]
    assert run(capsys, *args)[0] == 0


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_quote_as_text(capsys: pytest.CaptureFixture[str], tmp_path: Path, encoding: str) -> None:
    raw = QUOTE.read_bytes()
    text = raw.hex() if encoding == "hex" else base64.b64encode(raw).decode()
    path = tmp_path / f"quote.{encoding}"
    path.write_text(text + "\n")
    assert run(capsys, *base(path), "--accept-status", STATUS)[0] == 0


def test_explicit_intel_root_and_policy_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    from sgx_quote_helper.sgx import Quote

    root = Quote.from_bytes(QUOTE.read_bytes()).pck_chain()[-1]
    root_path = tmp_path / "intel-root.pem"
    root_path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    policy = tmp_path / "policy.toml"
    policy.write_text(f'mrenclave = "{MRENCLAVE}"\naccept_statuses = ["{STATUS}"]\n')
    code, out, _ = run(capsys, *base(), "--root-ca", str(root_path), "--policy", str(policy))
    assert code == 0
    assert "appraisal: passed" in out


def test_policy_file_excludes_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    code, _, err = run(capsys, *base(), "--policy", str(policy), "--isv-prod-id", "0")
    assert code == 2
    assert "cannot be combined" in err


def test_tampered_quote(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = bytearray(QUOTE.read_bytes())
    data[200] ^= 1
    path = tmp_path / "tampered.bin"
    path.write_bytes(bytes(data))
    code, _, err = run(capsys, *base(path), "--accept-status", STATUS)
    assert code == 1
    assert "0xA004" in err
    assert "signature" in err


def test_simulated_root_refuses_the_intel_quote(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Simulated SGX Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    root = tmp_path / "root.der"
    root.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    code, _, err = run(capsys, *base(), "--root-ca", str(root))
    assert code == 1
    assert "not the trust anchor" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cache-dir", "x"], "need --pccs-url"),
        (["--root-ca", "/nonexistent/root.der"], "cannot read root CA"),
        (["--accept-status", "Fine"], "unknown TCB status"),
        (["--mrenclave", "abcd"], "MRENCLAVE must be 32 bytes"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run(capsys, str(QUOTE), "--collateral", str(COLLATERAL), *args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_missing_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, str(tmp_path / "none.bin"), "--collateral", str(COLLATERAL))
    assert code == 2  # a wrong argument
    assert "cannot read quote" in err
    bad = tmp_path / "collateral.json"
    shutil.copy(COLLATERAL, bad)
    bad.write_text("{}")
    code, _, err = run(capsys, str(QUOTE), "--collateral", str(bad))
    assert code == 1
    assert "QuoteCollateralV3" in err


def test_needs_exactly_one_collateral_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify", str(QUOTE)])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main(["verify", str(QUOTE), "--collateral", "x", "--pccs-url", "http://h"])
    capsys.readouterr()


def test_unreachable_pccs(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run(capsys, str(QUOTE), "--pccs-url", f"http://127.0.0.1:{port}", "--at", AT)
    assert code == 1
    assert "SGX_QL_NETWORK_ERROR 0xE019" in err


def test_parse_time() -> None:
    assert parse_time("1751328000") == parse_time(AT)
    assert parse_time("2025-07-01T02:00:00+02:00") == parse_time(AT)
    assert parse_time("2025-07-01T00:00:00") == parse_time(AT)
    with pytest.raises(UsageError):
        parse_time("July")


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` zero bytes that takes no disk space."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def _over_cap_inputs(tmp_path: Path) -> list[tuple[list[str], str, str]]:
    from sgx_quote_helper.pccs import MAX_COLLATERAL_JSON_SIZE
    from sgx_quote_helper.sgx import MAX_ENCODED_QUOTE_SIZE
    from sgx_quote_helper.verify._anchor import MAX_ROOT_CA_FILE_SIZE
    from sgx_quote_helper.verify._policy import MAX_POLICY_FILE_SIZE

    quote = _sparse(tmp_path / "quote", MAX_ENCODED_QUOTE_SIZE + 1)
    collateral = _sparse(tmp_path / "collateral", MAX_COLLATERAL_JSON_SIZE + 1)
    root = _sparse(tmp_path / "root", MAX_ROOT_CA_FILE_SIZE + 1)
    policy = _sparse(tmp_path / "policy", MAX_POLICY_FILE_SIZE + 1)
    return [
        (
            [str(quote), "--collateral", str(COLLATERAL)],
            f"{quote} is larger than 396273 bytes",
            "a quote",
        ),
        (
            [str(QUOTE), "--collateral", str(collateral)],
            f"{collateral} is larger than 8 MiB",
            "collateral",
        ),
        (
            [*base(), "--root-ca", str(root)],
            f"{root} is larger than 1 MiB",
            "a root CA certificate",
        ),
        (
            [*base(), "--policy", str(policy)],
            f"{policy} is larger than 1 MiB",
            "an appraisal policy",
        ),
    ]


def test_every_input_file_is_capped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Each file is read only up to its cap (plus one byte), so /dev/zero or a FIFO
    # cannot exhaust memory; one byte over the cap is a usage error naming the file,
    # the cap and what the file should hold.
    for args, message, holds in _over_cap_inputs(tmp_path):
        code, _, err = run(capsys, *args)
        assert code == 2, args
        assert message in err
        assert f"it should hold {holds}" in err
        assert "Traceback" not in err


def test_dev_zero_is_refused_for_each_input(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["/dev/zero", "--collateral", str(COLLATERAL)],
        [str(QUOTE), "--collateral", "/dev/zero"],
        [*base(), "--root-ca", "/dev/zero"],
        [*base(), "--policy", "/dev/zero"],
    ):
        code, _, err = run(capsys, *args)
        assert code == 2, args
        assert "/dev/zero is larger than" in err


def test_stdin_is_capped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from sgx_quote_helper.sgx import MAX_ENCODED_QUOTE_SIZE

    stdin = io.TextIOWrapper(io.BytesIO(bytes(MAX_ENCODED_QUOTE_SIZE + 1)))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, _, err = run(capsys, "-", "--collateral", str(COLLATERAL))
    assert code == 2
    assert "stdin is larger than 396273 bytes, the most accepted for a quote" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
        (b'mrenclave = "\xff\xfe"\n', "not valid TOML: 'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_malformed_policy_files_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(content)
    code, _, err = run(capsys, *base(), "--policy", str(policy))
    assert code == 2
    assert f"policy file '{policy}' is not valid TOML" in err
    assert message in err
    assert "Traceback" not in err


def test_deeply_nested_collateral_is_malformed_collateral(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # As `{}` above: exit 1 with the parser's reason, not a RecursionError.
    nested = tmp_path / "collateral.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run(capsys, str(QUOTE), "--collateral", str(nested))
    assert code == 1
    assert "not dcap-qvl QuoteCollateralV3 JSON" in err
    assert "Traceback" not in err
