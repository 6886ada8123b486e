"""The simulated stack end to end: manufacturer -> PCCS -> simulated QE -> verify.

Each TCB status comes from the simulated manufacturer's TCB configuration
(``sim set-tcb-status``, ``sim tcb-recovery``, ``sim revoke``), the quote from
the simulated QE3 (``SimBackend``), the collateral from the simulated PCCS over
HTTP, and the verdict from ``verify`` (library and CLI) with the simulated root
passed explicitly. The ``sgx_ql_qv_result_t`` codes are those of dcap-quote.md
section 10.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sgx_quote_helper._cli import main
from sgx_quote_helper.backends import SimBackend
from sgx_quote_helper.pccs import PccsClient
from sgx_quote_helper.pcs import (
    FmspcPolicy,
    Manufacturer,
    PlatformTcbLevel,
    TcbPolicy,
    serve_in_thread,
)
from sgx_quote_helper.platform import EnclaveIdentity, Platform, build_identity, demo_app_identity
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, AttributeFlags, Quote3Error, QvResult
from sgx_quote_helper.verify import (
    CollateralMismatch,
    DebugEnclave,
    InvalidSignature,
    Revoked,
    TcbNotSupported,
    TcbStatus,
    TrustAnchor,
    UnsafeNoAppraisal,
    UntrustedRoot,
    VerificationResult,
    Verifier,
)
from sgx_quote_helper.verify._engine import detailed_refusal

KEY_ID = DEFAULT_ECDSA_ATT_KEY_ID.base
REPORT_DATA = b"end to end".ljust(64, b"\x00")


@pytest.fixture(scope="module")
def sim_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``sim init`` for the module (key generation is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "sim"
    assert main(["sim", "init", str(path)]) == 0
    return path


@dataclass
class Stack:
    sim: Path
    url: str
    manufacturer: Manufacturer
    client: PccsClient
    anchor: TrustAnchor
    state: Path

    def quote(
        self,
        identity: EnclaveIdentity | None = None,
        *,
        qe_svn: int = 10,
        report_data: bytes = REPORT_DATA,
    ) -> bytes:
        """A quote by the simulated QE3 hosting ``qe_svn``, for an app enclave's REPORT."""
        backend = SimBackend(
            self.sim / "platform",
            self.state / f"qe{qe_svn}",
            pck_source=self.client.get_pck_certificate,
            qe_svn=qe_svn,
        )
        target = backend.init_quote(KEY_ID).target_info
        cpu = Platform.load(self.sim / "platform", need_provisioning=False).cpu()
        report = cpu.ereport(identity or demo_app_identity(), target, report_data)
        return backend.get_quote(report.to_bytes(), KEY_ID, None).quote

    def verifier(self) -> Verifier:
        return Verifier(self.anchor, pccs=self.client)


def _stack(template: Path, root: Path) -> Iterator[Stack]:
    sim = root / "sim"
    shutil.copytree(template, sim)
    with serve_in_thread(sim) as service, PccsClient(service.url) as client:
        yield Stack(
            sim=sim,
            url=service.url,
            manufacturer=service.manufacturer,
            client=client,
            anchor=TrustAnchor.from_file(sim / "pcs" / "root-ca.der"),
            state=root / "state",
        )


@pytest.fixture(scope="module")
def shared(sim_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose platform TCB level the status tests set in turn."""
    yield from _stack(sim_template, tmp_path_factory.mktemp("shared"))


@pytest.fixture
def stack(sim_template: Path, tmp_path: Path) -> Iterator[Stack]:
    """A private stack for tests that revoke or recover."""
    yield from _stack(sim_template, tmp_path)


@pytest.fixture(scope="module")
def shared_quote(shared: Stack) -> Path:
    path = shared.state / "quote.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(shared.quote())
    return path


def _verify_cli(
    capsys: pytest.CaptureFixture[str], stack: Stack, quote: Path, *args: str
) -> tuple[int, dict[str, object]]:
    code = main(
        [
            "verify",
            str(quote),
            "--pccs-url",
            stack.url,
            "--root-ca",
            str(stack.sim / "pcs" / "root-ca.der"),
            "--json",
            *args,
        ]
    )
    out, _ = capsys.readouterr()
    data: dict[str, object] = json.loads(out)
    return code, data


STATUS_CODES = [
    ("UpToDate", QvResult.OK, 0x0000),
    ("SWHardeningNeeded", QvResult.SW_HARDENING_NEEDED, 0xA007),
    ("ConfigurationNeeded", QvResult.CONFIG_NEEDED, 0xA001),
    ("ConfigurationAndSWHardeningNeeded", QvResult.CONFIG_AND_SW_HARDENING_NEEDED, 0xA008),
    ("OutOfDate", QvResult.OUT_OF_DATE, 0xA002),
    ("OutOfDateConfigurationNeeded", QvResult.OUT_OF_DATE_CONFIG_NEEDED, 0xA003),
]


@pytest.mark.parametrize(("status", "qv_result", "value"), STATUS_CODES)
def test_platform_status_through_verify(
    capsys: pytest.CaptureFixture[str],
    shared: Stack,
    shared_quote: Path,
    status: str,
    qv_result: QvResult,
    value: int,
) -> None:
    advisories = [] if status == "UpToDate" else ["--advisory", "INTEL-SA-00999"]
    assert main(["sim", "set-tcb-status", str(shared.sim), "--status", status, *advisories]) == 0
    capsys.readouterr()

    code, data = _verify_cli(capsys, shared, shared_quote, "--accept-status", status)
    assert code == 0
    assert data["status"] == status
    assert data["qv_result"] == {"value": value, "name": qv_result.c_name}
    assert data["simulated"] is True
    assert data["advisory_ids"] == ([] if status == "UpToDate" else ["INTEL-SA-00999"])
    assert data["platform_tcb"] == {
        "status": status,
        "advisory_ids": data["advisory_ids"],
        "tcb_date": data["platform_tcb"]["tcb_date"],  # type: ignore[index]
    }

    result = shared.verifier().verify(shared_quote.read_bytes(), policy=UnsafeNoAppraisal())
    assert result.status is TcbStatus(status)
    assert result.qv_result is qv_result
    assert result.simulated
    assert result.report.report_data == REPORT_DATA

    if status != "UpToDate":
        # The default policy accepts UpToDate only, and says what it got.
        code, data = _verify_cli(capsys, shared, shared_quote)
        assert code == 1
        assert data["appraisal"] == {
            "passed": False,
            "failures": [
                {
                    "claim": "status",
                    "expected": "UpToDate",
                    "actual": f"{status} ({qv_result.c_name} 0x{value:04X}; "
                    "advisories INTEL-SA-00999)",
                }
            ],
            "policy": "AllOf(AcceptStatuses('UpToDate'), NoDebug())",
        }


def test_revoked_tcb_level(capsys: pytest.CaptureFixture[str], stack: Stack) -> None:
    quote = stack.quote()
    assert main(["sim", "set-tcb-status", str(stack.sim), "--status", "Revoked"]) == 0
    capsys.readouterr()
    with pytest.raises(Revoked) as info:
        stack.verifier().verify(quote, policy=UnsafeNoAppraisal())
    assert info.value.qv_result is QvResult.REVOKED
    assert info.value.quote3_error is Quote3Error.TCB_REVOKED
    assert info.value.status == "Revoked"
    now = int(datetime.now(UTC).timestamp())
    collateral = stack.client.get_collateral(quote)
    assert (
        detailed_refusal(quote, collateral, stack.anchor, now)
        == "Verification failed: TCB status is invalid: Revoked"
    )

    path = stack.state / "revoked.bin"
    path.write_bytes(quote)
    code, data = _verify_cli(capsys, stack, path, "--accept-status", "OutOfDate")
    assert code == 1
    assert data["verified"] is False
    error = data["error"]
    assert isinstance(error, dict)
    assert error["type"] == "Revoked"
    assert error["qv_result"] == {"value": 0xA005, "name": "SGX_QL_QV_RESULT_REVOKED"}


def test_revoked_qe_level(stack: Stack) -> None:
    quote = stack.quote()
    stack.manufacturer.set_qe_tcb_status("Revoked", isv_svn=10)
    with pytest.raises(Revoked) as info:
        stack.verifier().verify(quote, policy=UnsafeNoAppraisal())
    assert info.value.qv_result is QvResult.REVOKED


def test_revoked_pck_certificate(capsys: pytest.CaptureFixture[str], stack: Stack) -> None:
    quote = stack.quote()
    assert main(["sim", "revoke", str(stack.sim), "--platform", str(stack.sim / "platform")]) == 0
    capsys.readouterr()
    with pytest.raises(Revoked) as info:
        stack.verifier().verify(quote, policy=UnsafeNoAppraisal())
    assert info.value.quote3_error is Quote3Error.PCK_REVOKED
    assert info.value.qv_result is QvResult.REVOKED
    now = int(datetime.now(UTC).timestamp())
    collateral = stack.client.get_collateral(quote)
    assert detailed_refusal(quote, collateral, stack.anchor, now) == (
        "Verification failed: Failed to verify certificate chain\n\nCaused by:\n    CertRevoked"
    )


def test_tcb_recovery_and_the_cache_trade_off(
    capsys: pytest.CaptureFixture[str], stack: Stack
) -> None:
    """After a recovery to QE SVN 11, a QE 10 quote is OutOfDate, a QE 11 quote UpToDate;
    a cache keeps serving the pre-recovery collateral (UpToDate) until its nextUpdate."""
    old_qe = stack.quote(qe_svn=10)
    cache = stack.state / "cache"
    requests: list[str] = []
    transport = httpx.HTTPTransport()

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            requests.append(request.url.path)
            return transport.handle_request(request)

        def close(self) -> None:
            transport.close()

    with PccsClient(stack.url, transport=Counting()) as counted:
        cached = Verifier(stack.anchor, pccs=counted, cache_dir=cache)
        assert cached.verify(old_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.UP_TO_DATE
        assert len(requests) == 4
        assert cached.verify(old_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.UP_TO_DATE
        assert len(requests) == 4  # second verification: no HTTP request

        assert main(["sim", "tcb-recovery", str(stack.sim), "--qe-svn", "11"]) == 0
        capsys.readouterr()

        # The cache still answers with the old collateral: old status, no request.
        assert cached.verify(old_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.UP_TO_DATE
        assert len(requests) == 4

    fresh = stack.verifier().verify(old_qe, policy=UnsafeNoAppraisal())
    assert fresh.status is TcbStatus.OUT_OF_DATE
    assert fresh.qv_result is QvResult.OUT_OF_DATE
    assert fresh.qe_tcb.status is TcbStatus.OUT_OF_DATE
    assert fresh.platform_tcb.status is TcbStatus.UP_TO_DATE
    assert fresh.tcb_evaluation_data_number == 2

    new_qe = stack.quote(qe_svn=11)
    assert (
        stack.verifier().verify(new_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.UP_TO_DATE
    )


def test_a_long_lived_verifier_sees_a_recovery_after_its_max_age(
    capsys: pytest.CaptureFixture[str], stack: Stack
) -> None:
    """A verifier keeps its collateral (old status) until the maximum age; a new one,
    as every `verify` command makes, sees the recovery at once."""
    moment = [datetime.now(UTC)]
    old_qe = stack.quote(qe_svn=10)
    quote_file = stack.state / "old-qe.bin"
    quote_file.write_bytes(old_qe)
    kept = Verifier(
        stack.anchor,
        pccs=stack.client,
        max_collateral_age=timedelta(minutes=5),
        clock=lambda: moment[0],
    )
    assert kept.verify(old_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.UP_TO_DATE
    assert main(["sim", "tcb-recovery", str(stack.sim), "--qe-svn", "11"]) == 0
    capsys.readouterr()

    moment[0] += timedelta(minutes=4)
    assert kept.verify(old_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.UP_TO_DATE
    _, data = _verify_cli(capsys, stack, quote_file, "--accept-status", "OutOfDate")
    assert data["status"] == "OutOfDate"

    moment[0] += timedelta(minutes=1)
    assert kept.verify(old_qe, policy=UnsafeNoAppraisal()).status is TcbStatus.OUT_OF_DATE


def test_one_verifier_follows_the_collateral_it_is_given(
    capsys: pytest.CaptureFixture[str], stack: Stack
) -> None:
    """A verifier remembers the engine's claims with the collateral they came from:
    other collateral (here after a recovery) is judged on its own, every time."""
    old_qe = stack.quote(qe_svn=10)
    before = stack.client.get_collateral(old_qe)
    assert main(["sim", "tcb-recovery", str(stack.sim), "--qe-svn", "11"]) == 0
    capsys.readouterr()
    after = stack.client.get_collateral(old_qe)
    verifier = Verifier(stack.anchor)
    for collateral, status, number in [(before, "UpToDate", 1), (after, "OutOfDate", 2)] * 2:
        result = verifier.verify(old_qe, collateral, policy=UnsafeNoAppraisal())
        assert result.status is TcbStatus(status)
        assert result.qe_tcb.status is TcbStatus(status)
        assert result.tcb_evaluation_data_number == number
        assert result.collateral_issued == collateral.issue_date


def test_many_threads_verify_many_quotes_of_one_platform(shared: Stack) -> None:
    """Quotes of one platform differ in their report; a warm verifier shared by
    threads gives each its own report, and refuses each tampered one."""
    assert main(["sim", "set-tcb-status", str(shared.sim), "--status", "UpToDate"]) == 0
    quotes = [shared.quote(report_data=bytes([n]) * 64) for n in range(6)]
    tampered = []
    for quote in quotes[:3]:
        damaged = bytearray(quote)
        damaged[48 + 320] ^= 0x80  # report_data[0]: the ISV signature no longer matches
        tampered.append(bytes(damaged))
    verifier = shared.verifier()
    cold = {q: Verifier(shared.anchor, pccs=shared.client) for q in quotes}
    expected = {q: cold[q].verify(q, policy=UnsafeNoAppraisal()).to_dict() for q in quotes}
    outcomes: list[tuple[bytes, object]] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        for index in range(20):
            quote = (quotes + tampered)[(offset + index) % (len(quotes) + len(tampered))]
            try:
                outcome: object = verifier.verify(quote, policy=UnsafeNoAppraisal())
            except InvalidSignature as exc:
                outcome = exc
            with lock:
                outcomes.append((quote, outcome))

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == 120
    for quote, outcome in outcomes:
        if quote in tampered:
            assert isinstance(outcome, InvalidSignature)
            continue
        assert isinstance(outcome, VerificationResult)
        data = outcome.to_dict()
        assert data.pop("verified_at")
        reference = dict(expected[quote])
        reference.pop("verified_at")
        assert data == reference
        assert outcome.report.report_data == quote[48 + 320 : 48 + 384]


def test_debug_enclave_is_refused(stack: Stack) -> None:
    debug = build_identity(
        name="debug app",
        code=b"a debug build",
        mr_signer=bytes(32),
        flags=int(AttributeFlags.INIT | AttributeFlags.MODE64BIT | AttributeFlags.DEBUG),
    )
    quote = stack.quote(debug)
    with pytest.raises(DebugEnclave) as info:
        stack.verifier().verify(quote, policy=UnsafeNoAppraisal())
    assert info.value.qv_result is QvResult.UNSPECIFIED
    now = int(datetime.now(UTC).timestamp())
    collateral = stack.client.get_collateral(quote)
    assert (
        detailed_refusal(quote, collateral, stack.anchor, now)
        == "Verification failed: Debug mode is enabled"
    )


def test_no_matching_tcb_level(stack: Stack) -> None:
    quote = stack.quote()
    fmspc = stack.manufacturer.platforms()[0].fmspc

    def only_a_higher_level(policy: TcbPolicy) -> TcbPolicy:
        level = PlatformTcbLevel((255,) * 16, 0xFFFF, "UpToDate", datetime(2025, 1, 1, tzinfo=UTC))
        current = policy.fmspcs[fmspc]
        fmspcs = {**policy.fmspcs, fmspc: FmspcPolicy(pce_id=current.pce_id, levels=(level,))}
        return dataclasses.replace(policy, fmspcs=fmspcs)

    stack.manufacturer.update_policy(only_a_higher_level)
    with pytest.raises(TcbNotSupported) as info:
        stack.verifier().verify(quote, policy=UnsafeNoAppraisal())
    assert info.value.quote3_error is Quote3Error.TCB_NOT_SUPPORTED
    now = int(datetime.now(UTC).timestamp())
    collateral = stack.client.get_collateral(quote)
    assert (
        detailed_refusal(quote, collateral, stack.anchor, now)
        == "Verification failed: No matching TCB level found"
    )


def test_collateral_for_another_fmspc(stack: Stack) -> None:
    quote = stack.quote()
    assert main(["sim", "add-platform", str(stack.sim), "other", "--fmspc", "00906ED50000"]) == 0
    other = stack.client.get_collateral(fmspc="00906ED50000", ca="processor")
    with pytest.raises(CollateralMismatch):
        stack.verifier().verify(quote, other, policy=UnsafeNoAppraisal())
    now = int(datetime.now(UTC).timestamp())
    assert (
        detailed_refusal(quote, other, stack.anchor, now) == "Verification failed: Fmspc mismatch"
    )


def test_simulated_quote_is_refused_under_intel_root(shared: Stack, shared_quote: Path) -> None:
    quote = shared_quote.read_bytes()
    collateral = shared.client.get_collateral(quote)
    with pytest.raises(UntrustedRoot) as info:
        Verifier().verify(quote, collateral, policy=UnsafeNoAppraisal())
    assert "Simulated SGX Root CA" in str(info.value)
    assert "--root-ca" in info.value.diagnostics()
