"""``doctor`` against a healthy set-up and against each broken one it claims to diagnose.

The healthy set-up is real: a ``sim init`` directory, its PCCS
(``serve_in_thread``) and the production daemon assembly on a socket in a
world-searchable temporary directory. Each broken set-up changes one thing.
Every test checks the statuses, the SGX codes named and the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from doctor_harness import (
    free_tcp_port,
    run_as_nobody,
    running_daemon,
    silent_listener,
    sim_init,
    stale_socket,
    world_dir,
)

from sgx_quote_helper._cli import main
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.doctor import (
    CHECK_NAMES,
    CheckStatus,
    DoctorOptions,
    DoctorReport,
    run_doctor,
)
from sgx_quote_helper.pcs import Manufacturer, RunningService, serve_in_thread
from sgx_quote_helper.service import QuoteHelperServer

PASS, WARN, FAIL, SKIP = CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL, CheckStatus.SKIP


@dataclass(frozen=True)
class Setup:
    sim_dir: Path
    socket: Path
    pccs_url: str
    admin_url: str
    work: Path

    @property
    def platform(self) -> str:
        return str(self.sim_dir / "platform")

    @property
    def root_ca(self) -> str:
        return str(self.sim_dir / "pcs" / "root-ca.der")

    def options(self, **changes: Any) -> DoctorOptions:
        """Every input given, healthy; ``changes`` break one thing."""
        values: dict[str, Any] = {
            "socket_path": str(self.socket),
            "platform_dir": self.platform,
            "pccs_url": self.pccs_url,
            "root_ca": self.root_ca,
            "admin_url": self.admin_url,
            "environ": {"SGX_AESM_ADDR": "1"},
            "timeout": 5.0,
        }
        values.update(changes)
        return DoctorOptions(**values)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest's base directory is private to root, and the nobody
    # tests need to reach the socket.
    path = world_dir(Path(tempfile.mkdtemp(prefix="doctor-")))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sim_dir(workdir: Path) -> Path:
    return sim_init(workdir / "sim")


@pytest.fixture(scope="module")
def pccs(sim_dir: Path) -> Iterator[RunningService]:
    with serve_in_thread(sim_dir) as service:
        yield service


@pytest.fixture(scope="module")
def daemon(workdir: Path, sim_dir: Path) -> Iterator[QuoteHelperServer]:
    socket_dir = world_dir(workdir / "aesmd")
    flags = {
        "socket": socket_dir / "aesm.socket",
        "platform": sim_dir / "platform",
        "state_dir": workdir / "daemon-state",
        "admin_listen": "127.0.0.1:0",
    }
    with running_daemon(flags) as server:
        yield server


@pytest.fixture(scope="module")
def setup(workdir: Path, sim_dir: Path, pccs: RunningService, daemon: QuoteHelperServer) -> Setup:
    return Setup(
        sim_dir=sim_dir,
        socket=Path(daemon.config.socket),
        pccs_url=pccs.url,
        admin_url=f"http://127.0.0.1:{daemon.admin_port}",
        work=workdir,
    )


def statuses(report: DoctorReport) -> dict[str, CheckStatus]:
    return {check.name: check.status for check in report.checks}


def code_names(report: DoctorReport, name: str) -> list[str]:
    return [code.label() for code in report.check(name).codes]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["doctor", *args])
    return code, capsys.readouterr().out


# ---- healthy ---------------------------------------------------------------------------


def test_healthy_setup_passes_every_check(setup: Setup) -> None:
    report = run_doctor(setup.options())
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert statuses(report) == {**dict.fromkeys(CHECK_NAMES, PASS), "node": SKIP}, report.to_dict()
    assert report.exit_code == 0
    daemon = report.check("daemon")
    assert daemon.details["default_ecdsa_key_id"] is True
    assert daemon.details["build_info"]["qe_svn"] == str(QE_SVN)
    quote = report.check("quote")
    assert (quote.details["qe_svn"], quote.details["pce_svn"]) == (QE_SVN, PCE_SVN)
    assert quote.details["has_pck_chain"] is True
    assert f"QE SVN {QE_SVN}, PCE SVN {PCE_SVN}" in quote.summary
    pccs = report.check("pccs")
    assert {item["name"] for item in pccs.details["collateral"]} == {
        "TCB Info",
        "QE Identity",
        "PCK CRL (processor CA)",
        "root CA CRL",
    }
    tcb = report.check("tcb")
    assert tcb.details["status"] == "UpToDate"
    assert code_names(report, "tcb") == ["SGX_QL_QV_RESULT_OK 0x0000"]


def test_healthy_setup_through_the_command(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", "1")
    args = ["--socket", str(setup.socket), "--platform", setup.platform]
    args += ["--pccs-url", setup.pccs_url, "--root-ca", setup.root_ca]
    args += ["--admin-url", setup.admin_url, "--timeout", "5"]
    code, out = run_cli([*args, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["overall"] == "pass"
    assert data["exit_code"] == 0
    assert [c["status"] for c in data["checks"]] == ["pass"] * 6 + ["skip"]
    assert [c["name"] for c in data["checks"]] == list(CHECK_NAMES)

    code, out = run_cli(args, capsys)
    assert code == 0
    lines = out.splitlines()
    for name in CHECK_NAMES[:-1]:
        assert any(line.startswith(f"[pass] {name}: ") for line in lines), out
    assert any(line.startswith("[skip] node: not an SGX node") for line in lines), out
    assert "SGX_QL_QV_RESULT_OK 0x0000" in out
    assert lines[-1] == "overall: pass (6 passed, 0 warned, 0 failed, 1 skipped)"


def test_missing_inputs_are_skipped_not_failed(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SGX_AESM_ADDR", raising=False)
    monkeypatch.delenv("SGX_QUOTE_HELPER_PLATFORM", raising=False)
    code, out = run_cli(["--socket", str(setup.socket), "--json"], capsys)
    data = json.loads(out)
    got = {c["name"]: c["status"] for c in data["checks"]}
    # No SGX_AESM_ADDR: in-process mode is a warning, not a failure.
    assert got == {
        "environment": "warn",
        "socket": "pass",
        "daemon": "pass",
        "quote": "skip",
        "pccs": "skip",
        "tcb": "skip",
        "node": "skip",
    }
    assert code == 0
    assert data["overall"] == "warn"
    by_name = {c["name"]: c for c in data["checks"]}
    assert "--platform" in by_name["quote"]["summary"]
    assert "--pccs-url" in by_name["pccs"]["summary"]
    assert "--platform, --pccs-url, --root-ca" in by_name["tcb"]["summary"]


def test_only_the_root_ca_missing_skips_only_the_tcb_check(setup: Setup) -> None:
    report = run_doctor(setup.options(root_ca=None))
    assert statuses(report) == {**dict.fromkeys(CHECK_NAMES, PASS), "tcb": SKIP, "node": SKIP}
    assert "--root-ca" in report.check("tcb").summary
    assert report.exit_code == 0


# ---- the socket ----------------------------------------------------------------------------


def test_no_socket(setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "aesm.socket"
    report = run_doctor(setup.options(socket_path=str(missing)))
    assert statuses(report)["socket"] is FAIL
    assert statuses(report)["daemon"] is SKIP
    assert statuses(report)["quote"] is SKIP
    assert statuses(report)["tcb"] is SKIP
    assert code_names(report, "socket") == [
        "SGX_ERROR_SERVICE_UNAVAILABLE 0x4001",
        "SGX_QL_SERVICE_UNAVAILABLE 0xE040",
    ]
    assert report.check("socket").summary == f"no socket at {missing}"
    assert report.exit_code == 1

    code, out = run_cli(["--socket", str(missing)], capsys)
    assert code == 1
    assert f"[FAIL] socket: no socket at {missing}" in out
    assert "SGX_ERROR_SERVICE_UNAVAILABLE 0x4001" in out
    assert "means: SGX_ERROR_SERVICE_UNAVAILABLE 0x4001: The AESM socket could not be" in out
    assert "fix: Is the quote helper" in out


def test_no_socket_directory_says_mount_the_directory(setup: Setup, tmp_path: Path) -> None:
    report = run_doctor(setup.options(socket_path=str(tmp_path / "aesmd" / "aesm.socket")))
    socket = report.check("socket")
    assert socket.status is FAIL
    assert "does not exist" in socket.summary
    assert any("mount the host directory /var/run/aesmd" in fix for fix in socket.fix)
    assert any("--enable-sgxquotehelper" in fix for fix in socket.fix)
    assert report.exit_code == 1


def test_socket_under_another_name_is_pointed_out(setup: Setup, tmp_path: Path) -> None:
    stale_socket(tmp_path / "aesm.sock")  # the name some docs use
    report = run_doctor(setup.options(socket_path=str(tmp_path / "aesm.socket")))
    socket = report.check("socket")
    assert socket.status is FAIL
    assert socket.details["other_sockets"] == ["aesm.sock"]
    assert "aesm.sock" in socket.fix[0]
    assert report.exit_code == 1


def test_socket_path_is_a_directory(setup: Setup, tmp_path: Path) -> None:
    path = tmp_path / "aesm.socket"
    path.mkdir()  # what a file mount of a missing host path leaves behind
    report = run_doctor(setup.options(socket_path=str(path)))
    socket = report.check("socket")
    assert socket.status is FAIL
    assert socket.summary == f"{path} is a directory, not a socket"
    assert any("mount the host directory /var/run/aesmd" in fix for fix in socket.fix)
    assert code_names(report, "socket")[0] == "SGX_ERROR_SERVICE_UNAVAILABLE 0x4001"
    assert statuses(report)["daemon"] is SKIP
    assert report.exit_code == 1


def test_socket_path_is_a_regular_file(setup: Setup, tmp_path: Path) -> None:
    path = tmp_path / "aesm.socket"
    path.write_bytes(b"")
    report = run_doctor(setup.options(socket_path=str(path)))
    assert report.check("socket").status is FAIL
    assert report.check("socket").summary == f"{path} is a regular file, not a socket"
    assert report.exit_code == 1


# ---- permissions: as nobody, for real, and the logic as any uid ---------------------------------


def test_nobody_reaches_a_world_connectable_daemon(setup: Setup) -> None:
    def task() -> dict[str, Any]:
        options = DoctorOptions(socket_path=str(setup.socket), environ={"SGX_AESM_ADDR": "1"})
        return run_doctor(options).to_dict()

    data = run_as_nobody(task)
    got = {c["name"]: c["status"] for c in data["checks"]}
    assert (got["socket"], got["daemon"]) == ("pass", "pass"), data
    assert data["checks"][1]["details"]["identity"]["uid"] == 65534
    assert data["exit_code"] == 0


def test_socket_not_connectable_by_the_caller(setup: Setup) -> None:
    directory = world_dir(setup.work / "private-socket")
    path = stale_socket(directory / "aesm.socket")
    path.chmod(0o700)

    def task() -> dict[str, Any]:
        options = DoctorOptions(socket_path=str(path), environ={"SGX_AESM_ADDR": "1"})
        return run_doctor(options).to_dict()

    data = run_as_nobody(task)
    socket = data["checks"][1]
    assert socket["status"] == "fail", data
    assert "uid 65534" in socket["summary"]
    assert "mode 0700" in socket["summary"]
    assert "lack write (w) permission" in socket["summary"]
    assert [c["hex"] for c in socket["codes"]] == ["0x4001", "0xE040"]
    assert any("--socket-mode" in fix for fix in socket["fix"])
    assert data["checks"][2]["status"] == "skip"
    assert data["exit_code"] == 1
    # As root the same socket is connectable: root ignores the mode bits.
    assert run_doctor(DoctorOptions(socket_path=str(path))).check("socket").status is PASS


def test_directory_not_searchable_by_the_caller(setup: Setup) -> None:
    directory = setup.work / "closed-dir"
    directory.mkdir(mode=0o700)
    directory.chmod(0o700)
    path = stale_socket(directory / "aesm.socket")
    path.chmod(0o777)

    def task() -> dict[str, Any]:
        return run_doctor(DoctorOptions(socket_path=str(path))).to_dict()

    data = run_as_nobody(task)
    socket = data["checks"][1]
    assert socket["status"] == "fail", data
    assert f"directory {directory} (mode 0700" in socket["summary"]
    assert "not searchable" in socket["summary"]
    assert data["exit_code"] == 1


# ---- the daemon ------------------------------------------------------------------------------


def test_daemon_down_leaves_a_stale_socket(setup: Setup, tmp_path: Path) -> None:
    path = stale_socket(tmp_path / "aesm.socket")
    report = run_doctor(setup.options(socket_path=str(path)))
    assert statuses(report)["socket"] is PASS
    daemon = report.check("daemon")
    assert daemon.status is FAIL
    assert "connection refused" in daemon.summary
    assert any("stale socket" in fix for fix in daemon.fix)
    assert code_names(report, "daemon") == [
        "SGX_ERROR_SERVICE_UNAVAILABLE 0x4001",
        "SGX_QL_SERVICE_UNAVAILABLE 0xE040",
    ]
    assert statuses(report)["quote"] is SKIP
    assert report.exit_code == 1


def test_hung_daemon_times_out(setup: Setup, tmp_path: Path) -> None:
    with silent_listener(tmp_path / "aesm.socket") as listener:
        path = listener.getsockname()
        report = run_doctor(setup.options(socket_path=path, timeout=0.3, pccs_url=None))
    daemon = report.check("daemon")
    assert daemon.status is FAIL
    assert "hung or overloaded" in daemon.summary
    assert code_names(report, "daemon") == [
        "SGX_ERROR_SERVICE_TIMEOUT 0x4002",
        "SGX_QL_SERVICE_TIMEOUT 0xE042",
    ]
    assert report.exit_code == 1


def test_daemon_allow_list_refusal(setup: Setup) -> None:
    socket_dir = world_dir(setup.work / "allow-list")
    flags = {
        "socket": socket_dir / "aesm.socket",
        "platform": setup.sim_dir / "platform",
        "state_dir": setup.work / "allow-list-state",
        "allow_uid": [4242],
    }
    with running_daemon(flags):
        report = run_doctor(setup.options(socket_path=str(socket_dir / "aesm.socket")))
    daemon = report.check("daemon")
    assert daemon.status is FAIL
    assert "allow-list" in daemon.summary
    assert any("--allow-uid" in fix for fix in daemon.fix)
    assert code_names(report, "daemon") == [
        "SGX_ERROR_UNEXPECTED 0x0001",
        "SGX_QL_ERROR_UNEXPECTED 0xE001",
    ]
    assert report.exit_code == 1


def test_wrong_admin_url_is_a_warning(setup: Setup) -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    report = run_doctor(setup.options(admin_url=url, pccs_url=None))
    assert report.check("daemon").status is WARN
    assert "admin listener" in report.check("daemon").summary
    assert report.exit_code == 0


# ---- the test quote ------------------------------------------------------------------------


def test_platform_the_daemon_does_not_serve(setup: Setup, tmp_path: Path) -> None:
    other = sim_init(tmp_path / "other-sim")
    report = run_doctor(setup.options(platform_dir=str(other / "platform"), pccs_url=None))
    quote = report.check("quote")
    assert quote.status is FAIL
    assert code_names(report, "quote") == [
        "SGX_ERROR_MAC_MISMATCH 0x3001",
        "SGX_QL_ERROR_UNEXPECTED 0xE001",
        "AESM_INVALID_REPORT 47",
    ]
    assert "serves another platform" in quote.fix[0]
    assert statuses(report)["tcb"] is SKIP
    assert report.exit_code == 1


def test_platform_directory_missing(setup: Setup, tmp_path: Path) -> None:
    report = run_doctor(setup.options(platform_dir=str(tmp_path / "nowhere"), pccs_url=None))
    quote = report.check("quote")
    assert quote.status is FAIL
    assert quote.codes[0].name == "SGX_ERROR_NO_DEVICE"
    assert report.exit_code == 1


# ---- the PCCS and its collateral ---------------------------------------------------------------


def test_pccs_down(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    report = run_doctor(setup.options(pccs_url=url))
    pccs = report.check("pccs")
    assert pccs.status is FAIL
    assert code_names(report, "pccs") == ["SGX_QL_NETWORK_ERROR 0xE019"]
    assert "PCCS is unreachable" in pccs.codes[0].meaning
    assert any("AESM 12" in fix for fix in pccs.fix)
    assert statuses(report)["tcb"] is SKIP
    assert report.exit_code == 1

    code, out = run_cli(["--socket", str(setup.socket), "--pccs-url", url], capsys)
    assert code == 1
    assert "[FAIL] pccs: " in out
    assert "SGX_QL_NETWORK_ERROR 0xE019" in out


@pytest.fixture
def own_sim(tmp_path: Path) -> Iterator[tuple[Path, RunningService]]:
    """A simulation of its own, for tests that change the manufacturer's policy."""
    directory = sim_init(tmp_path / "sim")
    with serve_in_thread(directory) as service:
        yield directory, service


def test_expired_collateral(setup: Setup, own_sim: tuple[Path, RunningService]) -> None:
    directory, service = own_sim
    Manufacturer.load(directory).set_expired(["tcbInfo", "qeIdentity", "pckCrl", "rootCaCrl"])
    flags = {
        "socket": setup.work / f"expired-{os.getpid()}.socket",
        "platform": directory / "platform",
        "state_dir": directory / "daemon-state",
    }
    with running_daemon(flags) as server:
        options = setup.options(
            socket_path=str(server.config.socket),
            platform_dir=str(directory / "platform"),
            pccs_url=service.url,
            root_ca=str(directory / "pcs" / "root-ca.der"),
            admin_url=None,
        )
        report = run_doctor(options)
    pccs = report.check("pccs")
    assert pccs.status is FAIL, pccs
    for name in ("TCB Info expired", "QE Identity expired", "PCK CRL (processor CA) expired"):
        assert name in pccs.summary
    assert code_names(report, "pccs") == [
        "SGX_QL_SGX_TCB_INFO_EXPIRED 0xE02C",
        "SGX_QL_SGX_ENCLAVE_IDENTITY_EXPIRED 0xE030",
        "SGX_QL_SGX_CRL_EXPIRED 0xE02E",
    ]
    assert any("sim expire DIR --clear" in fix for fix in pccs.fix)
    tcb = report.check("tcb")
    assert tcb.status is FAIL
    assert "SGX_QL_QV_RESULT_UNSPECIFIED 0xA006" in code_names(report, "tcb")
    assert report.exit_code == 1


def test_collateral_expiring_soon_is_a_warning(setup: Setup) -> None:
    # The simulated manufacturer issues collateral valid for 30 days.
    soon = datetime.now(UTC) + timedelta(days=26)
    report = run_doctor(setup.options(now=soon))
    pccs = report.check("pccs")
    assert pccs.status is WARN, pccs
    assert "expires in" in pccs.summary
    assert statuses(report)["tcb"] is PASS  # still valid at that time
    assert report.exit_code == 0
    relaxed = run_doctor(setup.options(now=soon, warn_within=timedelta(days=1)))
    assert relaxed.check("pccs").status is PASS


def test_tcb_recovery_makes_the_daemon_qe_out_of_date(
    setup: Setup, own_sim: tuple[Path, RunningService]
) -> None:
    directory, service = own_sim
    Manufacturer.load(directory).tcb_recovery(qe_svn=QE_SVN + 1)
    flags = {
        "socket": setup.work / f"recovery-{os.getpid()}.socket",
        "platform": directory / "platform",
        "state_dir": directory / "daemon-state",
    }
    with running_daemon(flags) as server:
        report = run_doctor(
            setup.options(
                socket_path=str(server.config.socket),
                platform_dir=str(directory / "platform"),
                pccs_url=service.url,
                root_ca=str(directory / "pcs" / "root-ca.der"),
                admin_url=None,
            )
        )
    tcb = report.check("tcb")
    assert tcb.status is FAIL, tcb
    assert tcb.details["qe_tcb"] == "OutOfDate"
    assert code_names(report, "tcb") == ["SGX_QL_QV_RESULT_OUT_OF_DATE 0xA002"]
    assert any("upgrade the quote helper" in fix for fix in tcb.fix)
    assert report.exit_code == 1


def test_trust_anchor_that_is_not_the_quotes_root(setup: Setup, tmp_path: Path) -> None:
    other = sim_init(tmp_path / "other-root")
    report = run_doctor(setup.options(root_ca=str(other / "pcs" / "root-ca.der")))
    tcb = report.check("tcb")
    assert tcb.status is FAIL
    assert tcb.details["error"] == "UntrustedRoot"
    assert "SGX_QL_PCK_CERT_CHAIN_ERROR 0xE022" in code_names(report, "tcb")
    assert report.exit_code == 1


# ---- the command line ---------------------------------------------------------------------------


def test_contradictory_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--pccs-insecure"]) == 2  # a usage error, like an unknown option
    assert "--pccs-insecure need --pccs-url" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["doctor", "--no-such-option"])
    assert info.value.code == 2


def test_help_names_every_check_and_explains_every_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    epilog = text[text.index("Checks, in order:") :]
    for name in CHECK_NAMES:
        assert f" {name} (" in epilog, name
    # The node check's options say what they are (argparse shows nothing without help).
    for described in (
        "--dcap-library LIB Intel's quote library",
        "--dcap-quote-provider LIB the quote provider library",
        "--sgx-enclave-device PATH the SGX enclave device (default /dev/sgx_enclave)",
        "--sgx-provision-device PATH the SGX provisioning device (default /dev/sgx_provision)",
    ):
        assert described in text, described
