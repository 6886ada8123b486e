"""``sim report``: the simulated EREPORT command (hooked into ``sim`` by ``_cli/_sim.py``)."""

from __future__ import annotations

import argparse
import io
import sys
import types
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sgx_quote_helper._cli._sim_report import add_report_command
from sgx_quote_helper.errors import SgxQuoteHelperError, UsageError
from sgx_quote_helper.platform import (
    ManifestError,
    Platform,
    PlatformDirectoryError,
    ReportMacError,
    create_platform,
    demo_app_identity,
    load_manifest,
    quoting_enclave_identity,
)
from sgx_quote_helper.sgx import Report

QE_TARGET = quoting_enclave_identity(10).target_info().to_bytes().hex()


@pytest.fixture(scope="module")
def ppid_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def platform_dir(tmp_path: Path, ppid_key_pem: str) -> Path:
    path = tmp_path / "platform"
    create_platform(
        path,
        ppid=bytes(16),
        qe_id=bytes(16),
        fmspc=bytes(6),
        pce_id=bytes(2),
        tcb_components=[1] * 16,
        provisioning_secret=bytes(range(32)),
        ppid_encryption_key_pem=ppid_key_pem,
    )
    return path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sgx-quote-helper")
    commands = parser.add_subparsers(dest="command")
    sim = commands.add_parser("sim").add_subparsers(dest="sim_command")
    add_report_command(sim)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_writes_a_report_for_the_target(platform_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.bin"
    code = run(
        "sim", "report", "--platform", str(platform_dir),
        "--target-info", QE_TARGET, "--report-data", "cafe", "-o", str(out),
    )  # fmt: skip
    assert code == 0
    raw = out.read_bytes()
    assert len(raw) == 432
    report = Report.from_bytes(raw)
    assert report.body.report_data == b"\xca\xfe" + bytes(62)
    assert report.body.mr_enclave == demo_app_identity().mr_enclave
    cpu = Platform.load(platform_dir, need_provisioning=False).cpu()
    cpu.verify_report(report, quoting_enclave_identity(10))
    with pytest.raises(ReportMacError):
        cpu.verify_report(report, quoting_enclave_identity(11))


def test_enclave_manifest_and_stdout(
    platform_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "app.toml"
    manifest.write_text(
        'name = "mine"\ncode = { text = "x" }\nsigner = { seed = "s" }\nisv_svn = 9\n'
    )
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(buffer=buffer))
    code = run(
        "sim", "report", "--platform", str(platform_dir), "--enclave", str(manifest),
        "--target-info", QE_TARGET, "--report-data", "0x" + "11" * 64, "-o", "-",
    )  # fmt: skip
    assert code == 0
    report = Report.from_bytes(buffer.getvalue())
    assert report.body.mr_enclave == load_manifest(manifest).mr_enclave
    assert report.body.isv_svn == 9
    assert report.body.report_data == b"\x11" * 64


@pytest.mark.parametrize(
    ("target", "data", "error", "message"),
    [
        ("zz", "00", UsageError, "hex"),
        ("00" * 511, "00", UsageError, "512 bytes"),
        (QE_TARGET, "00" * 65, UsageError, "at most 64"),
    ],
)
def test_bad_arguments(
    platform_dir: Path,
    tmp_path: Path,
    target: str,
    data: str,
    error: type[SgxQuoteHelperError],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        run(
            "sim", "report", "--platform", str(platform_dir), "--target-info", target,
            "--report-data", data, "-o", str(tmp_path / "r"),
        )  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_missing_platform_or_manifest(tmp_path: Path, platform_dir: Path) -> None:
    with pytest.raises(PlatformDirectoryError):
        run(
            "sim", "report", "--platform", str(tmp_path / "none"), "--target-info", QE_TARGET,
            "--report-data", "00", "-o", str(tmp_path / "r"),
        )  # fmt: skip
    with pytest.raises(ManifestError):
        run(
            "sim", "report", "--platform", str(platform_dir), "--enclave", str(tmp_path / "no"),
            "--target-info", QE_TARGET, "--report-data", "00", "-o", str(tmp_path / "r"),
        )  # fmt: skip
