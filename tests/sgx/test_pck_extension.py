"""The PCK certificate SGX extension on Intel's real leaf and on built variants.

Expected values of the real leaf come from the project's vector description
(``vectors/README.md``, "PCK certificate chain and SGX extension"). The DER
rules are those of ``dcap-quote.md`` section 4. Malformed variants are built
with a tiny DER writer local to this file, so the checks do not lean on the
encoder under test.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyasn1.codec.der import decoder as der_decoder

from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.sgx._pck_extension import (
    SGX_EXTENSION_OID,
    PlatformConfiguration,
    SgxExtension,
    SgxType,
)
from sgx_quote_helper.sgx._quote import Quote

# vectors/README.md: the SGX extension of the sample PCK leaf.
EXPECTED = SgxExtension(
    ppid=bytes.fromhex("d04ec06d4e6d92dc90d0ad3cf5ee2ddf"),
    tcb_components=(11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    pce_svn=13,
    cpu_svn=bytes.fromhex("0b0b0202ff0100000000000000000000"),
    pce_id=bytes.fromhex("0000"),
    fmspc=bytes.fromhex("00a067110000"),
    sgx_type=SgxType.STANDARD,
)


@pytest.fixture
def leaf(assets: Path) -> x509.Certificate:
    return Quote.from_bytes((assets / "intel-sgx-quote-v3.bin").read_bytes()).pck_chain()[0]


@pytest.fixture
def leaf_extension_der(leaf: x509.Certificate) -> bytes:
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert not ext.critical
    return ext.value.value


# --- the real leaf -------------------------------------------------------------


def test_real_leaf_extension_values(leaf: x509.Certificate) -> None:
    ext = SgxExtension.from_certificate(leaf)
    assert ext == EXPECTED
    assert not ext.is_platform_ca
    assert ext.cpu_svn == bytes(ext.tcb_components)
    assert ext.sgx_type_name == "STANDARD"


def test_real_leaf_extension_re_encodes_identically(leaf_extension_der: bytes) -> None:
    # vectors/README.md: 453 bytes, a 4-byte SEQUENCE header plus 449.
    assert len(leaf_extension_der) == 453
    assert leaf_extension_der[:4] == bytes.fromhex("308201c1")
    decoded = SgxExtension.from_bytes(leaf_extension_der)
    assert decoded.to_bytes() == leaf_extension_der
    assert EXPECTED.to_bytes() == leaf_extension_der
    assert EXPECTED.to_x509_extension().value == leaf_extension_der


def test_real_leaf_cross_check_with_dcap_qvl(assets: Path) -> None:
    raw = (assets / "intel-sgx-quote-v3.bin").read_bytes()
    theirs = dcap_qvl.parse_quote(raw).pck_extension()
    ours = SgxExtension.from_certificate(Quote.from_bytes(raw).pck_chain()[0])
    assert theirs.ppid == ours.ppid
    assert theirs.cpu_svn == ours.cpu_svn
    assert theirs.pce_svn == ours.pce_svn
    assert theirs.pce_id == ours.pce_id
    assert theirs.fmspc == ours.fmspc
    assert theirs.sgx_type == ours.sgx_type
    assert theirs.platform_instance_id is None


def test_integer_255_is_two_content_bytes() -> None:
    # dcap-quote.md 4: DER INTEGER is signed, 255 is 02 02 00 FF.
    der = EXPECTED.to_bytes()
    assert bytes.fromhex("2a864886f84d010d010205020200ff") in der  # .2.5 = 255
    assert bytes.fromhex("2a864886f84d010d01020102010b") in der  # .2.1 = 11
    assert (
        SgxExtension.for_tcb(
            ppid=bytes(16),
            tcb_components=(128,) + (0,) * 15,
            pce_svn=0xFFFF,
            pce_id=bytes(2),
            fmspc=bytes(6),
        )
        .to_bytes()
        .count(bytes.fromhex("02020080"))
        == 1
    )


# --- the Platform-CA form, checked by independent decoders ---------------------

PLATFORM = SgxExtension.for_tcb(
    ppid=bytes(range(16)),
    tcb_components=tuple(range(200, 216)),
    pce_svn=0x1234,
    pce_id=b"\x00\x01",
    fmspc=bytes.fromhex("30606a000000"),
    sgx_type=SgxType.SCALABLE,
    platform_instance_id=b"\xab" * 16,
    configuration=PlatformConfiguration(dynamic_platform=True, cached_keys=False, smt_enabled=True),
)


def _certificate_with(extension: SgxExtension) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test SGX PCK Certificate")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .add_extension(extension.to_x509_extension(), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_platform_form_round_trips_through_a_certificate() -> None:
    cert = _certificate_with(PLATFORM)
    assert SgxExtension.from_certificate(cert) == PLATFORM
    assert PLATFORM.is_platform_ca
    # dcap-qvl reads our encoding of the 7-entry form.
    theirs = dcap_qvl.parse_pck_extension_from_pem(cert.public_bytes(serialization.Encoding.PEM))
    assert theirs.ppid == PLATFORM.ppid
    assert theirs.cpu_svn == bytes(range(200, 216))
    assert theirs.pce_svn == 0x1234
    assert theirs.pce_id == b"\x00\x01"
    assert theirs.fmspc == PLATFORM.fmspc
    assert theirs.sgx_type == 1
    assert theirs.platform_instance_id == b"\xab" * 16


def test_platform_form_structure_with_pyasn1() -> None:
    decoded, rest = der_decoder.decode(PLATFORM.to_bytes())
    assert rest == b""
    assert len(decoded) == 7
    assert [str(entry[0]) for entry in decoded] == [f"{SGX_EXTENSION_OID}.{i}" for i in range(1, 8)]
    tcb = decoded[1][1]
    assert len(tcb) == 18
    assert [int(tcb[i][1]) for i in range(16)] == list(range(200, 216))
    assert int(tcb[16][1]) == 0x1234
    assert bytes(tcb[17][1]) == bytes(range(200, 216))
    assert int(decoded[4][1]) == 1
    config = decoded[6][1]
    assert [str(e[0]) for e in config] == [f"{SGX_EXTENSION_OID}.7.{i}" for i in (1, 2, 3)]
    assert [bool(e[1]) for e in config] == [True, False, True]


@pytest.mark.parametrize(
    "configuration",
    [
        PlatformConfiguration(),
        PlatformConfiguration(cached_keys=True),
        PlatformConfiguration(dynamic_platform=False, smt_enabled=False),
    ],
)
def test_configuration_entries_are_optional(configuration: PlatformConfiguration) -> None:
    ext = SgxExtension.for_tcb(
        ppid=bytes(16),
        tcb_components=(0,) * 16,
        pce_svn=0,
        pce_id=bytes(2),
        fmspc=bytes(6),
        platform_instance_id=bytes(16),
        configuration=configuration,
    )
    assert SgxExtension.from_bytes(ext.to_bytes()) == ext


# --- malformed DER, built independently ------------------------------------------

_BASE = bytes.fromhex("2a864886f84d010d01")  # 1.2.840.113741.1.13.1


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _entry(arcs: tuple[int, ...], tag: int, content: bytes) -> bytes:
    return _tlv(0x30, _tlv(0x06, _BASE + bytes(arcs)) + _tlv(tag, content))


def _tcb(components: list[bytes] | None = None) -> list[bytes]:
    values = (
        components
        or [bytes([v]) for v in (11, 11, 2, 2)] + [b"\x00\xff"] + [b"\x01"] + [b"\x00"] * 10
    )
    rows = [_entry((2, i + 1), 0x02, value) for i, value in enumerate(values)]
    rows.append(_entry((2, 17), 0x02, b"\x0d"))
    rows.append(_entry((2, 18), 0x04, bytes.fromhex("0b0b0202ff0100000000000000000000")))
    return rows


def _entries(tcb: list[bytes] | None = None) -> list[bytes]:
    return [
        _entry((1,), 0x04, EXPECTED.ppid),
        _entry((2,), 0x30, b"".join(tcb if tcb is not None else _tcb())),
        _entry((3,), 0x04, b"\x00\x00"),
        _entry((4,), 0x04, EXPECTED.fmspc),
        _entry((5,), 0x0A, b"\x00"),
    ]


def _extension(entries: list[bytes]) -> bytes:
    return _tlv(0x30, b"".join(entries))


def test_local_writer_matches_intel(leaf_extension_der: bytes) -> None:
    # The writer used for the malformed cases below reproduces Intel's bytes.
    assert _extension(_entries()) == leaf_extension_der


def _platform(config: bytes) -> bytes:
    return _extension([*_entries(), _entry((6,), 0x04, bytes(16)), _entry((7,), 0x30, config)])


def _component(value: bytes) -> bytes:
    return _extension(_entries(_tcb([value] + [b"\x00"] * 15)))


def _flag(arc: int, value: bytes) -> bytes:
    return _entry((7, arc), 0x01, value)


MALFORMED = {
    "empty": b"",
    "not a sequence": b"\x31\x00",
    "trailing data": _extension(_entries()) + b"\x00",
    "indefinite length": b"\x30\x80" + b"".join(_entries()) + b"\x00\x00",
    "non-minimal length": b"\x30\x83\x00\x01\xc1" + b"".join(_entries()),
    "long form for a short length": b"\x30\x81\x05" + _entry((1,), 0x04, b""),
    "length beyond the data": b"\x30\x82\x01\xc2" + b"".join(_entries()),
    "missing entries": _extension(_entries()[:4]),
    "six entries": _extension([*_entries(), _entry((6,), 0x04, bytes(16))]),
    "eight entries": _extension(
        [
            *_entries(),
            _entry((6,), 0x04, bytes(16)),
            _entry((7,), 0x30, b""),
            _entry((8,), 0x04, b""),
        ]
    ),
    "entries out of order": _extension([_entries()[1], _entries()[0], *_entries()[2:]]),
    "ppid of 15 bytes": _extension([_entry((1,), 0x04, bytes(15)), *_entries()[1:]]),
    "ppid as integer": _extension([_entry((1,), 0x02, b"\x01"), *_entries()[1:]]),
    "fmspc of 5 bytes": _extension([*_entries()[:3], _entry((4,), 0x04, bytes(5)), _entries()[4]]),
    "17 TCB entries": _extension(_entries(_tcb()[:17])),
    "19 TCB entries": _extension(_entries([*_tcb(), _entry((2, 19), 0x02, b"\x00")])),
    "TCB entries swapped": _extension(_entries([_tcb()[1], _tcb()[0], *_tcb()[2:]])),
    "component 256": _component(b"\x01\x00"),
    "component negative": _component(b"\xff"),
    "component non-minimal": _component(b"\x00\x0b"),
    "component empty": _component(b""),
    "pcesvn 65536": _extension(
        _entries([*_tcb()[:16], _entry((2, 17), 0x02, b"\x01\x00\x00"), _tcb()[17]])
    ),
    "cpusvn of 17 bytes": _extension(_entries([*_tcb()[:17], _entry((2, 18), 0x04, bytes(17))])),
    "sgx type negative": _extension([*_entries()[:4], _entry((5,), 0x0A, b"\xff")]),
    "sgx type as integer": _extension([*_entries()[:4], _entry((5,), 0x02, b"\x00")]),
    "boolean 01": _platform(_flag(1, b"\x01")),
    "boolean of two bytes": _platform(_flag(1, b"\xff\xff")),
    "configuration out of order": _platform(_flag(2, b"\xff") + _flag(1, b"\xff")),
    "configuration repeated": _platform(_flag(1, b"\xff") + _flag(1, b"\xff")),
    "configuration unknown entry": _platform(_flag(4, b"\xff")),
    "high tag number": b"\x1f\x01\x00",
}


@pytest.mark.parametrize("der", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_extensions_raise_parse_error(der: bytes) -> None:
    with pytest.raises(ParseError):
        SgxExtension.from_bytes(der)


def test_well_formed_variants_decode() -> None:
    # Sanity check of the cases above: the unmodified platform form decodes.
    ext = SgxExtension.from_bytes(_platform(_flag(1, b"\xff") + _flag(3, b"\x00")))
    assert ext.configuration == PlatformConfiguration(dynamic_platform=True, smt_enabled=False)


def test_certificate_without_extension() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "not a PCK")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ParseError, match="no SGX extension"):
        SgxExtension.from_certificate(cert)


@pytest.mark.parametrize(
    "change",
    [
        {"ppid": bytes(15)},
        {"tcb_components": (0,) * 15},
        {"tcb_components": (256,) + (0,) * 15},
        {"tcb_components": [0] * 16},
        {"pce_svn": 0x10000},
        {"pce_svn": -1},
        {"cpu_svn": bytes(17)},
        {"pce_id": bytes(3)},
        {"fmspc": bytes(5)},
        {"sgx_type": -1},
        {"platform_instance_id": bytes(16)},  # without a configuration
        {"configuration": PlatformConfiguration()},  # without a platform instance id
    ],
)
def test_constructor_refuses_values_that_cannot_be_encoded(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "ppid": EXPECTED.ppid,
        "tcb_components": EXPECTED.tcb_components,
        "pce_svn": EXPECTED.pce_svn,
        "cpu_svn": EXPECTED.cpu_svn,
        "pce_id": EXPECTED.pce_id,
        "fmspc": EXPECTED.fmspc,
    }
    with pytest.raises(UsageError):
        SgxExtension(**{**fields, **change})  # type: ignore[arg-type]
