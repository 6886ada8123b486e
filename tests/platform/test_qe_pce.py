"""The simulated PCE and QE3: certification, the sealed attestation key, quotes."""

from __future__ import annotations

import datetime
import hashlib
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from sgx_quote_helper.platform import (
    ATTESTATION_KEY_FILE,
    QE_AUTH_DATA,
    CertificationDataError,
    CertificationError,
    PckCertification,
    PlatformError,
    ProvisioningAccessError,
    ProvisioningCertificationEnclave,
    QuotingEnclave,
    ReportMacError,
    SimulatedCpu,
    demo_app_identity,
    derive_pck_private_key,
)
from sgx_quote_helper.sgx import (
    PckCertChain,
    PpidCleartext,
    PpidEncrypted,
    QeReportInfo,
    Quote,
    SgxStatus,
    ec_public_key_from_raw,
    ecdsa_verify_raw,
)

PROVISIONING_SECRET = bytes(range(100, 132))
CPU_SVN = bytes([3, 3, 2, 2, 4, 1, 0, 3]) + bytes(8)
PCE_ID = b"\x00\x00"
PPID = bytes(range(16))
QE_ID = bytes(range(16, 32))
APP = demo_app_identity()


@pytest.fixture(scope="module")
def ppid_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture
def cpu() -> SimulatedCpu:
    return SimulatedCpu(bytes(range(32)), CPU_SVN, PROVISIONING_SECRET)


@pytest.fixture
def pce(cpu: SimulatedCpu, ppid_key: rsa.RSAPrivateKey) -> ProvisioningCertificationEnclave:
    return ProvisioningCertificationEnclave(
        cpu, pce_id=PCE_ID, ppid=PPID, ppid_encryption_key=ppid_key.public_key(), pce_svn=13
    )


def _cert(
    subject: str, issuer: str, key: ec.EllipticCurvePublicKey, signer: ec.EllipticCurvePrivateKey
) -> str:
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def pck_chain(pck_public: ec.EllipticCurvePublicKey) -> str:
    """A throw-away root -> PCK CA -> PCK leaf chain (test-only, self-made)."""
    root = ec.generate_private_key(ec.SECP256R1())
    ca = ec.generate_private_key(ec.SECP256R1())
    return (
        _cert("Test PCK Certificate", "Test PCK CA", pck_public, ca)
        + _cert("Test PCK CA", "Test Root CA", ca.public_key(), root)
        + _cert("Test Root CA", "Test Root CA", root.public_key(), root)
    )


def certification(pce: ProvisioningCertificationEnclave) -> PckCertification:
    return PckCertification(
        chain_pem=pck_chain(pce.pck_public_key()), cpu_svn=CPU_SVN, pce_svn=pce.pce_svn
    )


def make_qe(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, state: Path
) -> QuotingEnclave:
    return QuotingEnclave(cpu, pce, qe_id=QE_ID, state_dir=state, qe_svn=10)


# -- PCE ---------------------------------------------------------------------


def test_pce_info_and_pck_key(pce: ProvisioningCertificationEnclave) -> None:
    info = pce.get_pce_info()
    assert (info.isv_svn, info.pce_id) == (13, PCE_ID)
    expected = derive_pck_private_key(PROVISIONING_SECRET, CPU_SVN, 13, PCE_ID).public_key()
    assert pce.pck_public_key() == expected


def test_pce_certifies_a_qe_report(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    report = cpu.ereport(qe.identity, pce.target_info(), bytes(64))
    signature = pce.certify(report)
    assert ecdsa_verify_raw(pce.pck_public_key(), signature, report.body.to_bytes())
    # At an older certified TCB level the matching older PCK key signs.
    old = pce.certify(report, pce_svn=12)
    old_key = derive_pck_private_key(PROVISIONING_SECRET, CPU_SVN, 12, PCE_ID).public_key()
    assert ecdsa_verify_raw(old_key, old, report.body.to_bytes())


def test_pce_refuses_reports_not_for_it(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    mis_targeted = cpu.ereport(qe.identity, APP.target_info(), bytes(64))
    with pytest.raises(ReportMacError):
        pce.certify(mis_targeted)


def test_pce_certifies_only_provision_key_enclaves(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave
) -> None:
    app_report = cpu.ereport(APP, pce.target_info(), bytes(64))
    with pytest.raises(CertificationError, match="PROVISION_KEY"):
        pce.certify(app_report)


def test_pce_needs_provisioning_access(ppid_key: rsa.RSAPrivateKey) -> None:
    no_access = SimulatedCpu(bytes(range(32)), CPU_SVN, None)
    with pytest.raises(ProvisioningAccessError):
        ProvisioningCertificationEnclave(
            no_access, pce_id=PCE_ID, ppid=PPID, ppid_encryption_key=ppid_key.public_key()
        )


def test_ppid_certification_data(
    pce: ProvisioningCertificationEnclave, ppid_key: rsa.RSAPrivateKey
) -> None:
    clear = pce.ppid_cleartext_data()
    assert clear == PpidCleartext(PPID, CPU_SVN, 13, PCE_ID)
    assert clear.cert_type == 1
    assert clear.payload() == PPID + CPU_SVN + (13).to_bytes(2, "little") + PCE_ID
    encrypted = pce.ppid_rsa3072_data()
    assert isinstance(encrypted, PpidEncrypted)
    assert encrypted.cert_type == 3
    assert len(encrypted.enc_ppid) == 384
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert ppid_key.decrypt(encrypted.enc_ppid, oaep) == PPID


# -- QE3 ---------------------------------------------------------------------


def test_quote_before_init_is_refused(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    report = cpu.ereport(APP, qe.target_info(), bytes(64))
    with pytest.raises(PlatformError) as info:
        qe.get_quote(report)
    assert info.value.sgx_status is SgxStatus.ERROR_ATT_KEY_UNINITIALIZED
    with pytest.raises(PlatformError) as info:
        qe.quote_size()
    assert "SGX_ERROR_ATT_KEY_UNINITIALIZED 0x8003" in str(info.value)


def test_init_binds_and_certifies_the_key(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    result = qe.init(certification(pce))
    assert result.key_source == "generated"
    report = cpu.ereport(APP, qe.target_info(), b"data".ljust(64, b"\0"))
    raw, filled = qe.get_quote(report)
    assert filled is None
    assert len(raw) == qe.quote_size()
    quote = Quote.from_bytes(raw)
    assert quote.qe_auth_data == QE_AUTH_DATA == bytes(range(32))
    binding = hashlib.sha256(quote.attest_pub_key + quote.qe_auth_data).digest()
    assert quote.qe_report.report_data == binding + bytes(32)
    assert result.pub_key_id == binding
    assert ecdsa_verify_raw(pce.pck_public_key(), quote.qe_report_sig, quote.qe_report.to_bytes())
    attest_key = ec_public_key_from_raw(quote.attest_pub_key)
    assert ecdsa_verify_raw(attest_key, quote.sig, raw[:432])
    assert isinstance(quote.certification_data, PckCertChain)
    assert quote.certification_data.trailing_nul


def test_key_survives_restart(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    first = make_qe(cpu, pce, tmp_path).init(certification(pce))
    blob = tmp_path / ATTESTATION_KEY_FILE
    assert blob.stat().st_mode & 0o777 == 0o600
    restarted = make_qe(cpu, pce, tmp_path)
    second = restarted.init(certification(pce))
    assert second.key_source == "loaded"
    assert second.pub_key_id == first.pub_key_id
    assert restarted.key_blob_errors == 0


def test_key_survives_a_qe_update(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    first = make_qe(cpu, pce, tmp_path).init(certification(pce))
    updated = QuotingEnclave(cpu, pce, qe_id=QE_ID, state_dir=tmp_path, qe_svn=11)
    assert updated.init(certification(pce)).pub_key_id == first.pub_key_id


def test_corrupted_blob_is_reported_and_replaced(
    cpu: SimulatedCpu,
    pce: ProvisioningCertificationEnclave,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = make_qe(cpu, pce, tmp_path).init(certification(pce))
    blob = tmp_path / ATTESTATION_KEY_FILE
    damaged = bytearray(blob.read_bytes())
    damaged[-5] ^= 0x40
    blob.write_bytes(bytes(damaged))
    restarted = make_qe(cpu, pce, tmp_path)
    with caplog.at_level(logging.WARNING):
        second = restarted.init(certification(pce))
    assert second.key_source == "replaced"
    assert second.blob_error is not None
    assert "authentication" in second.blob_error
    assert second.pub_key_id != first.pub_key_id
    assert restarted.key_blob_errors == 1
    assert "unusable" in caplog.text
    # The bad blob is kept for inspection; the new one loads after another restart.
    assert (tmp_path / (ATTESTATION_KEY_FILE + ".corrupt")).read_bytes() == bytes(damaged)
    third = make_qe(cpu, pce, tmp_path).init(certification(pce))
    assert (third.key_source, third.pub_key_id) == ("loaded", second.pub_key_id)


def test_blob_from_another_platform_is_replaced(
    cpu: SimulatedCpu,
    pce: ProvisioningCertificationEnclave,
    ppid_key: rsa.RSAPrivateKey,
    tmp_path: Path,
) -> None:
    make_qe(cpu, pce, tmp_path).init(certification(pce))
    other_cpu = SimulatedCpu(bytes(32), CPU_SVN, PROVISIONING_SECRET)
    other_pce = ProvisioningCertificationEnclave(
        other_cpu, pce_id=PCE_ID, ppid=PPID, ppid_encryption_key=ppid_key.public_key()
    )
    qe = make_qe(other_cpu, other_pce, tmp_path)
    assert qe.init(certification(other_pce)).key_source == "replaced"
    assert qe.key_blob_errors == 1


def test_truncated_blob_is_replaced(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    (tmp_path / ATTESTATION_KEY_FILE).write_bytes(b"")
    qe = make_qe(cpu, pce, tmp_path)
    assert qe.init(certification(pce)).key_source == "replaced"


def test_quote_refuses_forged_and_mis_targeted_reports(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    qe.init(certification(pce))
    good = cpu.ereport(APP, qe.target_info(), bytes(64))
    for bad in (
        good.replace(mac=bytes(16)),
        good.replace(body=good.body.replace(isv_svn=good.body.isv_svn + 1)),
        cpu.ereport(APP, pce.target_info(), bytes(64)),
    ):
        with pytest.raises(ReportMacError):
            qe.get_quote(bad)


def test_qe_report_info_is_filled_for_the_app(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    qe.init(certification(pce))
    report = cpu.ereport(APP, qe.target_info(), bytes(64))
    info = QeReportInfo(nonce=b"n" * 16, app_enclave_target_info=APP.target_info())
    quote, filled = qe.get_quote(report, info)
    assert filled is not None
    assert filled.nonce == info.nonce
    qe_report = filled.qe_report
    assert qe_report.body.report_data == hashlib.sha256(b"n" * 16 + quote).digest() + bytes(32)
    assert qe_report.body.mr_enclave == qe.identity.mr_enclave
    cpu.verify_report(qe_report, APP)  # the app can check it came from the QE
    with pytest.raises(ReportMacError):
        cpu.verify_report(qe_report, pce.identity)


@pytest.mark.parametrize(
    "chain",
    ["not pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
)
def test_bad_certification_data_is_refused(
    cpu: SimulatedCpu, pce: ProvisioningCertificationEnclave, tmp_path: Path, chain: str
) -> None:
    qe = make_qe(cpu, pce, tmp_path)
    with pytest.raises(CertificationDataError):
        qe.init(PckCertification(chain_pem=chain, cpu_svn=CPU_SVN, pce_svn=13))
    assert not qe.initialized
