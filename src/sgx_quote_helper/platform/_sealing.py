"""Sealing: AES-GCM with an EGETKEY SEAL key, as the SDK's ``sgx_seal_data``.

Like ``sgx_sealed_data_t`` (linux-sgx ``common/inc/sgx_tseal.h``) a blob carries
the key request it was sealed under (policy, ISVSVN, CPUSVN, a random KEYID and
the masks), so that it can be unsealed after an enclave or CPU update that only
raises SVNs. The whole header and the caller's additional data are
authenticated; any change to any byte makes unsealing fail.

Layout (little-endian)::

    0   8  magic "SQHSEAL" 0x01
    8   2  key policy
    10  2  ISVSVN
    12  16 CPUSVN
    28  32 KEYID
    60  16 attribute mask (flags, XFRM)
    76  4  MISCSELECT mask
    80  12 AES-GCM nonce
    92  4  length A of the additional data
    96  4  length C of the ciphertext (tag included)
    100 A  additional data (authenticated, not encrypted)
    ... C  ciphertext || 16-byte tag
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sgx_quote_helper.platform._cpu import KeyName, KeyPolicy, KeyRequest, SimulatedCpu
from sgx_quote_helper.platform._enclave import EnclaveIdentity
from sgx_quote_helper.platform._errors import KeyRequestError, SealError
from sgx_quote_helper.sgx import Attributes

_MAGIC = b"SQHSEAL\x01"
_HEADER_SIZE = 100
_TAG_SIZE = 16
#: Sealed blobs are small (keys); refuse absurd lengths before allocating.
MAX_SEALED_SIZE = 1 << 20


def seal(
    cpu: SimulatedCpu,
    identity: EnclaveIdentity,
    plaintext: bytes,
    *,
    additional_data: bytes = b"",
    policy: KeyPolicy = KeyPolicy.MRSIGNER,
) -> bytes:
    """Seal ``plaintext`` to ``identity`` on this platform (MRSIGNER policy by default).

    MRSIGNER is the SDK's default and what QE3 uses for its key blob: a later
    release of the same signer, at a higher ISVSVN, can still unseal it.
    """
    request = KeyRequest(
        key_name=KeyName.SEAL,
        key_policy=policy,
        isv_svn=identity.isv_svn,
        cpu_svn=cpu.cpu_svn,
        key_id=os.urandom(32),
    )
    key = cpu.egetkey(identity, request)
    nonce = os.urandom(12)
    ciphertext_size = len(plaintext) + _TAG_SIZE
    header = (
        _MAGIC
        + int(policy).to_bytes(2, "little")
        + identity.isv_svn.to_bytes(2, "little")
        + cpu.cpu_svn
        + request.key_id
        + request.attribute_mask.to_bytes()
        + request.misc_mask.to_bytes(4, "little")
        + nonce
        + len(additional_data).to_bytes(4, "little")
        + ciphertext_size.to_bytes(4, "little")
    )
    assert len(header) == _HEADER_SIZE
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, header + additional_data)
    return header + additional_data + ciphertext


def unseal(cpu: SimulatedCpu, identity: EnclaveIdentity, blob: bytes) -> tuple[bytes, bytes]:
    """Return ``(plaintext, additional_data)``; raise :class:`SealError` on any defect."""
    if len(blob) > MAX_SEALED_SIZE:
        raise SealError(f"sealed blob is {len(blob)} bytes, above the {MAX_SEALED_SIZE} limit")
    if len(blob) < _HEADER_SIZE + _TAG_SIZE or blob[:8] != _MAGIC:
        raise SealError("not a sealed blob of this format (bad magic or truncated)")
    aad_size = int.from_bytes(blob[92:96], "little")
    ct_size = int.from_bytes(blob[96:100], "little")
    if ct_size < _TAG_SIZE or _HEADER_SIZE + aad_size + ct_size != len(blob):
        raise SealError("sealed blob lengths are inconsistent (truncated or altered)")
    try:
        policy = KeyPolicy(int.from_bytes(blob[8:10], "little"))
        request = KeyRequest(
            key_name=KeyName.SEAL,
            key_policy=policy,
            isv_svn=int.from_bytes(blob[10:12], "little"),
            cpu_svn=blob[12:28],
            key_id=blob[28:60],
            attribute_mask=Attributes.from_bytes(blob[60:76]),
            misc_mask=int.from_bytes(blob[76:80], "little"),
        )
        key = cpu.egetkey(identity, request)
    except (ValueError, KeyRequestError) as exc:
        raise SealError(f"cannot derive the seal key for this blob: {exc}") from exc
    header = blob[:_HEADER_SIZE]
    additional_data = blob[_HEADER_SIZE : _HEADER_SIZE + aad_size]
    try:
        plaintext = AESGCM(key).decrypt(
            blob[80:92], blob[_HEADER_SIZE + aad_size :], header + additional_data
        )
    except InvalidTag:
        raise SealError(
            "sealed blob fails authentication: it is corrupted, or was sealed by "
            "another enclave or on another platform"
        ) from None
    return plaintext, additional_data
