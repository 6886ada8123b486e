"""End to end: unmodified dcap-qvl fetches collateral from the running service and judges
quotes certified by the simulated manufacturer (dcap-quote.md section 12).

The quotes are built by hand here, from the layout of dcap-quote.md sections 1-2
and the KDF contract (``platform._keys``), so that this test depends on the
manufacturer alone: a v3 header with Intel's QE vendor ID, an ISV report, an
attestation key bound into a QE report (QE3 MRSIGNER, prod ID 1, flags 0x15)
signed by the platform's PCK key, and a type-5 PCK chain with its trailing NUL.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dcap_qvl
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.pccs import PckCertificateQuery
from sgx_quote_helper.pcs import Manufacturer, RunningService, serve_in_thread
from sgx_quote_helper.platform import derive_pck_private_key, derive_provisioning_secret
from sgx_quote_helper.sgx import (
    INTEL_QE_VENDOR_ID,
    QE3_MRSIGNER,
    QE3_PROD_ID,
    Attributes,
    QuoteHeader,
    ReportBody,
    ec_public_key_to_raw,
    ecdsa_sign_raw,
)

QE_AUTH_DATA = bytes(range(32))
CERT_TYPE_PCK_CHAIN = 5


def build_quote(manufacturer: Manufacturer, platform_name: str, *, qe_svn: int = QE_SVN) -> bytes:
    """A v3 quote from ``platform_name`` as QE3 ``qe_svn`` with this release's PCE."""
    platform = manufacturer.find_platform(platform_name)
    certificate = manufacturer.issue_pck_certificate(
        PckCertificateQuery(platform.qe_id, platform.cpu_svn, PCE_SVN, platform.pce_id)
    )
    master = (manufacturer.pcs_dir / "master.secret").read_bytes()
    pck_key = derive_pck_private_key(
        derive_provisioning_secret(master, platform.ppid),
        platform.cpu_svn,
        PCE_SVN,
        platform.pce_id,
    )
    attestation_key = ec.generate_private_key(ec.SECP256R1())
    attest_pub = ec_public_key_to_raw(attestation_key.public_key())
    header = QuoteHeader(
        version=3,
        att_key_type=2,
        tee_type=0,
        qe_svn=qe_svn,
        pce_svn=PCE_SVN,
        qe_vendor_id=INTEL_QE_VENDOR_ID,
        user_data=platform.qe_id + bytes(4),
    ).to_bytes()
    isv_body = ReportBody(
        cpu_svn=platform.cpu_svn,
        attributes=Attributes(flags=0x05, xfrm=0x03),  # INIT | MODE64BIT, not DEBUG
        mr_enclave=os.urandom(32),
        mr_signer=os.urandom(32),
        report_data=b"pcs end-to-end".ljust(64, b"\0"),
    ).to_bytes()
    qe_report = ReportBody(
        cpu_svn=platform.cpu_svn,
        attributes=Attributes(flags=0x15, xfrm=0xE7),  # INIT | MODE64BIT | PROVISION_KEY
        mr_enclave=os.urandom(32),
        mr_signer=QE3_MRSIGNER,
        isv_prod_id=QE3_PROD_ID,
        isv_svn=qe_svn,
        report_data=hashlib.sha256(attest_pub + QE_AUTH_DATA).digest() + bytes(32),
    ).to_bytes()
    chain = certificate.chain_pem().encode() + b"\0"  # Intel counts a trailing NUL
    signature_data_tail = (
        attest_pub
        + qe_report
        + ecdsa_sign_raw(pck_key, qe_report)
        + len(QE_AUTH_DATA).to_bytes(2, "little")
        + QE_AUTH_DATA
        + CERT_TYPE_PCK_CHAIN.to_bytes(2, "little")
        + len(chain).to_bytes(4, "little")
        + chain
    )
    signature = ecdsa_sign_raw(attestation_key, header + isv_body)
    signature_data_len = (64 + len(signature_data_tail)).to_bytes(4, "little")
    return header + isv_body + signature_data_len + signature + signature_data_tail


async def _fetch(url: str, quote: bytes) -> object:
    return await dcap_qvl.get_collateral(url, quote)


def verify(service: RunningService, quote: bytes) -> object:
    """dcap-qvl's verdict with collateral fetched from the service and the simulated root."""
    collateral = asyncio.run(_fetch(service.url, quote))
    return dcap_qvl.verify_with_root_ca(
        quote, collateral, service.manufacturer.root_ca_der, int(time.time())
    )


@dataclass
class Sim:
    service: RunningService

    @property
    def manufacturer(self) -> Manufacturer:
        return self.service.manufacturer


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim")
    manufacturer = Manufacturer.create(path)
    manufacturer.register_platform(manufacturer.new_platform("default", path / "platform"))
    manufacturer.register_platform(
        manufacturer.new_platform("multi", path / "platforms" / "multi", ca_type="platform")
    )
    return path


@pytest.fixture
def sim(template: Path, tmp_path: Path) -> Iterator[Sim]:
    path = tmp_path / "sim"
    shutil.copytree(template, path)
    with serve_in_thread(path) as service:
        yield Sim(service)


@pytest.mark.parametrize("platform", ["default", "multi"])
def test_a_fresh_simulation_verifies_up_to_date(sim: Sim, platform: str) -> None:
    report = verify(sim.service, build_quote(sim.manufacturer, platform))
    assert report.status == "UpToDate"  # type: ignore[attr-defined]
    assert report.advisory_ids == []  # type: ignore[attr-defined]


def test_the_simulated_root_is_not_intels(sim: Sim) -> None:
    quote = build_quote(sim.manufacturer, "default")
    collateral = asyncio.run(_fetch(sim.service.url, quote))
    with pytest.raises(ValueError, match=r"(?i)cert|root|chain"):
        dcap_qvl.verify(quote, collateral, int(time.time()))


def test_tcb_recovery_makes_the_old_qe_out_of_date(sim: Sim) -> None:
    old = build_quote(sim.manufacturer, "default", qe_svn=QE_SVN)
    sim.manufacturer.tcb_recovery(qe_svn=QE_SVN + 1)
    assert verify(sim.service, old).status == "OutOfDate"  # type: ignore[attr-defined]
    new = build_quote(sim.manufacturer, "default", qe_svn=QE_SVN + 1)
    assert verify(sim.service, new).status == "UpToDate"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "status",
    ["SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate"],
)
def test_each_platform_tcb_status_is_reported(sim: Sim, status: str) -> None:
    quote = build_quote(sim.manufacturer, "default")
    sim.manufacturer.set_platform_tcb_status(
        status, platform=sim.manufacturer.find_platform("default"), advisory_ids=["SIM-SA-00042"]
    )
    report = verify(sim.service, quote)
    assert report.status == status  # type: ignore[attr-defined]
    assert report.advisory_ids == ["SIM-SA-00042"]  # type: ignore[attr-defined]


def test_revoked_tcb_level_is_an_error(sim: Sim) -> None:
    quote = build_quote(sim.manufacturer, "default")
    sim.manufacturer.set_platform_tcb_status("Revoked")
    with pytest.raises(ValueError, match="Revoked"):
        verify(sim.service, quote)


def test_revoked_pck_certificate_fails(sim: Sim) -> None:
    quote = build_quote(sim.manufacturer, "default")
    sim.manufacturer.revoke_platform(sim.manufacturer.find_platform("default"))
    with pytest.raises(ValueError, match="CertRevoked"):
        verify(sim.service, quote)
    other = build_quote(sim.manufacturer, "multi")  # another platform is unaffected
    assert verify(sim.service, other).status == "UpToDate"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("artifact", "reason"),
    [
        ("tcbInfo", "TCBInfo expired"),
        ("qeIdentity", "QE Identity expired"),
        ("pckCrl", "CrlExpired"),
    ],
)
def test_expired_collateral_fails_with_an_expiry_reason(
    sim: Sim, artifact: str, reason: str
) -> None:
    quote = build_quote(sim.manufacturer, "default")
    sim.manufacturer.set_expired([artifact])
    with pytest.raises(ValueError, match=reason):
        verify(sim.service, quote)
