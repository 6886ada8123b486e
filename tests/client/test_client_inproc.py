"""In-process quoting: the process hosts QE3/PCE through the daemon's backend code."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_client_helpers import (
    TestPlatform,
    app_report,
    error_facts,
    make_platform,
    run_as_nobody,
    shared_tmp,
)

from sgx_quote_helper import client
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.platform import demo_app_identity, quoting_enclave_identity
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    QeReportInfo,
    Quote,
    Quote3Error,
    SgxStatus,
    TargetInfo,
)

APP = demo_app_identity()


@pytest.fixture(autouse=True)
def _fresh_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SGX_AESM_ADDR", raising=False)
    client._reset_mode_for_tests()
    yield
    client._reset_mode_for_tests()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> TestPlatform:
    return make_platform(tmp_path_factory.mktemp("inproc"))


def start(platform: TestPlatform, tmp_path: Path, qe_svn: int = QE_SVN) -> client.InProcessQuoter:
    return client.in_process(
        platform.path, state_dir=tmp_path / "state", pck_source=platform.pck_source, qe_svn=qe_svn
    )


def test_in_process_quote_parses_and_carries_the_bundled_versions(
    platform: TestPlatform, tmp_path: Path
) -> None:
    quoter = start(platform, tmp_path)
    assert (quoter.info.qe_svn, quoter.info.pce_svn) == (QE_SVN, PCE_SVN)
    target = quoter.get_target_info()
    assert target == quoting_enclave_identity(QE_SVN).target_info()
    report = app_report(platform.cpu(), target, b"in-process")
    quote = quoter.get_quote(report)
    assert len(quote) == quoter.get_quote_size()
    parsed = Quote.from_bytes(quote)
    assert (parsed.header.qe_svn, parsed.header.pce_svn) == (QE_SVN, PCE_SVN)
    assert parsed.report_body == report.body
    assert "in-process" in quoter.describe()
    assert f"QE3 ISVSVN {QE_SVN}" in quoter.describe()


def test_qe_svn_override_for_simulation(platform: TestPlatform, tmp_path: Path) -> None:
    quoter = start(platform, tmp_path, qe_svn=QE_SVN - 1)
    target = quoter.get_target_info()
    quote = quoter.get_quote(app_report(platform.cpu(), target))
    assert Quote.from_bytes(quote).header.qe_svn == QE_SVN - 1


def test_get_quote_initializes_the_key_on_demand(platform: TestPlatform, tmp_path: Path) -> None:
    quoter = start(platform, tmp_path)
    target = quoting_enclave_identity(QE_SVN).target_info()  # known without init
    quote = quoter.get_quote(app_report(platform.cpu(), target))
    assert Quote.from_bytes(quote).header.version == 3


def test_qe_report_info_is_filled_and_verifiable(platform: TestPlatform, tmp_path: Path) -> None:
    quoter = start(platform, tmp_path)
    report = app_report(platform.cpu(), quoter.get_target_info())
    info = QeReportInfo(nonce=b"n" * 16, app_enclave_target_info=APP.target_info())
    result = quoter.get_quote_result(
        report,
        qe_report_info=info,
        verify_qe_report=True,
        check_qe_report_mac=client.sim_qe_report_mac_check(platform.cpu(), APP),
    )
    assert result.qe_report_info is not None
    assert result.qe_report_info.qe_report.body.mr_signer == quoting_enclave_identity(1).mr_signer


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_a_bytes_like_report_quotes_as_its_bytes(
    platform: TestPlatform, tmp_path: Path, kind: Callable[[bytes], object]
) -> None:
    quoter = start(platform, tmp_path)
    report = app_report(platform.cpu(), quoter.get_target_info(), b"bytes-like")
    quote = quoter.get_quote(kind(report.to_bytes()))  # type: ignore[arg-type]
    assert Quote.from_bytes(quote).report_body == report.body


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ("x" * 432, "report must be 432 bytes (bytes, bytearray or memoryview), got str"),
        (432, "got int"),  # not bytes(432): 432 zeros
        (bytearray(431), "report must be 432 bytes, got 431"),
    ],
)
def test_a_report_of_the_wrong_type_or_size_is_named_so(
    platform: TestPlatform, tmp_path: Path, report: object, message: str
) -> None:
    quoter = start(platform, tmp_path)
    with pytest.raises(client.InvalidParameterError) as info:
        quoter.get_quote(report)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_a_report_for_another_enclave_is_rejected_with_the_real_dcap_code(
    platform: TestPlatform, tmp_path: Path
) -> None:
    quoter = start(platform, tmp_path)
    quoter.get_target_info()
    forged = app_report(platform.cpu(), APP.target_info())  # targeted at the app, not the QE
    with pytest.raises(client.ReportRejectedError) as info:
        quoter.get_quote(forged)
    error = info.value
    # The status the wire would give (AESM 47 -> MAC_MISMATCH), and DCAP's own in-process code.
    assert error.sgx_status == SgxStatus.ERROR_MAC_MISMATCH
    assert error.quote3_error == Quote3Error.INVALID_REPORT
    assert int(error.quote3_error) == 0xE015
    assert error.where is not None
    assert "in-process" in error.where
    assert "SGX_QL_INVALID_REPORT 0xE015" in error.diagnostics()


def test_pck_source_failure_is_a_network_failure(platform: TestPlatform, tmp_path: Path) -> None:
    def unreachable(query: object) -> object:
        raise ConnectionRefusedError("PCCS down")

    quoter = client.in_process(
        platform.path,
        state_dir=tmp_path / "s",
        pck_source=unreachable,  # type: ignore[arg-type]
    )
    with pytest.raises(client.NetworkFailureError) as info:
        quoter.get_target_info()
    assert (info.value.sgx_status, info.value.quote3_error) == (0x4007, Quote3Error.NETWORK_ERROR)
    assert "PCCS" in info.value.diagnostics()


def test_a_missing_platform_is_no_device(tmp_path: Path) -> None:
    with pytest.raises(client.NoDeviceError) as info:
        client.in_process(tmp_path / "nowhere")
    assert (info.value.sgx_status, info.value.quote3_error) == (0x2006, 0xE03F)
    assert "sim init" in info.value.diagnostics()


def test_no_pck_source_outside_a_sim_directory(platform: TestPlatform, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a PCK certificate source"):
        client.in_process(platform.path, state_dir=tmp_path / "s")


def test_default_state_dir_is_per_user_and_per_platform(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    first = client.default_state_dir(tmp_path / "a")
    second = client.default_state_dir(tmp_path / "b")
    assert first.parent == tmp_path / "xdg" / "sgx-quote-helper" / "in-process"
    assert first != second
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert client.default_state_dir(tmp_path / "a").is_relative_to(tmp_path / ".local" / "state")
    monkeypatch.setenv("HOME", "/nonexistent")
    fallback = client.default_state_dir(tmp_path / "a")
    assert f"sgx-quote-helper-{os.getuid()}" in str(fallback)


def test_in_process_is_refused_without_provisioning_access() -> None:
    with shared_tmp() as root:
        platform = make_platform(root)
        secret = platform.path / "provision.secret"
        assert secret.stat().st_mode & 0o777 == 0o600
        assert secret.stat().st_uid == 0

        def check() -> dict[str, object]:
            facts: dict[str, object] = {}
            starts: list[tuple[str, Callable[[], object]]] = [
                (
                    "explicit",
                    lambda: client.in_process(platform.path, pck_source=platform.pck_source),
                ),
                ("default", lambda: client.quoter(platform_dir=platform.path)),
            ]
            for name, start_quoter in starts:
                try:
                    start_quoter()
                    facts[name] = {"type": "no error"}
                except client.QuoteClientError as exc:
                    facts[name] = error_facts(exc)
            facts["mode"] = str(client.current_mode())
            # The application side still works: it may read the enclave secret.
            target = TargetInfo.zeroed()
            facts["ereport"] = len(app_report(platform.cpu(), target).to_bytes())
            return facts

        facts = run_as_nobody(check)
    for name in ("explicit", "default"):
        fact = facts[name]
        assert isinstance(fact, dict)
        assert fact["type"] == "ProvisioningAccessDeniedError", fact
        assert (fact["sgx_status"], fact["quote3_error"]) == (0x4004, 0xE035)
        text = str(fact["diagnostics"])
        for needle in (
            "provisioning access",
            "/dev/sgx_provision",
            "uid 65534",
            "SGX_AESM_ADDR=1",
            "quote helper",
            "SGX_ERROR_SERVICE_INVALID_PRIVILEGE 0x4004",
            "SGX_QL_ERROR_INVALID_PRIVILEGE 0xE035",
        ):
            assert needle in text, (needle, text)
    assert facts["mode"] == "None"  # a refused start fixes no mode
    assert facts["ereport"] == 432


@pytest.mark.parametrize("key", [10**11, "k" * 256, bytes(255)], ids=["int", "str", "255"])
def test_an_att_key_id_that_is_not_256_bytes_is_refused_before_use(key: object) -> None:
    # 10**11 would be a 100 GB bytes() if it were converted before the check.
    with pytest.raises(client.InvalidParameterError, match="att_key_id must be 256 bytes"):
        client.InProcessQuoter(None, att_key_id=key)  # type: ignore[arg-type]
    assert client.current_mode() is None


def test_a_bytes_like_att_key_id_is_taken(platform: TestPlatform, tmp_path: Path) -> None:
    backend = start(platform, tmp_path).backend
    client._reset_mode_for_tests()
    key = bytearray(DEFAULT_ECDSA_ATT_KEY_ID.to_bytes())
    assert client.InProcessQuoter(backend, att_key_id=key).get_quote_size() > 0  # type: ignore[arg-type]
