"""Sealing: AES-GCM under an EGETKEY seal key; every defect is a SealError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgx_quote_helper.platform import (
    KeyPolicy,
    SealError,
    SimulatedCpu,
    demo_app_identity,
    quoting_enclave_identity,
    seal,
    unseal,
)

CPU_SVN = bytes([2] * 16)
CPU = SimulatedCpu(bytes(range(32)), CPU_SVN)
QE = quoting_enclave_identity(10)

BLOB = seal(CPU, QE, b"attestation key", additional_data=b"public part")


def test_round_trip() -> None:
    assert unseal(CPU, QE, BLOB) == (b"attestation key", b"public part")


def test_each_seal_is_fresh() -> None:
    assert seal(CPU, QE, b"x") != seal(CPU, QE, b"x")  # random KEYID and nonce


def test_other_enclave_or_platform_cannot_unseal() -> None:
    with pytest.raises(SealError):
        unseal(CPU, demo_app_identity(), BLOB)
    with pytest.raises(SealError, match="another enclave or on another platform"):
        unseal(SimulatedCpu(bytes(32), CPU_SVN), QE, BLOB)


def test_mrsigner_policy_survives_an_enclave_update_but_not_a_downgrade() -> None:
    assert unseal(CPU, quoting_enclave_identity(11), BLOB)[0] == b"attestation key"
    with pytest.raises(SealError, match="ISVSVN"):
        unseal(CPU, quoting_enclave_identity(9), BLOB)


def test_mrenclave_policy_binds_the_measurement() -> None:
    blob = seal(CPU, QE, b"k", policy=KeyPolicy.MRENCLAVE)
    assert unseal(CPU, QE, blob)[0] == b"k"
    with pytest.raises(SealError):
        unseal(CPU, quoting_enclave_identity(11), blob)


def test_cpu_downgrade_cannot_unseal() -> None:
    lower = SimulatedCpu(bytes(range(32)), bytes([1] * 16))
    with pytest.raises(SealError, match="CPUSVN"):
        unseal(lower, QE, BLOB)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_detected(position: int, flip: int) -> None:
    raw = bytearray(BLOB)
    raw[position % len(raw)] ^= flip
    with pytest.raises(SealError):
        unseal(CPU, QE, bytes(raw))


@given(st.integers(min_value=0, max_value=len(BLOB) - 1))
def test_truncation_is_detected(length: int) -> None:
    with pytest.raises(SealError):
        unseal(CPU, QE, BLOB[:length])


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_seal_error(data: bytes) -> None:
    with pytest.raises(SealError):
        unseal(CPU, QE, data)


def test_trailing_garbage_is_detected() -> None:
    with pytest.raises(SealError, match="inconsistent"):
        unseal(CPU, QE, BLOB + b"\0")
