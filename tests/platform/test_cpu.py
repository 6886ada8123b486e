"""EREPORT and EGETKEY of the simulated CPU."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgx_quote_helper.platform import (
    KeyName,
    KeyPolicy,
    KeyRequest,
    KeyRequestError,
    ProvisioningAccessError,
    ReportMacError,
    SimulatedCpu,
    build_identity,
    demo_app_identity,
    derive_pck_private_key,
    pce_identity,
    quoting_enclave_identity,
)
from sgx_quote_helper.sgx import AttributeFlags, Report, SgxStatus

ENCLAVE_SECRET = bytes(range(32))
PROVISIONING_SECRET = bytes(range(32, 64))
CPU_SVN = bytes([5, 5, 2, 2, 4, 1, 0, 3]) + bytes(8)

QE = quoting_enclave_identity(10)
PCE = pce_identity(13)
APP = demo_app_identity()


def cpu(*, provisioning: bool = True, secret: bytes = ENCLAVE_SECRET) -> SimulatedCpu:
    return SimulatedCpu(secret, CPU_SVN, PROVISIONING_SECRET if provisioning else None)


def app_report(report_data: bytes = b"hello".ljust(64, b"\0")) -> Report:
    return cpu().ereport(APP, QE.target_info(), report_data)


def test_report_body_is_the_enclave_identity() -> None:
    report = app_report()
    body = report.body
    assert body.mr_enclave == APP.mr_enclave
    assert body.mr_signer == APP.mr_signer
    assert body.attributes == APP.attributes
    assert body.isv_prod_id == APP.isv_prod_id
    assert body.isv_svn == APP.isv_svn
    assert body.cpu_svn == CPU_SVN
    assert body.report_data[:5] == b"hello"
    assert report.key_id == cpu().report_key_id
    assert len(report.to_bytes()) == 432


def test_report_verifies_for_the_targeted_enclave() -> None:
    cpu().verify_report(app_report(), QE)  # no exception
    cpu().verify_report(app_report().to_bytes(), QE)


def test_report_for_another_enclave_is_refused() -> None:
    report = cpu().ereport(APP, PCE.target_info(), bytes(64))  # targeted at the PCE
    with pytest.raises(ReportMacError) as info:
        cpu().verify_report(report, QE)
    assert info.value.sgx_status == SgxStatus.ERROR_MAC_MISMATCH
    cpu().verify_report(report, PCE)


def test_report_from_another_platform_is_refused() -> None:
    report = cpu(secret=bytes(32)).ereport(APP, QE.target_info(), bytes(64))
    with pytest.raises(ReportMacError):
        cpu().verify_report(report, QE)


def test_forged_mac_is_refused() -> None:
    report = app_report()
    forged = report.replace(mac=bytes(a ^ 1 for a in report.mac))
    with pytest.raises(ReportMacError, match="forged"):
        cpu().verify_report(forged, QE)


@given(st.integers(min_value=0, max_value=431), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_refused(position: int, flip: int) -> None:
    raw = bytearray(app_report().to_bytes())
    raw[position] ^= flip
    with pytest.raises(ReportMacError):
        cpu().verify_report(bytes(raw), QE)


def test_target_identity_fields_all_matter() -> None:
    """CONFIGSVN, MISCSELECT and ATTRIBUTES of the target are in the REPORT key."""
    target = QE.target_info()
    base = cpu().report_key(target)
    for changed in (
        target.replace(config_svn=1),
        target.replace(misc_select=1),
        target.replace(attributes=target.attributes.replace(xfrm=3)),
        target.replace(config_id=b"\x01" + bytes(63)),
        target.replace(mr_enclave=bytes(32)),
    ):
        assert cpu().report_key(changed) != base


def test_wrong_length_report_is_refused() -> None:
    with pytest.raises(ReportMacError, match="432"):
        cpu().report_verifier(QE).verify(bytes(431))


def test_report_key_request_matches_verifier() -> None:
    key = cpu().egetkey(QE, KeyRequest(KeyName.REPORT, key_id=cpu().report_key_id))
    assert key == cpu().report_key(QE.target_info())
    assert len(key) == 16


def test_seal_keys_follow_policy() -> None:
    c = cpu()
    qe_next = quoting_enclave_identity(11)  # same signer, new MRENCLAVE
    by_signer = KeyRequest(KeyName.SEAL, KeyPolicy.MRSIGNER, isv_svn=10)
    by_enclave = KeyRequest(KeyName.SEAL, KeyPolicy.MRENCLAVE, isv_svn=10)
    # MRSIGNER: an update of the enclave derives the old key; MRENCLAVE: it does not.
    assert c.egetkey(QE, by_signer) == c.egetkey(qe_next, by_signer)
    assert c.egetkey(QE, by_enclave) != c.egetkey(qe_next, by_enclave)
    # Another signer (the demo app, also at ISVSVN 1) derives another key.
    at_svn_1 = KeyRequest(KeyName.SEAL, KeyPolicy.MRSIGNER, isv_svn=1)
    assert c.egetkey(QE, at_svn_1) != c.egetkey(APP, at_svn_1)
    other_id = KeyRequest(KeyName.SEAL, KeyPolicy.MRSIGNER, isv_svn=10, key_id=b"\x01" * 32)
    assert c.egetkey(QE, by_signer) != c.egetkey(QE, other_id)


def test_seal_key_without_policy_is_refused() -> None:
    with pytest.raises(KeyRequestError, match="policy"):
        cpu().egetkey(APP, KeyRequest(KeyName.SEAL, KeyPolicy(0)))


def test_svns_above_the_enclave_or_cpu_are_refused() -> None:
    with pytest.raises(KeyRequestError) as info:
        cpu().egetkey(QE, KeyRequest(KeyName.SEAL, isv_svn=11))
    assert info.value.sgx_status == SgxStatus.ERROR_INVALID_ISVSVN
    higher_cpu = bytes([6]) + CPU_SVN[1:]
    with pytest.raises(KeyRequestError) as info:
        cpu().egetkey(QE, KeyRequest(KeyName.SEAL, cpu_svn=higher_cpu))
    assert info.value.sgx_status == SgxStatus.ERROR_INVALID_CPUSVN
    lower_cpu = bytes([4]) + CPU_SVN[1:]
    assert cpu().egetkey(QE, KeyRequest(KeyName.SEAL, cpu_svn=lower_cpu, isv_svn=9))


@pytest.mark.parametrize("name", [KeyName.PROVISION, KeyName.PROVISION_SEAL])
def test_only_provision_key_enclaves_derive_provisioning_keys(name: KeyName) -> None:
    assert not APP.has(AttributeFlags.PROVISION_KEY)
    with pytest.raises(KeyRequestError) as info:
        cpu().egetkey(APP, KeyRequest(name))
    assert info.value.sgx_status == SgxStatus.ERROR_INVALID_ATTRIBUTE
    assert "PROVISION_KEY" in info.value.diagnostics()
    assert "SGX_ERROR_INVALID_ATTRIBUTE 0x3002" in info.value.diagnostics()
    # QE3 and the PCE have the attribute.
    assert len(cpu().egetkey(QE, KeyRequest(name))) == 16
    assert cpu().egetkey(PCE, KeyRequest(name)) != cpu().egetkey(QE, KeyRequest(name))


def test_app_with_declared_provision_key_still_needs_the_secret() -> None:
    prov_app = build_identity(
        name="x", code=b"x", mr_signer=bytes(32), flags=AttributeFlags.PROVISION_KEY
    )
    assert len(cpu().egetkey(prov_app, KeyRequest(KeyName.PROVISION_SEAL))) == 16
    with pytest.raises(ProvisioningAccessError):
        cpu(provisioning=False).egetkey(prov_app, KeyRequest(KeyName.PROVISION))


def test_pck_key_is_the_kdf_contract_and_gated() -> None:
    key = cpu().derive_pck_key(PCE, CPU_SVN, 13, b"\x00\x00")
    expected = derive_pck_private_key(PROVISIONING_SECRET, CPU_SVN, 13, b"\x00\x00")
    assert key.private_numbers() == expected.private_numbers()
    # Older TCB levels are derivable (TCB recovery), newer ones are not.
    cpu().derive_pck_key(PCE, CPU_SVN, 12, b"\x00\x00")
    with pytest.raises(KeyRequestError):
        cpu().derive_pck_key(PCE, CPU_SVN, 14, b"\x00\x00")
    with pytest.raises(KeyRequestError):
        cpu().derive_pck_key(APP, CPU_SVN, 0, b"\x00\x00")
    with pytest.raises(ProvisioningAccessError):
        cpu(provisioning=False).derive_pck_key(PCE, CPU_SVN, 13, b"\x00\x00")


def test_einittoken_keys_are_not_simulated() -> None:
    with pytest.raises(KeyRequestError) as info:
        cpu().egetkey(QE, KeyRequest(KeyName.EINITTOKEN))
    assert info.value.sgx_status == SgxStatus.ERROR_INVALID_KEYNAME


def test_report_data_must_be_64_bytes() -> None:
    with pytest.raises(ValueError, match="64"):
        cpu().ereport(APP, QE.target_info(), b"short")
