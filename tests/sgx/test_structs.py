"""Layout tables against the sizes and offsets of the public headers.

Expected rows are copied from the project spec: ``aesm-wire.md`` section 10
(``sgx_report.h``, ``sgx_quote.h``, ``sgx_quote_3.h``, ``sgx_ql_quote.h``),
``dcap-quote.md`` sections 1.2 and 1.3 (report body, ECDSA signature data) and
section 3 (``sgx_report2_body_t``). Each table lists every field, so a field
added, removed or moved in the code fails here.
"""

from __future__ import annotations

import dataclasses

import pytest

from sgx_quote_helper.sgx._layout import Struct
from sgx_quote_helper.sgx._quote import (
    QUOTE_MIN_SIZE_V3,
    SIGNATURE_DATA_LEN_OFFSET_V3,
    SIGNATURE_DATA_LEN_OFFSET_V4_TDX,
    SIGNATURE_DATA_OFFSET_V3,
    SIGNED_REGION_SIZE_V3,
    EcdsaSigData,
    Report2Body,
)
from sgx_quote_helper.sgx._structs import (
    DEFAULT_ECDSA_ATT_KEY_ID,
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

# (structure, total size, [(field, offset, size), ...]) — every field, in order.
LAYOUTS: list[tuple[type[Struct], int, list[tuple[str, int, int]]]] = [
    # sgx_attributes_t: flags u64, xfrm u64 (aesm-wire.md 10, "attributes (flags u64, xfrm u64)").
    (Attributes, 16, [("flags", 0, 8), ("xfrm", 8, 8)]),
    # aesm-wire.md 10: sgx_ql_att_key_id_t.
    (
        AttKeyId,
        158,
        [
            ("id", 0, 2),
            ("version", 2, 2),
            ("mrsigner_length", 4, 2),
            ("mrsigner", 6, 48),
            ("prod_id", 54, 4),
            ("extended_prod_id", 58, 16),
            ("config_id", 74, 64),
            ("family_id", 138, 16),
            ("algorithm_id", 154, 4),
        ],
    ),
    # aesm-wire.md 10: sgx_att_key_id_ext_t.
    (
        AttKeyIdExt,
        256,
        [("base", 0, 158), ("spid", 158, 16), ("att_key_type", 174, 2), ("reserved", 176, 80)],
    ),
    # aesm-wire.md 10: sgx_ql_att_key_id_list_header_t.
    (AttKeyIdListHeader, 8, [("id", 0, 2), ("version", 2, 2), ("num_att_ids", 4, 4)]),
    # aesm-wire.md 10: sgx_target_info_t.
    (
        TargetInfo,
        512,
        [
            ("mr_enclave", 0, 32),
            ("attributes", 32, 16),
            ("reserved1", 48, 2),
            ("config_svn", 50, 2),
            ("misc_select", 52, 4),
            ("reserved2", 56, 8),
            ("config_id", 64, 64),
            ("reserved3", 128, 384),
        ],
    ),
    # aesm-wire.md 10 and dcap-quote.md 1.2 (newer split): sgx_report_body_t.
    (
        ReportBody,
        384,
        [
            ("cpu_svn", 0, 16),
            ("misc_select", 16, 4),
            ("reserved1", 20, 12),
            ("isv_ext_prod_id", 32, 16),
            ("attributes", 48, 16),
            ("mr_enclave", 64, 32),
            ("reserved2", 96, 32),
            ("mr_signer", 128, 32),
            ("reserved3", 160, 32),
            ("config_id", 192, 64),
            ("isv_prod_id", 256, 2),
            ("isv_svn", 258, 2),
            ("config_svn", 260, 2),
            ("reserved4", 262, 42),
            ("isv_family_id", 304, 16),
            ("report_data", 320, 64),
        ],
    ),
    # aesm-wire.md 10: sgx_report_t.
    (Report, 432, [("body", 0, 384), ("key_id", 384, 32), ("mac", 416, 16)]),
    # aesm-wire.md 10: sgx_ql_qe_report_info_t.
    (
        QeReportInfo,
        960,
        [("nonce", 0, 16), ("app_enclave_target_info", 16, 512), ("qe_report", 528, 432)],
    ),
    # aesm-wire.md 10 and dcap-quote.md 1.1: sgx_quote_header_t (offset 4 read as tee_type).
    (
        QuoteHeader,
        48,
        [
            ("version", 0, 2),
            ("att_key_type", 2, 2),
            ("tee_type", 4, 4),
            ("qe_svn", 8, 2),
            ("pce_svn", 10, 2),
            ("qe_vendor_id", 12, 16),
            ("user_data", 28, 20),
        ],
    ),
    # dcap-quote.md 1.3: sgx_ql_ecdsa_sig_data_t (sig-data offsets).
    (
        EcdsaSigData,
        576,
        [
            ("sig", 0, 64),
            ("attest_pub_key", 64, 64),
            ("qe_report", 128, 384),
            ("qe_report_sig", 512, 64),
        ],
    ),
    # dcap-quote.md 3: sgx_report2_body_t.
    (
        Report2Body,
        584,
        [
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
        ],
    ),
]


@pytest.mark.parametrize(
    ("struct", "size", "fields"), LAYOUTS, ids=[row[0].__name__ for row in LAYOUTS]
)
def test_layout_matches_spec(
    struct: type[Struct], size: int, fields: list[tuple[str, int, int]]
) -> None:
    layout = struct.LAYOUT
    assert layout.size == size
    assert [(f.name, f.offset, f.size) for f in layout.fields] == fields
    # The dataclass carries exactly the table's fields, in the same order.
    names = [f.name for f in dataclasses.fields(struct)]  # type: ignore[arg-type]
    assert names == [name for name, _, _ in fields]


@pytest.mark.parametrize("struct", [row[0] for row in LAYOUTS], ids=lambda s: s.__name__)
def test_zeroed_value_encodes_to_zero_bytes(struct: type[Struct]) -> None:
    assert struct.zeroed().to_bytes() == bytes(struct.LAYOUT.size)


def _all_structs(base: type[Struct]) -> list[type[Struct]]:
    found: list[type[Struct]] = []
    for sub in base.__subclasses__():
        found += [sub, *_all_structs(sub)]
    return found


def test_every_structure_is_listed_and_decodes_by_position() -> None:
    # Struct.from_bytes passes the decoded values to the dataclass by position,
    # so every structure's fields must follow its table; each one is in LAYOUTS.
    structs = _all_structs(Struct)
    assert set(structs) == {row[0] for row in LAYOUTS}
    for struct in structs:
        names = [f.name for f in dataclasses.fields(struct)]  # type: ignore[arg-type]
        assert names == [f.name for f in struct.LAYOUT.fields], struct.__name__


@pytest.mark.parametrize("struct", [row[0] for row in LAYOUTS], ids=lambda s: s.__name__)
def test_decoding_keeps_every_field(struct: type[Struct]) -> None:
    # A distinct byte at every offset: a field decoded from the wrong place,
    # or a nested structure not decoded, does not round-trip.
    data = bytes(i % 251 for i in range(struct.LAYOUT.size))
    value = struct.from_bytes(data)
    assert value.to_bytes() == data
    for f in struct.LAYOUT.fields:
        chunk = data[f.offset : f.offset + f.size]
        got = getattr(value, f.name)
        if f.kind is int:
            assert got == int.from_bytes(chunk, "little")
        elif f.kind is bytes:
            assert got == chunk
        else:
            assert got == f.kind.from_bytes(chunk)


def test_quote_offsets_match_spec() -> None:
    # dcap-quote.md 1.3: signature_data_len at 432, signature data from 436,
    # QVL QUOTE_MIN_BYTE_LEN = 1020; section 3: v4 TDX signature_data_len at 632.
    assert SIGNED_REGION_SIZE_V3 == 432
    assert SIGNATURE_DATA_LEN_OFFSET_V3 == 432
    assert SIGNATURE_DATA_OFFSET_V3 == 436
    assert QUOTE_MIN_SIZE_V3 == 1020
    assert SIGNATURE_DATA_LEN_OFFSET_V4_TDX == 632


def test_default_ecdsa_att_key_id_bytes_match_spec() -> None:
    # aesm-wire.md 11.2: the 256 bytes sent as att_key_id; rows not shown are zero.
    expected = bytearray(256)
    expected[0x00:0x10] = bytes.fromhex("00000000 2000 8c4f5775d796503e9613")
    expected[0x10:0x20] = bytes.fromhex("7f77c68a829a0056ac8ded70140b081b")
    expected[0x20:0x30] = bytes.fromhex("094490c57bff00000000000000000000")
    expected[0x36] = 0x01  # prod_id = 1
    expected[0x9A] = 0x02  # algorithm_id = 2
    assert DEFAULT_ECDSA_ATT_KEY_ID.to_bytes() == bytes(expected)


def test_attribute_flags_are_named() -> None:
    # dcap-quote.md 1.2: flag bits; the real quote's ISV flags are 0x05 and QE flags 0x15.
    assert Attributes(flags=0x05).flag_names() == ["INIT", "MODE64BIT"]
    assert Attributes(flags=0x15).flag_names() == ["INIT", "MODE64BIT", "PROVISION_KEY"]
    assert Attributes(flags=0x07).debug
    assert not Attributes(flags=0x05).debug
    assert Attributes(flags=0x101).flag_names() == ["INIT", "0x100"]
