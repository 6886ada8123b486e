"""The quote codec on Intel's real quote, on built quotes, and on bad bytes.

Expected values of the real quote are hard-coded from the project's vector
description (``vectors/README.md``, "Expected parsed values"), which computed
them with an independent parser; ``tests/assets/README.md`` gives provenance.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.sgx._ecdsa import (
    ec_public_key_from_raw,
    ec_public_key_to_raw,
    ecdsa_sign_raw,
    ecdsa_signature_from_raw,
    ecdsa_signature_to_raw,
    ecdsa_verify_raw,
)
from sgx_quote_helper.sgx._quote import (
    MAX_CERTIFICATION_DATA_SIZE,
    MAX_QUOTE_SIZE,
    CertificationData,
    CertificationDataType,
    OpaqueCertificationData,
    PckCertChain,
    PckLeafCertificate,
    PpidCleartext,
    PpidEncrypted,
    QeReportCertificationData,
    Quote,
    Report2Body,
    build_quote_v3,
    encoded_quote_size,
    quote_size_v3,
)
from sgx_quote_helper.sgx._structs import INTEL_QE_VENDOR_ID, Attributes, QuoteHeader, ReportBody

QUOTE_FILE = "intel-sgx-quote-v3.bin"


@pytest.fixture
def quote_bytes(assets: Path) -> bytes:
    return (assets / QUOTE_FILE).read_bytes()


@pytest.fixture
def quote(quote_bytes: bytes) -> Quote:
    return Quote.from_bytes(quote_bytes)


# --- the real Intel quote (values from vectors/README.md) -------------------


def test_asset_is_the_documented_file(quote_bytes: bytes) -> None:
    assert len(quote_bytes) == 4600
    assert (
        hashlib.sha256(quote_bytes).hexdigest()
        == "f8b81014b6e443609746822194910f5dc1c92c322fa0584298d1e33e505ca3b5"
    )


def test_real_quote_header(quote: Quote) -> None:
    # vectors/README.md, "Quote header and sizes".
    h = quote.header
    assert h.version == 3
    assert h.att_key_type == 2
    assert h.tee_type == 0
    assert h.qe_svn == 10
    assert h.pce_svn == 15
    assert h.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    assert h.qe_vendor_id == INTEL_QE_VENDOR_ID
    assert h.user_data.hex() == "3987622ee6968a54977c8626ef47123500000000"
    assert quote.qe_id.hex() == "3987622ee6968a54977c8626ef471235"


def test_real_quote_report_body(quote: Quote) -> None:
    # vectors/README.md, "ISV enclave report body (quote offsets 48..432)".
    body = quote.report_body
    assert isinstance(body, ReportBody)
    assert body.cpu_svn.hex() == "0b0b1a18ffff04000000000000000000"
    assert body.misc_select == 0
    assert body.attributes.to_bytes().hex() == "0500000000000000e700000000000000"
    assert body.attributes == Attributes(flags=0x05, xfrm=0xE7)
    assert not body.attributes.debug
    assert body.mr_enclave.hex() == (
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    )
    assert body.mr_signer.hex() == (
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    )
    assert body.isv_prod_id == 0
    assert body.isv_svn == 0
    assert body.report_data == b"Hello, world!" + bytes(51)
    # Reserved fields, isv_ext_prod_id, config_id, config_svn, isv_family_id: all zero.
    assert body.config_svn == 0
    for name in (
        "reserved1",
        "isv_ext_prod_id",
        "reserved2",
        "reserved3",
        "config_id",
        "reserved4",
        "isv_family_id",
    ):
        assert not any(getattr(body, name)), name


def test_real_quote_signature_data(quote: Quote, quote_bytes: bytes) -> None:
    # vectors/README.md, "Signature data".
    assert quote.signature_data_len == 4164
    assert len(quote_bytes) == 436 + quote.signature_data_len
    assert quote.attest_pub_key.hex() == (
        "dce2b91fecd2fa25546d41c1d50c6d21e28ae0442153d092a505fd4b02b9bd39"
        "52e6e90c2405d3e349eef1fd5850840e2be83bc4fe659171d615085f72d57b7f"
    )
    qe = quote.qe_report
    assert qe.cpu_svn.hex() == "0b0b1a18ffff04000000000000000000"
    assert qe.misc_select == 0
    assert qe.attributes.to_bytes().hex() == "1500000000000000e700000000000000"
    assert qe.mr_enclave.hex() == (
        "96b347a64e5a045e27369c26e6dcda51fd7c850e9b3a3a79e718f43261dee1e4"
    )
    assert qe.mr_signer.hex() == (
        "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff"
    )
    assert (qe.isv_prod_id, qe.isv_svn) == (1, 10)
    assert qe.report_data == bytes.fromhex(
        "c261bb882e542aa8d7f9e99a00efcb11cf2ee66fa9c6861f9230d3f803a275fd"
    ) + bytes(32)
    assert quote.qe_auth_data == bytes(range(32))
    # The binding: report_data[0:32] = SHA-256(attest_pub_key ‖ qe_auth_data).
    assert qe.report_data[:32] == hashlib.sha256(quote.attest_pub_key + quote.qe_auth_data).digest()


def test_real_quote_certification_data(quote: Quote, quote_bytes: bytes) -> None:
    # vectors/README.md: type 5 at quote offset 1046, size 3548 at 1048, data from 1052;
    # 3 PEM certs of 1639 + 960 + 948 bytes, plus 1 trailing NUL.
    assert int.from_bytes(quote_bytes[1046:1048], "little") == 5
    assert int.from_bytes(quote_bytes[1048:1052], "little") == 3548
    data = quote.certification_data
    assert isinstance(data, PckCertChain)
    assert data.cert_type == CertificationDataType.PCK_CERT_CHAIN
    assert data.size == 3548
    assert [len(p) for p in data.pems] == [1639, 960, 948]
    assert data.trailing_nul
    assert data.payload() == quote_bytes[1052:]
    assert data.to_bytes() == quote_bytes[1046:]


def test_real_quote_field_offsets(quote: Quote, quote_bytes: bytes) -> None:
    # dcap-quote.md 1.3: quote offsets of the signature-data fields.
    assert quote_bytes[0:48] == quote.header.to_bytes()
    assert quote_bytes[48:432] == quote.report_body.to_bytes()
    assert int.from_bytes(quote_bytes[432:436], "little") == 4164
    assert quote_bytes[436:500] == quote.sig
    assert quote_bytes[500:564] == quote.attest_pub_key
    assert quote_bytes[564:948] == quote.qe_report.to_bytes()
    assert quote_bytes[948:1012] == quote.qe_report_sig
    assert int.from_bytes(quote_bytes[1012:1014], "little") == 32
    assert quote_bytes[1014:1046] == quote.qe_auth_data


def test_real_quote_pck_chain(quote: Quote) -> None:
    # vectors/README.md, "PCK certificate chain and SGX extension".
    leaf, intermediate, root = quote.pck_chain()
    cn = x509.NameOID.COMMON_NAME
    assert leaf.subject.get_attributes_for_oid(cn)[0].value == "Intel SGX PCK Certificate"
    assert leaf.issuer.get_attributes_for_oid(cn)[0].value == "Intel SGX PCK Processor CA"
    assert intermediate.subject.get_attributes_for_oid(cn)[0].value == "Intel SGX PCK Processor CA"
    assert root.subject.get_attributes_for_oid(cn)[0].value == "Intel SGX Root CA"
    assert leaf.not_valid_before_utc.isoformat() == "2023-09-20T21:53:43+00:00"
    assert leaf.not_valid_after_utc.isoformat() == "2030-09-20T21:53:43+00:00"
    root_der = root.public_bytes(serialization.Encoding.DER)
    assert len(root_der) == 659
    assert (
        hashlib.sha256(root_der).hexdigest()
        == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
    )
    root_key = root.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    assert root_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ).hex() == (
        "040ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f5"
        "67918e2edc88e40d860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394"
    )


def test_real_quote_signatures_verify(quote: Quote, quote_bytes: bytes) -> None:
    # sig over quote[0:432] with attest_pub_key; qe_report_sig over the QE report with the PCK key.
    attest_key = ec_public_key_from_raw(quote.attest_pub_key)
    assert quote.signed_region() == quote_bytes[:432]
    assert ecdsa_verify_raw(attest_key, quote.sig, quote_bytes[:432])
    pck_key = quote.pck_chain()[0].public_key()
    assert isinstance(pck_key, ec.EllipticCurvePublicKey)
    assert ecdsa_verify_raw(pck_key, quote.qe_report_sig, quote.qe_report.to_bytes())
    # And a changed byte breaks each.
    tampered = bytearray(quote_bytes[:432])
    tampered[400] ^= 1
    assert not ecdsa_verify_raw(attest_key, quote.sig, bytes(tampered))
    assert not ecdsa_verify_raw(pck_key, quote.sig, quote.qe_report.to_bytes())


def test_real_quote_round_trips(quote: Quote, quote_bytes: bytes) -> None:
    assert quote.to_bytes() == quote_bytes


def test_real_quote_rebuilds_from_parts(quote: Quote, quote_bytes: bytes) -> None:
    # Rebuild through the builder and freshly made certification data.
    assert isinstance(quote.certification_data, PckCertChain)
    chain = PckCertChain.from_pems(
        [p.decode("ascii") for p in quote.certification_data.pems], trailing_nul=True
    )
    assert isinstance(quote.report_body, ReportBody)
    rebuilt = build_quote_v3(
        quote.header,
        quote.report_body,
        sign=lambda region: quote.sig if region == quote_bytes[:432] else b"",
        attest_pub_key=quote.attest_pub_key,
        qe_report=quote.qe_report,
        qe_report_sig=quote.qe_report_sig,
        qe_auth_data=quote.qe_auth_data,
        certification_data=chain,
    )
    assert rebuilt == quote_bytes
    assert quote_size_v3(len(quote.qe_auth_data), chain.size) == 4600
    # From certificate objects: cryptography writes Intel's PEM form exactly.
    assert PckCertChain.from_certificates(quote.pck_chain()) == quote.certification_data


def test_cross_check_with_dcap_qvl(quote: Quote, quote_bytes: bytes) -> None:
    parsed = dcap_qvl.parse_quote(quote_bytes)
    assert parsed.fmspc() == "00A067110000"
    assert parsed.header.version == quote.header.version
    assert parsed.header.qe_svn == quote.header.qe_svn
    assert parsed.header.pce_svn == quote.header.pce_svn
    assert parsed.header.user_data == quote.header.user_data
    assert isinstance(quote.report_body, ReportBody)
    assert parsed.report.mr_enclave == quote.report_body.mr_enclave
    assert parsed.report.report_data == quote.report_body.report_data
    # dcap-qvl hands out the PEM chain without Intel's trailing NUL.
    assert parsed.cert_chain_pem_bytes() == quote.certification_data.payload()[:-1]
    assert parsed.ca() == "processor"


# --- building quotes ---------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_build_quote_v3_signs_header_and_body(quote: Quote) -> None:
    attest = _key()
    pck = _key()
    qe_report = dataclasses.replace(quote.qe_report, report_data=bytes(64))
    header = QuoteHeader(
        version=3, qe_svn=8, pce_svn=13, qe_vendor_id=INTEL_QE_VENDOR_ID, user_data=bytes(20)
    )
    body = ReportBody(report_data=b"\x42" * 64)
    certification = PpidCleartext(b"p" * 16, b"c" * 16, 13, b"\x00\x00")
    raw = build_quote_v3(
        header,
        body,
        sign=functools.partial(ecdsa_sign_raw, attest),
        attest_pub_key=ec_public_key_to_raw(attest.public_key()),
        qe_report=qe_report,
        qe_report_sig=ecdsa_sign_raw(pck, qe_report.to_bytes()),
        qe_auth_data=bytes(range(32)),
        certification_data=certification,
    )
    assert len(raw) == quote_size_v3(32, 36)
    parsed = Quote.from_bytes(raw)
    assert parsed.certification_data == certification
    assert ecdsa_verify_raw(attest.public_key(), parsed.sig, raw[:432])
    assert ecdsa_verify_raw(pck.public_key(), parsed.qe_report_sig, qe_report.to_bytes())
    # dcap-qvl reads the same layout.
    other = dcap_qvl.parse_quote(raw)
    assert other.report.report_data == b"\x42" * 64


def test_build_quote_v3_refuses_bad_arguments(quote: Quote) -> None:
    assert isinstance(quote.report_body, ReportBody)
    good = {
        "sign": lambda _: bytes(64),
        "attest_pub_key": quote.attest_pub_key,
        "qe_report": quote.qe_report,
        "qe_report_sig": quote.qe_report_sig,
        "qe_auth_data": quote.qe_auth_data,
        "certification_data": quote.certification_data,
    }
    build_quote_v3(quote.header, quote.report_body, **good)  # type: ignore[arg-type]
    bad: list[dict[str, object]] = [
        {"sign": lambda _: b"\x01" * 70},  # a DER signature, not raw r‖s
        {"attest_pub_key": b"\x04" + quote.attest_pub_key},
        {"qe_report_sig": bytes(63)},
        {"qe_auth_data": bytes(0x10000)},
    ]
    for change in bad:
        with pytest.raises(UsageError):
            build_quote_v3(quote.header, quote.report_body, **{**good, **change})  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        build_quote_v3(
            dataclasses.replace(quote.header, version=4),
            quote.report_body,
            **good,  # type: ignore[arg-type]
        )


def test_quote_size_v3() -> None:
    # dcap-quote.md 1.3: total = 436 + 584 + N + M; the sample is N=32, M=3548.
    assert quote_size_v3(32, 3548) == 4600
    assert quote_size_v3(0, 0) == 1020
    with pytest.raises(UsageError):
        quote_size_v3(0x10000, 0)
    with pytest.raises(UsageError):
        quote_size_v3(0, MAX_CERTIFICATION_DATA_SIZE + 1)


def test_encoded_quote_size_reads_the_fixed_part_only(quote: Quote, quote_bytes: bytes) -> None:
    # The real quote alone, zero-padded (as AESM returns it), and cut after the fixed part.
    assert encoded_quote_size(quote_bytes) == len(quote_bytes) == 4600
    assert encoded_quote_size(quote_bytes + bytes(300)) == len(quote_bytes)
    assert encoded_quote_size(quote_bytes[:436]) == len(quote_bytes)
    sgx_v4 = _v4(quote, tdx=False).to_bytes()
    assert encoded_quote_size(sgx_v4 + bytes(7)) == len(sgx_v4)
    with pytest.raises(ParseError, match="less than a quote's fixed 436"):
        encoded_quote_size(quote_bytes[:435])
    with pytest.raises(ParseError, match="version 5"):
        encoded_quote_size((5).to_bytes(2, "little") + quote_bytes[2:])
    with pytest.raises(ParseError, match="TDX"):
        encoded_quote_size(_v4(quote, tdx=True).to_bytes())


# --- quote v4 ------------------------------------------------------------------


def _v4(quote: Quote, *, tdx: bool) -> Quote:
    body: ReportBody | Report2Body
    if tdx:
        body = Report2Body(mr_td=b"\x11" * 48, rt_mr3=b"\x33" * 48, report_data=b"\x44" * 64)
    else:
        body = quote.report_body
    header = dataclasses.replace(quote.header, version=4, tee_type=0x81 if tdx else 0)
    return dataclasses.replace(quote, header=header, report_body=body)


@pytest.mark.parametrize("tdx", [False, True], ids=["sgx", "tdx"])
def test_v4_layout_and_round_trip(quote: Quote, tdx: bool) -> None:
    v4 = _v4(quote, tdx=tdx)
    raw = v4.to_bytes()
    body_size = 584 if tdx else 384
    sig_data_start = 48 + body_size + 4
    # dcap-quote.md 3: sig ‖ attest_pub_key ‖ type 6 (u16) ‖ size (u32) ‖ qe_report ‖ ...
    assert (
        int.from_bytes(raw[48 + body_size : sig_data_start], "little") == len(raw) - sig_data_start
    )
    assert raw[sig_data_start : sig_data_start + 64] == quote.sig
    outer = sig_data_start + 128
    assert int.from_bytes(raw[outer : outer + 2], "little") == 6
    assert int.from_bytes(raw[outer + 2 : outer + 6], "little") == len(raw) - outer - 6
    assert raw[outer + 6 : outer + 6 + 384] == quote.qe_report.to_bytes()
    assert raw.endswith(quote.certification_data.to_bytes())
    assert Quote.from_bytes(raw) == v4
    assert len(v4.signed_region()) == 48 + body_size
    # dcap-qvl parses the same bytes the same way.
    parsed = dcap_qvl.parse_quote(raw)
    assert parsed.fmspc() == "00A067110000"
    if tdx:
        assert parsed.report.mr_td == b"\x11" * 48
        assert parsed.report.rt_mr3 == b"\x33" * 48
        assert parsed.report.report_data == b"\x44" * 64


def test_v4_requires_type_6(quote: Quote) -> None:
    raw = bytearray(_v4(quote, tdx=False).to_bytes())
    raw[436 + 128] = 9  # the outer certification data type: unknown, kept opaque
    with pytest.raises(ParseError, match="type 6"):
        Quote.from_bytes(bytes(raw))


def test_v4_unknown_tee_type(quote: Quote) -> None:
    raw = bytearray(_v4(quote, tdx=False).to_bytes())
    raw[4] = 0x82
    with pytest.raises(ParseError, match="tee_type"):
        Quote.from_bytes(bytes(raw))


# --- certification data ----------------------------------------------------------


def test_certification_data_types_round_trip(quote: Quote) -> None:
    assert isinstance(quote.certification_data, PckCertChain)
    pems = quote.certification_data.pems
    values: list[CertificationData] = [
        PpidCleartext(bytes(range(16)), b"\x01" * 16, 0xBEEF, b"\x12\x34"),
        PpidEncrypted(b"\x02" * 256, b"\x03" * 16, 7, b"\x00\x00"),
        PpidEncrypted(b"\x04" * 384, b"\x05" * 16, 8, b"\x00\x01"),
        PckLeafCertificate(pems[0]),
        PckLeafCertificate(pems[0], trailing_nul=True),
        PckCertChain(pems, trailing_nul=False),
        QeReportCertificationData(quote.qe_report, bytes(64), b"auth", quote.certification_data),
        OpaqueCertificationData(7, b"manifest"),
        OpaqueCertificationData(0xFFFF, b""),
    ]
    expected_types = [1, 2, 3, 4, 4, 5, 6, 7, 0xFFFF]
    for value, cert_type in zip(values, expected_types, strict=True):
        raw = value.to_bytes()
        assert int.from_bytes(raw[:2], "little") == cert_type
        assert int.from_bytes(raw[2:6], "little") == len(raw) - 6
        assert CertificationData.from_bytes(raw) == value
        assert CertificationData.from_payload(cert_type, raw[6:]) == value


def test_ppid_payload_layout() -> None:
    # dcap-quote.md 1.4: PPID[16] ‖ CPUSVN[16] ‖ PCESVN u16 ‖ PCE-ID u16.
    value = PpidCleartext(b"P" * 16, b"C" * 16, 0x0102, b"\xaa\xbb")
    assert value.payload() == b"P" * 16 + b"C" * 16 + b"\x02\x01" + b"\xaa\xbb"
    encrypted = PpidEncrypted(b"E" * 384, b"C" * 16, 0x0102, b"\xaa\xbb")
    assert encrypted.payload() == b"E" * 384 + b"C" * 16 + b"\x02\x01\xaa\xbb"
    assert encrypted.cert_type == 3


def test_pck_leaf_certificate(quote: Quote) -> None:
    assert isinstance(quote.certification_data, PckCertChain)
    leaf = PckLeafCertificate(quote.certification_data.pems[0])
    single = dataclasses.replace(quote, certification_data=leaf)
    parsed = Quote.from_bytes(single.to_bytes())
    assert parsed.has_pck_chain
    assert parsed.pck_chain() == quote.pck_chain()[:1]


def test_pck_chain_absent_or_invalid(quote: Quote) -> None:
    ppid = dataclasses.replace(
        quote, certification_data=PpidCleartext(bytes(16), bytes(16), 0, bytes(2))
    )
    assert not ppid.has_pck_chain
    with pytest.raises(ParseError, match="not a PCK certificate chain"):
        ppid.pck_chain()
    # Valid PEM armour around bytes that are not X.509: decodes, but pck_chain() refuses.
    junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    chain = dataclasses.replace(quote, certification_data=PckCertChain((junk,)))
    assert Quote.from_bytes(chain.to_bytes()) == chain
    with pytest.raises(ParseError, match=r"not a valid X\.509"):
        chain.pck_chain()


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\x00\x00",  # two NULs: only one is Intel's terminator
        b"not pem",
        b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n",
        b" -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ntrailer",
        b"-----BEGIN CERTIFICATE-----\n\xff\xfe\n-----END CERTIFICATE-----\n",
    ],
)
def test_bad_pck_chain_payload(payload: bytes) -> None:
    with pytest.raises(ParseError):
        CertificationData.from_payload(5, payload)
    with pytest.raises(ParseError):
        CertificationData.from_payload(4, payload)


@pytest.mark.parametrize(("cert_type", "size"), [(1, 35), (1, 37), (2, 275), (2, 404), (3, 276)])
def test_ppid_wrong_size(cert_type: int, size: int) -> None:
    with pytest.raises(ParseError, match="must be"):
        CertificationData.from_payload(cert_type, bytes(size))


def test_type_6_cannot_nest_type_6(quote: Quote) -> None:
    inner = QeReportCertificationData(quote.qe_report, bytes(64), b"", quote.certification_data)
    # Hand-built nesting (the constructor refuses it).
    payload = quote.qe_report.to_bytes() + bytes(64) + b"\x00\x00" + inner.to_bytes()
    with pytest.raises(ParseError, match="nested"):
        CertificationData.from_payload(6, payload)
    with pytest.raises(UsageError):
        QeReportCertificationData(quote.qe_report, bytes(64), b"", inner)


def test_from_pems_validates() -> None:
    with pytest.raises(UsageError):
        PckCertChain.from_pems(["not a certificate"])
    with pytest.raises(UsageError):
        PckCertChain.from_pems([])
    two = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" * 2
    with pytest.raises(UsageError, match="exactly one"):
        PckCertChain.from_pems([two])


def test_certification_data_size_cap(quote: Quote) -> None:
    too_big = OpaqueCertificationData(7, bytes(MAX_CERTIFICATION_DATA_SIZE + 1))
    with pytest.raises(UsageError):
        too_big.to_bytes()
    # A size field above the cap is refused before the payload is looked at.
    raw = bytearray(quote.to_bytes())
    raw[1048:1052] = (MAX_CERTIFICATION_DATA_SIZE + 1).to_bytes(4, "little")
    with pytest.raises(ParseError, match="exceeds the maximum"):
        Quote.from_bytes(bytes(raw))


# --- bad bytes --------------------------------------------------------------------


def test_every_truncation_is_a_parse_error(quote_bytes: bytes) -> None:
    for length in range(len(quote_bytes)):
        with pytest.raises(ParseError):
            Quote.from_bytes(quote_bytes[:length])


@pytest.mark.parametrize("tail", [b"\x00", b"garbage", bytes(4096)])
def test_trailing_bytes_are_a_parse_error(quote_bytes: bytes, tail: bytes) -> None:
    with pytest.raises(ParseError, match="follow it"):
        Quote.from_bytes(quote_bytes + tail)


def test_inconsistent_lengths(quote_bytes: bytes) -> None:
    def patched(offset: int, value: bytes) -> bytes:
        raw = bytearray(quote_bytes)
        raw[offset : offset + len(value)] = value
        return bytes(raw)

    cases = [
        patched(432, (4163).to_bytes(4, "little")),  # signature_data_len one short
        patched(432, (0xFFFFFFFF).to_bytes(4, "little")),
        patched(1012, (33).to_bytes(2, "little")),  # auth data one longer
        patched(1012, (31).to_bytes(2, "little")),
        patched(1048, (3549).to_bytes(4, "little")),  # cert data one longer
        patched(1048, (3547).to_bytes(4, "little")),
        patched(0, (2).to_bytes(2, "little")),  # version 2
        patched(0, (5).to_bytes(2, "little")),  # version 5 (not supported)
        patched(2, (3).to_bytes(2, "little")),  # ECDSA-P384
        patched(1046, (1).to_bytes(2, "little")),  # type 1 with a 3548-byte payload
    ]
    for raw in cases:
        with pytest.raises(ParseError):
            Quote.from_bytes(raw)
    with pytest.raises(ParseError, match="maximum"):
        Quote.from_bytes(bytes(MAX_QUOTE_SIZE + 1))


def test_unknown_certification_type_is_kept(quote_bytes: bytes) -> None:
    raw = bytearray(quote_bytes)
    raw[1046:1048] = (9).to_bytes(2, "little")
    parsed = Quote.from_bytes(bytes(raw))
    assert parsed.certification_data == OpaqueCertificationData(9, quote_bytes[1052:])
    assert parsed.to_bytes() == bytes(raw)


def test_quote_constructor_refuses_inconsistent_values(quote: Quote) -> None:
    with pytest.raises(UsageError):
        dataclasses.replace(quote, sig=bytes(63))
    with pytest.raises(UsageError):
        dataclasses.replace(quote, report_body=Report2Body())
    with pytest.raises(UsageError):
        dataclasses.replace(quote, header=dataclasses.replace(quote.header, version=5))
    with pytest.raises(UsageError):
        dataclasses.replace(quote, header=dataclasses.replace(quote.header, att_key_type=3))


# --- ECDSA helpers -------------------------------------------------------------------


def test_ecdsa_conversions() -> None:
    key = _key()
    raw_key = ec_public_key_to_raw(key.public_key())
    assert len(raw_key) == 64
    assert ec_public_key_to_raw(ec_public_key_from_raw(raw_key)) == raw_key
    signature = ecdsa_sign_raw(key, b"message")
    assert len(signature) == 64
    assert ecdsa_signature_to_raw(ecdsa_signature_from_raw(signature)) == signature
    assert ecdsa_verify_raw(key.public_key(), signature, b"message")
    assert not ecdsa_verify_raw(key.public_key(), signature, b"other")
    assert not ecdsa_verify_raw(key.public_key(), signature[:63], b"message")
    with pytest.raises(ParseError):
        ec_public_key_from_raw(bytes(64))  # not on the curve
    with pytest.raises(ParseError):
        ec_public_key_from_raw(bytes(65))
    with pytest.raises(ParseError):
        ecdsa_signature_to_raw(b"\x30\x00garbage")
    with pytest.raises(ParseError):
        ecdsa_signature_from_raw(bytes(65))
    with pytest.raises(UsageError):
        ec_public_key_to_raw(ec.generate_private_key(ec.SECP384R1()).public_key())
