"""SimBackend: the QuoteBackend over the simulated platform, end to end.

The PCK chain comes from a tiny CA made here with ``cryptography`` (root ->
PCK CA -> leaf for the platform's derived PCK key): the simulated manufacturer
and dcap-qvl are exercised by the end-to-end tests, not here.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sgx_quote_helper.backends import (
    BACKEND_NAMES,
    BackendInfo,
    QuoteBackend,
    QuoteError,
    SimBackend,
    create_backend,
)
from sgx_quote_helper.errors import SgxQuoteHelperError, UsageError
from sgx_quote_helper.pccs import (
    PccsPlatformNotFound,
    PccsUnreachable,
    PckCertificate,
    PckCertificateQuery,
)
from sgx_quote_helper.platform import (
    Platform,
    create_platform,
    demo_app_identity,
    derive_pck_private_key,
    derive_provisioning_secret,
    quoting_enclave_identity,
)
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    INTEL_QE_VENDOR_ID,
    QE3_MRSIGNER,
    PckCertChain,
    QeReportInfo,
    Quote,
    Quote3Error,
    Report,
    build_quote_v3,
    ec_public_key_from_raw,
    ecdsa_sign_raw,
    ecdsa_verify_raw,
)

MASTER_SECRET = b"test master secret".ljust(32, b"\0")
PPID = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
QE_ID = bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabacadaeafb0")
FMSPC = bytes.fromhex("00906ed50000")
PCE_ID = b"\x00\x00"
COMPONENTS = [3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]
KEY_ID = DEFAULT_ECDSA_ATT_KEY_ID.base
APP = demo_app_identity()


class TinyManufacturer:
    """A test-only CA issuing PCK leaves for the KDF-derived PCK key of a query."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.root_pem = self._issue(
            "Test SGX Root CA", "Test SGX Root CA", self.root_key.public_key(), self.root_key
        )
        self.ca_pem = self._issue(
            "Test SGX PCK Processor CA", "Test SGX Root CA", self.ca_key.public_key(), self.root_key
        )
        self.queries: list[PckCertificateQuery] = []

    @staticmethod
    def _issue(
        subject: str,
        issuer: str,
        key: ec.EllipticCurvePublicKey,
        signer: ec.EllipticCurvePrivateKey,
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

    def __call__(self, query: PckCertificateQuery) -> PckCertificate:
        self.queries.append(query)
        provisioning_secret = derive_provisioning_secret(MASTER_SECRET, PPID)
        pck = derive_pck_private_key(
            provisioning_secret, query.cpu_svn, query.pce_svn, query.pce_id
        )
        return PckCertificate(
            leaf_pem=self._issue(
                "Test SGX PCK Certificate",
                "Test SGX PCK Processor CA",
                pck.public_key(),
                self.ca_key,
            ),
            issuer_chain_pem=self.ca_pem + self.root_pem,
            tcbm=query.cpu_svn + query.pce_svn.to_bytes(2, "little"),
            fmspc=FMSPC,
            ca_type="processor",
        )


@pytest.fixture(scope="module")
def ppid_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def manufacturer() -> TinyManufacturer:
    return TinyManufacturer()


@pytest.fixture
def platform_dir(tmp_path: Path, ppid_key_pem: str) -> Path:
    path = tmp_path / "platform"
    create_platform(
        path,
        ppid=PPID,
        qe_id=QE_ID,
        fmspc=FMSPC,
        pce_id=PCE_ID,
        tcb_components=COMPONENTS,
        provisioning_secret=derive_provisioning_secret(MASTER_SECRET, PPID),
        ppid_encryption_key_pem=ppid_key_pem,
    )
    return path


@pytest.fixture
def backend(platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer) -> SimBackend:
    return SimBackend(platform_dir, tmp_path / "state", pck_source=manufacturer)


def app_report(platform_dir: Path, target_backend: SimBackend, data: bytes = b"hello") -> Report:
    """What an application process does: EREPORT for the QE, without provisioning access."""
    cpu = Platform.load(platform_dir, need_provisioning=False).cpu()
    target = target_backend.init_quote(KEY_ID).target_info
    return cpu.ereport(APP, target, data.ljust(64, b"\0"))


def test_is_a_quote_backend(backend: SimBackend) -> None:
    assert isinstance(backend, QuoteBackend)
    assert backend.info() == BackendInfo(name="sim", qe_svn=10, pce_svn=13, simulated=True)
    assert backend.supported_att_key_ids() == [DEFAULT_ECDSA_ATT_KEY_ID]


def test_size_and_quote_need_init(backend: SimBackend, platform_dir: Path) -> None:
    with pytest.raises(QuoteError) as info:
        backend.quote_size(KEY_ID)
    assert info.value.code == Quote3Error.ATT_KEY_NOT_INITIALIZED
    report = (
        Platform.load(platform_dir, need_provisioning=False)
        .cpu()
        .ereport(APP, quoting_enclave_identity(10).target_info(), bytes(64))
    )
    with pytest.raises(QuoteError) as info:
        backend.get_quote(report.to_bytes(), KEY_ID, None)
    assert info.value.code == Quote3Error.ATT_KEY_NOT_INITIALIZED
    assert "SGX_QL_ATT_KEY_NOT_INITIALIZED 0xE00F" in info.value.diagnostics()


def test_init_quote(backend: SimBackend, manufacturer: TinyManufacturer) -> None:
    result = backend.init_quote(KEY_ID)
    assert result.target_info == quoting_enclave_identity(10).target_info()
    assert result.pub_key_id is not None
    assert len(result.pub_key_id) == 32
    query = manufacturer.queries[-1]
    assert query.qe_id == QE_ID
    assert query.cpu_svn == bytes(COMPONENTS)
    assert (query.pce_svn, query.pce_id) == (13, PCE_ID)
    assert query.encrypted_ppid is not None
    assert len(query.encrypted_ppid) == 384
    assert backend.initialized
    assert backend.att_key_blob_errors == 0
    # Repeated inits ask the same question (the randomized OAEP PPID is kept).
    backend.init_quote(KEY_ID)
    assert manufacturer.queries[-1] == query


def test_quote_is_a_valid_dcap_v3_quote(backend: SimBackend, platform_dir: Path) -> None:
    report = app_report(platform_dir, backend, b"report data")
    result = backend.get_quote(report.to_bytes(), KEY_ID, None)
    assert result.qe_report_info is None
    raw = result.quote
    assert len(raw) == backend.quote_size(KEY_ID)
    quote = Quote.from_bytes(raw)
    assert quote.to_bytes() == raw

    # Header (dcap-quote.md section 12, item 1).
    header = quote.header
    assert (header.version, header.att_key_type, header.tee_type) == (3, 2, 0)
    assert (header.qe_svn, header.pce_svn) == (10, 13)
    assert header.qe_vendor_id == INTEL_QE_VENDOR_ID
    assert header.user_data == QE_ID + bytes(4)
    # Body: the application's REPORT body, unchanged.
    assert quote.report_body == report.body

    # Signatures (item 2).
    attest_key = ec_public_key_from_raw(quote.attest_pub_key)
    assert ecdsa_verify_raw(attest_key, quote.sig, raw[:432])
    chain = quote.pck_chain()
    pck_key = chain[0].public_key()
    assert isinstance(pck_key, ec.EllipticCurvePublicKey)
    assert ecdsa_verify_raw(pck_key, quote.qe_report_sig, quote.qe_report.to_bytes())
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(chain[2])

    # Binding (item 3).
    assert quote.qe_auth_data == bytes(range(32))
    digest = hashlib.sha256(quote.attest_pub_key + quote.qe_auth_data).digest()
    assert quote.qe_report.report_data == digest + bytes(32)
    assert backend.init_quote(KEY_ID).pub_key_id == digest

    # QE report identity (item 4).
    qe_report = quote.qe_report
    assert qe_report.mr_signer == QE3_MRSIGNER
    assert qe_report.isv_prod_id == 1
    assert qe_report.isv_svn == 10
    assert qe_report.attributes.flags == 0x15
    assert not qe_report.attributes.debug
    assert qe_report.misc_select == 0
    assert qe_report.cpu_svn == bytes(COMPONENTS)

    # Certification data (item 5): type 5, three PEM certificates, trailing NUL.
    cert_data = quote.certification_data
    assert isinstance(cert_data, PckCertChain)
    assert cert_data.cert_type == 5
    assert len(cert_data.pems) == 3
    assert cert_data.trailing_nul
    assert raw.endswith(b"-----END CERTIFICATE-----\n\x00")
    signature_data_len = int.from_bytes(raw[432:436], "little")
    assert len(raw) == 436 + signature_data_len


def test_fast_path_equals_the_codec_builder(backend: SimBackend, platform_dir: Path) -> None:
    """The precomputed concatenation is byte-identical to ``build_quote_v3``."""
    raw = backend.get_quote(app_report(platform_dir, backend).to_bytes(), KEY_ID, None).quote
    parsed = Quote.from_bytes(raw)
    rebuilt = build_quote_v3(
        parsed.header,
        parsed.report_body,  # type: ignore[arg-type]
        sign=lambda _data: parsed.sig,
        attest_pub_key=parsed.attest_pub_key,
        qe_report=parsed.qe_report,
        qe_report_sig=parsed.qe_report_sig,
        qe_auth_data=parsed.qe_auth_data,
        certification_data=parsed.certification_data,
    )
    assert rebuilt == raw
    # ...and the builder with a real signer gives a quote of the same shape.
    other = build_quote_v3(
        parsed.header,
        parsed.report_body,  # type: ignore[arg-type]
        sign=functools.partial(ecdsa_sign_raw, ec.generate_private_key(ec.SECP256R1())),
        attest_pub_key=parsed.attest_pub_key,
        qe_report=parsed.qe_report,
        qe_report_sig=parsed.qe_report_sig,
        qe_auth_data=parsed.qe_auth_data,
        certification_data=parsed.certification_data,
    )
    assert len(other) == len(raw)
    assert other[:432] == raw[:432]
    assert other[500:] == raw[500:]


def test_qe_report_info(backend: SimBackend, platform_dir: Path) -> None:
    report = app_report(platform_dir, backend)
    info = QeReportInfo(nonce=bytes(range(16)), app_enclave_target_info=APP.target_info())
    result = backend.get_quote(report.to_bytes(), KEY_ID, info)
    filled = result.qe_report_info
    assert filled is not None
    expected = hashlib.sha256(info.nonce + result.quote).digest() + bytes(32)
    assert filled.qe_report.body.report_data == expected
    # The application enclave can check the QE report (it is targeted at it).
    Platform.load(platform_dir, need_provisioning=False).cpu().verify_report(filled.qe_report, APP)


@pytest.mark.parametrize("damage", ["mac", "body", "target"])
def test_bad_reports_are_invalid_report(
    backend: SimBackend, platform_dir: Path, damage: str
) -> None:
    good = app_report(platform_dir, backend)
    if damage == "mac":
        bad = good.replace(mac=bytes(b ^ 0xFF for b in good.mac))
    elif damage == "body":
        bad = good.replace(body=good.body.replace(report_data=b"x" * 64))
    else:
        cpu = Platform.load(platform_dir, need_provisioning=False).cpu()
        bad = cpu.ereport(APP, APP.target_info(), bytes(64))  # targeted at itself
    with pytest.raises(QuoteError) as info:
        backend.get_quote(bad.to_bytes(), KEY_ID, None)
    assert info.value.code == Quote3Error.INVALID_REPORT
    assert info.value.code == 0xE015  # AESM 47, SGX_ERROR_MAC_MISMATCH at the client


def test_unsupported_key_id(backend: SimBackend) -> None:
    other = KEY_ID.replace(algorithm_id=3)
    for call in (
        lambda: backend.init_quote(other),
        lambda: backend.quote_size(other),
        lambda: backend.get_quote(Report.zeroed().to_bytes(), other, None),
    ):
        with pytest.raises(QuoteError) as info:
            call()
        assert info.value.code == Quote3Error.UNSUPPORTED_ATT_KEY_ID


def _failing(exc: Exception) -> Callable[[PckCertificateQuery], PckCertificate]:
    def source(query: PckCertificateQuery) -> PckCertificate:
        raise exc

    return source


def _wrapped(cause: Exception) -> Exception:
    """What a caching source raises: its own error, caused by the PCCS client's."""
    try:
        raise cause
    except Exception as inner:
        try:
            raise SgxQuoteHelperError("no PCK chain from upstream or cache") from inner
        except SgxQuoteHelperError as outer:
            return outer


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (_wrapped(PccsUnreachable("PCCS down")), Quote3Error.NETWORK_ERROR),
        (_wrapped(PccsPlatformNotFound("not registered")), Quote3Error.NO_PLATFORM_CERT_DATA),
        (ConnectionRefusedError("connection refused"), Quote3Error.NETWORK_ERROR),
        (TimeoutError("timed out"), Quote3Error.NETWORK_ERROR),
        (PccsUnreachable("PCCS down"), Quote3Error.NETWORK_ERROR),
        (PccsPlatformNotFound("no PCK certificate"), Quote3Error.NO_PLATFORM_CERT_DATA),
    ],
)
def test_pck_source_failures(
    platform_dir: Path, tmp_path: Path, exc: Exception, code: Quote3Error
) -> None:
    backend = SimBackend(platform_dir, tmp_path / "state", pck_source=_failing(exc))
    with pytest.raises(QuoteError) as info:
        backend.init_quote(KEY_ID)
    assert info.value.code == code
    assert "PCK certificate" in info.value.detail
    assert not backend.initialized


def test_certificate_for_another_platform_is_refused(
    platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer
) -> None:
    def wrong_platform(query: PckCertificateQuery) -> PckCertificate:
        other = PckCertificateQuery(bytes(16), query.cpu_svn, query.pce_svn - 1, query.pce_id)
        certificate = manufacturer(other)  # a key of another TCB level
        return PckCertificate(
            certificate.leaf_pem,
            certificate.issuer_chain_pem,
            query.cpu_svn + query.pce_svn.to_bytes(2, "little"),
            certificate.fmspc,
            certificate.ca_type,
        )

    backend = SimBackend(platform_dir, tmp_path / "state", pck_source=wrong_platform)
    with pytest.raises(QuoteError) as info:
        backend.init_quote(KEY_ID)
    assert info.value.code == Quote3Error.ATT_KEY_CERT_DATA_INVALID


def test_certificate_above_the_platform_tcb_is_refused(
    platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer
) -> None:
    def too_new(query: PckCertificateQuery) -> PckCertificate:
        return manufacturer(
            PckCertificateQuery(query.qe_id, query.cpu_svn, query.pce_svn + 1, query.pce_id)
        )

    backend = SimBackend(platform_dir, tmp_path / "state", pck_source=too_new)
    with pytest.raises(QuoteError) as info:
        backend.init_quote(KEY_ID)
    assert info.value.code == Quote3Error.KEY_CERTIFCATION_ERROR


def test_certificate_at_an_older_tcb_level_is_used(
    platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer
) -> None:
    """A PCCS may return the best certificate at or below the raw TCB (TCBm)."""

    def older(query: PckCertificateQuery) -> PckCertificate:
        return manufacturer(
            PckCertificateQuery(query.qe_id, query.cpu_svn, query.pce_svn - 2, query.pce_id)
        )

    backend = SimBackend(platform_dir, tmp_path / "state", pck_source=older)
    raw = backend.get_quote(app_report(platform_dir, backend).to_bytes(), KEY_ID, None).quote
    quote = Quote.from_bytes(raw)
    pck_key = quote.pck_chain()[0].public_key()
    assert isinstance(pck_key, ec.EllipticCurvePublicKey)
    assert ecdsa_verify_raw(pck_key, quote.qe_report_sig, quote.qe_report.to_bytes())
    assert quote.header.pce_svn == 13  # the PCE the software hosts


def test_key_persists_across_backend_restarts(
    platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer
) -> None:
    first = SimBackend(platform_dir, tmp_path / "state", pck_source=manufacturer)
    pub_key_id = first.init_quote(KEY_ID).pub_key_id
    first.close()
    second = SimBackend(platform_dir, tmp_path / "state", pck_source=manufacturer)
    assert second.init_quote(KEY_ID).pub_key_id == pub_key_id
    assert second.last_init is not None
    assert second.last_init.key_source == "loaded"


def test_qe_update_is_reported_in_quotes(
    platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer
) -> None:
    updated = SimBackend(
        platform_dir, tmp_path / "state", pck_source=manufacturer, qe_svn=11, pce_svn=14
    )
    raw = updated.get_quote(app_report(platform_dir, updated).to_bytes(), KEY_ID, None).quote
    quote = Quote.from_bytes(raw)
    assert (quote.header.qe_svn, quote.header.pce_svn) == (11, 14)
    assert quote.qe_report.isv_svn == 11
    assert manufacturer.queries[-1].pce_svn == 14


def test_200_quotes_take_well_under_a_second(backend: SimBackend, platform_dir: Path) -> None:
    report = app_report(platform_dir, backend).to_bytes()
    backend.get_quote(report, KEY_ID, None)  # warm up
    start = time.perf_counter()
    for _ in range(200):
        backend.get_quote(report, KEY_ID, None)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"200 quotes took {elapsed:.3f} s"


def test_create_backend(platform_dir: Path, tmp_path: Path, manufacturer: TinyManufacturer) -> None:
    backend = create_backend(
        "sim", platform_dir=platform_dir, state_dir=tmp_path / "state", pck_source=manufacturer
    )
    assert isinstance(backend, SimBackend)
    with pytest.raises(UsageError, match="--state-dir"):
        create_backend("sim", platform_dir=platform_dir, pck_source=manufacturer)
    assert BACKEND_NAMES == ("sim", "dcap", "proxy")
    with pytest.raises(UsageError, match="--upstream"):
        create_backend("proxy")
    with pytest.raises(UsageError, match=r"unknown backend .* choose one of sim, dcap, proxy"):
        create_backend("epid")
