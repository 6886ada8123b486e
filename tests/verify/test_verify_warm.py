"""A warm verifier: what it remembers between verifications changes no outcome.

A ``Verifier`` remembers, per QE attestation key, what a quote's header and
certification data established (decoding, the chain's root), and the engine's
claims for that certification data with the collateral they came from; then
only the ISV report body is decoded again and dcap-qvl's one-shot verification
(the same checks) gives the verdict. These tests compare a warm verifier with
a cold one (a new ``Verifier``, which remembers nothing) on the real Intel quote
of ``tests/assets`` and on every kind of damage, and check that the engine's
claims are taken again when the collateral or the verdict differs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sgx_quote_helper.pccs import Collateral
from sgx_quote_helper.verify import (
    CollateralExpired,
    InvalidSignature,
    UnsafeNoAppraisal,
    VerificationError,
    VerificationResult,
    Verifier,
)
from sgx_quote_helper.verify import _verifier as verifier_module
from sgx_quote_helper.verify._engine import Verdict, run_engine, run_verdict
from sgx_quote_helper.verify._result import build_result

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = (ASSETS / "intel-sgx-quote-v3.bin").read_bytes()
COLLATERAL = Collateral.from_json((ASSETS / "intel-sgx-quote-v3.collateral.json").read_text())
JULY_1 = 1751328000  # inside the collateral's window (tests/assets/README.md)
AFTER_WINDOW = 1752919279  # one second past the QE Identity's nextUpdate

#: ISV report body [48, 432) and ISV signature [436, 500) of a v3 quote: the
#: bytes a warm verifier does not compare with what it remembers.
BODY = range(48, 432)
SIGNATURE = range(436, 500)


def _outcome(verifier: Verifier, quote: bytes, *, now: int = JULY_1) -> Any:
    try:
        result = verifier.verify(quote, COLLATERAL, now=now, policy=UnsafeNoAppraisal())
    except VerificationError as exc:
        return (type(exc), exc.quote3_error, exc.qv_result, str(exc))
    return result.to_dict()


class Calls:
    """Counts the calls of the two engine entry points the verifier uses."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.claims = 0
        self.verdicts = 0

        def counted_claims(*args: Any, **kwargs: Any) -> Any:
            self.claims += 1
            return run_engine(*args, **kwargs)

        def counted_verdict(*args: Any, **kwargs: Any) -> Any:
            self.verdicts += 1
            return run_verdict(*args, **kwargs)

        monkeypatch.setattr(verifier_module, "run_engine", counted_claims)
        monkeypatch.setattr(verifier_module, "run_verdict", counted_verdict)


def _flip(position: int) -> bytes:
    tampered = bytearray(QUOTE)
    tampered[position] ^= 0x01
    return bytes(tampered)


def test_warm_result_is_the_cold_result(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    warm = Verifier()
    results = [
        warm.verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal()) for _ in range(3)
    ]
    # The claims once, then the one-shot verdict for each later verification.
    assert (calls.claims, calls.verdicts) == (1, 2)
    cold = Verifier().verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    for result in results:
        assert result == cold
        assert result.to_dict() == cold.to_dict()


def test_warm_verifier_refuses_what_a_cold_one_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every byte of the body and signature, and a sample of all others: the same
    error (type, codes, message) warm as cold, and never an acceptance."""
    calls = Calls(monkeypatch)
    warm = Verifier()
    positions = sorted({*BODY, *SIGNATURE, *range(0, len(QUOTE), 7)})
    for position in positions:
        # A damaged quote that decodes replaces what the verifier remembers for
        # this attestation key: warm it with the genuine quote each time.
        assert isinstance(_outcome(warm, QUOTE), dict)
        claims_before = calls.claims
        tampered = _flip(position)
        warm_outcome = _outcome(warm, tampered)
        assert not isinstance(warm_outcome, dict), f"byte {position} accepted"
        assert warm_outcome == _outcome(Verifier(), tampered), f"byte {position}"
        if position in BODY or position in SIGNATURE:
            # Judged by the one-shot verification, with the remembered claims.
            assert calls.claims == claims_before + 1  # the cold verifier's
            assert warm_outcome[0] is InvalidSignature


def test_remembered_claims_are_for_their_collateral_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    warm = Verifier()
    assert isinstance(_outcome(warm, QUOTE), dict)
    assert calls.claims == 1
    # An equal collateral (another object, as a caller that reads the file per
    # verification has) uses the remembered claims.
    equal = Collateral.from_json(COLLATERAL.to_json())
    warm.verify(QUOTE, equal, now=JULY_1, policy=UnsafeNoAppraisal())
    assert calls.claims == 1
    # Other collateral: the engine's claims again (here a refusal, judged as cold).
    bad = bytearray(COLLATERAL.qe_identity_signature)
    bad[5] ^= 1
    other = dataclasses.replace(COLLATERAL, qe_identity_signature=bytes(bad))
    with pytest.raises(InvalidSignature):
        warm.verify(QUOTE, other, now=JULY_1, policy=UnsafeNoAppraisal())
    assert calls.claims == 2


def test_validity_is_judged_at_each_verification_time() -> None:
    warm = Verifier()
    assert isinstance(_outcome(warm, QUOTE), dict)
    # Same quote and collateral, remembered claims: the time still decides.
    warm_late = _outcome(warm, QUOTE, now=AFTER_WINDOW)
    assert warm_late[0] is CollateralExpired
    assert warm_late == _outcome(Verifier(), QUOTE, now=AFTER_WINDOW)


def test_a_verdict_that_differs_from_the_claims_takes_the_claims_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warm = Verifier()
    expected = warm.verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    calls = Calls(monkeypatch)

    def other_verdict(*args: Any, **kwargs: Any) -> Verdict:
        return run_verdict(*args, **kwargs)._replace(status="UpToDate", advisory_ids=())

    monkeypatch.setattr(verifier_module, "run_verdict", other_verdict)
    again = warm.verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    assert calls.claims == 1
    assert again == expected  # the engine's claims, not the remembered ones


def test_remembered_certifications_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier_module, "MAX_REMEMBERED_CERTIFICATIONS", 2)
    warm = Verifier()
    # Quotes with other attestation keys (and so refused signatures): each one
    # is remembered once it decoded and chained, the oldest forgotten first.
    for index in range(4):
        key = bytearray(QUOTE)
        key[500] = index
        with pytest.raises(VerificationError):
            warm.verify(bytes(key), COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    assert len(warm._certified) == 2
    result: VerificationResult = warm.verify(
        QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal()
    )
    assert result.report.report_data.startswith(b"Hello, world!")
    assert len(warm._certified) == 2


def test_results_are_built_whole_and_stay_frozen() -> None:
    result = Verifier().verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    assert result == VerificationResult(**fields)
    assert hash(result) == hash(VerificationResult(**fields))
    assert build_result(**fields) == result
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = result.status  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing \\['verified_at'\\]"):
        build_result(**{k: v for k, v in fields.items() if k != "verified_at"})
    with pytest.raises(TypeError, match="unknown \\['extra'\\]"):
        build_result(**fields, extra=1)
