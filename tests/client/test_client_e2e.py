"""End to end: the client against the real daemon (``QuoteHelperServer``), and in process.

Two set-ups:

- a platform certified by a throw-away test chain (``make_platform``), served by
  the daemon built from ``create_backend``: checks the real daemon's answers map
  to the right client errors;
- a real ``sim init`` directory, served by ``build_server`` (the production
  assembly: PCK chain from the embedded manufacturer): a quote out of process and
  one in process both parse, and the ``quote`` command works in both modes.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_client_helpers import (
    TestPlatform,
    app_report,
    make_platform,
    running_daemon,
    running_server,
)

from sgx_quote_helper import client
from sgx_quote_helper._cli import main
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.platform import Platform, demo_app_identity
from sgx_quote_helper.service import ServiceConfig, build_server
from sgx_quote_helper.sgx import QeReportInfo, Quote, Quote3Error, ReportBody

APP = demo_app_identity()


@pytest.fixture(autouse=True)
def _fresh_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SGX_AESM_ADDR", raising=False)
    client._reset_mode_for_tests()
    yield
    client._reset_mode_for_tests()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> TestPlatform:
    return make_platform(tmp_path_factory.mktemp("e2e"))


# ---- the real daemon over a test-certified platform ------------------------------------------


def test_out_of_process_quote_from_the_real_daemon(platform: TestPlatform, tmp_path: Path) -> None:
    socket_path = tmp_path / "aesm.socket"
    with running_daemon(socket_path, platform, tmp_path / "state"):
        quoter = client.out_of_process(socket_path)
        target = quoter.get_target_info()
        report = app_report(platform.cpu(), target, b"e2e")
        info = QeReportInfo(nonce=b"N" * 16, app_enclave_target_info=APP.target_info())
        result = quoter.get_quote_result(
            report,
            qe_report_info=info,
            verify_qe_report=True,
            check_qe_report_mac=client.sim_qe_report_mac_check(platform.cpu(), APP),
        )
        size = quoter.get_quote_size()
        low = client.AesmClient(socket_path)
        assert low.get_supported_att_key_id_num() == 1
        assert low.select_att_key_id() == low.get_supported_att_key_ids(1)[0]
    parsed = Quote.from_bytes(result.quote)
    assert len(result.quote) == size
    assert parsed.report_body == report.body
    assert parsed.header.qe_svn == 10


def test_real_daemon_refuses_a_forged_report(platform: TestPlatform, tmp_path: Path) -> None:
    socket_path = tmp_path / "aesm.socket"
    with running_daemon(socket_path, platform, tmp_path / "state"):
        quoter = client.out_of_process(socket_path)
        quoter.get_target_info()
        forged = app_report(platform.cpu(), APP.target_info())  # not for the QE
        with pytest.raises(client.ReportRejectedError) as info:
            quoter.get_quote(forged)
    error = info.value
    assert (error.sgx_status, error.quote3_error, error.aesm_error) == (0x3001, 0xE001, 47)
    assert "not made for the QE's target info" in error.diagnostics()


def test_real_daemon_without_pccs_is_a_network_failure(
    platform: TestPlatform, tmp_path: Path
) -> None:
    def down(query: object) -> object:
        raise ConnectionRefusedError("PCCS down")

    socket_path = tmp_path / "aesm.socket"
    with (
        running_daemon(
            socket_path,
            platform,
            tmp_path / "state",
            pck_source=down,  # type: ignore[arg-type]
            wait_ready=False,
        ),
        pytest.raises(client.NetworkFailureError) as info,
    ):
        client.out_of_process(socket_path).get_target_info()
    assert (info.value.sgx_status, info.value.quote3_error, info.value.aesm_error) == (
        0x4007,
        Quote3Error.NETWORK_FAILURE,
        12,
    )


def test_real_daemon_allow_list_refusal_is_diagnosed(
    platform: TestPlatform, tmp_path: Path
) -> None:
    socket_path = tmp_path / "aesm.socket"
    with (
        running_daemon(socket_path, platform, tmp_path / "state", allow_uid=(4242,)),
        pytest.raises(client.UnexpectedError) as info,
    ):
        client.out_of_process(socket_path).get_target_info()
    assert (info.value.sgx_status, info.value.quote3_error) == (0x0001, 0xE001)
    assert "--allow-uid" in info.value.diagnostics()


# ---- a real `sim init` directory and the production daemon assembly --------------------------


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sim") / "sim"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["sim", "init", str(directory)]) == 0
    return directory


@contextlib.contextmanager
def sim_daemon(sim_dir: Path, tmp_path: Path) -> Iterator[Path]:
    socket_path = tmp_path / "aesm.socket"
    config = ServiceConfig(
        socket=socket_path, platform=sim_dir / "platform", state_dir=tmp_path / "daemon-state"
    )
    with running_server(lambda: build_server(config)):
        yield socket_path


def test_sim_init_platform_quotes_out_of_process_and_in_process(
    sim_dir: Path, tmp_path: Path
) -> None:
    cpu = Platform.load(sim_dir / "platform", need_provisioning=False).cpu()
    with sim_daemon(sim_dir, tmp_path) as socket_path:
        out = client.out_of_process(socket_path)
        out_quote = out.get_quote(app_report(cpu, out.get_target_info(), b"out"))

    client._reset_mode_for_tests()  # a new "process" for the in-process half
    inproc = client.in_process(sim_dir / "platform", state_dir=tmp_path / "app", qe_svn=QE_SVN - 2)
    in_quote = inproc.get_quote(app_report(cpu, inproc.get_target_info(), b"in"))

    out_parsed, in_parsed = Quote.from_bytes(out_quote), Quote.from_bytes(in_quote)
    assert (out_parsed.header.qe_svn, out_parsed.header.pce_svn) == (QE_SVN, PCE_SVN)
    assert (in_parsed.header.qe_svn, in_parsed.header.pce_svn) == (QE_SVN - 2, PCE_SVN)
    assert out_parsed.report_body.report_data[:3] == b"out"
    assert in_parsed.report_body.report_data[:2] == b"in"
    assert out_parsed.has_pck_chain
    assert in_parsed.has_pck_chain
    assert out_parsed.qe_id == in_parsed.qe_id  # the same platform


def test_quote_command_in_both_modes(
    sim_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform_dir = str(sim_dir / "platform")
    with sim_daemon(sim_dir, tmp_path) as socket_path:
        monkeypatch.setenv("SGX_AESM_ADDR", f"unix:{socket_path}")
        out_file = tmp_path / "out.quote"
        code = main(
            ["quote", "--platform", platform_dir, "--report-data", "c0ffee", "-o", str(out_file)]
        )
        assert code == 0, capsys.readouterr().err
    out_summary = capsys.readouterr().err
    assert "mode=out-of-process" in out_summary
    assert f"qe_svn={QE_SVN}" in out_summary

    client._reset_mode_for_tests()
    monkeypatch.delenv("SGX_AESM_ADDR")
    in_file = tmp_path / "in.quote"
    args = ["quote", "--platform", platform_dir, "--report-data", "0xc0ffee", "-o", str(in_file)]
    args += ["--qe-svn", str(QE_SVN - 1), "--state-dir", str(tmp_path / "cli-state")]
    assert main(args) == 0
    in_summary = capsys.readouterr().err
    assert "mode=in-process" in in_summary
    assert f"qe_svn={QE_SVN - 1}" in in_summary

    for path, qe_svn in ((out_file, QE_SVN), (in_file, QE_SVN - 1)):
        parsed = Quote.from_bytes(path.read_bytes())
        assert parsed.header.qe_svn == qe_svn
        assert parsed.report_body.report_data == bytes.fromhex("c0ffee").ljust(64, b"\0")
        body = parsed.report_body
        assert isinstance(body, ReportBody)
        assert body.mr_enclave == APP.mr_enclave


def test_quote_command_errors_are_one_clear_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sim_dir: Path,
) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", f"unix:{tmp_path}/absent.socket")
    args = ["quote", "--platform", str(sim_dir / "platform"), "--report-data", "00", "-o", "-"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "SGX_ERROR_SERVICE_UNAVAILABLE 0x4001" in err
    assert "absent.socket" in err
    assert "Traceback" not in err
    client._reset_mode_for_tests()
    # Usage errors exit 2, as argparse's own (issue 11).
    assert main(["quote", "--platform", str(sim_dir), "--report-data", "00" * 65, "-o", "-"]) == 2
    assert "at most 64 bytes" in capsys.readouterr().err
    monkeypatch.delenv("SGX_QUOTE_HELPER_PLATFORM", raising=False)
    assert main(["quote", "--report-data", "00", "-o", "-"]) == 2
    assert "--platform" in capsys.readouterr().err
