"""The SGX extension of PCK certificates (OID 1.2.840.113741.1.13.1).

Layout (project spec ``dcap-quote.md`` section 4; Intel QVL
``Src/AttestationParsers/src/X509/PckCertificate.cpp``, ``Tcb.cpp``,
``Configuration.cpp``)::

    SGXExtensions ::= SEQUENCE {                      -- 5 entries (Processor CA) or 7 (Platform CA)
        SEQUENCE { .1  OCTET STRING (16) }            -- PPID
        SEQUENCE { .2  SEQUENCE {                     -- TCB, exactly 18 entries
            SEQUENCE { .2.1 .. .2.16  INTEGER (0..255) }  -- component SVNs
            SEQUENCE { .2.17 INTEGER (0..65535) }         -- PCESVN
            SEQUENCE { .2.18 OCTET STRING (16) } } }      -- CPUSVN
        SEQUENCE { .3  OCTET STRING (2) }             -- PCE-ID
        SEQUENCE { .4  OCTET STRING (6) }             -- FMSPC
        SEQUENCE { .5  ENUMERATED }                   -- SGX type
        SEQUENCE { .6  OCTET STRING (16) }            -- PlatformInstanceID (Platform CA)
        SEQUENCE { .7  SEQUENCE {                     -- Configuration (Platform CA)
            SEQUENCE { .7.1 BOOLEAN } OPTIONAL, SEQUENCE { .7.2 BOOLEAN } OPTIONAL,
            SEQUENCE { .7.3 BOOLEAN } OPTIONAL } } }

The codec is a small strict DER reader and writer for exactly this shape:
definite minimal lengths, minimal INTEGERs (255 is ``02 02 00 FF``), DER
BOOLEANs and the entries in the order above (the order Intel issues). So every
value that decodes re-encodes to the identical bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Self

from cryptography import x509

from sgx_quote_helper.errors import ParseError, UsageError

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
#: Top-level entries in a Processor-CA leaf (QVL ``PROCESSOR_CA_EXTENSION_COUNT``).
PROCESSOR_CA_EXTENSION_COUNT = 5
#: Top-level entries in a Platform-CA leaf (QVL ``PLATFORM_CA_EXTENSION_COUNT``).
PLATFORM_CA_EXTENSION_COUNT = 7
#: Entries of the TCB sequence (QVL ``TCB_SEQUENCE_LEN``): 16 components, PCESVN, CPUSVN.
TCB_SEQUENCE_LENGTH = 18
TCB_COMPONENT_COUNT = 16


class SgxType(enum.IntEnum):
    """The ``.5`` SGX Type ENUMERATED."""

    STANDARD = 0
    SCALABLE = 1
    SCALABLE_WITH_INTEGRITY = 2


# DER tags (universal, primitive unless noted).
_BOOLEAN = 0x01
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06
_ENUMERATED = 0x0A
_SEQUENCE = 0x30  # constructed
_TAG_NAMES = {
    _BOOLEAN: "BOOLEAN",
    _INTEGER: "INTEGER",
    _OCTET_STRING: "OCTET STRING",
    _OID: "OBJECT IDENTIFIER",
    _ENUMERATED: "ENUMERATED",
    _SEQUENCE: "SEQUENCE",
}
# Largest ENUMERATED we accept for the SGX type: Intel defines 0..2.
_MAX_SGX_TYPE = 0x7FFFFFFF


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _encode_oid(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (X.690 section 8.19)."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def _decode_oid(value: bytes) -> str:
    """Dotted text of OID content octets, for error messages (never raises)."""
    if not value or value[-1] & 0x80:
        return f"<malformed OID {value.hex()}>"
    arcs: list[int] = []
    arc = 0
    for byte in value:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def _encode_uint(n: int) -> bytes:
    """Minimal two's-complement content octets of a non-negative INTEGER."""
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def _oid(suffix: str) -> bytes:
    return _encode_oid(f"{SGX_EXTENSION_OID}.{suffix}")


_OID_PPID = _oid("1")
_OID_TCB = _oid("2")
_OID_TCB_ENTRIES = tuple(_oid(f"2.{i}") for i in range(1, TCB_SEQUENCE_LENGTH + 1))
_OID_PCE_ID = _oid("3")
_OID_FMSPC = _oid("4")
_OID_SGX_TYPE = _oid("5")
_OID_PLATFORM_INSTANCE_ID = _oid("6")
_OID_CONFIGURATION = _oid("7")
_OID_CONFIGURATION_ENTRIES = tuple(_oid(f"7.{i}") for i in (1, 2, 3))


class _DerReader:
    """Reads consecutive DER TLVs from a buffer; every malformation is a ParseError."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def peek_tag(self) -> int | None:
        return None if self.at_end() else self._data[self._pos]

    def read(self, tag: int, name: str) -> bytes:
        """The content octets of the next TLV, which must have ``tag``."""
        data, pos = self._data, self._pos
        if pos >= len(data):
            raise ParseError(f"{self._what}: {name} is missing")
        if data[pos] != tag:
            raise ParseError(
                f"{self._what}: {name} must be {_TAG_NAMES[tag]} (tag 0x{tag:02x}), "
                f"found tag 0x{data[pos]:02x}"
            )
        if pos + 1 >= len(data):
            raise ParseError(f"{self._what}: {name} has no length")
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4:
                raise ParseError(f"{self._what}: {name} has an indefinite or oversized length")
            if pos + count > len(data):
                raise ParseError(f"{self._what}: {name} length is truncated")
            length_bytes = data[pos : pos + count]
            pos += count
            length = int.from_bytes(length_bytes, "big")
            if length_bytes[0] == 0 or length < 0x80:
                raise ParseError(f"{self._what}: {name} length is not minimal DER")
        if length > len(data) - pos:
            raise ParseError(
                f"{self._what}: {name} claims {length} bytes, only {len(data) - pos} left"
            )
        self._pos = pos + length
        return data[pos : pos + length]

    def end(self) -> None:
        if not self.at_end():
            raise ParseError(
                f"{self._what}: unexpected data at offset {self._pos} "
                f"(tag 0x{self._data[self._pos]:02x})"
            )


def _decode_uint(value: bytes, name: str, maximum: int) -> int:
    if not value:
        raise ParseError(f"SGX extension: {name} is an empty integer")
    if len(value) > 1 and (
        (value[0] == 0x00 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)
    ):
        raise ParseError(f"SGX extension: {name} is not a minimal DER integer")
    if value[0] & 0x80:
        raise ParseError(f"SGX extension: {name} is negative")
    number = int.from_bytes(value, "big")
    if number > maximum:
        raise ParseError(f"SGX extension: {name} is {number}, more than {maximum}")
    return number


def _decode_bool(value: bytes, name: str) -> bool:
    if value == b"\xff":
        return True
    if value == b"\x00":
        return False
    raise ParseError(f"SGX extension: {name} is not a DER BOOLEAN (00 or FF)")


def _open_entry(reader: _DerReader, oid: bytes, name: str) -> _DerReader:
    """Read ``SEQUENCE { OID, value }`` and return a reader positioned at the value."""
    entry = _DerReader(reader.read(_SEQUENCE, name), f"SGX extension {name}")
    found = entry.read(_OID, f"{name} OID")
    if found != oid:
        raise ParseError(
            f"SGX extension: expected {name} ({_decode_oid(oid)}), found {_decode_oid(found)}"
        )
    return entry


def _read_entry(reader: _DerReader, oid: bytes, tag: int, name: str) -> bytes:
    entry = _open_entry(reader, oid, name)
    value = entry.read(tag, name)
    entry.end()
    return value


def _read_octets(reader: _DerReader, oid: bytes, name: str, size: int) -> bytes:
    value = _read_entry(reader, oid, _OCTET_STRING, name)
    if len(value) != size:
        raise ParseError(f"SGX extension: {name} must be {size} bytes, got {len(value)}")
    return value


def _entry(oid: bytes, tag: int, value: bytes) -> bytes:
    return _tlv(_SEQUENCE, _tlv(_OID, oid) + _tlv(tag, value))


def _check_bytes(name: str, value: object, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise UsageError(f"SgxExtension.{name} must be {size} bytes")


def _check_int(name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise UsageError(f"SgxExtension.{name} must be an integer 0..{maximum}")


@dataclass(frozen=True)
class PlatformConfiguration:
    """The ``.7`` Configuration of a Platform-CA leaf; ``None`` means absent."""

    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None

    def _values(self) -> tuple[bool | None, bool | None, bool | None]:
        return (self.dynamic_platform, self.cached_keys, self.smt_enabled)


@dataclass(frozen=True)
class SgxExtension:
    """The decoded SGX extension of a PCK leaf.

    ``tcb_components``, ``pce_svn`` and ``cpu_svn`` are the certified TCB level
    (TCBm), not the quote's raw values. ``cpu_svn`` should equal
    ``bytes(tcb_components)``; it is kept separately because a certificate may
    disagree (and verifiers then disagree, dcap-quote.md section 4).
    ``platform_instance_id`` and ``configuration`` are both set for the
    Platform-CA form (7 entries) and both ``None`` for the Processor-CA form (5).
    """

    ppid: bytes
    tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int = SgxType.STANDARD
    platform_instance_id: bytes | None = None
    configuration: PlatformConfiguration | None = None

    def __post_init__(self) -> None:
        _check_bytes("ppid", self.ppid, 16)
        if (
            not isinstance(self.tcb_components, tuple)
            or len(self.tcb_components) != TCB_COMPONENT_COUNT
        ):
            raise UsageError(f"SgxExtension.tcb_components must be {TCB_COMPONENT_COUNT} integers")
        for index, svn in enumerate(self.tcb_components):
            _check_int(f"tcb_components[{index}]", svn, 0xFF)
        _check_int("pce_svn", self.pce_svn, 0xFFFF)
        _check_bytes("cpu_svn", self.cpu_svn, 16)
        _check_bytes("pce_id", self.pce_id, 2)
        _check_bytes("fmspc", self.fmspc, 6)
        _check_int("sgx_type", self.sgx_type, _MAX_SGX_TYPE)
        if (self.platform_instance_id is None) != (self.configuration is None):
            raise UsageError(
                "SgxExtension: platform_instance_id and configuration are both set "
                "(Platform CA) or both None (Processor CA)"
            )
        if self.platform_instance_id is not None:
            _check_bytes("platform_instance_id", self.platform_instance_id, 16)

    @classmethod
    def for_tcb(
        cls,
        *,
        ppid: bytes,
        tcb_components: tuple[int, ...],
        pce_svn: int,
        pce_id: bytes,
        fmspc: bytes,
        sgx_type: int = SgxType.STANDARD,
        platform_instance_id: bytes | None = None,
        configuration: PlatformConfiguration | None = None,
    ) -> Self:
        """An extension whose CPUSVN (``.2.18``) is the component SVNs as bytes, as Intel's."""
        return cls(
            ppid=ppid,
            tcb_components=tuple(tcb_components),
            pce_svn=pce_svn,
            cpu_svn=bytes(tcb_components),
            pce_id=pce_id,
            fmspc=fmspc,
            sgx_type=sgx_type,
            platform_instance_id=platform_instance_id,
            configuration=configuration,
        )

    @property
    def is_platform_ca(self) -> bool:
        """Whether this is the Platform-CA form (7 entries)."""
        return self.platform_instance_id is not None

    @property
    def sgx_type_name(self) -> str:
        try:
            return SgxType(self.sgx_type).name
        except ValueError:
            return "unknown"

    # -- codec -------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode the extension value (the DER inside the extension's OCTET STRING)."""
        outer = _DerReader(bytes(data), "SGX extension")
        entries = _DerReader(outer.read(_SEQUENCE, "SGXExtensions"), "SGX extension")
        outer.end()

        ppid = _read_octets(entries, _OID_PPID, "PPID", 16)

        tcb = _DerReader(
            _read_entry(entries, _OID_TCB, _SEQUENCE, "TCB"), "SGX extension TCB sequence"
        )
        components: list[int] = []
        for index in range(TCB_COMPONENT_COUNT):
            name = f"TCB component {index + 1:02d} SVN"
            value = _read_entry(tcb, _OID_TCB_ENTRIES[index], _INTEGER, name)
            components.append(_decode_uint(value, name, 0xFF))
        pce_svn = _decode_uint(
            _read_entry(tcb, _OID_TCB_ENTRIES[16], _INTEGER, "PCESVN"), "PCESVN", 0xFFFF
        )
        cpu_svn = _read_octets(tcb, _OID_TCB_ENTRIES[17], "CPUSVN", 16)
        if not tcb.at_end():
            raise ParseError(
                f"SGX extension: the TCB sequence has more than {TCB_SEQUENCE_LENGTH} entries"
            )

        pce_id = _read_octets(entries, _OID_PCE_ID, "PCE-ID", 2)
        fmspc = _read_octets(entries, _OID_FMSPC, "FMSPC", 6)
        sgx_type = _decode_uint(
            _read_entry(entries, _OID_SGX_TYPE, _ENUMERATED, "SGX Type"),
            "SGX Type",
            _MAX_SGX_TYPE,
        )

        platform_instance_id: bytes | None = None
        configuration: PlatformConfiguration | None = None
        if not entries.at_end():
            platform_instance_id = _read_octets(
                entries, _OID_PLATFORM_INSTANCE_ID, "PlatformInstanceID", 16
            )
            configuration = _decode_configuration(
                _read_entry(entries, _OID_CONFIGURATION, _SEQUENCE, "Configuration")
            )
            if not entries.at_end():
                raise ParseError(
                    f"SGX extension has more than {PLATFORM_CA_EXTENSION_COUNT} entries"
                )

        return cls(
            ppid=ppid,
            tcb_components=tuple(components),
            pce_svn=pce_svn,
            cpu_svn=cpu_svn,
            pce_id=pce_id,
            fmspc=fmspc,
            sgx_type=sgx_type,
            platform_instance_id=platform_instance_id,
            configuration=configuration,
        )

    def to_bytes(self) -> bytes:
        """The DER of the extension value, exactly as Intel encodes it."""
        tcb = b"".join(
            _entry(_OID_TCB_ENTRIES[i], _INTEGER, _encode_uint(svn))
            for i, svn in enumerate(self.tcb_components)
        )
        tcb += _entry(_OID_TCB_ENTRIES[16], _INTEGER, _encode_uint(self.pce_svn))
        tcb += _entry(_OID_TCB_ENTRIES[17], _OCTET_STRING, self.cpu_svn)
        body = (
            _entry(_OID_PPID, _OCTET_STRING, self.ppid)
            + _entry(_OID_TCB, _SEQUENCE, tcb)
            + _entry(_OID_PCE_ID, _OCTET_STRING, self.pce_id)
            + _entry(_OID_FMSPC, _OCTET_STRING, self.fmspc)
            + _entry(_OID_SGX_TYPE, _ENUMERATED, _encode_uint(self.sgx_type))
        )
        if self.platform_instance_id is not None and self.configuration is not None:
            config = b"".join(
                _entry(oid, _BOOLEAN, b"\xff" if flag else b"\x00")
                for oid, flag in zip(
                    _OID_CONFIGURATION_ENTRIES, self.configuration._values(), strict=True
                )
                if flag is not None
            )
            body += _entry(_OID_PLATFORM_INSTANCE_ID, _OCTET_STRING, self.platform_instance_id)
            body += _entry(_OID_CONFIGURATION, _SEQUENCE, config)
        return _tlv(_SEQUENCE, body)

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> Self:
        """The SGX extension of a PCK leaf; ParseError if absent or malformed."""
        oid = x509.ObjectIdentifier(SGX_EXTENSION_OID)
        try:
            extension = certificate.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            raise ParseError(
                f"the certificate has no SGX extension (OID {SGX_EXTENSION_OID}); "
                "is it a PCK certificate?"
            ) from None
        except ValueError as exc:
            raise ParseError(f"the certificate's extensions do not decode: {exc}") from None
        value = extension.value
        if not isinstance(value, x509.UnrecognizedExtension):
            raise ParseError("the SGX extension was not left as raw bytes by the X.509 parser")
        return cls.from_bytes(value.value)

    def to_x509_extension(self) -> x509.UnrecognizedExtension:
        """The extension for ``CertificateBuilder.add_extension(..., critical=False)``."""
        return x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), self.to_bytes())


def _decode_configuration(value: bytes) -> PlatformConfiguration:
    """The ``.7`` sequence: optional ``.7.1``, ``.7.2``, ``.7.3`` BOOLEANs, in that order."""
    reader = _DerReader(value, "SGX extension Configuration")
    names = ("dynamicPlatform", "cachedKeys", "SMTEnabled")
    flags: list[bool | None] = [None, None, None]
    next_index = 0
    while not reader.at_end():
        entry = _DerReader(reader.read(_SEQUENCE, "Configuration entry"), "SGX extension")
        oid = entry.read(_OID, "Configuration entry OID")
        try:
            index = _OID_CONFIGURATION_ENTRIES.index(oid, next_index)
        except ValueError:
            raise ParseError(
                f"SGX extension: unexpected Configuration entry {_decode_oid(oid)} "
                "(expected .7.1, .7.2, .7.3 at most once each, in order)"
            ) from None
        flags[index] = _decode_bool(entry.read(_BOOLEAN, names[index]), names[index])
        entry.end()
        next_index = index + 1
    return PlatformConfiguration(flags[0], flags[1], flags[2])


__all__ = [
    "PLATFORM_CA_EXTENSION_COUNT",
    "PROCESSOR_CA_EXTENSION_COUNT",
    "SGX_EXTENSION_OID",
    "TCB_COMPONENT_COUNT",
    "TCB_SEQUENCE_LENGTH",
    "PlatformConfiguration",
    "SgxExtension",
    "SgxType",
]
