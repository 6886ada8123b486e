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
    raw = _p256_der_to_raw(der)
    if raw is not None:
        return raw
    # Anything else (long-form lengths, non-minimal or negative integers,
    # trailing bytes, values beyond 32 bytes) is left to cryptography's DER
    # parser, which refuses what is not DER and decodes the rest.
    try:
        r, s = decode_dss_signature(der)
    except ValueError as exc:
        raise ParseError(f"not a DER ECDSA signature: {exc}") from None
    if not (0 <= r < _P256_LIMIT and 0 <= s < _P256_LIMIT):
        raise ParseError("ECDSA signature values do not fit P-256 (32 bytes each)")
    return r.to_bytes(P256_COORDINATE_SIZE, "big") + s.to_bytes(P256_COORDINATE_SIZE, "big")


def _p256_der_to_raw(der: bytes) -> bytes | None:
    """``r‖s`` from the DER every P-256 signature of ``cryptography`` has, or None.

    ``SEQUENCE { INTEGER r, INTEGER s }`` with one-byte lengths, each integer
    minimally encoded, non-negative and at most 32 bytes of value (a 33rd,
    leading zero byte only keeps a high bit from reading as a sign). For
    exactly these inputs the result equals decoding with ``cryptography``'s
    ``decode_dss_signature`` and writing each value as 32 big-endian bytes,
    in a third of its time (decoding makes Python integers of both values).
    """
    size = len(der)
    if size < 8 or der[0] != 0x30 or der[1] != size - 2 or der[2] != 0x02:
        return None
    r_end = 4 + der[3]
    if r_end + 2 > size or der[r_end] != 0x02 or r_end + 2 + der[r_end + 1] != size:
        return None
    r, s = der[4:r_end], der[r_end + 2 :]
    return _unsigned_32(r) + _unsigned_32(s) if _minimal(r) and _minimal(s) else None


def _minimal(integer: bytes) -> bool:
    """A minimal DER INTEGER body of a non-negative value of at most 32 bytes."""
    size = len(integer)
    if size == 0 or size > P256_COORDINATE_SIZE + 1 or integer[0] & 0x80:
        return False
    if integer[0] == 0 and size > 1:
        return bool(integer[1] & 0x80)  # the zero byte is there only for a set high bit
    return size <= P256_COORDINATE_SIZE


def _unsigned_32(integer: bytes) -> bytes:
    return integer[-P256_COORDINATE_SIZE:].rjust(P256_COORDINATE_SIZE, b"\x00")


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
