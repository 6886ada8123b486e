"""ECDSA P-256 values in the raw form quotes use, and conversions to ``cryptography``.

Quotes carry signatures as raw ``r‖s`` (64 bytes, each half big-endian) and
public keys as raw ``x‖y`` (64 bytes, no ``0x04`` prefix), where X.509 and
``cryptography`` use DER signatures and key objects (dcap-quote.md section 0).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sgx_quote_helper.errors import ParseError, UsageError

#: Bytes of one P-256 coordinate or scalar.
P256_COORDINATE_SIZE = 32
#: Bytes of a raw ``r‖s`` signature.
RAW_SIGNATURE_SIZE = 2 * P256_COORDINATE_SIZE
#: Bytes of a raw ``x‖y`` public key.
RAW_PUBLIC_KEY_SIZE = 2 * P256_COORDINATE_SIZE

#: The signature algorithm of quotes; immutable, so built once rather than per signature.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256_LIMIT = 1 << (8 * P256_COORDINATE_SIZE)


def ecdsa_signature_to_raw(der: bytes) -> bytes:
    """A DER ``ECDSA-Sig-Value`` as the 64-byte ``r‖s`` a quote carries."""
    try:
        r, s = decode_dss_signature(der)
    except ValueError as exc:
        raise ParseError(f"not a DER ECDSA signature: {exc}") from None
    if not (0 <= r < _P256_LIMIT and 0 <= s < _P256_LIMIT):
        raise ParseError("ECDSA signature values do not fit P-256 (32 bytes each)")
    return r.to_bytes(P256_COORDINATE_SIZE, "big") + s.to_bytes(P256_COORDINATE_SIZE, "big")


def ecdsa_signature_from_raw(raw: bytes) -> bytes:
    """The 64-byte ``r‖s`` of a quote as a DER signature for ``cryptography``."""
    if len(raw) != RAW_SIGNATURE_SIZE:
        raise ParseError(f"raw ECDSA signature must be {RAW_SIGNATURE_SIZE} bytes, got {len(raw)}")
    r = int.from_bytes(raw[:P256_COORDINATE_SIZE], "big")
    s = int.from_bytes(raw[P256_COORDINATE_SIZE:], "big")
    return encode_dss_signature(r, s)


def ec_public_key_to_raw(key: ec.EllipticCurvePublicKey) -> bytes:
    """A P-256 public key as the 64-byte ``x‖y`` of a quote."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise UsageError(f"quotes use P-256 keys, not {key.curve.name}")
    numbers = key.public_numbers()
    return numbers.x.to_bytes(P256_COORDINATE_SIZE, "big") + numbers.y.to_bytes(
        P256_COORDINATE_SIZE, "big"
    )


def ec_public_key_from_raw(raw: bytes) -> ec.EllipticCurvePublicKey:
    """The 64-byte ``x‖y`` of a quote as a P-256 key; refuses points off the curve."""
    if len(raw) != RAW_PUBLIC_KEY_SIZE:
        raise ParseError(
            f"raw P-256 public key must be {RAW_PUBLIC_KEY_SIZE} bytes, got {len(raw)}"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError:
        raise ParseError("raw public key is not a point on P-256") from None


def ecdsa_sign_raw(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256-SHA256 over ``data``, as the raw ``r‖s`` a quote carries."""
    return ecdsa_signature_to_raw(private_key.sign(data, _ECDSA_SHA256))


def ecdsa_verify_raw(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` (raw ``r‖s``) is a valid ECDSA-P256-SHA256 over ``data``.

    A malformed signature (wrong length) is simply invalid. Verifiers that must
    raise build on this; the codec itself never verifies.
    """
    if len(signature) != RAW_SIGNATURE_SIZE:
        return False
    try:
        public_key.verify(ecdsa_signature_from_raw(signature), data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True
