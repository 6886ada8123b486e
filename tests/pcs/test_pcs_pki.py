"""Certificate and CRL profiles of the simulated manufacturer (dcap-quote.md sections 4-6)."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from sgx_quote_helper._version import PCE_SVN
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pccs import PckCertificateQuery
from sgx_quote_helper.pcs import (
    InvalidArgumentError,
    InvalidRequestError,
    Manufacturer,
    PlatformNotFoundError,
    RegisteredPlatform,
)
from sgx_quote_helper.platform import derive_pck_private_key, derive_provisioning_secret
from sgx_quote_helper.sgx import SGX_EXTENSION_OID, SgxExtension

# Intel's SGX root public key (dcap-quote.md section 5): the simulated root must differ.
INTEL_ROOT_PUBLIC_KEY = bytes.fromhex(
    "040ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f5"
    "67918e2edc88e40d860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394"
)
PCCS_URL = "http://pccs.example.test:8081"
REQUIRED_EXTENSIONS = {
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.BASIC_CONSTRAINTS,
}


# -- a minimal DER walker, to look at raw bytes the way QVL does --------------------------


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, header length, content length) of the TLV at ``offset``."""
    tag, first = data[offset], data[offset + 1]
    if first < 0x80:
        return tag, 2, first
    count = first & 0x7F
    return tag, 2 + count, int.from_bytes(data[offset + 2 : offset + 2 + count], "big")


def _children(der: bytes) -> list[bytes]:
    """The raw TLVs inside one constructed TLV."""
    _, header, length = _tlv(der, 0)
    content, items, pos = der[header : header + length], [], 0
    while pos < len(content):
        _, h, n = _tlv(content, pos)
        items.append(content[pos : pos + h + n])
        pos += h + n
    return items


def _raw_names(tbs: bytes, issuer_index: int, subject_index: int | None) -> tuple[bytes, bytes]:
    fields = _children(tbs)
    return fields[issuer_index], fields[subject_index] if subject_index is not None else b""


def _cert_raw_issuer_subject(cert: x509.Certificate) -> tuple[bytes, bytes]:
    # TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
    return _raw_names(cert.tbs_certificate_bytes, 3, 5)


def _crl_raw_issuer(crl: x509.CertificateRevocationList) -> bytes:
    # TBSCertList: version, signature, issuer, thisUpdate, ...
    return _raw_names(crl.tbs_certlist_bytes, 2, None)[0]


# -- fixtures ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim")
    manufacturer = Manufacturer.create(path, pccs_url=PCCS_URL + "/")
    for name, ca in (("proc", "processor"), ("plat", "platform")):
        manufacturer.register_platform(
            manufacturer.new_platform(name, path / "platforms" / name, ca_type=ca)
        )
    return path


@pytest.fixture
def manufacturer(sim_dir: Path) -> Manufacturer:
    return Manufacturer.load(sim_dir)


def _platform(manufacturer: Manufacturer, ca_type: str) -> RegisteredPlatform:
    return next(p for p in manufacturer.platforms() if p.ca_type == ca_type)


def _query(platform: RegisteredPlatform, pce_svn: int = PCE_SVN) -> PckCertificateQuery:
    return PckCertificateQuery(platform.qe_id, platform.cpu_svn, pce_svn, platform.pce_id)


def _leaf(manufacturer: Manufacturer, ca_type: str) -> x509.Certificate:
    issued = manufacturer.issue_pck_certificate(_query(_platform(manufacturer, ca_type)))
    return x509.load_pem_x509_certificate(issued.leaf_pem.encode())


def _all_certificates(manufacturer: Manufacturer) -> dict[str, x509.Certificate]:
    certificates = {
        name: manufacturer.certificate(name)
        for name in ("root", "processor", "platform", "tcb-signing")
    }
    certificates["leaf-processor"] = _leaf(manufacturer, "processor")
    certificates["leaf-platform"] = _leaf(manufacturer, "platform")
    return certificates


def _ext(
    cert: x509.Certificate | x509.CertificateRevocationList, oid: x509.ObjectIdentifier
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(oid)


def _ski(cert: x509.Certificate) -> bytes:
    value = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert isinstance(value, x509.SubjectKeyIdentifier)
    return value.digest


def _aki(cert: x509.Certificate | x509.CertificateRevocationList) -> bytes | None:
    value = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    assert isinstance(value, x509.AuthorityKeyIdentifier)
    return value.key_identifier


def _cdp(cert: x509.Certificate) -> str:
    value = _ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert isinstance(value, x509.CRLDistributionPoints)
    [point] = list(value)
    assert point.full_name is not None
    [name] = point.full_name
    assert isinstance(name, x509.UniformResourceIdentifier)
    return name.value


def _key_usage(cert: x509.Certificate) -> set[str]:
    extension = _ext(cert, ExtensionOID.KEY_USAGE)
    assert extension.critical
    usage = extension.value
    assert isinstance(usage, x509.KeyUsage)
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment"]
    names += ["key_agreement", "key_cert_sign", "crl_sign"]
    return {name for name in names if getattr(usage, name)}


def _basic_constraints(cert: x509.Certificate) -> tuple[bool, int | None]:
    extension = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert extension.critical
    value = extension.value
    assert isinstance(value, x509.BasicConstraints)
    return value.ca, value.path_length


def _verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    public_key = issuer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(issuer)


# -- certificate profiles ------------------------------------------------------------------


def test_every_certificate_is_p256_ecdsa_sha256_with_the_five_required_extensions(
    manufacturer: Manufacturer,
) -> None:
    for name, cert in _all_certificates(manufacturer).items():
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey), name
        assert isinstance(key.curve, ec.SECP256R1), name
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256, name
        assert cert.version == x509.Version.v3, name
        assert {e.oid for e in cert.extensions} >= REQUIRED_EXTENSIONS, name
        assert _ski(cert) == x509.SubjectKeyIdentifier.from_public_key(key).digest, name


def test_root_ca_profile(manufacturer: Manufacturer) -> None:
    root = manufacturer.certificate("root")
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Simulated SGX Root CA"
    )
    assert _key_usage(root) == {"key_cert_sign", "crl_sign"}
    assert _basic_constraints(root) == (True, 1)
    assert _aki(root) == _ski(root)
    assert _cdp(root) == f"{PCCS_URL}/sim/root-ca.crl"
    assert (manufacturer.pcs_dir / "root-ca.der").read_bytes() == manufacturer.root_ca_der
    pem = (manufacturer.pcs_dir / "root-ca.pem").read_bytes()
    assert x509.load_pem_x509_certificate(pem) == root


@pytest.mark.parametrize(
    ("ca_type", "cn"),
    [
        ("processor", "Simulated SGX PCK Processor CA"),
        ("platform", "Simulated SGX PCK Platform CA"),
    ],
)
def test_pck_ca_profile(manufacturer: Manufacturer, ca_type: str, cn: str) -> None:
    ca, root = manufacturer.certificate(ca_type), manufacturer.certificate("root")
    _verify_signed_by(ca, root)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    assert _key_usage(ca) == {"key_cert_sign", "crl_sign"}
    assert _basic_constraints(ca) == (True, 0)
    assert _aki(ca) == _ski(root)
    assert _cdp(ca) == f"{PCCS_URL}/sim/root-ca.crl"
    assert _cert_raw_issuer_subject(ca)[0] == _cert_raw_issuer_subject(root)[1]


def test_tcb_signing_is_an_end_entity_issued_directly_by_the_root(
    manufacturer: Manufacturer,
) -> None:
    signer, root = manufacturer.certificate("tcb-signing"), manufacturer.certificate("root")
    _verify_signed_by(signer, root)
    assert signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Simulated SGX TCB Signing"
    )
    assert _key_usage(signer) == {"digital_signature", "content_commitment"}
    assert _basic_constraints(signer) == (False, None)
    assert _aki(signer) == _ski(root)
    assert _cdp(signer) == f"{PCCS_URL}/sim/root-ca.crl"


@pytest.mark.parametrize(("ca_type", "entries"), [("processor", 5), ("platform", 7)])
def test_pck_certificate_profile_and_sgx_extension(
    manufacturer: Manufacturer, ca_type: str, entries: int
) -> None:
    platform = _platform(manufacturer, ca_type)
    leaf = _leaf(manufacturer, ca_type)
    ca = manufacturer.certificate(ca_type)
    _verify_signed_by(leaf, ca)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Simulated SGX PCK Certificate"
    )
    assert _key_usage(leaf) == {"digital_signature", "content_commitment"}
    assert _basic_constraints(leaf) == (False, None)
    assert _aki(leaf) == _ski(ca)
    assert _cdp(leaf) == (f"{PCCS_URL}/sgx/certification/v4/pckcrl?ca={ca_type}&encoding=der")

    extension = _ext(leaf, x509.ObjectIdentifier(SGX_EXTENSION_OID))
    assert not extension.critical
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    raw = extension.value.value
    top = _children(raw)
    assert len(top) == entries
    tcb_entry = _children(top[1])
    assert len(_children(tcb_entry[1])) == 18

    decoded = SgxExtension.from_certificate(leaf)
    assert decoded.ppid == platform.ppid
    assert decoded.cpu_svn == platform.cpu_svn == bytes(decoded.tcb_components)
    assert decoded.pce_svn == PCE_SVN
    assert decoded.pce_id == platform.pce_id
    assert decoded.fmspc == platform.fmspc
    assert decoded.is_platform_ca == (ca_type == "platform")
    # FMSPC and PCE-ID equal the TCB Info's (QVL checks both).
    inner = manufacturer.tcb_info(platform.fmspc).inner
    assert inner["fmspc"] == decoded.fmspc.hex().upper()
    assert inner["pceId"] == decoded.pce_id.hex().upper()

    # An independent decoder agrees (dcap-qvl, Rust).
    parsed = dcap_qvl.parse_pck_extension_from_pem(leaf.public_bytes(serialization.Encoding.PEM))
    assert bytes(parsed.fmspc) == platform.fmspc
    assert bytes(parsed.cpu_svn) == platform.cpu_svn
    assert parsed.pce_svn == PCE_SVN


def test_pck_key_is_the_one_the_platform_derives(manufacturer: Manufacturer, sim_dir: Path) -> None:
    platform = _platform(manufacturer, "processor")
    master = (sim_dir / "pcs" / "master.secret").read_bytes()
    secret = derive_provisioning_secret(master, platform.ppid)
    for pce_svn in (PCE_SVN, PCE_SVN + 2):
        issued = manufacturer.issue_pck_certificate(_query(platform, pce_svn))
        leaf = x509.load_pem_x509_certificate(issued.leaf_pem.encode())
        expected = derive_pck_private_key(secret, platform.cpu_svn, pce_svn, platform.pce_id)
        assert leaf.public_key() == expected.public_key()
        # TCBm is the raw queried TCB: CPUSVN || PCESVN (u16 LE).
        assert issued.tcbm == platform.cpu_svn + pce_svn.to_bytes(2, "little")
        assert issued.fmspc == platform.fmspc
        assert issued.ca_type == "processor"
        assert issued.issuer_chain_pem == manufacturer.pck_crl_issuer_chain_pem("processor")
        assert issued.chain_pem().count("BEGIN CERTIFICATE") == 3


def test_repeated_requests_reuse_the_certificate_on_record(manufacturer: Manufacturer) -> None:
    platform = _platform(manufacturer, "platform")
    first = manufacturer.issue_pck_certificate(_query(platform))
    again = Manufacturer.load(manufacturer.sim_dir).issue_pck_certificate(_query(platform))
    assert first.leaf_pem == again.leaf_pem
    serials = {c.serial_number for c in manufacturer.issued_pck_certificates(platform)}
    assert x509.load_pem_x509_certificate(first.leaf_pem.encode()).serial_number in serials


def test_platform_found_by_encrypted_ppid(manufacturer: Manufacturer) -> None:
    platform = _platform(manufacturer, "processor")
    public_key = serialization.load_pem_public_key(manufacturer.ppid_encryption_key_pem.encode())
    encrypted = public_key.encrypt(  # type: ignore[union-attr]
        platform.ppid,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    query = PckCertificateQuery(os.urandom(16), platform.cpu_svn, PCE_SVN, b"\0\0", encrypted)
    issued = manufacturer.issue_pck_certificate(query)
    assert (
        SgxExtension.from_certificate(x509.load_pem_x509_certificate(issued.leaf_pem.encode())).ppid
        == platform.ppid
    )


def test_unknown_or_malformed_queries_raise_typed_errors(manufacturer: Manufacturer) -> None:
    platform = _platform(manufacturer, "processor")
    with pytest.raises(PlatformNotFoundError, match="QE-ID"):
        manufacturer.issue_pck_certificate(
            PckCertificateQuery(os.urandom(16), platform.cpu_svn, PCE_SVN, b"\0\0")
        )
    with pytest.raises(PlatformNotFoundError, match="PCE-ID"):
        manufacturer.issue_pck_certificate(
            PckCertificateQuery(platform.qe_id, platform.cpu_svn, PCE_SVN, b"\1\0")
        )
    with pytest.raises(InvalidRequestError, match="CPUSVN"):
        manufacturer.issue_pck_certificate(
            PckCertificateQuery(platform.qe_id, b"\0", PCE_SVN, b"\0\0")
        )
    with pytest.raises(InvalidRequestError, match="encrypted PPID"):
        manufacturer.issue_pck_certificate(
            PckCertificateQuery(os.urandom(16), platform.cpu_svn, 1, b"\0\0", bytes(384))
        )


def test_names_are_honest(manufacturer: Manufacturer) -> None:
    for name, cert in _all_certificates(manufacturer).items():
        for dn in (cert.subject, cert.issuer):
            assert "intel" not in dn.rfc4514_string().lower(), name
            assert dn.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
                "Simulated SGX Manufacturer"
            )
            assert str(dn.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value).startswith(
                "Simulated SGX "
            )
    root_key = manufacturer.certificate("root").public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    point = root_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point != INTEL_ROOT_PUBLIC_KEY


def test_secrets_have_restrictive_modes(sim_dir: Path) -> None:
    pcs = sim_dir / "pcs"
    for name in ("root-ca.key", "pck-processor-ca.key", "pck-platform-ca.key", "tcb-signing.key"):
        assert (pcs / name).stat().st_mode & 0o777 == 0o600, name
    assert (pcs / "ppid-encryption.key").stat().st_mode & 0o777 == 0o600
    assert (pcs / "master.secret").stat().st_mode & 0o777 == 0o600
    for name in ("root-ca.der", "root-ca.pem", "policy.json", "registry.json"):
        assert (pcs / name).stat().st_mode & 0o777 == 0o644, name


# -- CRLs ----------------------------------------------------------------------------------


def _check_crl(der: bytes, issuer: x509.Certificate) -> x509.CertificateRevocationList:
    crl = x509.load_der_x509_crl(der)
    assert crl.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    public_key = issuer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(public_key)
    # v2: the TBSCertList starts with version INTEGER 1.
    assert _children(crl.tbs_certlist_bytes)[0] == b"\x02\x01\x01"
    assert _crl_raw_issuer(crl) == _cert_raw_issuer_subject(issuer)[1]
    number = _ext(crl, ExtensionOID.CRL_NUMBER).value
    assert isinstance(number, x509.CRLNumber)
    assert number.crl_number >= 1
    assert _aki(crl) == _ski(issuer)
    assert crl.next_update_utc is not None
    assert crl.last_update_utc <= datetime.now(UTC) < crl.next_update_utc
    return crl


def test_crls_are_v2_with_number_and_aki_and_issuer_bytes_of_the_signer(
    manufacturer: Manufacturer,
) -> None:
    _check_crl(manufacturer.root_ca_crl(), manufacturer.certificate("root"))
    for ca_type in ("processor", "platform"):
        _check_crl(manufacturer.pck_crl(ca_type), manufacturer.certificate(ca_type))


def test_revocations_reach_the_crls(tmp_path: Path) -> None:
    clock = Clock()
    manufacturer = Manufacturer.create(tmp_path, clock=clock)
    platform = manufacturer.register_platform(manufacturer.new_platform("a", tmp_path / "platform"))
    other = manufacturer.register_platform(manufacturer.new_platform("b", tmp_path / "b"))
    before = _check_crl(manufacturer.pck_crl("processor"), manufacturer.certificate("processor"))
    assert len(before) == 0
    leaves = [
        x509.load_pem_x509_certificate(
            manufacturer.issue_pck_certificate(_query(platform, svn)).leaf_pem.encode()
        )
        for svn in (PCE_SVN, PCE_SVN + 1)
    ]
    innocent = x509.load_pem_x509_certificate(
        manufacturer.issue_pck_certificate(_query(other)).leaf_pem.encode()
    )

    manufacturer.revoke_platform(platform)
    crl = _check_crl(manufacturer.pck_crl("processor"), manufacturer.certificate("processor"))
    revoked = {entry.serial_number for entry in crl}
    assert revoked == {leaf.serial_number for leaf in leaves}
    assert innocent.serial_number not in revoked
    number = _ext(crl, ExtensionOID.CRL_NUMBER).value
    assert isinstance(number, x509.CRLNumber)
    assert number.crl_number == 2  # re-issued because its content changed

    # A certificate issued to a revoked platform later is revoked too.
    late = x509.load_pem_x509_certificate(
        manufacturer.issue_pck_certificate(_query(platform, PCE_SVN + 5)).leaf_pem.encode()
    )
    crl = x509.load_der_x509_crl(manufacturer.pck_crl("processor"))
    assert crl.get_revoked_certificate_by_serial_number(late.serial_number) is not None

    manufacturer.revoke_serial(innocent.serial_number)
    crl = x509.load_der_x509_crl(manufacturer.pck_crl("processor"))
    assert crl.get_revoked_certificate_by_serial_number(innocent.serial_number) is not None

    manufacturer.revoke_ca("platform")
    root_crl = _check_crl(manufacturer.root_ca_crl(), manufacturer.certificate("root"))
    assert {e.serial_number for e in root_crl} == {
        manufacturer.certificate("platform").serial_number
    }


# cryptography (and RFC 5280 4.1.2.2) take positive serials of at most 159 bits.
_UNLISTABLE_SERIALS = [0, -5, 1 << 159, 1 << 200]


@pytest.mark.parametrize("serial", _UNLISTABLE_SERIALS, ids=["0", "-5", "160-bit", "201-bit"])
def test_revoking_a_serial_no_certificate_can_carry_is_a_usage_error(
    tmp_path: Path, serial: int
) -> None:
    manufacturer = Manufacturer.create(tmp_path)
    with pytest.raises(InvalidArgumentError, match="serial number") as raised:
        manufacturer.revoke_serial(serial)
    assert isinstance(raised.value, UsageError)
    assert manufacturer.policy().revocations.pck_certificates == ()
    # The largest serial a certificate can carry is still revocable and listed.
    largest = (1 << 159) - 1
    manufacturer.revoke_serial(largest)
    crl = x509.load_der_x509_crl(manufacturer.pck_crl("processor"))
    assert crl.get_revoked_certificate_by_serial_number(largest) is not None


def test_invalid_serials_stored_by_an_older_release_are_left_off_the_crl(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manufacturer = Manufacturer.create(tmp_path)
    manufacturer.revoke_serial(0xABCDEF)
    # What an older release wrote for `sim revoke --serial 00` (and -5, and 160 bits).
    policy_path = tmp_path / "pcs" / "policy.json"
    document = json.loads(policy_path.read_text())
    entries = document["revocations"]["pckCertificates"]
    date = entries[0]["date"]
    entries += [{"serial": f"{serial:X}", "date": date} for serial in _UNLISTABLE_SERIALS]
    policy_path.write_text(json.dumps(document))

    loaded = Manufacturer.load(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sgx_quote_helper.pcs"):
        for _ in range(2):
            crl = _check_crl(loaded.pck_crl("processor"), loaded.certificate("processor"))
            assert [entry.serial_number for entry in crl] == [0xABCDEF]
    warnings = [r for r in caplog.records if r.getMessage() == "crl.invalid_serial_skipped"]
    # One warning per bad serial (not per request), saying which and where to remove it.
    assert sorted(r.fields["serial"] for r in warnings) == sorted(  # type: ignore[attr-defined]
        f"{serial:X}" for serial in _UNLISTABLE_SERIALS
    )
    for record in warnings:
        assert str(policy_path) in record.fields["fix"]  # type: ignore[attr-defined]
        assert "revocations.pckCertificates" in record.fields["fix"]  # type: ignore[attr-defined]
