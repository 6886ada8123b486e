"""The root of trust a verification is made against.

Intel's root is the default, as dcap-qvl builds it in (``verify``). Any other
root (the simulated manufacturer's, a test PKI) is used only when passed in
explicitly, and every result verified against it says so (``simulated``).
Intel's root is recognised by its public key (dcap-quote.md section 5), the way
Intel's QvE pins it, so passing Intel's certificate explicitly is not
"simulated".
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._fs import MiB, read_limited
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pccs import INTEL_ROOT_PUBLIC_KEY

#: SHA-256 of the DER of Intel's "Intel SGX Root CA" certificate (659 bytes), the
#: one dcap-qvl embeds and Intel's quotes carry as the last certificate.
INTEL_ROOT_CA_SHA256 = bytes.fromhex(
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)
INTEL_ROOT_CA_SUBJECT = "CN=Intel SGX Root CA,O=Intel Corporation,L=Santa Clara,ST=CA,C=US"
#: The largest root CA file read: a certificate is a few KB, DER or PEM.
MAX_ROOT_CA_FILE_SIZE = 1 * MiB


def root_key_id(public_key: bytes) -> bytes:
    """SHA-384 of the root's uncompressed public key, as Intel's supplemental data has it."""
    return hashlib.sha384(public_key).digest()


def _public_key_bytes(cert: x509.Certificate) -> bytes:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise UsageError("a DCAP root CA must have a P-256 (secp256r1) key")
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass(frozen=True)
class TrustAnchor:
    """A root CA certificate that quotes and collateral must chain to."""

    #: DER of the root certificate; ``None`` for dcap-qvl's built-in Intel root.
    certificate_der: bytes | None
    #: Uncompressed SEC1 P-256 public key (65 bytes).
    public_key: bytes
    #: SHA-256 of the root certificate's DER.
    certificate_sha256: bytes
    subject: str

    @classmethod
    def intel(cls) -> TrustAnchor:
        """Intel's SGX Root CA, as built into dcap-qvl."""
        return cls(None, INTEL_ROOT_PUBLIC_KEY, INTEL_ROOT_CA_SHA256, INTEL_ROOT_CA_SUBJECT)

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> TrustAnchor:
        public_key = _public_key_bytes(cert)
        if cert.issuer != cert.subject:
            raise UsageError("a trust anchor must be a self-signed root CA certificate")
        try:
            cert.verify_directly_issued_by(cert)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise UsageError(f"the root CA certificate's self-signature is invalid: {exc}") from exc
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(der, public_key, hashlib.sha256(der).digest(), cert.subject.rfc4514_string())

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustAnchor:
        """A root CA certificate, DER or PEM."""
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                cert = x509.load_pem_x509_certificate(data)
            else:
                cert = x509.load_der_x509_certificate(data)
        except (ValueError, x509.InvalidVersion) as exc:
            raise UsageError(f"not a DER or PEM X.509 certificate: {exc}") from exc
        return cls.from_certificate(cert)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustAnchor:
        try:
            data = read_limited(path, MAX_ROOT_CA_FILE_SIZE, "a root CA certificate (DER or PEM)")
        except OSError as exc:
            raise UsageError(f"cannot read root CA certificate {os.fspath(path)!r}: {exc}") from exc
        try:
            return cls.from_bytes(data)
        except UsageError as exc:
            raise UsageError(f"root CA certificate {os.fspath(path)!r}: {exc}") from exc

    @property
    def key_id(self) -> bytes:
        """SHA-384 of the public key (``root_key_id`` of Intel's supplemental data)."""
        return root_key_id(self.public_key)

    @property
    def is_intel(self) -> bool:
        """Whether this is Intel's SGX root key (the only root real platforms chain to)."""
        return hmac.compare_digest(self.public_key, INTEL_ROOT_PUBLIC_KEY)

    @property
    def simulated(self) -> bool:
        """Whether the root is not Intel's: results prove nothing about real hardware."""
        return not self.is_intel

    def is_certificate(self, der: bytes) -> bool:
        """Whether ``der`` is exactly this root certificate."""
        return hmac.compare_digest(hashlib.sha256(der).digest(), self.certificate_sha256)

    def describe(self) -> str:
        kind = "Intel" if self.is_intel else "NOT Intel (simulated or private)"
        return f"{self.subject} [{kind}, key id {self.key_id.hex()[:16]}...]"
