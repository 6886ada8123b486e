"""The sample's key agreement: ECDH P-256 bound into REPORTDATA, HKDF-SHA256, AES-256-GCM.

Why each piece:

- A fresh ECDH key pair per run: the session key exists only for this exchange.
- ``REPORTDATA = SHA-256(label || public key) || 0^32``: the quote vouches for the
  public key, so a relying party that checks the binding knows the key belongs
  to the attested enclave (a man in the middle cannot substitute his own without
  breaking the binding or the quote's signature). The label separates this use
  of REPORTDATA from any other.
- ``HKDF-SHA256(ECDH secret, info = label || both public keys in a fixed order)``:
  both sides derive the same key, bound to both attested public keys.
- AES-256-GCM with the *sender's* public key as associated data, so a message
  reflected back to its sender does not decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sgx_quote_helper.errors import CodedError
from sgx_quote_helper.sgx import REPORT_DATA_SIZE

#: Uncompressed SEC1 point: 0x04 || x || y.
PUBLIC_KEY_SIZE = 65
NONCE_SIZE = 12
KEY_SIZE = 32

BINDING_LABEL = b"sgx-quote-helper/samples/remote-attestation/v1/report-data\x00"
KDF_LABEL = b"sgx-quote-helper/samples/remote-attestation/v1/session-key\x00"


class KeyAgreementError(CodedError, ValueError):
    """A public key, binding or ciphertext that does not check out."""


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def load_public_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A peer's P-256 public key (uncompressed point), checked to be on the curve."""
    if len(raw) != PUBLIC_KEY_SIZE or raw[0] != 0x04:
        raise KeyAgreementError(
            f"the peer's public key is not an uncompressed P-256 point ({len(raw)} bytes)"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise KeyAgreementError(f"the peer's public key is not on P-256: {exc}") from None


def report_data_for(public_key: bytes) -> bytes:
    """The REPORTDATA that binds ``public_key``: SHA-256(label || key), zero-padded."""
    return hashlib.sha256(BINDING_LABEL + public_key).digest().ljust(REPORT_DATA_SIZE, b"\x00")


def derive_session_key(
    own_key: ec.EllipticCurvePrivateKey, own_public: bytes, peer_public: bytes
) -> bytes:
    """Both sides get the same 256-bit key: the public keys enter ``info`` sorted."""
    shared = own_key.exchange(ec.ECDH(), load_public_key(peer_public))
    first, second = sorted((own_public, peer_public))
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=KDF_LABEL + first + second
    )
    return hkdf.derive(shared)


def key_fingerprint(key: bytes) -> str:
    """A short, non-secret name for a key (so both sides can show they agree)."""
    return hmac.new(key, b"fingerprint", hashlib.sha256).hexdigest()[:16]


def seal(key: bytes, plaintext: bytes, sender_public: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM with a fresh random nonce; returns ``(nonce, ciphertext)``."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, sender_public)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, sender_public: bytes) -> bytes:
    if len(nonce) != NONCE_SIZE:
        raise KeyAgreementError(f"the nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, sender_public)
    except InvalidTag:
        raise KeyAgreementError(
            "the peer's message does not decrypt under the session key (wrong key or altered)"
        ) from None
