"""Regressions of issue 11's CLI probe: no traceback, usage errors exit 2, messages that
name the real cause, explicit directory modes, and no server path in PCCS answers."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cli_support import subparsers
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._cli import _args, build_parser, main
from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.verify import TrustAnchor

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = str(ASSETS / "intel-sgx-quote-v3.bin")
COLLATERAL = str(ASSETS / "intel-sgx-quote-v3.collateral.json")
AT = "2025-07-01T00:00:00Z"


def _exit_code(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """The exit status as the process would have it, argparse's SystemExit included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_no_option_takes_a_bare_int_or_float() -> None:
    # Item 4: every numeric option goes through the one validator module
    # (`_cli/_args.py`), so no value such as inf, nan, -1 or 70000 reaches a library
    # call unchecked. A bare `type=int`/`type=float` would let one through.
    numeric = []
    for name, parser in subparsers(build_parser()):
        for action in parser._actions:
            assert action.type not in (int, float), f"{name} {action.option_strings}"
            if action.type in (_args.path, _args.path_text):
                continue  # the non-empty path types (test_cli_empty_paths_and_closed_stdout)
            if getattr(action.type, "__module__", None) == _args.__name__:
                numeric.append(f"{name} {(action.option_strings or [action.dest])[0]}")
    # The list this test guards (a new numeric option joins it by using _args).
    assert {
        "verify --pccs-timeout",
        "verify --isv-prod-id",
        "verify --min-isv-svn",
        "verify --max-collateral-age",
        "quote --qe-svn",
        "quote --pce-svn",
        "quote --timeout",
        "doctor --timeout",
        "doctor --pccs-timeout",
        "doctor --warn-days",
        "sim tcb-recovery --qe-svn",
        "sim tcb-recovery --pce-svn",
        "sim set-tcb-status --pce-svn",
        "sim set-qe-status --qe-svn",
    } <= set(numeric)


VERIFY = ["verify", QUOTE, "--collateral", COLLATERAL]
VERIFY_PCCS = ["verify", QUOTE, "--pccs-url", "http://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # The seven tracebacks of the probe (item 4).
        ([*VERIFY, "--at", "99999999999999"], "Unix seconds must be 0..253402300799"),
        ([*VERIFY_PCCS, "--pccs-timeout", "-1"], "above 0"),
        ([*VERIFY_PCCS, "--pccs-timeout", "nan"], "above 0"),
        ([*VERIFY_PCCS, "--pccs-timeout", "inf"], "above 0"),
        (["quote", "--report-data", "00", "-o", "-", "--timeout", "inf"], "above 0"),
        (["quote", "--report-data", "00", "-o", "-", "--timeout", "1e300"], "at most 86400"),
        (["quote", "--report-data", "00", "-o", "-", "--qe-svn", "70000"], "0..65535"),
        # Usage errors that exited 1 like a rejected quote (item 5).
        ([*VERIFY, "--report-data", "zz"], "must be hex"),
        ([*VERIFY, "--report-data-prefix", "zz"], "must be hex"),
        ([*VERIFY, "--at", "garbage"], "Unix seconds or ISO 8601"),
        ([*VERIFY, "--at", "-5"], "Unix seconds or ISO 8601"),
        # Before the epoch, or outside datetime's range once in UTC (fix-sim item 5).
        ([*VERIFY, "--at", "1969-12-31T23:59:59Z"], "from 1970-01-01 to 9999-12-31 UTC"),
        ([*VERIFY, "--at", "0001-01-01T00:00:00+01:00"], "from 1970-01-01 to 9999-12-31 UTC"),
        ([*VERIFY, "--at", "9999-12-31T23:59:59-01:00"], "from 1970-01-01 to 9999-12-31 UTC"),
        ([*VERIFY, "--isv-prod-id", "-1"], "0..65535"),
        ([*VERIFY, "--isv-prod-id", "65536"], "0..65535"),
        ([*VERIFY, "--min-isv-svn", "x"], "expected an integer"),
        ([*VERIFY, "--max-collateral-age", "-1"], "must be an integer"),
        ([*VERIFY, "--accept-status", "Bogus"], "unknown TCB status"),
        ([*VERIFY, "--mrenclave", "zz"], "must be hex"),
        ([*VERIFY, "--mrsigner", "00"], "32 bytes"),
        ([*VERIFY, "--root-ca", "/nonexistent"], "cannot read"),
        (["verify", QUOTE, "--pccs-url", "file:///etc/passwd"], "http(s)://"),
        (["verify", QUOTE, "--pccs-url", "ftp://h"], "http(s)://"),
        ([*VERIFY, "--cache-dir", "x"], "need --pccs-url"),
        (["verify", "/nonexistent", "--collateral", COLLATERAL], "cannot read quote"),
        ([*VERIFY_PCCS, "--pccs-timeout", "0"], "above 0"),  # item 6: not "PCCS down"
        (["quote", "--report-data", "00", "-o", "-", "--qe-svn=-1"], "0..65535"),  # item 6
        (["quote", "--report-data", "zz", "-o", "-", "--platform", "."], "must be hex"),
        (["doctor", "--timeout", "nan"], "above 0"),
        (["doctor", "--warn-days", "inf"], "finite"),
        (["doctor", "--pccs-insecure"], "need --pccs-url"),
        (["pccs", "--sim", ".", "--listen", "localhost"], "HOST:PORT"),
        (["serve", "--max-connections", "-3"], "at least"),
    ],
)
def test_usage_errors_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, err = _exit_code(capsys, argv)
    assert code == 2, err
    assert message in err


def test_a_rejected_quote_still_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _exit_code(capsys, [*VERIFY, "--at", AT])
    assert code == 1  # genuine, but the default policy wants UpToDate
    assert "appraisal failed" in err
    code, err = _exit_code(capsys, [*VERIFY, "--at", "2040-01-01T00:00:00Z"])
    assert code == 1  # collateral expired: verification failed
    assert "0xA006" in err or "expired" in err.lower()


def test_json_mode_exits_2_on_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _exit_code(capsys, [*VERIFY, "--accept-status", "Bogus", "--json"])
    assert code == 2


def test_another_simulated_root_with_the_same_name_is_told_apart_by_key_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Item 6: two roots with the same DN looked the same in the error. Make a root
    # with Intel's own subject but another key: the message must show both key ids.
    intel = TrustAnchor.intel()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name.from_rfc4514_string(intel.subject)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    root = tmp_path / "root.der"
    root.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    other = TrustAnchor.from_file(root)
    code, err = _exit_code(capsys, [*VERIFY, "--at", AT, "--root-ca", str(root)])
    assert code == 1
    assert intel.key_id.hex()[:16] in err
    assert other.key_id.hex()[:16] in err


def test_garbage_tls_certificate_is_named_not_the_listen_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sim: Path
) -> None:
    garbage = tmp_path / "cert.pem"
    garbage.write_text("not a certificate\n")
    argv = ["pccs", "--sim", str(sim), "--listen", "127.0.0.1:0"]
    code, err = _exit_code(capsys, [*argv, "--tls-cert", str(garbage), "--tls-key", str(garbage)])
    assert code == 2
    assert "--tls-cert" in err
    assert "cannot listen" not in err


def test_malformed_platform_json_is_named_before_the_pck_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sim: Path, keep_logging: None
) -> None:
    # Item 6: a platform directory outside a `sim init` DIR with a broken
    # platform.json was reported as "no PCK certificate source".
    platform = tmp_path / "platform"
    shutil.copytree(sim / "platform", platform)
    (platform / "platform.json").write_text("{broken")
    argv = ["serve", "--platform", str(platform), "--socket", str(tmp_path / "s")]
    code, err = _exit_code(capsys, argv)
    assert code == 1
    assert "platform.json is unreadable or malformed" in err
    assert "PCK certificate source" not in err
    (platform / "platform.json").write_text((sim / "platform" / "platform.json").read_text())
    code, err = _exit_code(capsys, argv)
    assert code == 2
    assert f"the platform directory {platform} is not inside a `sim init` directory" in err


def _tree_modes(root: Path) -> dict[str, int]:
    modes = {".": root.stat().st_mode & 0o777}
    for path in root.rglob("*"):
        if path.name != ".lock":
            modes[str(path.relative_to(root))] = path.stat().st_mode & 0o777
    return modes


@pytest.fixture(scope="module")
def modes_by_umask(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, int]]:
    """`sim init` + `sim add-platform` under umask 000 and 077, in a child each."""
    result = {}
    for umask in (0o000, 0o077):
        path = tmp_path_factory.mktemp("umask") / "sim"
        script = (
            "import os, sys\n"
            f"os.umask({umask})\n"
            "from sgx_quote_helper._cli import main\n"
            "assert main(['sim', 'init', sys.argv[1]]) == 0\n"
            "assert main(['sim', 'add-platform', sys.argv[1], 'second']) == 0\n"
        )
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True)
        result[umask] = _tree_modes(path)
    return result


def test_sim_init_modes_do_not_depend_on_the_umask(
    modes_by_umask: dict[int, dict[str, int]],
) -> None:
    # Item 7: DIR was 0777 under umask 000 and 0700 under 077.
    assert modes_by_umask[0o000] == modes_by_umask[0o077]
    modes = modes_by_umask[0o077]
    for directory in (".", "pcs", "pcs/pck", "pcs/cache", "platform", "platforms"):
        assert modes[directory] == 0o755, directory
    assert modes["platform/enclave.secret"] == 0o644  # applications read it
    assert modes["platform/provision.secret"] == 0o600
    assert modes["platforms/second/provision.secret"] == 0o600
    assert modes["pcs/master.secret"] == 0o600
    assert modes["pcs/root-ca.key"] == 0o600


def test_sim_init_warns_on_a_directory_owned_by_another_user(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import pwd

    target = tmp_path / "foreign"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    os.chown(target, pwd.getpwnam("nobody").pw_uid, -1)
    with contextlib.redirect_stdout(io.StringIO()):
        code, err = _exit_code(capsys, ["sim", "init", str(target)])
    assert code == 0
    assert f"warning: {target} is owned by uid {pwd.getpwnam('nobody').pw_uid}" in err


def test_pccs_503_does_not_reveal_server_paths(sim: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Item 9: the answer to a broken policy file named the file's path.
    with (
        caplog.at_level(logging.ERROR, logger="sgx_quote_helper"),
        serve_in_thread(sim) as service,
        httpx.Client(base_url=service.url, timeout=10) as http,
    ):
        # Broken after start-up (start-up refuses a broken policy on its own).
        (sim / "pcs" / "policy.json").write_text("{not json")
        response = http.get("/sgx/certification/v4/qe/identity")
    assert response.status_code == 503
    answer = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    assert str(sim) not in answer
    assert "policy.json" not in answer
    assert "/" not in response.headers["Error-Message"]
    logged = " ".join(str(getattr(record, "fields", "")) for record in caplog.records)
    assert "policy.json" in logged  # the operator still learns which file


def test_the_library_refuses_an_out_of_range_qe_svn_with_its_own_error(
    tmp_path: Path, sim: Path
) -> None:
    # The CLI's range check has a library counterpart: in-process quoting with
    # qe_svn=70000 ended in OverflowError from int.to_bytes.
    from sgx_quote_helper import client
    from sgx_quote_helper.errors import UsageError

    with pytest.raises(UsageError, match=r"ISVSVN must be 0\.\.65535, got 70000"):
        client.in_process(sim / "platform", state_dir=tmp_path / "state", qe_svn=70000)
