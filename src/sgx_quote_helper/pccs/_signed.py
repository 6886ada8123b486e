"""Signed TCB Info and QE Identity: the one serialisation rule, and the one value type.

dcap-quote.md section 9: the TCB Signing key signs the UTF-8 bytes of the
compact JSON of the inner object (``tcbInfo`` or ``enclaveIdentity``), keys in
document order. Verifiers do not hash the bytes they received; they parse the
body and re-serialise the inner object, dcap-qvl with serde_json
(``preserve_order``), which writes non-ASCII characters as UTF-8, not as
``\\u`` escapes. :func:`signed_text` is that serialisation; the simulated PCS
signs what it returns, and the PCCS client keeps what it returns for a
fetched body, so the two agree on any content, ASCII or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._time import parse_time
from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.sgx import ecdsa_verify_raw


def signed_text(inner: Mapping[str, object]) -> str:
    """The text the TCB Signing key signs for an inner ``tcbInfo``/``enclaveIdentity``.

    Compact, keys in document order (``json.loads`` keeps it), non-ASCII left as
    is: exactly what dcap-qvl re-emits before it checks the signature.
    """
    return json.dumps(inner, separators=(",", ":"), ensure_ascii=False)


def signed_bytes(text: str) -> bytes:
    """The bytes the signature covers: the signed text in UTF-8."""
    return text.encode("utf-8")


@dataclass(frozen=True)
class SignedCollateral:
    """A signed TCB Info or QE Identity, as ``/tcb`` and ``/qe/identity`` serve it."""

    #: ``tcbInfo`` or ``enclaveIdentity``: the key of the inner object in the body.
    kind: str
    #: :func:`signed_text` of the inner object: exactly what the signature covers.
    text: str
    #: Raw ``r||s``, 64 bytes, by the TCB Signing key.
    signature: bytes
    #: PEM: TCB Signing certificate, then root.
    issuer_chain_pem: str

    @property
    def body(self) -> str:
        """The response body ``{"<kind>":<text>,"signature":"<hex>"}``."""
        return f'{{"{self.kind}":{self.text},"signature":"{self.signature.hex()}"}}'

    @property
    def inner(self) -> dict[str, Any]:
        """The inner object, parsed."""
        try:
            value = json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"{self.kind} is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise ParseError(f"{self.kind} is not a JSON object")
        return value

    @property
    def issue_date(self) -> datetime:
        return parse_time(self.inner.get("issueDate"), f"{self.kind} issueDate")

    @property
    def next_update(self) -> datetime:
        return parse_time(self.inner.get("nextUpdate"), f"{self.kind} nextUpdate")

    @property
    def tcb_evaluation_data_number(self) -> int:
        value = self.inner.get("tcbEvaluationDataNumber")
        if not isinstance(value, int):
            raise ParseError(f"{self.kind} has no tcbEvaluationDataNumber")
        return value

    def verify(self, public_key: ec.EllipticCurvePublicKey) -> bool:
        """Whether the signature verifies over the text with ``public_key``."""
        return ecdsa_verify_raw(public_key, self.signature, signed_bytes(self.text))
