"""The proto2 schema against spec/aesm-wire.md section 4, and the freshness of generated code."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

import sgx_quote_helper.aesm as aesm
from sgx_quote_helper.aesm import _messages_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "sgx_quote_helper" / "aesm"
GENERATOR = ROOT / "tools" / "gen_aesm_proto.py"

REQ, OPT = "required", "optional"
BYTES, U32, U64, BOOL = (
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_BOOL,
)


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("_messages_pb2.py", "_messages_pb2.pyi"):
        fresh = (tmp_path / name).read_bytes()
        checked_in = (PACKAGE_DIR / name).read_bytes()
        assert fresh == checked_in, f"{name} is stale: run python tools/gen_aesm_proto.py"


def test_schema_identity() -> None:
    assert pb.DESCRIPTOR.package == "aesm.message"
    text = (PACKAGE_DIR / "messages.proto").read_text(encoding="utf-8")
    assert 'syntax = "proto2";' in text
    assert "package aesm.message;" in text
    assert pb.Request.DESCRIPTOR.full_name == "aesm.message.Request"
    assert pb.Response.DESCRIPTOR.full_name == "aesm.message.Response"


# Section 4.1 and 4.2: wrapper field numbers.
REQUEST_WRAPPER = {
    1: "initQuoteReq", 2: "getQuoteReq", 3: "getLicTokenReq", 4: "reportErrReq",
    10: "getWhiteListSizeReq", 11: "getWhiteListReq", 12: "sgxGetExtendedEpidGroupIdReq",
    13: "sgxSwitchExtendedEpidGroupReq", 14: "sgxRegisterReq", 15: "initQuoteExReq",
    16: "getQuoteSizeExReq", 17: "getQuoteExReq", 18: "checkUpdateStatusReq",
    19: "selectAttKeyIDReq", 21: "getSupportedAttKeyIDNumReq", 22: "getSupportedAttKeyIDsReq",
}  # fmt: skip
RESPONSE_WRAPPER = {
    1: "initQuoteRes", 2: "getQuoteRes", 3: "getLicTokenRes", 4: "reportErrRes",
    10: "getWhiteListSizeRes", 11: "getWhiteListRes", 12: "sgxGetExtendedEpidGroupIdRes",
    13: "sgxSwitchExtendedEpidGroupRes", 14: "sgxRegisterRes", 15: "initQuoteExRes",
    16: "getQuoteSizeExRes", 17: "getQuoteExRes", 18: "checkUpdateStatusRes",
    19: "selectAttKeyIDRes", 20: "unsupportedRequestResponse",
    21: "getSupportedAttKeyIDNumRes", 22: "getSupportedAttKeyIDsRes",
}  # fmt: skip


@pytest.mark.parametrize(
    ("descriptor", "expected"),
    [(pb.Request.DESCRIPTOR, REQUEST_WRAPPER), (pb.Response.DESCRIPTOR, RESPONSE_WRAPPER)],
    ids=["Request", "Response"],
)
def test_wrapper_fields(descriptor: Descriptor, expected: dict[int, str]) -> None:
    actual = {f.number: f.name for f in descriptor.fields}
    assert actual == expected
    for field in descriptor.fields:
        assert not field.is_required
        assert field.type == FieldDescriptor.TYPE_MESSAGE


# Sections 4.3, 4.4 and 4.5: (number, label, type) of every inner field.
INNER_FIELDS: dict[tuple[str, str], dict[str, tuple[int, str, int]]] = {
    # ---- quote-ex requests (4.3) ----
    ("Request", "InitQuoteExRequest"): {
        "att_key_id": (1, OPT, BYTES), "b_pub_key_id": (3, REQ, BOOL),
        "buf_size": (4, OPT, U64), "timeout": (9, OPT, U32),
    },
    ("Request", "GetQuoteSizeExRequest"): {"att_key_id": (1, OPT, BYTES), "timeout": (9, OPT, U32)},
    ("Request", "GetQuoteExRequest"): {
        "report": (1, REQ, BYTES), "att_key_id": (2, OPT, BYTES),
        "qe_report_info": (3, OPT, BYTES), "buf_size": (4, REQ, U32), "timeout": (9, OPT, U32),
    },
    ("Request", "SelectAttKeyIDRequest"): {
        "att_key_id_list": (1, OPT, BYTES), "timeout": (2, OPT, U32),
    },
    ("Request", "GetSupportedAttKeyIDNumRequest"): {"timeout": (9, OPT, U32)},
    ("Request", "GetSupportedAttKeyIDsRequest"): {
        "buf_size": (1, REQ, U32), "timeout": (9, OPT, U32),
    },
    # ---- quote-ex responses (4.4) ----
    ("Response", "InitQuoteExResponse"): {
        "errorCode": (1, REQ, U32), "target_info": (2, OPT, BYTES),
        "pub_key_id_size": (3, OPT, U64), "pub_key_id": (4, OPT, BYTES),
    },
    ("Response", "GetQuoteSizeExResponse"): {
        "errorCode": (1, REQ, U32), "quote_size": (2, OPT, U32),
    },
    ("Response", "GetQuoteExResponse"): {
        "errorCode": (1, REQ, U32), "quote": (2, OPT, BYTES), "qe_report_info": (3, OPT, BYTES),
    },
    ("Response", "SelectAttKeyIDResponse"): {
        "errorCode": (1, REQ, U32), "selected_att_key_id": (2, OPT, BYTES),
    },
    ("Response", "GetSupportedAttKeyIDNumResponse"): {
        "errorCode": (1, REQ, U32), "att_key_id_num": (2, OPT, U32),
    },
    ("Response", "GetSupportedAttKeyIDsResponse"): {
        "errorCode": (1, REQ, U32), "att_key_ids": (2, OPT, BYTES),
    },
    ("Response", "UnsupportedRequestResponse"): {"errorCode": (1, REQ, U32)},
    # ---- legacy (4.5) ----
    ("Request", "InitQuoteRequest"): {"timeout": (9, OPT, U32)},
    ("Request", "GetQuoteRequest"): {
        "report": (1, REQ, BYTES), "quote_type": (2, REQ, U32), "spid": (3, REQ, BYTES),
        "nonce": (4, OPT, BYTES), "sig_rl": (5, OPT, BYTES), "buf_size": (6, REQ, U32),
        "qe_report": (7, OPT, BOOL), "timeout": (9, OPT, U32),
    },
    ("Request", "GetLaunchTokenRequest"): {
        "mr_enclave": (1, REQ, BYTES), "mr_signer": (2, REQ, BYTES),
        "se_attributes": (3, REQ, BYTES), "timeout": (9, OPT, U32),
    },
    ("Request", "ReportAttestationErrorRequest"): {
        "platform_info": (1, REQ, BYTES), "attestation_error_code": (2, REQ, U32),
        "update_info_size": (3, REQ, U32), "timeout": (9, OPT, U32),
    },
    ("Request", "CheckUpdateStatusRequest"): {
        "platform_info": (1, OPT, BYTES), "update_info_size": (2, REQ, U32),
        "config": (3, REQ, U32), "timeout": (9, OPT, U32),
    },
    ("Request", "GetWhiteListSizeRequest"): {"timeout": (9, OPT, U32)},
    ("Request", "GetWhiteListRequest"): {
        "white_list_size": (1, OPT, U32), "timeout": (9, OPT, U32),
    },
    ("Request", "SGXGetExtendedEpidGroupIdRequest"): {"timeout": (9, OPT, U32)},
    ("Request", "SGXSwitchExtendedEpidGroupRequest"): {
        "x_group_id": (1, OPT, U32), "timeout": (9, OPT, U32),
    },
    ("Request", "SGXRegisterRequest"): {
        "buf": (1, REQ, BYTES), "data_type": (2, REQ, U32), "timeout": (9, OPT, U32),
    },
    ("Response", "InitQuoteResponse"): {
        "errorCode": (1, REQ, U32), "targetInfo": (2, OPT, BYTES), "gid": (3, OPT, BYTES),
    },
    ("Response", "GetQuoteResponse"): {
        "errorCode": (1, REQ, U32), "quote": (2, OPT, BYTES), "qe_report": (3, OPT, BYTES),
    },
    ("Response", "GetLaunchTokenResponse"): {"errorCode": (1, REQ, U32), "token": (2, OPT, BYTES)},
    ("Response", "ReportAttestationErrorResponse"): {
        "errorCode": (1, REQ, U32), "platform_update_info": (2, OPT, BYTES),
    },
    ("Response", "CheckUpdateStatusResponse"): {
        "errorCode": (1, REQ, U32), "platform_update_info": (2, OPT, BYTES),
        "status": (3, OPT, U32),
    },
    ("Response", "GetWhiteListSizeResponse"): {
        "errorCode": (1, REQ, U32), "white_list_size": (2, OPT, U32),
    },
    ("Response", "GetWhiteListResponse"): {
        "errorCode": (1, REQ, U32), "white_list": (2, OPT, BYTES),
    },
    ("Response", "SGXGetExtendedEpidGroupIdResponse"): {
        "errorCode": (1, REQ, U32), "x_group_id": (2, OPT, U32),
    },
    ("Response", "SGXSwitchExtendedEpidGroupResponse"): {"errorCode": (1, REQ, U32)},
    ("Response", "SGXRegisterResponse"): {"errorCode": (1, REQ, U32)},
}  # fmt: skip


@pytest.mark.parametrize(("wrapper", "message"), list(INNER_FIELDS), ids="{0[0]}.{0[1]}".format)
def test_inner_fields(wrapper: str, message: str) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[wrapper].nested_types_by_name[message]
    actual = {f.name: (f.number, REQ if f.is_required else OPT, f.type) for f in descriptor.fields}
    assert actual == INNER_FIELDS[wrapper, message]
    if wrapper == "Response":
        error_code = descriptor.fields_by_name["errorCode"]
        assert error_code.has_default_value
        assert error_code.default_value == 1  # AESM_UNEXPECTED_ERROR when absent


def test_every_wrapper_field_type_is_covered() -> None:
    for wrapper in ("Request", "Response"):
        nested = pb.DESCRIPTOR.message_types_by_name[wrapper].nested_types_by_name
        assert {(wrapper, name) for name in nested} <= set(INNER_FIELDS)


def test_no_generated_type_in_a_public_signature() -> None:
    """Section 8 of STYLE.md: generated protobuf code never appears in a public signature."""
    for name in aesm.__all__:
        obj = getattr(aesm, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        targets = [obj]
        if inspect.isclass(obj):
            targets += [m for m in vars(obj).values() if inspect.isfunction(m)]
        for target in targets:
            hints = typing.get_type_hints(target)
            for hint in hints.values():
                assert "_pb2" not in repr(hint), f"{name} exposes {hint!r}"
        assert getattr(obj, "__module__", "").startswith("sgx_quote_helper.aesm._")
        assert "_pb2" not in getattr(obj, "__module__", "")
