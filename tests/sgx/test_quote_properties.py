"""Hypothesis properties of every decoder in ``sgx``: round trips, and bad bytes
raise only ParseError.

Decoders covered: each Struct of ``_structs.py`` (plus ``Report2Body`` and
``EcdsaSigData``), the quote codec (v3 and v4), certification data, the PCK SGX
extension, the raw ECDSA signature and key forms, and the raw/hex/base64 input
detector.

Example counts (see ``tests/conftest.py`` for the profiles): every property
runs ``EXAMPLES`` examples, ten times the profile's base: 1000 under ``dev``
and 3000 under ``ci``. The exception is the fixed-size structure property,
parametrized over 11 structures that share one generic codec: 300 / 900 per
structure (3300 / 9900 in all), each example checking an exact-size input and a
wrong-size one. The whole file runs in about 40 s of CPU under ``dev``.

Two kinds of property are checked for each decoder:

* **round trip**: any value the strategy builds encodes to bytes that decode to
  the same value, and re-encode to the same bytes;
* **closed under bad input**: arbitrary bytes, truncations and mutations of
  valid encodings either raise ParseError or decode to a value that re-encodes
  to exactly the input (so the decoders accept nothing they cannot reproduce).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.sgx._ecdsa import (
    ec_public_key_from_raw,
    ec_public_key_to_raw,
    ecdsa_signature_from_raw,
    ecdsa_signature_to_raw,
)
from sgx_quote_helper.sgx._encoding import InputEncoding, decode_binary_input
from sgx_quote_helper.sgx._layout import Struct
from sgx_quote_helper.sgx._pck_extension import PlatformConfiguration, SgxExtension
from sgx_quote_helper.sgx._quote import (
    CertificationData,
    EcdsaSigData,
    OpaqueCertificationData,
    PckCertChain,
    PckLeafCertificate,
    PpidCleartext,
    PpidEncrypted,
    QeReportCertificationData,
    Quote,
    Report2Body,
)
from sgx_quote_helper.sgx._structs import (
    AttKeyId,
    AttKeyIdExt,
    AttKeyIdListHeader,
    Attributes,
    QeReportInfo,
    QuoteHeader,
    Report,
    ReportBody,
    TargetInfo,
)

#: Ten times the profile's base count: 1000 (dev), 3000 (ci).
EXAMPLES = 10 * settings().max_examples
PROPERTY = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The fixed-size structures share one generic codec (``_layout.Struct``) and each
#: example checks two inputs, so three times the base: 300 (dev), 900 (ci) per structure.
STRUCT_EXAMPLES = 3 * settings().max_examples
STRUCT_PROPERTY = settings(PROPERTY, max_examples=STRUCT_EXAMPLES)

ASSET_QUOTE = (Path(__file__).parent.parent / "assets" / "intel-sgx-quote-v3.bin").read_bytes()

T = TypeVar("T")

# --- helpers ------------------------------------------------------------------


def _closed(decode: Callable[[bytes], T], encode: Callable[[T], bytes], data: bytes) -> None:
    """``data`` is refused with ParseError, or decodes to a value encoding to ``data``."""
    try:
        value = decode(data)
    except ParseError:
        return
    assert encode(value) == data


@st.composite
def _mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with a few bytes overwritten, inserted, deleted, or cut short."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["overwrite", "insert", "delete", "truncate", "u32"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "overwrite" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "u32" and pos + 4 <= len(data):
            # Length fields are where parsers break: write a small or huge integer.
            value = draw(st.one_of(st.integers(0, 4096), st.integers(0, 2**32 - 1)))
            data[pos : pos + 4] = value.to_bytes(4, "little")
    return bytes(data)


# --- fixed-size structures -------------------------------------------------------

STRUCTS: list[type[Struct]] = [
    Attributes,
    TargetInfo,
    ReportBody,
    Report,
    QeReportInfo,
    AttKeyId,
    AttKeyIdExt,
    AttKeyIdListHeader,
    QuoteHeader,
    Report2Body,
    EcdsaSigData,
]


@pytest.mark.parametrize("struct", STRUCTS, ids=lambda s: s.__name__)
@STRUCT_PROPERTY
@given(data=st.data())
def test_struct_round_trip_or_parse_error(struct: type[Struct], data: st.DataObject) -> None:
    """Exact-size bytes round-trip; the same bytes cut short or extended raise ParseError."""
    size = struct.LAYOUT.size
    raw = data.draw(_fixed(size))
    value = struct.from_bytes(raw)
    assert value.to_bytes() == raw
    assert struct.from_bytes(value.to_bytes()) == value
    length = data.draw(st.integers(0, size + 8).filter(lambda n: n != size))
    wrong = raw[:length] if length < size else raw + bytes(length - size)
    with pytest.raises(ParseError):
        struct.from_bytes(wrong)


# --- strategies for quotes -----------------------------------------------------


# Strategies are built once (module constants, cached helpers): building them inside
# a composite on every draw makes Hypothesis re-validate them each time.


@functools.cache
def _fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


@st.composite
def _pem_block(draw: st.DrawFn) -> bytes:
    der = draw(st.binary(min_size=1, max_size=120))
    text = base64.b64encode(der)
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    width = draw(st.sampled_from([64, 76, 16]))
    lines = [text[i : i + width] for i in range(0, len(text), width)]
    tail = draw(st.sampled_from([b"", eol, eol + eol]))
    return (
        b"-----BEGIN CERTIFICATE-----"
        + eol
        + b"".join(line + eol for line in lines)
        + b"-----END CERTIFICATE-----"
        + tail
    )


@st.composite
def _pem_chain(draw: st.DrawFn) -> tuple[bytes, ...]:
    blocks = draw(st.lists(_pem_block(), min_size=1, max_size=4))
    # Blocks are concatenated, so every block but the last must end with a line break
    # (otherwise the next BEGIN would not start at a block boundary).
    for index in range(len(blocks) - 1):
        if not blocks[index].endswith(b"\n"):
            blocks[index] += b"\n"
    return tuple(blocks)


REPORT_BODIES = _fixed(384).map(ReportBody.from_bytes)
TD_REPORT_BODIES = _fixed(584).map(Report2Body.from_bytes)
_U16 = st.integers(0, 0xFFFF)
_KNOWN_TYPES = frozenset(range(1, 7))

#: Certification data of every type but 6 (which may not nest).
PLAIN_CERTIFICATION_DATA: st.SearchStrategy[CertificationData] = st.one_of(
    st.builds(PpidCleartext, _fixed(16), _fixed(16), _U16, _fixed(2)),
    st.builds(PpidEncrypted, st.one_of(_fixed(256), _fixed(384)), _fixed(16), _U16, _fixed(2)),
    st.builds(PckLeafCertificate, _pem_block(), st.booleans()),
    st.builds(PckCertChain, _pem_chain(), st.booleans()),
    st.builds(
        OpaqueCertificationData,
        _U16.filter(lambda t: t not in _KNOWN_TYPES),
        st.binary(max_size=300),
    ),
)
QE_REPORT_CERTIFICATION_DATA = st.builds(
    QeReportCertificationData,
    REPORT_BODIES,
    _fixed(64),
    st.binary(max_size=64),
    PLAIN_CERTIFICATION_DATA,
)
ANY_CERTIFICATION_DATA: st.SearchStrategy[CertificationData] = st.one_of(
    PLAIN_CERTIFICATION_DATA, QE_REPORT_CERTIFICATION_DATA
)
_U32 = st.integers(0, 2**32 - 1)
_TEE_TYPES_V4 = st.sampled_from([0, 0x81])


@st.composite
def _quotes(draw: st.DrawFn, version: int) -> Quote:
    # v3 keeps att_key_data_0 (read as tee_type) as it is; v4 knows SGX and TDX.
    tee_type = draw(_U32 if version == 3 else _TEE_TYPES_V4)
    header = QuoteHeader(
        version=version,
        att_key_type=2,
        tee_type=tee_type,
        qe_svn=draw(_U16),
        pce_svn=draw(_U16),
        qe_vendor_id=draw(_fixed(16)),
        user_data=draw(_fixed(20)),
    )
    tdx = version == 4 and tee_type == 0x81
    body: ReportBody | Report2Body = draw(TD_REPORT_BODIES) if tdx else draw(REPORT_BODIES)
    certification = draw(ANY_CERTIFICATION_DATA if version == 3 else PLAIN_CERTIFICATION_DATA)
    return Quote(
        header=header,
        report_body=body,
        sig=draw(_fixed(64)),
        attest_pub_key=draw(_fixed(64)),
        qe_report=draw(REPORT_BODIES),
        qe_report_sig=draw(_fixed(64)),
        qe_auth_data=draw(st.binary(max_size=64)),
        certification_data=certification,
    )


QUOTES = {3: _quotes(3), 4: _quotes(4)}
QUOTE_BYTES = st.one_of(
    st.just(ASSET_QUOTE), QUOTES[3].map(Quote.to_bytes), QUOTES[4].map(Quote.to_bytes)
)


# --- quote properties ------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
@PROPERTY
@given(data=st.data())
def test_quote_round_trip(version: int, data: st.DataObject) -> None:
    """Built quotes (v3; v4 SGX and TDX) encode and decode back exactly."""
    quote = data.draw(QUOTES[version])
    raw = quote.to_bytes()
    parsed = Quote.from_bytes(raw)
    assert parsed == quote
    assert parsed.to_bytes() == raw
    assert parsed.signed_region() == raw[: len(parsed.signed_region())]
    assert len(raw) == len(parsed.signed_region()) + 4 + parsed.signature_data_len


@PROPERTY
@given(raw=_mutated(QUOTE_BYTES))
def test_mutated_quotes_raise_only_parse_error(raw: bytes) -> None:
    """Mutations of valid quotes (the real one included) are refused or round-trip."""
    _closed(Quote.from_bytes, Quote.to_bytes, raw)


@PROPERTY
@given(
    raw=st.one_of(
        st.binary(max_size=2048),
        # A plausible header prefix gets the parser past the version check.
        st.tuples(
            st.sampled_from([b"\x03\x00\x02\x00", b"\x04\x00\x02\x00"]), st.binary(max_size=2048)
        ).map(lambda parts: parts[0] + parts[1]),
    )
)
def test_arbitrary_bytes_as_quote_raise_only_parse_error(raw: bytes) -> None:
    _closed(Quote.from_bytes, Quote.to_bytes, raw)


@PROPERTY
@given(cut=st.integers(0, len(ASSET_QUOTE) - 1))
def test_truncated_real_quote_raises_parse_error(cut: int) -> None:
    with pytest.raises(ParseError):
        Quote.from_bytes(ASSET_QUOTE[:cut])


# --- certification data -------------------------------------------------------------


@PROPERTY
@given(value=ANY_CERTIFICATION_DATA)
def test_certification_data_round_trip(value: CertificationData) -> None:
    raw = value.to_bytes()
    parsed = CertificationData.from_bytes(raw)
    assert parsed == value
    assert parsed.to_bytes() == raw


@PROPERTY
@given(
    raw=st.one_of(
        st.binary(max_size=1024),
        _mutated(ANY_CERTIFICATION_DATA.map(CertificationData.to_bytes)),
        st.tuples(st.integers(0, 8), st.binary(max_size=700)).map(
            lambda tp: tp[0].to_bytes(2, "little") + len(tp[1]).to_bytes(4, "little") + tp[1]
        ),
    )
)
def test_certification_data_bad_bytes_raise_only_parse_error(raw: bytes) -> None:
    _closed(CertificationData.from_bytes, CertificationData.to_bytes, raw)


# --- PCK SGX extension -----------------------------------------------------------------


_OPTIONAL_BOOL: st.SearchStrategy[bool | None] = st.one_of(st.none(), st.booleans())
_CONFIGURATIONS = st.builds(PlatformConfiguration, _OPTIONAL_BOOL, _OPTIONAL_BOOL, _OPTIONAL_BOOL)
_COMPONENTS = _fixed(16).map(tuple)  # 16 SVNs 0..255 in one draw
_SGX_TYPES = st.one_of(st.integers(0, 2), st.integers(0, 2**31 - 1))


@st.composite
def _extensions(draw: st.DrawFn) -> SgxExtension:
    platform = draw(st.booleans())
    return SgxExtension(
        ppid=draw(_fixed(16)),
        tcb_components=draw(_COMPONENTS),
        pce_svn=draw(_U16),
        cpu_svn=draw(_fixed(16)),
        pce_id=draw(_fixed(2)),
        fmspc=draw(_fixed(6)),
        sgx_type=draw(_SGX_TYPES),
        platform_instance_id=draw(_fixed(16)) if platform else None,
        configuration=draw(_CONFIGURATIONS) if platform else None,
    )


EXTENSIONS = _extensions()


@PROPERTY
@given(value=EXTENSIONS)
def test_pck_extension_round_trip(value: SgxExtension) -> None:
    raw = value.to_bytes()
    parsed = SgxExtension.from_bytes(raw)
    assert parsed == value
    assert parsed.to_bytes() == raw


INTEL_EXTENSION = SgxExtension.from_certificate(Quote.from_bytes(ASSET_QUOTE).pck_chain()[0])


@PROPERTY
@given(
    raw=st.one_of(
        st.binary(max_size=600),
        _mutated(st.just(INTEL_EXTENSION.to_bytes())),
        _mutated(EXTENSIONS.map(SgxExtension.to_bytes)),
    )
)
def test_pck_extension_bad_bytes_raise_only_parse_error(raw: bytes) -> None:
    _closed(SgxExtension.from_bytes, SgxExtension.to_bytes, raw)


# --- ECDSA raw forms ----------------------------------------------------------------------


@PROPERTY
@given(raw=_fixed(64))
def test_raw_signature_round_trip(raw: bytes) -> None:
    assert ecdsa_signature_to_raw(ecdsa_signature_from_raw(raw)) == raw


@PROPERTY
@given(der=st.one_of(st.binary(max_size=80), _mutated(_fixed(64).map(ecdsa_signature_from_raw))))
def test_der_signature_raises_only_parse_error(der: bytes) -> None:
    try:
        raw = ecdsa_signature_to_raw(der)
    except ParseError:
        return
    assert len(raw) == 64


def _der_sequence(r: int, s: int, *, pad_r: int = 0) -> bytes:
    """SEQUENCE { INTEGER r, INTEGER s } for any signs and sizes (short-form lengths);
    ``pad_r`` zero bytes before r make its encoding non-minimal."""
    body = b""
    for value, pad in ((r, pad_r), (s, 0)):
        integer = bytes(pad) + value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
        body += b"\x02" + bytes([len(integer)]) + integer
    return b"\x30" + bytes([len(body)]) + body


def _reference_to_raw(der: bytes) -> bytes | None:
    """DER to r‖s through cryptography's decoder alone; None where that refuses."""
    try:
        r, s = decode_dss_signature(der)
    except ValueError:
        return None
    if not (0 <= r < 2**256 and 0 <= s < 2**256):
        return None
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


_SIGNATURE_VALUES = st.one_of(
    st.integers(0, 2**256 - 1),
    st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x100, 2**255 - 1, 2**255, 2**256 - 1]),
    st.integers(0, 2**256 - 1).map(lambda value: value >> 8 * (value % 32)),  # short values
)


@PROPERTY
@given(
    der=st.one_of(
        st.tuples(_SIGNATURE_VALUES, _SIGNATURE_VALUES).map(lambda rs: encode_dss_signature(*rs)),
        _mutated(
            st.tuples(_SIGNATURE_VALUES, _SIGNATURE_VALUES).map(
                lambda rs: encode_dss_signature(*rs)
            )
        ),
        st.binary(max_size=80),
        # Non-minimal integers (a redundant leading zero byte), which DER refuses.
        st.tuples(_SIGNATURE_VALUES, st.integers(1, 3), _SIGNATURE_VALUES).map(
            lambda rzs: _der_sequence(rzs[0], rzs[2], pad_r=rzs[1])
        ),
        # Values beyond 32 bytes and negative ones, which DER can carry.
        st.tuples(st.integers(-(2**264), 2**264), _SIGNATURE_VALUES).map(
            lambda rs: _der_sequence(*rs)
        ),
    )
)
def test_der_signature_to_raw_agrees_with_cryptography(der: bytes) -> None:
    """The fast DER reading gives cryptography's values, and refuses what it refuses."""
    expected = _reference_to_raw(der)
    if expected is None:
        with pytest.raises(ParseError):
            ecdsa_signature_to_raw(der)
    else:
        assert ecdsa_signature_to_raw(der) == expected


@PROPERTY
@given(raw=st.one_of(_fixed(64), st.binary(max_size=80)))
def test_raw_public_key_raises_only_parse_error(raw: bytes) -> None:
    _closed(ec_public_key_from_raw, ec_public_key_to_raw, raw)


# --- raw / hex / base64 input detection --------------------------------------------------

_WHITESPACE = st.sampled_from([b"", b"\n", b" ", b"\r\n", b"\t"])


@st.composite
def _hex_text(draw: st.DrawFn, data: bytes) -> bytes:
    text = binascii.hexlify(data)
    if draw(st.booleans()):
        text = text.upper()
    width = draw(st.sampled_from([2, 32, 64, 1 << 20]))
    lines = [text[i : i + width] for i in range(0, len(text), width)]
    prefix = draw(st.sampled_from([b"", b"0x", b"0X"]))
    return draw(_WHITESPACE) + prefix + draw(_WHITESPACE).join(lines) + draw(_WHITESPACE)


@st.composite
def _base64_text(draw: st.DrawFn, data: bytes) -> bytes:
    urlsafe = draw(st.booleans())
    text = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    if draw(st.booleans()):
        text = text.rstrip(b"=")
    width = draw(st.sampled_from([4, 64, 76, 1 << 20]))
    lines = [text[i : i + width] for i in range(0, len(text), width)]
    return b"\n".join(lines) + draw(_WHITESPACE)


@PROPERTY
@given(data=st.binary(min_size=1, max_size=300), form=st.data())
def test_input_detection_round_trip(data: bytes, form: st.DataObject) -> None:
    """Hex always round-trips; base64 does unless its text is all hex digits (rule 2 wins)."""
    decoded, encoding = decode_binary_input(form.draw(_hex_text(data)))
    assert (decoded, encoding) == (data, InputEncoding.HEX)
    text = form.draw(_base64_text(data))
    stripped = b"".join(text.split())
    looks_hex = len(stripped) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in stripped)
    assume(not looks_hex)
    assert decode_binary_input(text) == (data, InputEncoding.BASE64)


@PROPERTY
@given(
    data=st.binary(min_size=1, max_size=600).filter(
        lambda d: any((b < 0x20 and b not in b"\t\n\r\x0b\x0c") or b > 0x7E for b in d)
    )
)
def test_input_detection_keeps_raw_bytes(data: bytes) -> None:
    assert decode_binary_input(data) == (data, InputEncoding.RAW)


@PROPERTY
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.text(alphabet="0123456789abcdefABCDEFxX+/=-_ \n\rghzGHZ!", max_size=300).map(str.encode),
    )
)
def test_input_detection_raises_only_parse_error(raw: bytes) -> None:
    try:
        decoded, encoding = decode_binary_input(raw)
    except ParseError:
        return
    assert isinstance(decoded, bytes)
    assert decoded  # never an empty result
    if encoding is InputEncoding.RAW:
        assert decoded == raw


def test_real_quote_is_detected_in_every_form() -> None:
    assert decode_binary_input(ASSET_QUOTE) == (ASSET_QUOTE, InputEncoding.RAW)
    assert decode_binary_input(ASSET_QUOTE.hex().encode()) == (ASSET_QUOTE, InputEncoding.HEX)
    assert decode_binary_input(base64.encodebytes(ASSET_QUOTE)) == (
        ASSET_QUOTE,
        InputEncoding.BASE64,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"AAAA", (b"\xaa\xaa", InputEncoding.HEX)),  # hex wins over base64 (documented)
        (b"AAA", (b"\x00\x00", InputEncoding.BASE64)),  # odd digit count: not hex
        (b"0x0300", (b"\x03\x00", InputEncoding.HEX)),
        (b"AwA=", (b"\x03\x00", InputEncoding.BASE64)),
        (b"_-8=", (b"\xff\xef", InputEncoding.BASE64)),
    ],
)
def test_input_detection_examples(text: bytes, expected: tuple[bytes, InputEncoding]) -> None:
    assert decode_binary_input(text) == expected


@pytest.mark.parametrize(
    "text", [b"", b" \n", b"A", b"AB=C", b"AB===", b"hello world!", b"+/-_", b"=AAA"]
)
def test_input_detection_refuses(text: bytes) -> None:
    with pytest.raises(ParseError):
        decode_binary_input(text)
