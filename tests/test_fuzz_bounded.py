"""The bounded part of ``make fuzz``: every target, its real seeds and mutations of them.

Property (``fuzz/targets.py``): whatever the bytes, only the project's own
errors; the PCCS answers 200, 400 or 404, never 500. ``make fuzz`` runs the
same targets coverage-guided for a million inputs each; docs/reliability.md
has the counts and the findings.
"""

from __future__ import annotations

import pytest

from fuzz.engine import mutate, run_mutations
from fuzz.targets import TARGETS

#: Inputs per target here; the slow ones (verification, ASGI) get fewer.
RUNS = {
    "aesm-frames": 1500,
    "quote": 3000,
    "pck-extension": 3000,
    "collateral": 400,
    "pccs-query": 600,
}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_raises_only_project_errors(name: str) -> None:
    report = run_mutations(TARGETS[name], RUNS[name], seed=11)
    assert report.executed == RUNS[name]
    assert not report.findings, report.findings[0].error


def test_the_seeds_are_real_messages_that_pass() -> None:
    # The seeds must exercise the success paths (a target that rejects every
    # seed would fuzz only the first length check).
    from fuzz import targets
    from sgx_quote_helper.sgx import Quote, SgxExtension

    for raw in targets._quote_seeds():
        assert Quote.from_bytes(raw).to_bytes() == raw
    for raw in targets._pck_extension_seeds():
        assert SgxExtension.from_bytes(raw).fmspc
    assert len(targets._aesm_seeds()) >= 8


def test_mutation_is_deterministic_and_changes_the_input() -> None:
    import random

    seeds = [bytes(range(64))]
    first = [mutate(random.Random(3), seeds[0], seeds) for _ in range(1)]
    again = [mutate(random.Random(3), seeds[0], seeds) for _ in range(1)]
    assert first == again
    rng = random.Random(5)
    assert sum(mutate(rng, seeds[0], seeds) != seeds[0] for _ in range(200)) > 190


def test_the_frame_stream_is_cut_finely_at_its_start_and_all_of_it_is_delivered() -> None:
    from fuzz.targets import _cut

    assert _cut(b"") == [b""]
    assert _cut(b"\x00") == [b""]
    data = bytes(range(256)) * 40
    for first in range(7):
        step = first + 1
        chunks = _cut(bytes([first]) + data)
        assert b"".join(chunks) == data
        fine = chunks[: -(-64 // step)]
        assert all(len(chunk) == step for chunk in fine[:-1])
        assert len(chunks) <= len(fine) + 32
    # A short stream (one request frame) is cut at every step, as before.
    assert _cut(b"\x00" + bytes(40)) == [bytes(1)] * 40
