"""Signed TCB Info v3 and QE Identity v2 (dcap-quote.md sections 8 and 9).

Verifiers re-serialize the inner object and check the signature over that text,
so the manufacturer signs :func:`~sgx_quote_helper.pccs.signed_text` of an
object whose keys are in Intel's order (the rule the PCCS client applies too),
and the response carries that exact text. Intel's values, and ours, are ASCII.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._time import format_time
from sgx_quote_helper.pccs import SignedCollateral, signed_bytes, signed_text
from sgx_quote_helper.pcs._policy import FmspcPolicy, PlatformTcbLevel, QeTcbLevel
from sgx_quote_helper.sgx import QE3_MRSIGNER, QE3_PROD_ID, ecdsa_sign_raw

# What the published QE Identity says about QE3 (dcap-quote.md 8.2). The
# attributes value is already masked: QE3 runs with flags 0x15 and 0x15 & 0xFB
# is 0x11, because QVL compares the masked report with the unmasked value.
QE_IDENTITY_MISCSELECT = "00000000"
QE_IDENTITY_MISCSELECT_MASK = "FFFFFFFF"
QE_IDENTITY_ATTRIBUTES = "11000000000000000000000000000000"
QE_IDENTITY_ATTRIBUTES_MASK = "FBFFFFFFFFFFFFFF0000000000000000"

TCB_INFO_VERSION = 3
QE_IDENTITY_VERSION = 2


def sign_collateral(
    kind: str,
    inner: dict[str, Any],
    signing_key: ec.EllipticCurvePrivateKey,
    issuer_chain_pem: str,
) -> SignedCollateral:
    """Sign the compact text of ``inner`` (ECDSA-P256-SHA256, raw ``r‖s``)."""
    text = signed_text(inner)
    signature = ecdsa_sign_raw(signing_key, signed_bytes(text))
    return SignedCollateral(kind, text, signature, issuer_chain_pem)


def _with_advisories(entry: dict[str, Any], advisory_ids: tuple[str, ...]) -> dict[str, Any]:
    # Intel omits advisoryIDs on levels without advisories.
    if advisory_ids:
        entry["advisoryIDs"] = list(advisory_ids)
    return entry


def _platform_level(level: PlatformTcbLevel) -> dict[str, Any]:
    return _with_advisories(
        {
            "tcb": {
                "sgxtcbcomponents": [{"svn": svn} for svn in level.components],
                "pcesvn": level.pce_svn,
            },
            "tcbDate": format_time(level.tcb_date),
            "tcbStatus": level.status,
        },
        level.advisory_ids,
    )


def tcb_info_inner(
    *,
    fmspc: bytes,
    policy: FmspcPolicy,
    tcb_evaluation_data_number: int,
    issue_date: datetime,
    next_update: datetime,
) -> dict[str, Any]:
    """The ``tcbInfo`` object, keys in Intel's order (dcap-quote.md 8.1)."""
    return {
        "id": "SGX",
        "version": TCB_INFO_VERSION,
        "issueDate": format_time(issue_date),
        "nextUpdate": format_time(next_update),
        "fmspc": fmspc.hex().upper(),
        "pceId": policy.pce_id.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": tcb_evaluation_data_number,
        "tcbLevels": [_platform_level(level) for level in policy.levels],
    }


def _qe_level(level: QeTcbLevel) -> dict[str, Any]:
    return _with_advisories(
        {
            "tcb": {"isvsvn": level.isv_svn},
            "tcbDate": format_time(level.tcb_date),
            "tcbStatus": level.status,
        },
        level.advisory_ids,
    )


def qe_identity_inner(
    *,
    levels: tuple[QeTcbLevel, ...],
    tcb_evaluation_data_number: int,
    issue_date: datetime,
    next_update: datetime,
) -> dict[str, Any]:
    """The ``enclaveIdentity`` object of QE3, keys in Intel's order (dcap-quote.md 8.2)."""
    return {
        "id": "QE",
        "version": QE_IDENTITY_VERSION,
        "issueDate": format_time(issue_date),
        "nextUpdate": format_time(next_update),
        "tcbEvaluationDataNumber": tcb_evaluation_data_number,
        "miscselect": QE_IDENTITY_MISCSELECT,
        "miscselectMask": QE_IDENTITY_MISCSELECT_MASK,
        "attributes": QE_IDENTITY_ATTRIBUTES,
        "attributesMask": QE_IDENTITY_ATTRIBUTES_MASK,
        "mrsigner": QE3_MRSIGNER.hex().upper(),
        "isvprodid": QE3_PROD_ID,
        "tcbLevels": [_qe_level(level) for level in levels],
    }
