"""The `sim` and `pccs` commands."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_support import raw_exchange

from sgx_quote_helper._cli import main
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pcs import Manufacturer

PCCS = [sys.executable, "-m", "sgx_quote_helper", "pccs"]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "sim"
    assert main(["sim", "init", str(path), "--pccs-url", "http://127.0.0.1:9"]) == 0
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The exit status as the process would have it (argparse's SystemExit included)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_creates_the_manufacturer_and_one_registered_platform(sim_dir: Path) -> None:
    pcs = sim_dir / "pcs"
    assert (pcs / "root-ca.der").is_file()
    assert (pcs / "root-ca.pem").is_file()
    description = json.loads((sim_dir / "platform" / "platform.json").read_text())
    manufacturer = Manufacturer.load(sim_dir)
    [platform] = manufacturer.platforms()
    assert platform.path == "platform"
    assert bytes.fromhex(description["ppid"]) == platform.ppid
    assert bytes.fromhex(description["qe_id"]) == platform.qe_id
    assert bytes.fromhex(description["fmspc"]) == platform.fmspc
    assert description["tcb_components"] == list(platform.tcb_components)
    assert (sim_dir / "platform" / "provision.secret").stat().st_mode & 0o777 == 0o600
    assert manufacturer.pccs_url == "http://127.0.0.1:9"
    # Exactly this release's QE and PCE SVNs, with the platform's TCB, are UpToDate.
    policy = manufacturer.policy()
    assert [lv.isv_svn for lv in policy.qe_levels if lv.status == "UpToDate"] == [QE_SVN]
    top = policy.fmspcs[platform.fmspc].levels[0]
    assert (top.components, top.pce_svn, top.status) == (
        platform.tcb_components,
        PCE_SVN,
        "UpToDate",
    )


def test_init_refuses_an_existing_directory_and_pcs_is_not_the_sim_dir(
    sim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "sim", "init", str(sim_dir))
    assert code == 1
    assert "already holds a manufacturer" in err
    code, _, err = _run(capsys, "sim", "show", str(sim_dir / "pcs"))
    assert code == 1
    assert f"pass the simulation directory {sim_dir}" in err


def test_init_on_an_unusable_path_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = _run(capsys, "sim", "init", str(blocker))
    assert code == 1
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert f"cannot create the manufacturer directory {blocker / 'pcs'}" in err


def test_add_platform_with_its_own_fmspc_and_ca(
    sim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys,
        "sim",
        "add-platform",
        str(sim_dir),
        "second",
        "--fmspc",
        "00a067110000",
        "--ca",
        "platform",
        "--components",
        "12,12,3",
        "--json",
    )
    assert code == 0
    document = json.loads(out)
    assert document["fmspc"] == "00A067110000"
    assert document["caType"] == "platform"
    assert (sim_dir / "platforms" / "second" / "platform.json").is_file()
    manufacturer = Manufacturer.load(sim_dir)
    second = manufacturer.find_platform("second")
    assert second.tcb_components == (12, 12, 3, *[0] * 13)
    assert manufacturer.find_platform(sim_dir / "platforms" / "second") == second
    assert bytes.fromhex("00A067110000") in manufacturer.policy().fmspcs
    code, _, err = _run(capsys, "sim", "add-platform", str(sim_dir), "second")
    assert code == 1
    assert "exists already" in err


def test_policy_commands(sim_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(sim_dir)
    code, out, _ = _run(capsys, "sim", "tcb-recovery", d, "--qe-svn", str(QE_SVN + 1))
    assert code == 0
    assert "TCB evaluation data number 2" in out
    assert _run(capsys, "sim", "tcb-recovery", d)[0] == 2  # usage: nothing to recover

    code, out, _ = _run(
        capsys,
        "sim",
        "set-tcb-status",
        d,
        "--platform",
        "default",
        "--status",
        "ConfigurationNeeded",
        "--advisory",
        "SIM-SA-00001",
    )
    assert code == 0
    assert "ConfigurationNeeded SIM-SA-00001" in out
    assert _run(capsys, "sim", "set-qe-status", d, "--qe-svn", "3", "--status", "Revoked")[0] == 0
    assert _run(capsys, "sim", "revoke", d, "--platform", str(sim_dir / "platform"))[0] == 0
    assert _run(capsys, "sim", "revoke", d, "--serial", "ABCDEF")[0] == 0
    assert _run(capsys, "sim", "expire", d, "--artifact", "qeIdentity")[0] == 0

    manufacturer = Manufacturer.load(sim_dir)
    policy = manufacturer.policy()
    default = manufacturer.find_platform("default")
    assert policy.tcb_evaluation_data_number == 2
    assert policy.revocations.revoked_ppids().keys() == {default.ppid}
    assert [r.subject for r in policy.revocations.pck_certificates] == ["ABCDEF"]
    assert policy.validity.expired == {"qeIdentity"}
    assert (3, "Revoked") in [(lv.isv_svn, lv.status) for lv in policy.qe_levels]

    code, out, _ = _run(capsys, "sim", "show", d, "--json")
    assert code == 0
    assert json.loads(out)["policy"]["validity"]["expired"] == ["qeIdentity"]
    assert _run(capsys, "sim", "expire", d, "--clear")[0] == 0
    assert Manufacturer.load(sim_dir).policy().validity.expired == frozenset()
    code, _, err = _run(capsys, "sim", "revoke", d, "--platform", "nobody")
    assert code == 1
    assert "no registered platform" in err


@pytest.mark.parametrize(
    "serial",
    ["00", "-5", "8" + "0" * 39, "1" + "0" * 50],
    ids=["zero", "negative", "160-bit", "201-bit"],
)
def test_revoke_refuses_a_serial_no_certificate_can_carry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], serial: str
) -> None:
    sim = tmp_path / "sim"
    Manufacturer.create(sim)
    policy_before = (sim / "pcs" / "policy.json").read_bytes()
    code, _, err = _run(capsys, "sim", "revoke", str(sim), f"--serial={serial}")
    assert code == 2
    assert "argument --serial: serial number" in err
    assert "Traceback" not in err
    assert (sim / "pcs" / "policy.json").read_bytes() == policy_before
    # The largest valid serial (159 bits) is accepted.
    assert _run(capsys, "sim", "revoke", str(sim), "--serial", "7" + "F" * 39)[0] == 0


def test_init_refuses_an_empty_directory_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "sim", "init", "")
    assert code == 2
    assert "argument DIR: expected a path, got an empty string" in err
    assert list(tmp_path.iterdir()) == []  # nothing written to the current directory
    assert _run(capsys, "sim", "show", "")[0] == 2
    code, _, err = _run(capsys, "pccs", "--sim", "", "--listen", "127.0.0.1:0")
    assert code == 2
    assert "argument --sim: expected a path, got an empty string" in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "without its partner"),
        ("http://127.0.0.1:99999", "the port must be a number 1..65535"),
        ("ftp://127.0.0.1", "must start with http:// or https://"),
        ("http://", "it has no host"),
        ("http://pccs/?x=1", "it has a query"),
        ("http://user:secret@pccs", "user:password@ is not supported"),
        ("http://pccs host", "whitespace"),
        ("", "it is empty"),
        # The CDP is an IA5String: cryptography refuses a U-label host.
        ("http://b\u00fccher.example", "not ASCII, as CRL distribution points must be"),
    ],
)
def test_init_refuses_a_pccs_url_that_cannot_be_a_crl_distribution_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    sim = tmp_path / "sim"
    code, _, err = _run(capsys, "sim", "init", str(sim), "--pccs-url", url)
    assert code == 2
    assert f"argument --pccs-url: PCCS URL {url!r}" in err
    assert message in err
    assert not sim.exists()
    # The library refuses it too, as a usage error (exit status 2 in any command).
    with pytest.raises(UsageError, match=message):
        Manufacturer.create(sim, pccs_url=url)
    assert not sim.exists()


def test_init_accepts_https_ipv6_and_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = tmp_path / "sim"
    url = "https://[::1]:8443/pccs/"
    assert _run(capsys, "sim", "init", str(sim), "--pccs-url", url)[0] == 0
    assert Manufacturer.load(sim).pccs_url == "https://[::1]:8443/pccs"


def _self_signed_tls(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pccs test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.pem", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("tls", [False, True])
def test_pccs_command_serves_until_terminated(sim_dir: Path, tmp_path: Path, tls: bool) -> None:
    argv = [*PCCS, "--sim", str(sim_dir), "--listen", "127.0.0.1:0", "--log-format", "json"]
    scheme, verify = "http", ssl.create_default_context()
    if tls:
        cert_path, key_path = _self_signed_tls(tmp_path)
        argv += ["--tls-cert", str(cert_path), "--tls-key", str(key_path)]
        scheme, verify = "https", ssl.create_default_context(cafile=str(cert_path))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            record = json.loads(line)
            if record["event"] == "pccs.listening":
                assert record["tls"] is tls
                port = record["port"]
        assert port, "the service did not report its port"
        url = f"{scheme}://127.0.0.1:{port}/sgx/certification/v4/rootcacrl"
        response = httpx.get(url, verify=verify)
        assert response.status_code == 200
        assert bytes.fromhex(response.text)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
    assert process.returncode == 0  # a graceful shutdown on SIGTERM


def test_pccs_refuses_a_bad_listen_address(
    sim_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "pccs", "--sim", str(sim_dir), "--listen", "localhost")
    assert code == 2
    assert "HOST:PORT" in err


def test_pccs_bad_http_is_a_400_and_one_json_warning(sim_dir: Path) -> None:
    """Malformed HTTP: a 400 and one ``http.bad_request`` line, the log still JSON lines.

    Before, a bad chunk logged "Exception in ASGI application" with an h11
    traceback, and every bad request a bare "Invalid HTTP request received.".
    """
    argv = [*PCCS, "--sim", str(sim_dir), "--listen", "127.0.0.1:0", "--log-format", "json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        first = json.loads(process.stderr.readline())
        assert first["event"] == "pccs.listening"
        port = first["port"]
        chunked = (
            b"POST /sgx/certification/v4/pckcert HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"
        )
        for request in (chunked, b"GARBAGE\r\n\r\n"):
            assert raw_exchange(port, request).startswith(b"HTTP/1.1 400 ")
        healthy = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert raw_exchange(port, healthy).startswith(b"HTTP/1.1 200 ")
        process.terminate()
        _, rest = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    records = [json.loads(line) for line in rest.splitlines()]  # every line is JSON
    warnings = [r for r in records if r["level"] != "info"]
    assert [r["event"] for r in warnings] == ["http.bad_request", "http.bad_request"]
    assert "chunk" in warnings[0]["reason"]
    assert warnings[0]["server"] == "pccs"
    assert "Traceback" not in rest
