"""Signed TCB Info v3 and QE Identity v2 (dcap-quote.md sections 8 and 9).

Verifiers re-serialize the inner object and check the signature over that text,
so the signed bytes are exactly ``json.dumps(inner, separators=(",", ":"))`` of
an object whose keys are in Intel's order, and the response carries that exact
text. All values are ASCII, so any order-preserving re-serialization gives the
same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._time import format_time
from sgx_quote_helper.pcs._policy import FmspcPolicy, PlatformTcbLevel, QeTcbLevel
from sgx_quote_helper.sgx import QE3_MRSIGNER, QE3_PROD_ID
from sgx_quote_helper.sgx._ecdsa import ecdsa_sign_raw, ecdsa_verify_raw

# What the published QE Identity says about QE3 (dcap-quote.md 8.2). The
# attributes value is already masked: QE3 runs with flags 0x15 and 0x15 & 0xFB
# is 0x11, because QVL compares the masked report with the unmasked value.
QE_IDENTITY_MISCSELECT = "00000000"
QE_IDENTITY_MISCSELECT_MASK = "FFFFFFFF"
QE_IDENTITY_ATTRIBUTES = "11000000000000000000000000000000"
QE_IDENTITY_ATTRIBUTES_MASK = "FBFFFFFFFFFFFFFF0000000000000000"

TCB_INFO_VERSION = 3
QE_IDENTITY_VERSION = 2


def compact_json(inner: dict[str, Any]) -> str:
    """The signed serialization (section 9): compact, keys in document order, ASCII."""
    return json.dumps(inner, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class SignedCollateral:
    """A signed TCB Info or QE Identity, as served by ``/tcb`` and ``/qe/identity``."""

    #: ``tcbInfo`` or ``enclaveIdentity``: the key of the inner object in the body.
    kind: str
    #: The compact inner JSON text: exactly the signed bytes.
    text: str
    #: Raw ``r‖s`` (64 bytes) by the TCB Signing key.
    signature: bytes

    @property
    def body(self) -> str:
        """The response body ``{"<kind>":<text>,"signature":"<hex>"}``."""
        return f'{{"{self.kind}":{self.text},"signature":"{self.signature.hex()}"}}'

    @property
    def inner(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.text)
        return value

    @property
    def issue_date(self) -> str:
        return str(self.inner["issueDate"])

    @property
    def next_update(self) -> str:
        return str(self.inner["nextUpdate"])

    def verify(self, public_key: ec.EllipticCurvePublicKey) -> bool:
        """Whether the signature verifies over the text with ``public_key``."""
        return ecdsa_verify_raw(public_key, self.signature, self.text.encode("ascii"))


def sign_collateral(
    kind: str, inner: dict[str, Any], signing_key: ec.EllipticCurvePrivateKey
) -> SignedCollateral:
    """Sign the compact text of ``inner`` (ECDSA-P256-SHA256, raw ``r‖s``)."""
    text = compact_json(inner)
    return SignedCollateral(kind, text, ecdsa_sign_raw(signing_key, text.encode("ascii")))


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
