"""Fixed-size SGX and DCAP structures, one layout table each.

Layouts follow the packed C headers: linux-sgx ``common/inc/sgx_report.h`` and
``sgx_quote.h``, DCAP ``QuoteGeneration/quote_wrapper/common/inc/sgx_quote_3.h``
and ``sgx_ql_quote.h`` (project spec ``aesm-wire.md`` section 10 and
``dcap-quote.md`` section 1).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sgx_quote_helper.sgx._layout import Layout, Struct


class AttributeFlags(enum.IntFlag):
    """Bits of ``sgx_attributes_t.flags`` (SECS.ATTRIBUTES)."""

    INIT = 0x01
    DEBUG = 0x02
    MODE64BIT = 0x04
    PROVISION_KEY = 0x10
    EINITTOKEN_KEY = 0x20
    KSS = 0x80


#: XFRM of an enclave that enables x87, SSE and AVX (the common legacy value).
XFRM_LEGACY = 0x03


@dataclass(frozen=True)
class Attributes(Struct):
    """``sgx_attributes_t``: 16 bytes, flags then XFRM."""

    LAYOUT = Layout(16, ("flags", 0, 8, int), ("xfrm", 8, 8, int))

    flags: int = 0
    xfrm: int = 0

    @property
    def debug(self) -> bool:
        return bool(self.flags & AttributeFlags.DEBUG)

    def flag_names(self) -> list[str]:
        """Names of the set flag bits, plus ``0x..`` for unnamed ones."""
        names = [f.name or "" for f in AttributeFlags if self.flags & f]
        unknown = self.flags & ~sum(AttributeFlags)
        if unknown:
            names.append(f"0x{unknown:x}")
        return names


def _zeros(n: int) -> bytes:
    return bytes(n)


@dataclass(frozen=True)
class TargetInfo(Struct):
    """``sgx_target_info_t`` (512 bytes): whom an EREPORT is for."""

    LAYOUT = Layout(
        512,
        ("mr_enclave", 0, 32),
        ("attributes", 32, 16, Attributes),
        ("reserved1", 48, 2),
        ("config_svn", 50, 2, int),
        ("misc_select", 52, 4, int),
        ("reserved2", 56, 8),
        ("config_id", 64, 64),
        ("reserved3", 128, 384),
    )

    mr_enclave: bytes = field(default_factory=lambda: _zeros(32))
    attributes: Attributes = field(default_factory=Attributes)
    reserved1: bytes = field(default_factory=lambda: _zeros(2))
    config_svn: int = 0
    misc_select: int = 0
    reserved2: bytes = field(default_factory=lambda: _zeros(8))
    config_id: bytes = field(default_factory=lambda: _zeros(64))
    reserved3: bytes = field(default_factory=lambda: _zeros(384))


@dataclass(frozen=True)
class ReportBody(Struct):
    """``sgx_report_body_t`` (384 bytes), with the newer KSS field split."""

    LAYOUT = Layout(
        384,
        ("cpu_svn", 0, 16),
        ("misc_select", 16, 4, int),
        ("reserved1", 20, 12),
        ("isv_ext_prod_id", 32, 16),
        ("attributes", 48, 16, Attributes),
        ("mr_enclave", 64, 32),
        ("reserved2", 96, 32),
        ("mr_signer", 128, 32),
        ("reserved3", 160, 32),
        ("config_id", 192, 64),
        ("isv_prod_id", 256, 2, int),
        ("isv_svn", 258, 2, int),
        ("config_svn", 260, 2, int),
        ("reserved4", 262, 42),
        ("isv_family_id", 304, 16),
        ("report_data", 320, 64),
    )

    cpu_svn: bytes = field(default_factory=lambda: _zeros(16))
    misc_select: int = 0
    reserved1: bytes = field(default_factory=lambda: _zeros(12))
    isv_ext_prod_id: bytes = field(default_factory=lambda: _zeros(16))
    attributes: Attributes = field(default_factory=Attributes)
    mr_enclave: bytes = field(default_factory=lambda: _zeros(32))
    reserved2: bytes = field(default_factory=lambda: _zeros(32))
    mr_signer: bytes = field(default_factory=lambda: _zeros(32))
    reserved3: bytes = field(default_factory=lambda: _zeros(32))
    config_id: bytes = field(default_factory=lambda: _zeros(64))
    isv_prod_id: int = 0
    isv_svn: int = 0
    config_svn: int = 0
    reserved4: bytes = field(default_factory=lambda: _zeros(42))
    isv_family_id: bytes = field(default_factory=lambda: _zeros(16))
    report_data: bytes = field(default_factory=lambda: _zeros(64))


@dataclass(frozen=True)
class Report(Struct):
    """``sgx_report_t`` (432 bytes): the body, the key id and the CMAC."""

    LAYOUT = Layout(432, ("body", 0, 384, ReportBody), ("key_id", 384, 32), ("mac", 416, 16))

    body: ReportBody
    key_id: bytes = field(default_factory=lambda: _zeros(32))
    mac: bytes = field(default_factory=lambda: _zeros(16))


@dataclass(frozen=True)
class QeReportInfo(Struct):
    """``sgx_ql_qe_report_info_t`` (960 bytes): nonce, app target, QE report."""

    LAYOUT = Layout(
        960,
        ("nonce", 0, 16),
        ("app_enclave_target_info", 16, 512, TargetInfo),
        ("qe_report", 528, 432, Report),
    )

    nonce: bytes
    app_enclave_target_info: TargetInfo
    qe_report: Report = field(default_factory=lambda: Report(body=ReportBody()))


class AttKeyAlgorithm(enum.IntEnum):
    """``sgx_quote_sign_type``/algorithm ids of ``sgx_quote_3.h``."""

    EPID = 0
    RESERVED_1 = 1
    ECDSA_P256 = 2
    ECDSA_P384 = 3


@dataclass(frozen=True)
class AttKeyId(Struct):
    """``sgx_ql_att_key_id_t`` (158 bytes): the part of a key id AESM compares."""

    LAYOUT = Layout(
        158,
        ("id", 0, 2, int),
        ("version", 2, 2, int),
        ("mrsigner_length", 4, 2, int),
        ("mrsigner", 6, 48),
        ("prod_id", 54, 4, int),
        ("extended_prod_id", 58, 16),
        ("config_id", 74, 64),
        ("family_id", 138, 16),
        ("algorithm_id", 154, 4, int),
    )

    id: int = 0
    version: int = 0
    mrsigner_length: int = 32
    mrsigner: bytes = field(default_factory=lambda: _zeros(48))
    prod_id: int = 0
    extended_prod_id: bytes = field(default_factory=lambda: _zeros(16))
    config_id: bytes = field(default_factory=lambda: _zeros(64))
    family_id: bytes = field(default_factory=lambda: _zeros(16))
    algorithm_id: int = 0


@dataclass(frozen=True)
class AttKeyIdExt(Struct):
    """``sgx_att_key_id_ext_t`` (256 bytes): the ``att_key_id`` on the wire."""

    LAYOUT = Layout(
        256,
        ("base", 0, 158, AttKeyId),
        ("spid", 158, 16),
        ("att_key_type", 174, 2, int),
        ("reserved", 176, 80),
    )

    base: AttKeyId
    spid: bytes = field(default_factory=lambda: _zeros(16))
    att_key_type: int = 0
    reserved: bytes = field(default_factory=lambda: _zeros(80))


@dataclass(frozen=True)
class AttKeyIdListHeader(Struct):
    """``sgx_ql_att_key_id_list_header_t`` (8 bytes), followed by the ids."""

    LAYOUT = Layout(8, ("id", 0, 2, int), ("version", 2, 2, int), ("num_att_ids", 4, 4, int))

    id: int = 0
    version: int = 0
    num_att_ids: int = 0


@dataclass(frozen=True)
class QuoteHeader(Struct):
    """``sgx_quote_header_t`` (48 bytes).

    For v3 offset 4 is ``att_key_data_0``; v4 reads it as ``tee_type``
    (0 SGX, 0x81 TDX), so the field is named for what verifiers read.
    """

    LAYOUT = Layout(
        48,
        ("version", 0, 2, int),
        ("att_key_type", 2, 2, int),
        ("tee_type", 4, 4, int),
        ("qe_svn", 8, 2, int),
        ("pce_svn", 10, 2, int),
        ("qe_vendor_id", 12, 16),
        ("user_data", 28, 20),
    )

    version: int = 3
    att_key_type: int = AttKeyAlgorithm.ECDSA_P256
    tee_type: int = 0
    qe_svn: int = 0
    pce_svn: int = 0
    qe_vendor_id: bytes = field(default_factory=lambda: _zeros(16))
    user_data: bytes = field(default_factory=lambda: _zeros(20))


#: MRSIGNER of Intel's production QE3 (DCAP ``sgx_ql_core_wrapper.cpp``).
QE3_MRSIGNER = bytes.fromhex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff")
#: ISVPRODID of QE3 ("QE3's Legacy Prod ID").
QE3_PROD_ID = 1
#: QE vendor id in the quote header (DCAP ``quoting_enclave_3.cpp``).
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

#: Intel's default ECDSA P-256 attestation key id (``g_default_ecdsa_p256_att_key_id``).
DEFAULT_ECDSA_ATT_KEY_ID = AttKeyIdExt(
    base=AttKeyId(
        mrsigner_length=32,
        mrsigner=QE3_MRSIGNER + bytes(16),
        prod_id=QE3_PROD_ID,
        algorithm_id=AttKeyAlgorithm.ECDSA_P256,
    )
)

#: REPORTDATA, the last field of the report body: what an enclave binds into its REPORT.
REPORT_DATA_SIZE = next(f.size for f in ReportBody.LAYOUT.fields if f.name == "report_data")

#: Bytes of ``sgx_ql_att_key_id_t`` that AESM compares when matching a key id.
ATT_KEY_ID_MATCH_LEN = AttKeyId.LAYOUT.size
