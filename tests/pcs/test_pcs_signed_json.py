"""One signed-JSON rule on both sides: what the PCS signs is what the PCCS client checks.

dcap-quote.md section 9: verifiers re-serialise the inner object; dcap-qvl
writes non-ASCII characters as UTF-8. Intel's values are ASCII, so a server
that escapes (``\\u00fc``) and a client that does not agree only on ASCII; this
test signs non-ASCII content on the server and checks it through the client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper.pccs import PccsClient, SignedCollateral, signed_bytes, signed_text
from sgx_quote_helper.pcs import Manufacturer, serve_in_thread
from sgx_quote_helper.pcs._collateral import sign_collateral

NON_ASCII = "Prüfung — 署名 ✓"


def test_non_ascii_collateral_signed_by_the_server_verifies_through_the_client(
    sim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manufacturer = Manufacturer.load(sim)
    fmspc = bytes.fromhex(json.loads((sim / "platform" / "platform.json").read_text())["fmspc"])
    inner = manufacturer.tcb_info(fmspc).inner | {"note": NON_ASCII}
    key = ec.generate_private_key(ec.SECP256R1())
    signed = sign_collateral("tcbInfo", inner, key, manufacturer.tcb_issuer_chain_pem())

    def tcb_info(_fmspc: bytes, **_: object) -> SignedCollateral:
        return signed

    monkeypatch.setattr(manufacturer, "tcb_info", tcb_info)
    with serve_in_thread(manufacturer) as service, PccsClient(service.url) as client:
        fetched = client.get_tcb_info(fmspc)

    # The client re-serialised the body to exactly the text the server signed,
    # with the characters as they are (UTF-8), not as \u escapes.
    assert fetched.text == signed.text == signed_text(inner)
    assert NON_ASCII in fetched.text
    assert fetched.verify(key.public_key())
    assert fetched.inner["note"] == NON_ASCII
    # The escaped form is other bytes: a signature over it would not verify here.
    escaped = json.dumps(inner, separators=(",", ":"), ensure_ascii=True)
    assert signed_bytes(escaped) != signed_bytes(fetched.text)
