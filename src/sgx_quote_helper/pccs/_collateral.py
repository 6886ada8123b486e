"""Verification collateral in the form of dcap-qvl's ``QuoteCollateralV3``.

dcap-quote.md sections 7 and 9: the TCB Info and QE Identity are kept as the
exact compact JSON text the TCB Signing key signed; CRLs are DER; signatures
are raw ``r||s``. ``to_json``/``from_json`` use dcap-qvl's JSON form (hex for
binary fields) so a file written here is read by ``QuoteCollateralV3.from_json``
and the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import dcap_qvl
from cryptography import x509

from sgx_quote_helper._fs import MiB
from sgx_quote_helper._time import parse_time
from sgx_quote_helper.errors import ParseError

_BINARY_FIELDS = ("root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature")
_TEXT_FIELDS = (
    "pck_crl_issuer_chain",
    "tcb_info_issuer_chain",
    "tcb_info",
    "qe_identity_issuer_chain",
    "qe_identity",
)
#: Field order of dcap-qvl's ``QuoteCollateralV3`` (and of its JSON form).
FIELD_ORDER = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)


#: The largest collateral JSON read from a file or cache: Intel's is about 15 KB,
#: mostly CRLs and certificate chains; the cap leaves room for very long CRLs.
MAX_COLLATERAL_JSON_SIZE = 8 * MiB


def _load_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what} is not JSON: {exc}") from exc
    except RecursionError:
        raise ParseError(
            f"{what} is not usable JSON: arrays or objects nested too deeply"
        ) from None
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not a JSON object")
    return value


def _crl_next_update(der: bytes, what: str) -> datetime:
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise ParseError(f"{what} is not a DER CRL: {exc}") from exc
    next_update = crl.next_update_utc
    if next_update is None:
        raise ParseError(f"{what} has no nextUpdate")
    return next_update


@dataclass(frozen=True)
class Collateral:
    """Everything besides the quote that verification needs (``QuoteCollateralV3``)."""

    #: PEM: PCK Processor/Platform CA, then root.
    pck_crl_issuer_chain: str
    #: DER of the root CA CRL.
    root_ca_crl: bytes
    #: DER of the PCK CA CRL.
    pck_crl: bytes
    #: PEM: TCB Signing, then root.
    tcb_info_issuer_chain: str
    #: The signed compact JSON text of the inner ``tcbInfo`` object.
    tcb_info: str
    #: Raw ``r||s`` (64 bytes) over ``tcb_info``.
    tcb_info_signature: bytes
    #: PEM: TCB Signing, then root.
    qe_identity_issuer_chain: str
    #: The signed compact JSON text of the inner ``enclaveIdentity`` object.
    qe_identity: str
    #: Raw ``r||s`` (64 bytes) over ``qe_identity``.
    qe_identity_signature: bytes

    # -- conversions ---------------------------------------------------------

    def to_dcap_qvl(self) -> Any:
        """The ``dcap_qvl.QuoteCollateralV3`` the verification engine takes (made once)."""
        return self._dcap_qvl

    @cached_property
    def _dcap_qvl(self) -> Any:
        # The values are immutable; a verifier that keeps collateral in memory
        # converts it once instead of once per verification.
        return dcap_qvl.QuoteCollateralV3(*(getattr(self, name) for name in FIELD_ORDER))

    @classmethod
    def from_dcap_qvl(cls, value: Any) -> Collateral:
        return cls(**{name: _field_value(name, getattr(value, name)) for name in FIELD_ORDER})

    def to_json(self) -> str:
        """dcap-qvl's JSON form: hex for binary fields, the signed texts as strings."""
        fields: dict[str, str] = {}
        for name in FIELD_ORDER:
            value = getattr(self, name)
            fields[name] = value.hex() if isinstance(value, bytes) else value
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str | bytes) -> Collateral:
        """Read dcap-qvl's ``QuoteCollateralV3`` JSON (its own parser decides validity)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParseError(f"collateral JSON is not UTF-8: {exc}") from exc
        try:
            value = dcap_qvl.QuoteCollateralV3.from_json(text)
        except ValueError as exc:
            raise ParseError(f"not dcap-qvl QuoteCollateralV3 JSON: {exc}") from exc
        return cls.from_dcap_qvl(value)

    # -- views of the signed documents ----------------------------------------

    def tcb_info_object(self) -> dict[str, Any]:
        return _load_object(self.tcb_info, "TCB Info")

    def qe_identity_object(self) -> dict[str, Any]:
        return _load_object(self.qe_identity, "QE Identity")

    @property
    def fmspc(self) -> str:
        """The TCB Info's FMSPC, 12 upper-case hex characters."""
        value = self.tcb_info_object().get("fmspc")
        if not isinstance(value, str):
            raise ParseError("TCB Info has no fmspc")
        return value.upper()

    @property
    def tcb_evaluation_data_number(self) -> int:
        value = self.tcb_info_object().get("tcbEvaluationDataNumber")
        if not isinstance(value, int):
            raise ParseError("TCB Info has no tcbEvaluationDataNumber")
        return value

    @cached_property
    def issue_date(self) -> datetime:
        """The older of the TCB Info and QE Identity issue dates (the collateral's age)."""
        return min(
            parse_time(self.tcb_info_object().get("issueDate"), "TCB Info issueDate"),
            parse_time(self.qe_identity_object().get("issueDate"), "QE Identity issueDate"),
        )

    @cached_property
    def next_update(self) -> datetime:
        """The earliest nextUpdate of TCB Info, QE Identity and both CRLs.

        After this time a verifier refuses the collateral (dcap-qvl) or flags it
        expired (Intel QvE); a fresh copy must be fetched.
        """
        return min(
            parse_time(self.tcb_info_object().get("nextUpdate"), "TCB Info nextUpdate"),
            parse_time(self.qe_identity_object().get("nextUpdate"), "QE Identity nextUpdate"),
            _crl_next_update(self.pck_crl, "PCK CRL"),
            _crl_next_update(self.root_ca_crl, "root CA CRL"),
        )


def _field_value(name: str, value: Any) -> Any:
    if name in _BINARY_FIELDS:
        return bytes(value)
    if name in _TEXT_FIELDS:
        return str(value)
    raise AssertionError(name)
