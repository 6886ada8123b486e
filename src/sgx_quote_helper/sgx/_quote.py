"""The DCAP ECDSA quote codec: quote v3 (parse and build) and v4 (parse).

Byte layouts (project spec ``dcap-quote.md`` sections 1 and 3; DCAP
``QuoteGeneration/quote_wrapper/common/inc/sgx_quote_3.h`` and ``sgx_quote_4.h``)::

    v3  header[48] ‖ sgx_report_body_t[384] ‖ u32 signature_data_len ‖ signature data
        signature data = sig[64] ‖ attest_pub_key[64] ‖ qe_report[384] ‖ qe_report_sig[64]
                         ‖ u16 N ‖ qe_auth_data[N] ‖ certification data
    v4  header[48] ‖ body (384 SGX, or sgx_report2_body_t[584] TDX) ‖ u32 len ‖ signature data
        signature data = sig[64] ‖ attest_pub_key[64] ‖ certification data of type 6, whose
                         payload is qe_report ‖ qe_report_sig ‖ u16 N ‖ auth ‖ certification data

    certification data = u16 type ‖ u32 size M ‖ M bytes

A :class:`Quote` is the same for both versions (the v4 type-6 wrapper is
flattened, as dcap-qvl does), and re-encodes to the bytes it was parsed from.
Decoders raise only :class:`~sgx_quote_helper.errors.ParseError`; encoders and
constructors refuse values that cannot be laid out with
:class:`~sgx_quote_helper.errors.UsageError`.
"""

from __future__ import annotations

import binascii
import enum
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Self

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.sgx._ecdsa import RAW_PUBLIC_KEY_SIZE, RAW_SIGNATURE_SIZE
from sgx_quote_helper.sgx._layout import Layout, Struct
from sgx_quote_helper.sgx._structs import AttKeyAlgorithm, QuoteHeader, ReportBody

QUOTE_VERSION_3 = 3
QUOTE_VERSION_4 = 4
SUPPORTED_QUOTE_VERSIONS = (QUOTE_VERSION_3, QUOTE_VERSION_4)


class TeeType(enum.IntEnum):
    """Header offset 4 as QVL and dcap-qvl read it (``tee_type`` in ``sgx_quote_4.h``)."""

    SGX = 0x00000000
    TDX = 0x00000081


def _zeros(n: int) -> bytes:
    return bytes(n)


@dataclass(frozen=True)
class Report2Body(Struct):
    """``sgx_report2_body_t`` (584 bytes): the TD report body of a v4 TDX quote.

    Layout from ``sgx_quote_4.h`` (dcap-quote.md section 3). The attribute
    fields are bit arrays (``tee_attributes_t``) and are kept as bytes.
    """

    LAYOUT = Layout(
        584,
        ("tee_tcb_svn", 0, 16),
        ("mr_seam", 16, 48),
        ("mrsigner_seam", 64, 48),
        ("seam_attributes", 112, 8),
        ("td_attributes", 120, 8),
        ("xfam", 128, 8),
        ("mr_td", 136, 48),
        ("mr_config_id", 184, 48),
        ("mr_owner", 232, 48),
        ("mr_owner_config", 280, 48),
        ("rt_mr0", 328, 48),
        ("rt_mr1", 376, 48),
        ("rt_mr2", 424, 48),
        ("rt_mr3", 472, 48),
        ("report_data", 520, 64),
    )

    tee_tcb_svn: bytes = field(default_factory=lambda: _zeros(16))
    mr_seam: bytes = field(default_factory=lambda: _zeros(48))
    mrsigner_seam: bytes = field(default_factory=lambda: _zeros(48))
    seam_attributes: bytes = field(default_factory=lambda: _zeros(8))
    td_attributes: bytes = field(default_factory=lambda: _zeros(8))
    xfam: bytes = field(default_factory=lambda: _zeros(8))
    mr_td: bytes = field(default_factory=lambda: _zeros(48))
    mr_config_id: bytes = field(default_factory=lambda: _zeros(48))
    mr_owner: bytes = field(default_factory=lambda: _zeros(48))
    mr_owner_config: bytes = field(default_factory=lambda: _zeros(48))
    rt_mr0: bytes = field(default_factory=lambda: _zeros(48))
    rt_mr1: bytes = field(default_factory=lambda: _zeros(48))
    rt_mr2: bytes = field(default_factory=lambda: _zeros(48))
    rt_mr3: bytes = field(default_factory=lambda: _zeros(48))
    report_data: bytes = field(default_factory=lambda: _zeros(64))


@dataclass(frozen=True)
class EcdsaSigData(Struct):
    """``sgx_ql_ecdsa_sig_data_t`` (576 bytes): the fixed start of v3 signature data.

    In C the auth and certification data follow as a flexible array member.
    """

    LAYOUT = Layout(
        576,
        ("sig", 0, 64),
        ("attest_pub_key", 64, 64),
        ("qe_report", 128, 384, ReportBody),
        ("qe_report_sig", 512, 64),
    )

    sig: bytes
    attest_pub_key: bytes
    qe_report: ReportBody
    qe_report_sig: bytes


QUOTE_HEADER_SIZE = QuoteHeader.LAYOUT.size  # 48
#: Quote v3: header ‖ ISV report body, the bytes ``sig`` covers.
SIGNED_REGION_SIZE_V3 = QUOTE_HEADER_SIZE + ReportBody.LAYOUT.size  # 432
#: Offset of ``signature_data_len`` in a v3 (and v4 SGX) quote.
SIGNATURE_DATA_LEN_OFFSET_V3 = SIGNED_REGION_SIZE_V3  # 432
SIGNATURE_DATA_OFFSET_V3 = SIGNATURE_DATA_LEN_OFFSET_V3 + 4  # 436
#: Offset of ``signature_data_len`` in a v4 TDX quote.
SIGNATURE_DATA_LEN_OFFSET_V4_TDX = QUOTE_HEADER_SIZE + Report2Body.LAYOUT.size  # 632
#: u16 type ‖ u32 size in front of every certification data payload.
CERTIFICATION_DATA_HEADER_SIZE = 6
#: Largest ``qe_auth_data`` (its length is a u16).
MAX_QE_AUTH_DATA_SIZE = 0xFFFF
#: Largest certification data payload this codec accepts (any type, nested or not).
#: Intel's PCK chain is about 3.5 KiB; the cap keeps a hostile size field from
#: describing anything large (STYLE.md: lengths are checked against a named maximum).
MAX_CERTIFICATION_DATA_SIZE = 64 * 1024
#: Smallest v3 quote (QVL ``QUOTE_MIN_BYTE_LEN``): no auth data, empty certification data.
QUOTE_MIN_SIZE_V3 = (
    SIGNATURE_DATA_OFFSET_V3 + EcdsaSigData.LAYOUT.size + 2 + CERTIFICATION_DATA_HEADER_SIZE
)  # 1020


def quote_size_v3(auth_data_len: int, cert_data_len: int) -> int:
    """Total bytes of a v3 quote with ``N`` bytes of QE auth data and ``M`` of cert data.

    ``signature_data_len`` is this minus 436 (dcap-quote.md section 1.3).
    """
    if not 0 <= auth_data_len <= MAX_QE_AUTH_DATA_SIZE:
        raise UsageError(f"QE auth data length must be 0..{MAX_QE_AUTH_DATA_SIZE}")
    if not 0 <= cert_data_len <= MAX_CERTIFICATION_DATA_SIZE:
        raise UsageError(f"certification data length must be 0..{MAX_CERTIFICATION_DATA_SIZE}")
    return QUOTE_MIN_SIZE_V3 + auth_data_len + cert_data_len


#: Largest quote this codec accepts: a v3 quote with both variable parts at their
#: caps (a v4 quote, whose auth data sits inside capped certification data, is smaller).
MAX_QUOTE_SIZE = quote_size_v3(MAX_QE_AUTH_DATA_SIZE, MAX_CERTIFICATION_DATA_SIZE)


class _Reader:
    """Sequential little-endian reads that fail with ParseError, never IndexError."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, name: str) -> bytes:
        if n > self.remaining:
            raise ParseError(
                f"{self._what} is truncated: {name} needs {n} bytes at offset "
                f"{self._pos}, only {self.remaining} left"
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u16(self, name: str) -> int:
        return int.from_bytes(self.take(2, name), "little")

    def u32(self, name: str) -> int:
        return int.from_bytes(self.take(4, name), "little")

    def end(self) -> None:
        if self.remaining:
            raise ParseError(
                f"{self._what} has {self.remaining} unexpected bytes at offset {self._pos}"
            )


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def _check_size(owner: str, name: str, value: bytes, *sizes: int) -> None:
    if not isinstance(value, bytes) or len(value) not in sizes:
        wanted = " or ".join(str(s) for s in sizes)
        raise UsageError(f"{owner}.{name} must be {wanted} bytes")


def _check_uint(owner: str, name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise UsageError(f"{owner}.{name} must be an unsigned {bits}-bit integer")


# ---------------------------------------------------------------------------
# Certification data (``sgx_ql_certification_data_t``, dcap-quote.md section 1.4)


class CertificationDataType(enum.IntEnum):
    """``sgx_ql_cert_key_type_t``."""

    PPID_CLEARTEXT = 1
    PPID_RSA2048_ENCRYPTED = 2
    PPID_RSA3072_ENCRYPTED = 3
    PCK_CLEARTEXT = 4
    PCK_CERT_CHAIN = 5
    #: ``ECDSA_SIG_AUX_DATA``: QE report certification data (v4 quotes).
    QE_REPORT_CERTIFICATION_DATA = 6
    #: Only in dcap-qvl ``src/constants.rs``.
    PLATFORM_MANIFEST = 7


def certification_data_type_name(cert_type: int) -> str:
    """The ``sgx_ql_cert_key_type_t`` name of a type, or ``unknown``."""
    try:
        return CertificationDataType(cert_type).name
    except ValueError:
        return "unknown"


class CertificationData(ABC):
    """One certification data block: ``u16 type ‖ u32 size ‖ payload``.

    Subclasses are the typed payloads; :meth:`from_bytes` picks the subclass by
    type, and unknown types become :class:`OpaqueCertificationData`.
    """

    @property
    @abstractmethod
    def cert_type(self) -> int:
        """The ``sgx_ql_cert_key_type_t`` value written in front of the payload."""

    @abstractmethod
    def payload(self) -> bytes:
        """The payload bytes (what the size field counts)."""

    def to_bytes(self) -> bytes:
        """The whole block: type, size and payload."""
        body = self.payload()
        if len(body) > MAX_CERTIFICATION_DATA_SIZE:
            raise UsageError(
                f"certification data is {len(body)} bytes, more than the "
                f"{MAX_CERTIFICATION_DATA_SIZE} this codec allows"
            )
        return _u16(self.cert_type) + _u32(len(body)) + body

    @property
    def size(self) -> int:
        """The size field: bytes of the payload."""
        return len(self.payload())

    @staticmethod
    def from_bytes(data: bytes | bytearray | memoryview) -> CertificationData:
        """Parse exactly one block (type, size, payload) with nothing after it."""
        reader = _Reader(bytes(data), "certification data")
        value = _read_certification_data(reader, allow_qe_report=True)
        reader.end()
        return value

    @staticmethod
    def from_payload(cert_type: int, payload: bytes) -> CertificationData:
        """The typed value of a payload whose type and size were read already."""
        return _parse_certification_payload(cert_type, payload, allow_qe_report=True)


@dataclass(frozen=True)
class PpidCleartext(CertificationData):
    """Type 1: PPID[16] ‖ CPUSVN[16] ‖ PCESVN u16 ‖ PCE-ID u16."""

    PAYLOAD_SIZE: ClassVar[int] = 36

    ppid: bytes
    cpu_svn: bytes
    pce_svn: int
    #: As in the quote: the little-endian u16, 2 bytes.
    pce_id: bytes

    def __post_init__(self) -> None:
        _check_size("PpidCleartext", "ppid", self.ppid, 16)
        _check_size("PpidCleartext", "cpu_svn", self.cpu_svn, 16)
        _check_uint("PpidCleartext", "pce_svn", self.pce_svn, 16)
        _check_size("PpidCleartext", "pce_id", self.pce_id, 2)

    @property
    def cert_type(self) -> int:
        return CertificationDataType.PPID_CLEARTEXT

    def payload(self) -> bytes:
        return self.ppid + self.cpu_svn + _u16(self.pce_svn) + self.pce_id


@dataclass(frozen=True)
class PpidEncrypted(CertificationData):
    """Types 2 and 3: encrypted PPID ‖ CPUSVN[16] ‖ PCESVN u16 ‖ PCE-ID u16.

    The type follows from the ciphertext: 256 bytes is RSA-2048 (type 2), 384
    bytes RSA-3072 (type 3).
    """

    enc_ppid: bytes
    cpu_svn: bytes
    pce_svn: int
    pce_id: bytes

    def __post_init__(self) -> None:
        _check_size("PpidEncrypted", "enc_ppid", self.enc_ppid, 256, 384)
        _check_size("PpidEncrypted", "cpu_svn", self.cpu_svn, 16)
        _check_uint("PpidEncrypted", "pce_svn", self.pce_svn, 16)
        _check_size("PpidEncrypted", "pce_id", self.pce_id, 2)

    @property
    def cert_type(self) -> int:
        if len(self.enc_ppid) == 256:
            return CertificationDataType.PPID_RSA2048_ENCRYPTED
        return CertificationDataType.PPID_RSA3072_ENCRYPTED

    def payload(self) -> bytes:
        return self.enc_ppid + self.cpu_svn + _u16(self.pce_svn) + self.pce_id


# One PEM certificate block, with the line breaks after it (kept so that a chain
# re-encodes byte for byte). The body alphabet excludes '-', so the match is linear.
_PEM_BLOCK = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----[\r\n]*"
)
_NUL = b"\x00"


# A verifier meets the same few PCK chains in quote after quote; remembering the
# split and the parsed certificates of recent ones (both immutable, keyed by
# their bytes) saves about a tenth of a verification. Errors are not remembered.
_REMEMBERED_PEMS = 1024


@functools.lru_cache(maxsize=_REMEMBERED_PEMS)
def _split_pem_blocks(data: bytes, what: str) -> tuple[bytes, ...]:
    """Split concatenated PEM certificates; anything else is a ParseError."""
    blocks: list[bytes] = []
    pos = 0
    while pos < len(data):
        match = _PEM_BLOCK.match(data, pos)
        if match is None:
            raise ParseError(f"{what}: expected a PEM certificate at byte {pos}")
        body = match.group(1).replace(b"\r", b"").replace(b"\n", b"")
        try:
            der = binascii.a2b_base64(body, strict_mode=True)
        except binascii.Error as exc:
            raise ParseError(f"{what}: certificate {len(blocks)} is not base64 ({exc})") from None
        if not der:
            raise ParseError(f"{what}: certificate {len(blocks)} is empty")
        blocks.append(match.group(0))
        pos = match.end()
    if not blocks:
        raise ParseError(f"{what}: contains no certificate")
    return tuple(blocks)


@functools.lru_cache(maxsize=_REMEMBERED_PEMS)
def _load_pem_certificate(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise ParseError(f"{what} is not a valid X.509 certificate: {exc}") from None


def _strip_nul(payload: bytes) -> tuple[bytes, bool]:
    if payload.endswith(_NUL):
        return payload[:-1], True
    return payload, False


def _as_pem_bytes(pem: str | bytes) -> bytes:
    if isinstance(pem, str):
        try:
            return pem.encode("ascii")
        except UnicodeEncodeError:
            raise UsageError("a PEM certificate must be ASCII text") from None
    return bytes(pem)


@dataclass(frozen=True)
class PckLeafCertificate(CertificationData):
    """Type 4 (``PCK_CLEARTEXT``): the PCK leaf certificate alone, as PEM."""

    pem: bytes
    #: Whether a NUL byte follows the PEM text (and is counted in the size).
    trailing_nul: bool = False

    def __post_init__(self) -> None:
        try:
            blocks = _split_pem_blocks(self.pem, "PCK leaf")
        except ParseError as exc:
            raise UsageError(str(exc)) from None
        if len(blocks) != 1:
            raise UsageError("PckLeafCertificate.pem must hold exactly one certificate")

    @property
    def cert_type(self) -> int:
        return CertificationDataType.PCK_CLEARTEXT

    def payload(self) -> bytes:
        return self.pem + (_NUL if self.trailing_nul else b"")

    @classmethod
    def parse_payload(cls, payload: bytes) -> Self:
        text, nul = _strip_nul(payload)
        blocks = _split_pem_blocks(text, "PCK leaf certification data")
        if len(blocks) != 1:
            raise ParseError(
                f"PCK leaf certification data holds {len(blocks)} certificates, expected 1"
            )
        return cls(blocks[0], trailing_nul=nul)

    def certificate(self) -> x509.Certificate:
        return _load_pem_certificate(self.pem, "the PCK leaf")


@dataclass(frozen=True)
class PckCertChain(CertificationData):
    """Type 5 (``PCK_CERT_CHAIN``): PEM leaf ‖ intermediate CA ‖ root CA.

    Intel's QE writes the three ``\\n``-terminated PEM blocks followed by one
    NUL byte that the size counts (dcap-quote.md section 1.4); ``trailing_nul``
    records it so the payload re-encodes byte for byte.
    """

    #: The PEM blocks in order, each with the line breaks that follow it.
    pems: tuple[bytes, ...]
    trailing_nul: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.pems, tuple) or not self.pems:
            raise UsageError("PckCertChain.pems must be a non-empty tuple of PEM blocks")
        for index, pem in enumerate(self.pems):
            try:
                blocks = _split_pem_blocks(pem, f"PCK chain certificate {index}")
            except ParseError as exc:
                raise UsageError(str(exc)) from None
            if len(blocks) != 1:
                raise UsageError(f"PCK chain entry {index} must hold exactly one certificate")

    @property
    def cert_type(self) -> int:
        return CertificationDataType.PCK_CERT_CHAIN

    def payload(self) -> bytes:
        return b"".join(self.pems) + (_NUL if self.trailing_nul else b"")

    @classmethod
    def from_pems(cls, pems: Iterable[str | bytes], *, trailing_nul: bool = True) -> Self:
        """A chain from PEM texts (leaf first), each holding one certificate.

        The texts are used exactly as given; Intel's end with ``\\n``.
        """
        return cls(tuple(_as_pem_bytes(p) for p in pems), trailing_nul=trailing_nul)

    @classmethod
    def from_certificates(
        cls, certificates: Sequence[x509.Certificate], *, trailing_nul: bool = True
    ) -> Self:
        """A chain from certificate objects (leaf first), in Intel's PEM form."""
        return cls(
            tuple(c.public_bytes(serialization.Encoding.PEM) for c in certificates),
            trailing_nul=trailing_nul,
        )

    @classmethod
    def parse_payload(cls, payload: bytes) -> Self:
        text, nul = _strip_nul(payload)
        return cls(_split_pem_blocks(text, "PCK certificate chain"), trailing_nul=nul)

    def certificates(self) -> list[x509.Certificate]:
        """The certificates, leaf first; ParseError if one is not valid X.509."""
        return [
            _load_pem_certificate(pem, f"PCK chain certificate {index}")
            for index, pem in enumerate(self.pems)
        ]


@dataclass(frozen=True)
class QeReportCertificationData(CertificationData):
    """Type 6: QE report ‖ its PCK signature ‖ u16 N ‖ auth data ‖ nested cert data.

    This is how v4 quotes carry the QE block (``sgx_ql_qe_report_cert_data_t``,
    dcap-quote.md section 3). The nested certification data is never type 6.
    """

    qe_report: ReportBody
    qe_report_sig: bytes
    qe_auth_data: bytes
    certification_data: CertificationData

    def __post_init__(self) -> None:
        _check_size("QeReportCertificationData", "qe_report_sig", self.qe_report_sig, 64)
        if (
            not isinstance(self.qe_auth_data, bytes)
            or len(self.qe_auth_data) > MAX_QE_AUTH_DATA_SIZE
        ):
            raise UsageError(f"QE auth data must be bytes, at most {MAX_QE_AUTH_DATA_SIZE}")
        if isinstance(self.certification_data, QeReportCertificationData):
            raise UsageError("QE report certification data cannot nest another of type 6")

    @property
    def cert_type(self) -> int:
        return CertificationDataType.QE_REPORT_CERTIFICATION_DATA

    def payload(self) -> bytes:
        return (
            self.qe_report.to_bytes()
            + self.qe_report_sig
            + _u16(len(self.qe_auth_data))
            + self.qe_auth_data
            + self.certification_data.to_bytes()
        )


@dataclass(frozen=True)
class OpaqueCertificationData(CertificationData):
    """Type 7 (platform manifest) and unknown types: the payload as bytes."""

    type_id: int
    data: bytes

    def __post_init__(self) -> None:
        _check_uint("OpaqueCertificationData", "type_id", self.type_id, 16)
        if not isinstance(self.data, bytes):
            raise UsageError("OpaqueCertificationData.data must be bytes")

    @property
    def cert_type(self) -> int:
        return self.type_id

    def payload(self) -> bytes:
        return self.data


def _read_qe_block(reader: _Reader) -> tuple[ReportBody, bytes, bytes]:
    qe_report = ReportBody.from_bytes(reader.take(ReportBody.LAYOUT.size, "qe_report"))
    qe_report_sig = reader.take(RAW_SIGNATURE_SIZE, "qe_report_sig")
    auth_len = reader.u16("qe_auth_data size")
    qe_auth_data = reader.take(auth_len, "qe_auth_data")
    return qe_report, qe_report_sig, qe_auth_data


def _read_certification_data(reader: _Reader, *, allow_qe_report: bool) -> CertificationData:
    cert_type = reader.u16("certification data type")
    size = reader.u32("certification data size")
    if size > MAX_CERTIFICATION_DATA_SIZE:
        raise ParseError(
            f"certification data size {size} exceeds the maximum {MAX_CERTIFICATION_DATA_SIZE}"
        )
    payload = reader.take(size, "certification data")
    return _parse_certification_payload(cert_type, payload, allow_qe_report=allow_qe_report)


def _parse_certification_payload(
    cert_type: int, payload: bytes, *, allow_qe_report: bool
) -> CertificationData:
    def fixed(size: int) -> _Reader:
        if len(payload) != size:
            raise ParseError(
                f"certification data type {cert_type} ({certification_data_type_name(cert_type)}) "
                f"must be {size} bytes, got {len(payload)}"
            )
        return _Reader(payload, "certification data")

    if cert_type == CertificationDataType.PPID_CLEARTEXT:
        r = fixed(PpidCleartext.PAYLOAD_SIZE)
        return PpidCleartext(
            r.take(16, "ppid"), r.take(16, "cpu_svn"), r.u16("pce_svn"), r.take(2, "pce_id")
        )
    if cert_type in (
        CertificationDataType.PPID_RSA2048_ENCRYPTED,
        CertificationDataType.PPID_RSA3072_ENCRYPTED,
    ):
        enc_size = 256 if cert_type == CertificationDataType.PPID_RSA2048_ENCRYPTED else 384
        r = fixed(enc_size + 20)
        return PpidEncrypted(
            r.take(enc_size, "enc_ppid"),
            r.take(16, "cpu_svn"),
            r.u16("pce_svn"),
            r.take(2, "pce_id"),
        )
    if cert_type == CertificationDataType.PCK_CLEARTEXT:
        return PckLeafCertificate.parse_payload(payload)
    if cert_type == CertificationDataType.PCK_CERT_CHAIN:
        return PckCertChain.parse_payload(payload)
    if cert_type == CertificationDataType.QE_REPORT_CERTIFICATION_DATA:
        if not allow_qe_report:
            raise ParseError("QE report certification data (type 6) cannot be nested in itself")
        r = _Reader(payload, "QE report certification data")
        qe_report, qe_report_sig, qe_auth_data = _read_qe_block(r)
        nested = _read_certification_data(r, allow_qe_report=False)
        r.end()
        return QeReportCertificationData(qe_report, qe_report_sig, qe_auth_data, nested)
    return OpaqueCertificationData(cert_type, payload)


# ---------------------------------------------------------------------------
# The quote


def _report_body_class(header: QuoteHeader) -> type[ReportBody] | type[Report2Body]:
    """The body structure a header announces; ParseError if it announces none we know."""
    if header.version == QUOTE_VERSION_3:
        return ReportBody
    if header.version == QUOTE_VERSION_4:
        if header.tee_type == TeeType.SGX:
            return ReportBody
        if header.tee_type == TeeType.TDX:
            return Report2Body
        raise ParseError(f"quote v4 has unknown tee_type 0x{header.tee_type:08x}")
    raise ParseError(f"quote version {header.version} is not supported (only versions 3 and 4 are)")


def encoded_quote_size(data: bytes) -> int:
    """The size of the SGX quote that starts ``data``, from its fixed part alone.

    ``signature_data_offset + signature_data_len`` (436 + the u32 at 432 for v3
    and for v4 SGX quotes), as Gramine recomputes it to trim the zero-padded
    buffer that AESM returns (aesm-wire.md section 6.2). What follows the fixed
    part is not read: it may be missing or padding. :class:`ParseError` when
    ``data`` is shorter than the fixed part or is not an SGX quote of a version
    this codec reads (a TDX quote has another body).
    """
    if len(data) < SIGNATURE_DATA_OFFSET_V3:
        raise ParseError(
            f"{len(data)} bytes are less than a quote's fixed {SIGNATURE_DATA_OFFSET_V3}"
        )
    header = QuoteHeader.from_bytes(data[:QUOTE_HEADER_SIZE])
    if _report_body_class(header) is not ReportBody:
        raise ParseError("a TDX quote, not an SGX one")
    length = data[SIGNATURE_DATA_LEN_OFFSET_V3:SIGNATURE_DATA_OFFSET_V3]
    return SIGNATURE_DATA_OFFSET_V3 + int.from_bytes(length, "little")


@dataclass(frozen=True)
class Quote:
    """An ECDSA-P256 DCAP quote, v3 or v4, with the QE block flattened.

    ``certification_data`` is the one that certifies the QE report's signer:
    for v3 the block after the auth data, for v4 the block nested in the
    type-6 wrapper.
    """

    header: QuoteHeader
    #: ``sgx_report_body_t`` (v3, v4 SGX) or ``sgx_report2_body_t`` (v4 TDX).
    report_body: ReportBody | Report2Body
    #: ECDSA by the attestation key over :meth:`signed_region`, raw ``r‖s``.
    sig: bytes
    #: The attestation public key, raw ``x‖y``.
    attest_pub_key: bytes
    qe_report: ReportBody
    #: ECDSA by the PCK key over the 384 ``qe_report`` bytes, raw ``r‖s``.
    qe_report_sig: bytes
    qe_auth_data: bytes
    certification_data: CertificationData

    def __post_init__(self) -> None:
        if self.header.version not in SUPPORTED_QUOTE_VERSIONS:
            raise UsageError(f"quote version {self.header.version} is not 3 or 4")
        if self.header.att_key_type != AttKeyAlgorithm.ECDSA_P256:
            raise UsageError("only ECDSA-P256 quotes (att_key_type 2) are supported")
        try:
            expected = _report_body_class(self.header)
        except ParseError as exc:
            raise UsageError(str(exc)) from None
        if type(self.report_body) is not expected:
            raise UsageError(f"this header needs a {expected.__name__} report body")
        _check_size("Quote", "sig", self.sig, RAW_SIGNATURE_SIZE)
        _check_size("Quote", "attest_pub_key", self.attest_pub_key, RAW_PUBLIC_KEY_SIZE)
        _check_size("Quote", "qe_report_sig", self.qe_report_sig, RAW_SIGNATURE_SIZE)
        if (
            not isinstance(self.qe_auth_data, bytes)
            or len(self.qe_auth_data) > MAX_QE_AUTH_DATA_SIZE
        ):
            raise UsageError(f"QE auth data must be bytes, at most {MAX_QE_AUTH_DATA_SIZE}")
        if self.version == QUOTE_VERSION_4 and isinstance(
            self.certification_data, QeReportCertificationData
        ):
            raise UsageError("a v4 quote's nested certification data cannot be type 6")

    # -- accessors ---------------------------------------------------------

    @property
    def version(self) -> int:
        return self.header.version

    @property
    def tee_type(self) -> int:
        return self.header.tee_type

    @property
    def is_tdx(self) -> bool:
        return isinstance(self.report_body, Report2Body)

    @property
    def qe_id(self) -> bytes:
        """The QE-ID: ``user_data[0:16]`` (as dcap-qvl and the PCCS read it)."""
        return self.header.user_data[:16]

    def signed_region(self) -> bytes:
        """The bytes ``sig`` covers: header ‖ report body (432 bytes for v3)."""
        return self.header.to_bytes() + self.report_body.to_bytes()

    def signature_data(self) -> bytes:
        """The signature data that follows ``signature_data_len``."""
        if self.version == QUOTE_VERSION_3:
            return (
                EcdsaSigData(
                    self.sig, self.attest_pub_key, self.qe_report, self.qe_report_sig
                ).to_bytes()
                + _u16(len(self.qe_auth_data))
                + self.qe_auth_data
                + self.certification_data.to_bytes()
            )
        wrapper = QeReportCertificationData(
            self.qe_report, self.qe_report_sig, self.qe_auth_data, self.certification_data
        )
        return self.sig + self.attest_pub_key + wrapper.to_bytes()

    @property
    def signature_data_len(self) -> int:
        return len(self.signature_data())

    @property
    def has_pck_chain(self) -> bool:
        """Whether the certification data carries the PCK leaf (type 4 or 5)."""
        return isinstance(self.certification_data, (PckCertChain, PckLeafCertificate))

    def pck_chain(self) -> list[x509.Certificate]:
        """The PCK certificates, leaf first (type 5; type 4 gives the leaf alone).

        ParseError if the quote carries no certificates or one is not X.509.
        """
        data = self.certification_data
        if isinstance(data, PckCertChain):
            return data.certificates()
        if isinstance(data, PckLeafCertificate):
            return [data.certificate()]
        raise ParseError(
            f"the quote's certification data is type {data.cert_type} "
            f"({certification_data_type_name(data.cert_type)}), not a PCK certificate chain"
        )

    # -- codec -------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse a whole quote; trailing bytes and every length mismatch are ParseErrors."""
        raw = bytes(data)
        if len(raw) > MAX_QUOTE_SIZE:
            raise ParseError(f"quote is {len(raw)} bytes, more than the maximum {MAX_QUOTE_SIZE}")
        reader = _Reader(raw, "quote")
        header = QuoteHeader.from_bytes(reader.take(QUOTE_HEADER_SIZE, "header"))
        body_class = _report_body_class(header)
        if header.att_key_type != AttKeyAlgorithm.ECDSA_P256:
            raise ParseError(
                f"attestation key type {header.att_key_type} is not supported (only 2, ECDSA-P256)"
            )
        body = body_class.from_bytes(reader.take(body_class.LAYOUT.size, "report body"))
        sig_len = reader.u32("signature_data_len")
        if sig_len != reader.remaining:
            raise ParseError(
                f"signature_data_len is {sig_len} but {reader.remaining} bytes follow it"
            )
        sig_data = _Reader(reader.take(sig_len, "signature data"), "signature data")
        sig = sig_data.take(RAW_SIGNATURE_SIZE, "sig")
        attest_pub_key = sig_data.take(RAW_PUBLIC_KEY_SIZE, "attest_pub_key")
        if header.version == QUOTE_VERSION_3:
            qe_report, qe_report_sig, qe_auth_data = _read_qe_block(sig_data)
            cert_data = _read_certification_data(sig_data, allow_qe_report=True)
        else:
            wrapper = _read_certification_data(sig_data, allow_qe_report=True)
            if not isinstance(wrapper, QeReportCertificationData):
                raise ParseError(
                    f"quote v4 signature data must hold certification data type 6, "
                    f"not {wrapper.cert_type}"
                )
            qe_report = wrapper.qe_report
            qe_report_sig = wrapper.qe_report_sig
            qe_auth_data = wrapper.qe_auth_data
            cert_data = wrapper.certification_data
        sig_data.end()
        return cls(
            header=header,
            report_body=body,
            sig=sig,
            attest_pub_key=attest_pub_key,
            qe_report=qe_report,
            qe_report_sig=qe_report_sig,
            qe_auth_data=qe_auth_data,
            certification_data=cert_data,
        )

    def to_bytes(self) -> bytes:
        signature_data = self.signature_data()
        return self.signed_region() + _u32(len(signature_data)) + signature_data


def build_quote_v3(
    header: QuoteHeader,
    report_body: ReportBody,
    *,
    sign: Callable[[bytes], bytes],
    attest_pub_key: bytes,
    qe_report: ReportBody,
    qe_report_sig: bytes,
    qe_auth_data: bytes,
    certification_data: CertificationData,
) -> bytes:
    """Lay out and sign a v3 quote as Intel's QE3 does.

    ``sign`` receives the 432 bytes header ‖ report body and returns the raw
    ``r‖s`` ECDSA-P256-SHA256 signature by the attestation key (for example
    ``functools.partial(ecdsa_sign_raw, key)``). The QE report, its PCK
    signature, the auth data and the certification data are taken as given.
    """
    if header.version != QUOTE_VERSION_3:
        raise UsageError(f"build_quote_v3 needs a version 3 header, not {header.version}")
    unsigned = Quote(
        header=header,
        report_body=report_body,
        sig=bytes(RAW_SIGNATURE_SIZE),
        attest_pub_key=attest_pub_key,
        qe_report=qe_report,
        qe_report_sig=qe_report_sig,
        qe_auth_data=qe_auth_data,
        certification_data=certification_data,
    )
    signature = sign(unsigned.signed_region())
    if not isinstance(signature, bytes) or len(signature) != RAW_SIGNATURE_SIZE:
        raise UsageError("sign must return a raw 64-byte r‖s signature")
    return replace(unsigned, sig=signature).to_bytes()


__all__ = [
    "CERTIFICATION_DATA_HEADER_SIZE",
    "MAX_CERTIFICATION_DATA_SIZE",
    "MAX_QE_AUTH_DATA_SIZE",
    "MAX_QUOTE_SIZE",
    "QUOTE_MIN_SIZE_V3",
    "SIGNED_REGION_SIZE_V3",
    "CertificationData",
    "CertificationDataType",
    "EcdsaSigData",
    "OpaqueCertificationData",
    "PckCertChain",
    "PckLeafCertificate",
    "PpidCleartext",
    "PpidEncrypted",
    "QeReportCertificationData",
    "Quote",
    "Report2Body",
    "TeeType",
    "build_quote_v3",
    "certification_data_type_name",
    "quote_size_v3",
]
